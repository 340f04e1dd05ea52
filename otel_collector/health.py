"""gRPC health service of the agent (the grpc.health.v1 Health Checking Protocol).

The collection loop and the exporter report events to a HealthServer. A watchdog
coroutine turns those events into the statuses of three services:

- "liveness": SERVING while the collection loop completed a cycle within the last
  2 cycle intervals.
- "readiness": SERVING unless exports have failed continuously for longer than
  the recovery window, counted from the first failure after the last success.
- "" (the agent as a whole): SERVING when liveness and readiness both are.

Every service is NOT_SERVING until the first cycle completes, and after
begin_shutdown(). docs/health.md describes the semantics for operators.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from otel_collector import defaults

_LOGGER = structlog.get_logger(__name__)

SERVING: Final[int] = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: Final[int] = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: Final[int] = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

# The protocol's name for the status of the whole server.
OVERALL_SERVICE: Final = ""
SERVICES: Final = (OVERALL_SERVICE, defaults.LIVENESS_SERVICE, defaults.READINESS_SERVICE)

# Liveness turns NOT_SERVING when no cycle completed for this many cycle intervals.
LIVENESS_INTERVALS: Final = 2
# Wakes the watchdog just after a deadline, because statuses change only once the
# deadline has been exceeded.
_DEADLINE_MARGIN_S: Final = 0.001
# Maximum seconds that stop() waits for the event loop thread after the server stopped.
_THREAD_JOIN_TIMEOUT_S: Final = 2.0

# The server rejects calls with RESOURCE_EXHAUSTED while max_watch_streams plus this
# many are in progress, which bounds the queue of a Check flood. An open Watch stream
# counts as a call in progress, so clients can open max_watch_streams streams and
# still leave room for Checks.
_CONCURRENT_CALL_MARGIN: Final = 100
# HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS that the server advertises on each
# connection. RFC 9113 section 6.5.2 recommends no less than 100.
_MAX_STREAMS_PER_CONNECTION: Final = 100
# A HealthCheckRequest contains only a service name, and a response only a status.
_MAX_MESSAGE_BYTES: Final = 1024
# The server sends a keepalive ping every 60 s and closes a connection whose ping is
# not acknowledged within 20 s, which ends the Watch streams of a client that
# vanished without closing its connection.
# NOTE: no test covers this, because it needs a peer that stops acknowledging pings.
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

    def record_export(self, *, succeeded: bool) -> bool:
        """Record an export result and return whether it ended or began a run of failures."""
        now = self._clock()
        with self._lock:
            if succeeded:
                changed = self._first_failure_at is not None
                self._first_failure_at = None
            else:
                changed = self._first_failure_at is None
                if changed:
                    self._first_failure_at = now
        return changed

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


class _WatchStream:
    """One open Watch call. Only the event loop of the server touches it."""

    def __init__(self, service: str) -> None:
        self.service = service
        # Set when the status of the service may have changed, or the server is closing.
        self.changed = asyncio.Event()


class _HealthServicer(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """grpc.health.v1 servicer for grpc.aio with a maximum of open Watch streams.

    Check returns NOT_FOUND and Watch sends SERVICE_UNKNOWN for a service that was
    never set, as the protocol specifies. Each Watch call runs in its own coroutine
    and sends only the newest status, so a client that stops reading holds back
    only its own stream, never Check, set() or the other streams.

    NOTE: this replaces grpc_health.v1._async.HealthServicer from
    grpcio-health-checking 1.85. Its Watch keeps the service's asyncio.Condition
    locked while it writes, so one client that stops reading blocks set() for that
    service and freezes the status that Check returns.
    """

    def __init__(self, max_watch_streams: int) -> None:
        self._max_watch_streams = max_watch_streams
        # Guards _statuses and _frozen, which the agent's threads and the event loop
        # both use. The other fields belong to the event loop.
        self._lock = threading.Lock()
        self._statuses: dict[str, int] = {}
        self._frozen = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._streams: set[_WatchStream] = set()
        self._closing = False
        self._rejected_watch_calls = 0
        self._at_watch_limit = False

    @property
    def open_streams(self) -> int:
        """Number of Watch calls open now. Any thread may read it."""
        # len() of a set is one atomic step under the GIL, and a reader from another
        # thread needs only a snapshot.
        return len(self._streams)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver later status changes to the Watch streams served by loop."""
        self._loop = loop

    async def Check(  # noqa: N802 (the name is fixed by the generated servicer)
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        with self._lock:
            status = self._statuses.get(request.service)
        if status is None:
            # abort() raises, which ends the call with this status.
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(  # noqa: N802 (the name is fixed by the generated servicer)
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> None:
        if not self._has_room_for_stream():
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the health service already has {self._max_watch_streams} open Watch "
                "streams; close unused streams or poll with Check",
            )
        stream = _WatchStream(request.service)
        self._streams.add(stream)
        try:
            last_sent: int | None = None
            while True:
                # Cleared before the status is read, so a change made during the
                # write below wakes the next wait at once.
                stream.changed.clear()
                with self._lock:
                    status = self._statuses.get(stream.service, SERVICE_UNKNOWN)
                if status != last_sent:
                    # Waits while the client's HTTP/2 flow-control window is full.
                    await context.write(health_pb2.HealthCheckResponse(status=status))
                    last_sent = status
                    continue
                if self._closing:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is shutting down")
                await stream.changed.wait()
        finally:
            self._streams.discard(stream)

    def set(self, service: str, status: int) -> None:
        """Set the status of service for Check at once and for its Watch streams soon after.

        Safe to call from any thread. Has no effect after enter_graceful_shutdown().
        """
        with self._lock:
            if self._frozen:
                return
            self._statuses[service] = status
        self._wake_streams(service)

    def enter_graceful_shutdown(self) -> None:
        """Set every service NOT_SERVING for good. Safe to call from any thread."""
        with self._lock:
            if self._frozen:
                return
            self._frozen = True
            for service in self._statuses:
                self._statuses[service] = NOT_SERVING
        self._wake_streams(None)

    def close_streams(self) -> None:
        """End each Watch stream with UNAVAILABLE once it has sent its newest status.

        Runs on the event loop.
        """
        self._closing = True
        for stream in self._streams:
            stream.changed.set()

    def _wake_streams(self, service: str | None) -> None:
        """Wake the Watch streams of service, or all of them for None, from any thread."""
        loop = self._loop
        if loop is None:
            return
        # RuntimeError means that stop() closed the loop, so no stream is open.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._set_changed, service)

    def _set_changed(self, service: str | None) -> None:
        for stream in self._streams:
            if service is None or stream.service == service:
                stream.changed.set()

    def _has_room_for_stream(self) -> bool:
        if len(self._streams) < self._max_watch_streams:
            self._at_watch_limit = False
            return True
        self._rejected_watch_calls += 1
        # Logged once each time the limit is reached, not once per rejected call.
        if not self._at_watch_limit:
            self._at_watch_limit = True
            _LOGGER.warning(
                "health_watch_limit_reached",
                max_watch_streams=self._max_watch_streams,
                rejected_total=self._rejected_watch_calls,
            )
        return False


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
            f"invalid health service address {host!r}: expected an IPv4 or IPv6 address, "
            "not a host name; set HOST_AGENT_HEALTH_HOST or --health-host to an address "
            "such as :: (every interface), 127.0.0.1 or ::1"
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
            "set HOST_AGENT_HEALTH_HOST or --health-host to an address of this host, "
            "or to :: for every interface",
        )
    if code is not None:
        return (errno.errorcode.get(code, str(code)), "check the address and port")
    return (
        "gRPC failed to bind",
        "set GRPC_VERBOSITY=debug to see the reason, and check the address and port",
    )


