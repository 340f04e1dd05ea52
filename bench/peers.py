"""The processes under test: the agent, node_exporter and the Python peer.

Each runs in its own process and is read from outside after every collection
cycle: the push peers when their export request reaches the benchmark's
receiver, node_exporter right after each scrape response. Every reading records
the process's CPU time and resident memory at that moment, the data points of
the cycle, and the bytes the peer has sent so far through a counting proxy.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import container, procfs
from bench.wire import ROOT, CountingProxy, CountingReceiver, ExportSummary, free_port

NODE_EXPORTER = "prometheus-node-exporter"

# node_exporter collectors that read what the agent's default scrapers read:
# CPU times and frequency, memory, paging, disks, file systems, network
# interfaces and their link state, protocol counters, sockets, the softnet
# backlog, UDP queues, the ARP table, the connection tracking table, pressure
# stall information, load, process states and forks (stat, processes), file
# handles, entropy, the clock's NTP state (timex) and SELinux. Used for the
# like-for-like row next to node_exporter's defaults. Some of these export more
# than the agent: conntrack's 8 counters of /proc/net/stat/nf_conntrack,
# netstat's IP, ICMP and other TCP counters, netclass's other interface
# attributes, softnet's per-CPU values, timex's PPS and loop counters.
NODE_EXPORTER_MATCHED_COLLECTORS = (
    "cpu",
    "cpufreq",
    "meminfo",
    "vmstat",
    "diskstats",
    "filesystem",
    "netdev",
    "netclass",
    "netstat",
    "sockstat",
    "softnet",
    "udp_queues",
    "arp",
    "conntrack",
    "pressure",
    "loadavg",
    "stat",
    "processes",
    "filefd",
    "entropy",
    "timex",
    "selinux",
)

# The first cycles of a push peer: their requests are compressed for the gzip
# cross-check of figure 7 and their metric names collected for figure 1.
_GZIP_SAMPLE_CYCLES = 20
_STOP_TIMEOUT_SECONDS = 10
_FIND_CHILD_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Cycle:
    """One collection cycle of a peer, as the benchmark saw it from outside."""

    number: int  # 1 for the first exported or scraped cycle
    at: float  # time.monotonic() when the cycle's data arrived
    cpu_seconds: float  # the process's utime + stime at that moment
    grpc_cpu_seconds: float  # the part of cpu_seconds used by procfs.GRPC_THREAD_NAMES
    rss_bytes: int
    hwm_bytes: int
    anonymous_bytes: int  # RssAnon: RSS without the pages of mapped files such as libraries
    data_points: int
    serialized_bytes: int  # protobuf size of the request, or the text size of the scrape
    wire_bytes_total: int  # bytes the peer sent through the proxy since it started
    gzip_bytes: int | None  # gzip of the serialized request, for the first cycles only


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """Return this process's environment without OTEL_* and HOST_AGENT_*, plus `extra`."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "HOST_AGENT_"))
    }
    environment.update(extra)
    return environment


class PeerFailedError(RuntimeError):
    """A peer exited early or did not reach the expected number of cycles."""


