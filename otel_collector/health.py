"""gRPC health service of the agent (the grpc.health.v1 Health Checking Protocol).

The collection loop and the exporter report events to a HealthServer. A watchdog
thread turns those events into the statuses of three services:

- "liveness": SERVING while the collection loop completed a cycle within the last
  2 cycle intervals.
- "readiness": SERVING unless exports have failed continuously for longer than
  the recovery window, counted from the first failure after the last success.
- "" (the agent as a whole): SERVING when liveness and readiness both are.

Every service is NOT_SERVING until the first cycle completes, and after
begin_shutdown(). docs/health.md describes the semantics for operators.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Final

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from otel_collector import defaults

_LOGGER = structlog.get_logger(__name__)

SERVING: Final[int] = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: Final[int] = health_pb2.HealthCheckResponse.NOT_SERVING

OVERALL_SERVICE: Final = health.OVERALL_HEALTH
SERVICES: Final = (OVERALL_SERVICE, defaults.LIVENESS_SERVICE, defaults.READINESS_SERVICE)

# Liveness turns NOT_SERVING when no cycle completed for this many cycle intervals.
LIVENESS_INTERVALS: Final = 2
# The watchdog wakes at least every min(cycle interval / 4, 1 s), and earlier when a
# status is due to change or the agent reports an event.
_WATCHDOG_INTERVAL_FRACTION: Final = 0.25
_MAX_WATCHDOG_PERIOD_S: Final = 1.0
# Wakes the watchdog just after a deadline, because statuses change only once the
# deadline has been exceeded.
_DEADLINE_MARGIN_S: Final = 0.001

# Check handlers take microseconds, and the non-blocking Watch holds no worker after
# it sent the first status, so a few workers serve any number of open streams.
_RPC_WORKERS: Final = 4
# Calls beyond this many being handled at once are rejected with RESOURCE_EXHAUSTED,
# so a flood of Checks cannot queue without bound. Open Watch streams count only
# while their first status is being sent.
_MAX_CONCURRENT_RPCS: Final = 256
# HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS that the server advertises on each
# connection. 100 is the minimum that RFC 9113 section 5.1.2 recommends.
_MAX_STREAMS_PER_CONNECTION: Final = 100
# A HealthCheckRequest contains only a service name, and a response only a status.
_MAX_MESSAGE_BYTES: Final = 1024
# The server pings each connection after 60 s without activity and closes it when
# the ping is not acknowledged within 20 s. This frees the Watch slot of a client
# that vanished without closing its connection.
_KEEPALIVE_TIME_MS: Final = 60_000
_KEEPALIVE_TIMEOUT_MS: Final = 20_000
# Connections without any open call are closed after 5 minutes.
_MAX_CONNECTION_IDLE_MS: Final = 300_000

_SERVER_OPTIONS: Final = (
    # Without SO_REUSEPORT, a second agent on the same port fails to bind instead of
    # silently receiving part of the connections.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_concurrent_streams", _MAX_STREAMS_PER_CONNECTION),
    ("grpc.keepalive_time_ms", _KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
    # Keep pinging a connection whose only call is a silent Watch stream. By default
    # gRPC stops after 2 pings without data frames.
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_connection_idle_ms", _MAX_CONNECTION_IDLE_MS),
)

_WILDCARD_HOST: Final = "::"
_IPV4_WILDCARD_HOST: Final = "0.0.0.0"  # noqa: S104 (the fallback of "::" is all interfaces too)


class HealthBindError(Exception):
    """The health service cannot listen on the configured address and port."""


def status_name(status: int) -> str:
    """Return the protocol name of a serving status, such as "NOT_SERVING"."""
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(status))


@dataclass(frozen=True)
class _Evaluation:
    statuses: dict[str, int]
    # Seconds until a status changes if no further event arrives, or None.
    next_change_in_s: float | None
    last_cycle_age_s: float | None
    export_failing_for_s: float | None


class _HealthSignals:
    """Times of the last completed cycle and of the first export failure since the last success."""

    def __init__(
        self,
        clock: Callable[[], float],
        cycle_interval_s: float,
        recovery_window_s: float,
    ) -> None:
        self._clock = clock
        self._liveness_window_s = LIVENESS_INTERVALS * cycle_interval_s
        self._recovery_window_s = recovery_window_s
        self._lock = threading.Lock()
        self._last_cycle_at: float | None = None
        self._first_failure_at: float | None = None

    def record_cycle(self) -> None:
        now = self._clock()
        with self._lock:
            self._last_cycle_at = now

    def record_export(self, *, succeeded: bool) -> None:
        now = self._clock()
        with self._lock:
            if succeeded:
                self._first_failure_at = None
            elif self._first_failure_at is None:
                self._first_failure_at = now

    def evaluate(self) -> _Evaluation:
        """Compute the status of each service at the current clock time."""
        now = self._clock()
        with self._lock:
            last_cycle_at = self._last_cycle_at
            first_failure_at = self._first_failure_at

        if last_cycle_at is None:
            return _Evaluation(
                statuses=dict.fromkeys(SERVICES, NOT_SERVING),
                next_change_in_s=None,
                last_cycle_age_s=None,
                export_failing_for_s=None,
            )

        deadlines: list[float] = []
        last_cycle_age_s = now - last_cycle_at
        live = last_cycle_age_s <= self._liveness_window_s
        if live:
            deadlines.append(self._liveness_window_s - last_cycle_age_s)

        export_failing_for_s = None
        ready = True
        if first_failure_at is not None:
            export_failing_for_s = now - first_failure_at
            ready = export_failing_for_s <= self._recovery_window_s
            if ready:
                deadlines.append(self._recovery_window_s - export_failing_for_s)

        statuses = {
            OVERALL_SERVICE: SERVING if live and ready else NOT_SERVING,
            defaults.LIVENESS_SERVICE: SERVING if live else NOT_SERVING,
            defaults.READINESS_SERVICE: SERVING if ready else NOT_SERVING,
        }
        return _Evaluation(
            statuses=statuses,
            next_change_in_s=min(deadlines, default=None),
            last_cycle_age_s=last_cycle_age_s,
            export_failing_for_s=export_failing_for_s,
        )


class _BoundedHealthServicer(health.HealthServicer):  # type: ignore[misc]
    """HealthServicer that rejects Watch calls beyond a maximum number of open streams.

    Watch is non-blocking: it sends the current status and returns, and later status
    changes are sent from the thread that sets them, so an open stream holds no
    server thread.
    """

    def __init__(self, max_watch_streams: int) -> None:
        super().__init__(experimental_non_blocking=True)
        self._max_watch_streams = max_watch_streams
        self._watch_lock = threading.Lock()
        self._open_watch_streams = 0
        self._rejected_watch_calls = 0
        self._at_watch_limit = False

    @property
    def open_watch_streams(self) -> int:
        with self._watch_lock:
            return self._open_watch_streams

    def Watch(  # noqa: N802 (the name is fixed by the generated servicer)
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.ServicerContext,
        send_response_callback: Callable[[Any], None] | None = None,
    ) -> Any:
        if not self._acquire_watch_slot():
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the health service already has {self._max_watch_streams} open Watch "
                "streams; close unused streams or poll with Check",
            )
        # add_callback returns False when the call has already ended.
        if not context.add_callback(self._release_watch_slot):
            self._release_watch_slot()
            return None
        return super().Watch(request, context, send_response_callback)

    def _acquire_watch_slot(self) -> bool:
        with self._watch_lock:
            if self._open_watch_streams < self._max_watch_streams:
                self._open_watch_streams += 1
                self._at_watch_limit = False
                return True
            self._rejected_watch_calls += 1
            rejected_total = self._rejected_watch_calls
            first_rejection_at_limit = not self._at_watch_limit
            self._at_watch_limit = True
        # Logs once each time the limit is reached, not once per rejected call.
        if first_rejection_at_limit:
            _LOGGER.warning(
                "health_watch_limit_reached",
                max_watch_streams=self._max_watch_streams,
                rejected_total=rejected_total,
            )
        return False

    def _release_watch_slot(self) -> None:
        with self._watch_lock:
            self._open_watch_streams -= 1


def _ipv6_available() -> bool:
    """Return whether this host can open an IPv6 socket on the wildcard address."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind((_WILDCARD_HOST, 0))
    except OSError:
        return False
    return True


