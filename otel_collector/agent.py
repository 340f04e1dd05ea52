"""The agent's lifecycle: start, collect on schedule, stop cleanly on a signal."""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

import psutil
import structlog

from otel_collector import __version__, scrapers
from otel_collector.collection import Collection
from otel_collector.config import Config, enabled_metrics, metrics_without_scraper
from otel_collector.health import HealthBindError, HealthServer
from otel_collector.hostfs import HostRoot
from otel_collector.scrapers.agent import AgentScraper
from otel_collector.scrapers.base import ErrorLog, ScraperContext
from otel_collector.selftelemetry import AgentStats

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider

_log = structlog.get_logger("otel_collector.agent")

EXIT_OK = 0
EXIT_STARTUP_FAILED = 1


class Agent:
    """Wires scrapers, instruments, exporter and health service together."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.host = HostRoot(config.host_root)
        self.health = HealthServer(
            config.health_host,
            config.health_port,
            cycle_interval_s=config.export_interval_ms / 1e3,
            recovery_window_s=config.health_recovery_window_ms / 1e3,
        )
        self.stats = AgentStats()
        self.errors = ErrorLog()
        self.enabled = enabled_metrics(config)
        self.collection: Collection | None = None
        self.provider: MeterProvider | None = None

    def _build_collection(self) -> Collection:
        context = ScraperContext(self.config, self.host, self.enabled, self.errors)
        active = scrapers.build(self.config.scrapers, context)
        active.append(AgentScraper(context, stats=self.stats))
        return Collection(
            active, self.enabled, self.errors, self.stats, on_cycle=self.health.cycle_completed
        )

    def _on_export(self, success: bool, data_points: int) -> None:
        self.stats.exported(success, data_points)
        if success:
            self.health.export_succeeded()
        else:
            self.health.export_failed()

    def start(self) -> None:
        """Bind the health port, take the baseline reading, and start the schedule.

        The health port is bound first, so that a second agent on the same
        host fails before it reads or sends anything.
        """
        self.health.start()
        if self.config.sdk_disabled:
            _log.warning("sdk_disabled", detail="OTEL_SDK_DISABLED is true: nothing is collected")
            self.health.cycle_completed()
            return
        if self.host.is_prefixed:
            psutil.PROCFS_PATH = self.host.procfs
        self.collection = self._build_collection()
        # The baseline cycle: utilizations need a previous reading, and the
        # health services turn SERVING once one cycle has completed.
        self.collection.run_cycle()
        # Imported only now: the SDK and exporter are most of the start-up time.
        from otel_collector import pipeline

        self.provider, count = pipeline.start(
            self.config, self.host, self.collection, self.enabled, self._on_export
        )
        idle = metrics_without_scraper(self.config)
        if idle:
            _log.warning(
                "metrics_without_scraper",
                metrics=sorted(idle),
                scrapers=sorted(set(idle.values())),
                hint="add the scrapers to HOST_AGENT_SCRAPERS to export these metrics",
            )
        _log.info(
            "agent_started",
            version=__version__,
            instruments=count,
            health_port=self.health.port,
            config=self.config.redacted(),
            # The deadline an export really gets. The export timeout, the OTLP timeout
            # and the interval bound it together, so no single value in "config" shows it.
            export_timeout_effective_ms=self.config.effective_export_timeout_ms,
        )

    def stop(self) -> None:
        """Turn every health service NOT_SERVING, run the final collection and export, stop."""
        started = time.monotonic()
        self.health.begin_shutdown()
        if self.provider is not None:
            self.provider.shutdown(timeout_millis=self.config.shutdown_timeout_ms)
        if self.collection is not None:
            self.collection.close()
        self.health.stop(grace_s=0.5)
        _log.info("agent_stopped", seconds=round(time.monotonic() - started, 3))


STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def run(config: Config) -> int:
    """Run the agent until SIGTERM or SIGINT; return the process exit status.

    Call it before the process starts any other thread. The kernel may hand
    a signal sent to the process to any thread that does not block it, and
    a Python signal handler runs only when the main thread executes
    bytecode. So the stop signals are blocked here, every thread started
    later inherits that mask, and the main thread takes them with sigwait(2).
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    agent = Agent(config)
    try:
        agent.start()
    except HealthBindError as error:
        _log.error("agent_start_failed", error=str(error))
        return EXIT_STARTUP_FAILED
    received = signal.sigwait(STOP_SIGNALS)
    _log.info("stop_requested", signal=signal.Signals(received).name)
    agent.stop()
    return EXIT_OK