class Peer:
    """A process under test and the cycles read from it so far."""

    def __init__(self, log_dir: Path, name: str) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.cycles: list[Cycle] = []
        self.metric_names: set[str] = set()
        self.resource_keys: set[str] = set()
        self.clock_skews: list[float] = []
        self.started_at = 0.0
        self.pid = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file = self.log_path.open("wb")
        self._cond = threading.Condition()
        self._stopping = threading.Event()

    # -- lifecycle -----------------------------------------------------------

    def _spawn(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        self.started_at = time.monotonic()
        self._process = subprocess.Popen(
            list(command),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=ROOT,
            start_new_session=True,
        )
        self.pid = self._process.pid

    def terminate(self) -> None:
        """Send SIGTERM to the measured process, which may sit below a wrapper such as unshare."""
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def stop(self) -> None:
        """Stop the process with SIGTERM (SIGKILL after 10 s) and release what it used."""
        self.terminate()
        process = self._process
        if process is not None and process.poll() is None:
            try:
                process.wait(_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log_file.close()

    def exited(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    # -- readings ------------------------------------------------------------

    def _record(
        self,
        data_points: int,
        serialized_bytes: int,
        wire_bytes_total: int,
        gzip_bytes: int | None = None,
    ) -> None:
        try:
            cpu = procfs.cpu_seconds(self.pid)
            grpc_cpu = procfs.thread_seconds(self.pid, procfs.GRPC_THREAD_NAMES)
            memory = procfs.memory(self.pid)
        except (FileNotFoundError, ProcessLookupError):
            return  # the process is exiting
        with self._cond:
            self.cycles.append(
                Cycle(
                    number=len(self.cycles) + 1,
                    at=time.monotonic(),
                    cpu_seconds=cpu,
                    grpc_cpu_seconds=grpc_cpu,
                    rss_bytes=memory.rss,
                    hwm_bytes=memory.hwm,
                    anonymous_bytes=memory.anonymous,
                    data_points=data_points,
                    serialized_bytes=serialized_bytes,
                    wire_bytes_total=wire_bytes_total,
                    gzip_bytes=gzip_bytes,
                )
            )
            self._cond.notify_all()

    def wait_for_cycles(self, count: int, timeout: float) -> None:
        """Wait until `count` cycles were read; raise PeerFailedError with the log otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.cycles) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.exited():
                    break
                self._cond.wait(min(remaining, 0.5))
            seen = len(self.cycles)
        if seen < count:
            state = "exited" if self.exited() else "still running"
            raise PeerFailedError(
                f"{self.name} ({state}) delivered {seen} of {count} cycles within {timeout:.0f} s; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )


class PushPeer(Peer):
    """A peer that exports over OTLP/gRPC, through a counting proxy, to its own receiver."""

    def __init__(self, log_dir: Path, name: str) -> None:
        super().__init__(log_dir, name)
        self.receiver = CountingReceiver(self._on_export)
        self.receiver.start()
        self.proxy = CountingProxy(self.receiver.port)
        self.endpoint = f"http://127.0.0.1:{self.proxy.port}"

    def _on_export(self, export: ExportSummary) -> None:
        gzip_bytes = None
        if len(self.cycles) < _GZIP_SAMPLE_CYCLES:
            gzip_bytes = len(gzip.compress(export.request.SerializeToString()))
            self.metric_names |= export.metric_names
            self.resource_keys |= export.resource_keys
            if export.clock_skew_s is not None:
                self.clock_skews.append(export.clock_skew_s)
        self._record(
            export.data_points, export.serialized_bytes, self.proxy.sent_by_client, gzip_bytes
        )

    def _start(self, command: Sequence[str], env: Mapping[str, str], marker: str = "") -> None:
        """Spawn the peer; with `marker`, measure the process below it whose command line has it.

        On failure the process, the proxy and the receiver are stopped again.
        """
        try:
            self._spawn(command, env)
            if marker:
                self.pid = _find_descendant(self.pid, marker)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        super().stop()
        self.proxy.close()
        self.receiver.stop()


class AgentPeer(PushPeer):
    """The agent, as ``python -m otel_collector`` with its defaults except `env`.

    `wrapper` is a command that runs the agent as its last arguments (such as
    unshare). The measured process is then the agent found below the wrapper.
    """

    def __init__(
        self,
        log_dir: Path,
        name: str,
        *,
        interval_ms: int,
        env: Mapping[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        super().__init__(log_dir, name)
        self.health_port = free_port()
        environment = clean_environment(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
                "OTEL_METRIC_EXPORT_INTERVAL": str(interval_ms),
                # Loopback only, on a port of its own, so that agents can run side by side.
                "HOST_AGENT_HEALTH_HOST": "127.0.0.1",
                "HOST_AGENT_HEALTH_PORT": str(self.health_port),
                "HOST_AGENT_LOG_FORMAT": "json",
                **(env or {}),
            }
        )
        command = [*wrapper, sys.executable, "-m", "otel_collector"]
        self._start(command, environment, marker="otel_collector" if wrapper else "")


class ContainerAgentPeer(PushPeer):
    """The agent's image under `docker run`, reading the host as the README describes.

    The measured process is the container's main process, which this host
    sees under the PID that `docker inspect` returns.
    """

    def __init__(self, log_dir: Path, name: str, *, image: str, interval_ms: int) -> None:
        super().__init__(log_dir, name)
        self.container_name = container.new_container_name()
        self.health_port = free_port()
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": str(interval_ms),
            "HOST_AGENT_HEALTH_HOST": "127.0.0.1",
            "HOST_AGENT_HEALTH_PORT": str(self.health_port),
        }
        command = container.run_command(
            image, self.container_name, env, extra=container.HOST_READING_OPTIONS
        )
        try:
            self._spawn(command, clean_environment({}))
            self.pid = container.main_pid(self.container_name, _FIND_CHILD_TIMEOUT_SECONDS * 3)
        except BaseException:
            self.stop()
            raise

    def terminate(self) -> None:
        self._stopping.set()
        container.signal_container(self.container_name, "TERM")

    def stop(self) -> None:
        super().stop()
        container.remove(self.container_name)


class PythonPeer(PushPeer):
    """opentelemetry-instrumentation-system-metrics with its defaults (bench/python_peer.py)."""

    def __init__(
        self, log_dir: Path, name: str, *, interval_ms: int, compression: str = "none"
    ) -> None:
        super().__init__(log_dir, name)
        environment = clean_environment(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
                "OTEL_METRIC_EXPORT_INTERVAL": str(interval_ms),
            }
        )
        # The SDK 1.45 exporter rejects "none" as a compression value, so
        # the variable is set only for gzip.
        if compression != "none":
            environment["OTEL_EXPORTER_OTLP_COMPRESSION"] = compression
        self._start([sys.executable, "-m", "bench.python_peer"], environment)


class NodeExporterPeer(Peer):
    """node_exporter on 127.0.0.1, scraped with urllib through a counting proxy.

    With `collectors` empty it runs its default collectors; otherwise only
    those. With `gzip_encoding` the scrape requests a gzip-compressed response, as
    Prometheus does.
    """

    def __init__(
        self,
        log_dir: Path,
        name: str,
        *,
        interval_ms: int,
        collectors: Sequence[str] = (),
        gzip_encoding: bool = False,
        scrape: bool = True,
    ) -> None:
        executable = shutil.which(NODE_EXPORTER)
        if executable is None:
            raise PeerFailedError(
                f"{NODE_EXPORTER} is not installed: run scripts/install-test-tools"
            )
        super().__init__(log_dir, name)
        self.port = free_port()
        self.proxy = CountingProxy(self.port)
        self.url = f"http://127.0.0.1:{self.proxy.port}/metrics"
        self._interval_s = interval_ms / 1000
        self._gzip = gzip_encoding
        self.scrape_errors: list[str] = []
        self.first_text = ""  # the first measured scrape, for the collector list
        command = [executable, f"--web.listen-address=127.0.0.1:{self.port}"]
        if collectors:
            command += ["--collector.disable-defaults", *(f"--collector.{c}" for c in collectors)]
        self._scraper: threading.Thread | None = None
        try:
            self._spawn(command, clean_environment({}))
        except BaseException:
            self.stop()
            raise
        if scrape:
            self._scraper = threading.Thread(target=self._scrape_loop, name=name, daemon=True)
            self._scraper.start()

    def scrape_once(self) -> bytes:
        """Fetch /metrics once and return the body, decompressed."""
        headers = {"Accept-Encoding": "gzip"} if self._gzip else {}
        request = urllib.request.Request(self.url, headers=headers)  # noqa: S310 - a loopback http URL
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            body: bytes = response.read()
            if response.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
        return body

    def _scrape_loop(self) -> None:
        # Wait for the listener, then scrape on a fixed schedule that never bursts to catch up.
        while not self._stopping.is_set() and not self.exited():
            try:
                self.scrape_once()
                break
            except OSError:
                self._stopping.wait(0.01)
        next_at = time.monotonic() + self._interval_s
        while not self._stopping.wait(max(0.0, next_at - time.monotonic())):
            next_at = max(next_at + self._interval_s, time.monotonic())
            try:
                text = self.scrape_once().decode("utf-8", "replace")
            except OSError as error:
                self.scrape_errors.append(str(error))
                continue
            if not self.first_text:
                self.first_text = text
            samples = 0
            for line in text.splitlines():
                if line and not line.startswith("#"):
                    samples += 1
                elif line.startswith("# TYPE ") and len(self.cycles) < _GZIP_SAMPLE_CYCLES:
                    self.metric_names.add(line.split()[2])
            self._record(samples, len(text), self.proxy.sent_by_upstream)

    def stop(self) -> None:
        self._stopping.set()
        if self._scraper is not None:
            self._scraper.join(timeout=15)
        super().stop()
        self.proxy.close()


def _find_descendant(pid: int, marker: str) -> int:
    """Return the first process below `pid` whose command line contains `marker`."""
    deadline = time.monotonic() + _FIND_CHILD_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        pending = procfs.children(pid)
        while pending:
            child = pending.pop()
            try:
                with open(f"/proc/{child}/cmdline", "rb") as file:
                    if marker.encode() in file.read():
                        return child
            except FileNotFoundError:
                continue
            pending.extend(procfs.children(child))
        time.sleep(0.01)
    raise PeerFailedError(f"no process running {marker} appeared below PID {pid}")