def _parse_host(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        raise HealthBindError(
            f"invalid health service address {host!r}: expected an IPv4 or IPv6 address "
            "such as :: (all interfaces), 127.0.0.1 or ::1, not a host name"
        ) from None


def _format_target(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    if address.version == 6:
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def _bind_failure_reason(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> tuple[str, str]:
    """Return why binding failed and what to do, found by binding a plain socket.

    grpcio 1.85 reports only that the bind failed, so the errno comes from this
    second attempt.
    """
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # gRPC sets SO_REUSEADDR too, so a port that only has connections in
            # TIME_WAIT is not reported as in use.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((str(address), port))
    except OSError as error:
        code = error.errno
    else:
        code = None

    if code == errno.EADDRINUSE:
        return (
            "address already in use",
            "set HOST_AGENT_HEALTH_PORT or --health-port to a free port",
        )
    if code == errno.EACCES:
        return (
            "permission denied",
            "use a port above 1023 or grant the process CAP_NET_BIND_SERVICE",
        )
    if code in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return (
            "the address does not belong to this host",
            "set the health service address to an address of this host, or :: for all",
        )
    if code is not None:
        return (errno.errorcode.get(code, str(code)), "check the address and port")
    return (
        "gRPC failed to bind",
        "set GRPC_VERBOSITY=debug to see the reason, and check the address and port",
    )


class HealthServer:
    """gRPC server of the grpc.health.v1 Health service with the agent's statuses.

    cycle_completed(), export_succeeded() and export_failed() only record a time and
    wake the watchdog, so the collection loop never waits for the network. The
    watchdog thread publishes status changes to Check and to open Watch streams.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        cycle_interval_s: float,
        recovery_window_s: float,
        max_watch_streams: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cycle_interval_s <= 0:
            raise ValueError(f"cycle_interval_s must be positive, got {cycle_interval_s}")
        if recovery_window_s < 0:
            raise ValueError(f"recovery_window_s must be 0 or more, got {recovery_window_s}")
        if max_watch_streams < 1:
            raise ValueError(f"max_watch_streams must be at least 1, got {max_watch_streams}")

        self._host = host
        self._requested_port = port
        self._signals = _HealthSignals(clock, cycle_interval_s, recovery_window_s)
        self._watchdog_period_s = min(
            cycle_interval_s * _WATCHDOG_INTERVAL_FRACTION, _MAX_WATCHDOG_PERIOD_S
        )

        self._servicer = _BoundedHealthServicer(max_watch_streams)
        # Serializes status publication with begin_shutdown().
        self._publish_lock = threading.Lock()
        self._published = dict.fromkeys(SERVICES, NOT_SERVING)
        self._shutting_down = False
        for service in SERVICES:
            self._servicer.set(service, NOT_SERVING)

        self._server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._bound_port: int | None = None
        self._bound_target: str | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Port that the server listens on, which differs from the requested one for port 0."""
        if self._bound_port is None:
            raise RuntimeError("the health server has not been started")
        return self._bound_port

    def start(self) -> None:
        """Bind the address, start serving and start the watchdog.

        Raises HealthBindError when the host is not an IP address, the port is out of
        range, or the address cannot be bound (for example, the port is in use).
        """
        if self._server is not None:
            raise RuntimeError("the health server has already been started")

        executor = futures.ThreadPoolExecutor(
            max_workers=_RPC_WORKERS, thread_name_prefix="health-rpc"
        )
        server = grpc.server(
            executor,
            options=_SERVER_OPTIONS,
            maximum_concurrent_rpcs=_MAX_CONCURRENT_RPCS,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        try:
            target, port = self._bind(server)
        except HealthBindError:
            server.stop(None)
            executor.shutdown(wait=False)
            raise
        server.start()

        self._server = server
        self._executor = executor
        self._bound_target = target
        self._bound_port = port
        self._watchdog = threading.Thread(
            target=self._run_watchdog, name="health-watchdog", daemon=True
        )
        self._watchdog.start()
        _LOGGER.info("health_server_started", address=target, port=port)

    def cycle_completed(self) -> None:
        """Record that the collection loop completed a cycle."""
        self._signals.record_cycle()
        self._wake.set()

    def export_succeeded(self) -> None:
        """Record that an export was delivered."""
        self._signals.record_export(succeeded=True)
        self._wake.set()

    def export_failed(self) -> None:
        """Record that an export failed."""
        self._signals.record_export(succeeded=False)
        self._wake.set()

    def begin_shutdown(self) -> None:
        """Set every service NOT_SERVING for good and send that to open Watch streams.

        Later events change no status. Calling it again has no effect.
        """
        with self._publish_lock:
            if self._shutting_down:
                return
            self._shutting_down = True
            self._servicer.enter_graceful_shutdown()
            for service in SERVICES:
                self._log_change(service, NOT_SERVING, reason="shutdown")
        _LOGGER.info("health_shutdown_started")

    def stop(self, grace_s: float = 1.0) -> None:
        """Set every service NOT_SERVING, then stop the server and the watchdog.

        Calls in progress get up to grace_s seconds to finish. Open Watch streams
        never finish on their own, so when any is open, stop() takes grace_s and
        then cancels them.
        """
        self.begin_shutdown()
        self._stopping.set()
        self._wake.set()
        if self._server is not None:
            self._server.stop(grace_s).wait()
            self._server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._watchdog is not None:
            self._watchdog.join(timeout=grace_s + 1.0)
            self._watchdog = None
            _LOGGER.info("health_server_stopped", address=self._bound_target, port=self._bound_port)

    def _bind(self, server: grpc.Server) -> tuple[str, int]:
        """Add the listening port to the server and return the bound target and port."""
        if not 0 <= self._requested_port <= 65535:
            raise HealthBindError(
                f"invalid health service port {self._requested_port}: expected 0 to 65535; "
                "set HOST_AGENT_HEALTH_PORT or --health-port to a free port"
            )
        address = _parse_host(self._host)
        candidates = [address]
        if self._host == _WILDCARD_HOST and not _ipv6_available():
            # gRPC may fall back to IPv4 on its own. This covers hosts where the IPv6
            # wildcard bind fails outright.
            candidates.append(ipaddress.ip_address(_IPV4_WILDCARD_HOST))

        for candidate in candidates:
            target = _format_target(candidate, self._requested_port)
            try:
                port = int(server.add_insecure_port(target))
            except RuntimeError:
                port = 0
            if port != 0:
                return target, port

        target = _format_target(address, self._requested_port)
        reason, action = _bind_failure_reason(candidates[-1], self._requested_port)
        raise HealthBindError(f"cannot listen on {target} for the health service: {reason}; {action}")

    def _run_watchdog(self) -> None:
        while True:
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                delay_s = self._publish_statuses()
            except Exception:
                # A watchdog that died silently would freeze the statuses, so fail
                # closed: every service NOT_SERVING, which a liveness probe acts on.
                _LOGGER.exception("health_watchdog_failed")
                self.begin_shutdown()
                return
            self._wake.wait(delay_s)

    def _publish_statuses(self) -> float:
        """Publish the statuses that changed and return the seconds until the next check."""
        evaluation = self._signals.evaluate()
        with self._publish_lock:
            if self._shutting_down:
                return self._watchdog_period_s
            for service, status in evaluation.statuses.items():
                if self._log_change(
                    service,
                    status,
                    last_cycle_age_s=evaluation.last_cycle_age_s,
                    export_failing_for_s=evaluation.export_failing_for_s,
                ):
                    self._servicer.set(service, status)

        if evaluation.next_change_in_s is None:
            return self._watchdog_period_s
        return min(self._watchdog_period_s, evaluation.next_change_in_s + _DEADLINE_MARGIN_S)

    def _log_change(self, service: str, status: int, **fields: Any) -> bool:
        """Record status as published for service and log it if it changed.

        Returns whether the status changed. The caller holds _publish_lock.
        """
        if self._published[service] == status:
            return False
        self._published[service] = status
        _LOGGER.info(
            "health_status_changed", service=service, status=status_name(status), **fields
        )
        return True