class HealthServer:
    """gRPC server of the grpc.health.v1 Health service with the agent's statuses.

    The server, its Watch streams and a watchdog run as coroutines on one asyncio
    event loop in a thread of their own. cycle_completed(), export_succeeded()
    and export_failed() record a time and wake the watchdog only when that can
    change a status at once. They do no network I/O, so the collection loop does
    not wait for health clients. The watchdog publishes status changes to Check
    and to open Watch streams.
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
        watchdog_period_s: float | None = None,
    ) -> None:
        """Create a server that start() binds to host and port.

        With the default clock the watchdog wakes only at a deadline or on an event.
        A test that injects another clock sets watchdog_period_s, the maximum
        seconds between two evaluations, so that the watchdog reads that clock
        again while no real deadline passes.
        """
        if cycle_interval_s <= 0:
            raise ValueError(f"cycle_interval_s must be positive, got {cycle_interval_s}")
        if recovery_window_s < 0:
            raise ValueError(f"recovery_window_s must be 0 or more, got {recovery_window_s}")
        if max_watch_streams < 1:
            raise ValueError(f"max_watch_streams must be at least 1, got {max_watch_streams}")
        if watchdog_period_s is not None and watchdog_period_s <= 0:
            raise ValueError(f"watchdog_period_s must be positive, got {watchdog_period_s}")

        self._host = host
        self._requested_port = port
        self._signals = _HealthSignals(clock, cycle_interval_s, recovery_window_s)
        self._watchdog_period_s = watchdog_period_s

        self._max_watch_streams = max_watch_streams
        self._servicer = _HealthServicer(max_watch_streams)
        # Serializes status publication with begin_shutdown().
        self._publish_lock = threading.Lock()
        self._published = dict.fromkeys(SERVICES, NOT_SERVING)
        self._shutting_down = False
        for service in SERVICES:
            self._servicer.set(service, NOT_SERVING)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._server: grpc.aio.Server | None = None
        self._bound_port: int | None = None
        self._bound_target: str | None = None
        # Created on the event loop, which alone sets, clears and waits on it.
        self._wake: asyncio.Event | None = None
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """Port that the server listens on, which differs from the requested one for port 0."""
        if self._bound_port is None:
            raise RuntimeError("the health server has not been started")
        return self._bound_port

    @property
    def open_watch_streams(self) -> int:
        """Number of Watch streams that the server has open now."""
        return self._servicer.open_streams

    def start(self) -> None:
        """Start the event loop thread, bind the address, start serving and the watchdog.

        Raises HealthBindError when the host is not an IP address, the port is out of
        range, or the address cannot be bound (for example, the port is in use).
        """
        if self._loop is not None:
            raise RuntimeError("the health server has already been started")

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="health-server", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start_serving(), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=_THREAD_JOIN_TIMEOUT_S)
            loop.close()
            raise

        self._loop = loop
        self._loop_thread = thread
        _LOGGER.info("health_server_started", address=self._bound_target, port=self._bound_port)

    def cycle_completed(self) -> None:
        """Record that the collection loop completed a cycle.

        A cycle only moves the liveness deadline later, so the watchdog is woken
        only while liveness is not SERVING. The watchdog's own deadline picks up
        the new time otherwise.
        """
        self._signals.record_cycle()
        if self._published[defaults.LIVENESS_SERVICE] != SERVING:
            self._wake_watchdog()

    def export_succeeded(self) -> None:
        """Record a delivered export, and wake the watchdog if it ends a run of failures."""
        if self._signals.record_export(succeeded=True):
            self._wake_watchdog()

    def export_failed(self) -> None:
        """Record a failed export, and wake the watchdog if it begins a run of failures."""
        if self._signals.record_export(succeeded=False):
            self._wake_watchdog()

    def begin_shutdown(self) -> None:
        """Set every service NOT_SERVING for good, for Check at once.

        Every open Watch stream then gets NOT_SERVING, unless that was the last
        status it sent. Later events change no status. Calling it again has no
        effect.
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
        """Set every service NOT_SERVING, then stop the server and its thread.

        Each open Watch stream ends with UNAVAILABLE once it has sent its newest status.
        Calls still in progress when grace_s ends, such as a Watch stream whose
        client stopped reading, are cancelled.
        """
        self.begin_shutdown()
        loop = self._loop
        if loop is None:
            return
        stopping = asyncio.run_coroutine_threadsafe(self._stop_serving(grace_s), loop)
        timeout_s = grace_s + _THREAD_JOIN_TIMEOUT_S
        try:
            stopping.result(timeout=timeout_s)
        except TimeoutError:
            _LOGGER.warning("health_server_stop_timed_out", timeout_s=timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        if self._loop_thread is not None:
            self._loop_thread.join(timeout=_THREAD_JOIN_TIMEOUT_S)
            if not self._loop_thread.is_alive():
                loop.close()
        self._loop = None
        self._loop_thread = None
        _LOGGER.info("health_server_stopped", address=self._bound_target, port=self._bound_port)

    async def _start_serving(self) -> None:
        server = grpc.aio.server(
            options=_SERVER_OPTIONS,
            maximum_concurrent_rpcs=self._max_watch_streams + _CONCURRENT_CALL_MARGIN,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        try:
            target, port = self._bind(server)
        except HealthBindError:
            await server.stop(None)
            raise
        await server.start()

        self._servicer.attach(asyncio.get_running_loop())
        self._server = server
        self._bound_target = target
        self._bound_port = port
        self._wake = asyncio.Event()
        self._watchdog = asyncio.create_task(self._run_watchdog(), name="health-watchdog")

    async def _stop_serving(self, grace_s: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        self._servicer.close_streams()
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None

    def _wake_watchdog(self) -> None:
        """Wake the watchdog from any thread. Before start() and after stop() it does nothing."""
        loop = self._loop
        if loop is None or self._wake is None:
            return
        # RuntimeError means that stop() closed the loop after this method read it.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._wake.set)

    def _bind(self, server: grpc.aio.Server) -> tuple[str, int]:
        """Add the listening port to the server and return the bound address and port."""
        if not 0 <= self._requested_port <= 65535:
            raise HealthBindError(
                f"invalid health service port {self._requested_port}: expected 0 to 65535; "
                "set HOST_AGENT_HEALTH_PORT or --health-port to a free port"
            )
        address = _parse_host(self._host)
        if address == ipaddress.ip_address(_WILDCARD_HOST) and not _ipv6_available():
            address = ipaddress.ip_address(_IPV4_WILDCARD_HOST)

        target = _format_target(address, self._requested_port)
        try:
            port = int(server.add_insecure_port(target))
        except RuntimeError:
            # grpcio 1.85 raises RuntimeError when gRPC core returns port 0, and
            # gives no reason, which _bind_failure_reason() finds out.
            port = 0
        if port == 0:
            reason, action = _bind_failure_reason(address, self._requested_port)
            raise HealthBindError(
                f"cannot listen on {target} for the health service: {reason}; {action}"
            )
        return _format_target(address, port), port

    async def _run_watchdog(self) -> None:
        assert self._wake is not None
        while not self._shutting_down:
            self._wake.clear()
            try:
                delay_s = self._publish_statuses()
            except Exception:
                # A watchdog that died silently would freeze the statuses, so fail
                # closed: every service NOT_SERVING, which a liveness probe acts on.
                _LOGGER.exception("health_watchdog_failed")
                self.begin_shutdown()
                return
            # Not asyncio.wait_for: on Python 3.11 it returns normally, and loses
            # the cancellation, when the event is set just before stop() cancels
            # the watchdog. The watchdog then waited for ever, and stop() with it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await self._wake.wait()

    def _publish_statuses(self) -> float | None:
        """Publish the statuses that changed and return the seconds until the next check.

        None means that only an event can change a status.
        """
        evaluation = self._signals.evaluate()
        with self._publish_lock:
            if self._shutting_down:
                return None
            for service, status in evaluation.statuses.items():
                if self._log_change(
                    service,
                    status,
                    last_cycle_age_s=evaluation.last_cycle_age_s,
                    export_failing_for_s=evaluation.export_failing_for_s,
                ):
                    self._servicer.set(service, status)

        delay_s = None
        if evaluation.next_change_in_s is not None:
            delay_s = evaluation.next_change_in_s + _DEADLINE_MARGIN_S
        if self._watchdog_period_s is not None:
            delay_s = min(self._watchdog_period_s, delay_s or self._watchdog_period_s)
        return delay_s

    def _log_change(self, service: str, status: int, **fields: Any) -> bool:
        """Record status as published for service and log it if it changed.

        Returns whether the status changed. The caller holds _publish_lock.
        """
        if self._published[service] == status:
            return False
        self._published[service] = status
        _LOGGER.info("health_status_changed", service=service, status=status_name(status), **fields)
        return True
