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

import collections
import errno
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from otel_collector import defaults

_LOGGER = structlog.get_logger(__name__)
_Handler = TypeVar("_Handler", bound=Callable[..., Any])

SERVING: Final[int] = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: Final[int] = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: Final[int] = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

# The protocol's name for the status of the whole server.
OVERALL_SERVICE: Final = ""
SERVICES: Final = (OVERALL_SERVICE, defaults.LIVENESS_SERVICE, defaults.READINESS_SERVICE)

# Liveness turns NOT_SERVING when no cycle completed for this many cycle intervals.
LIVENESS_INTERVALS: Final = 2
# The watchdog wakes at least this often, and earlier when a status is due to
# change or the agent reports an event that changes one. At a 1 s interval,
# waking on every event and every quarter interval cost 0.76 ms of CPU per
# second here, against 0.21 ms per second with this rule.
_WATCHDOG_PERIOD_S: Final = 1.0
# Wakes the watchdog just after a deadline, because statuses change only once the
# deadline has been exceeded.
_DEADLINE_MARGIN_S: Final = 0.001
# A Watch message waits this long for a client that stopped reading before the
# watchdog cancels that call. Meanwhile the other Watch streams get no messages,
# because one thread sends them all. Check is not affected.
_MAX_SEND_WAIT_S: Final = 5.0
# Maximum seconds that stop() waits for each of its threads after the server stopped.
_THREAD_JOIN_TIMEOUT_S: Final = 2.0

# Check handlers take microseconds, and the non-blocking Watch handler only
# registers the stream and returns, so a few workers serve any number of streams.
_RPC_WORKERS: Final = 4
# The server rejects calls with RESOURCE_EXHAUSTED while max_watch_streams plus this
# many are in progress, which bounds the queue of a Check flood. An open Watch stream
# counts only while its handler runs, so clients can open max_watch_streams streams
# at once and still leave room for Checks.
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


def _non_blocking(method: _Handler) -> _Handler:
    """Mark a response-streaming handler as non-blocking for grpcio's server.

    grpcio (1.85) then passes a send_response_callback argument and ends the
    handler's work when it returns, instead of iterating over its return value on a
    worker thread. The call stays open until the client or the server ends it.
    """
    method.experimental_non_blocking = True  # type: ignore[attr-defined]
    return method


class _WatchStream:
    """One open Watch call. The servicer's lock guards every field but the callables."""

    def __init__(
        self,
        service: str,
        context: grpc.ServicerContext,
        send_response: Callable[[health_pb2.HealthCheckResponse], None],
    ) -> None:
        self.service = service
        self.context = context
        self.send_response = send_response
        self.last_sent: int | None = None
        self.queued = False
        self.closed = False


class _HealthServicer(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """grpc.health.v1 servicer with a non-blocking Watch and a maximum of open streams.

    Check returns NOT_FOUND and Watch sends SERVICE_UNKNOWN for a service that was
    never set, as the protocol specifies. One sender thread sends every Watch
    message, so neither set() nor a server worker waits for a client to read.

    NOTE: this replaces grpc_health.v1.health.HealthServicer, which deadlocks in
    grpcio-health-checking 1.85: its set() holds a lock while each send waits for
    the server's completion-queue thread, and that thread takes the same lock when a
    Watch stream closes. Here no lock is held while sending.
    """

    def __init__(self, max_watch_streams: int) -> None:
        self._max_watch_streams = max_watch_streams
        # Guards the fields below and those of each _WatchStream. It is never held
        # while sending, because the completion-queue thread takes it to remove a
        # closed stream.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._statuses: dict[str, int] = {}
        self._frozen = False
        self._streams: set[_WatchStream] = set()
        self._send_queue: collections.deque[_WatchStream] = collections.deque()
        # The stream whose send is in progress and the time.monotonic() it started.
        self._sending: tuple[_WatchStream, float] | None = None
        self._sender_stopping = False
        self._sender: threading.Thread | None = None
        self._rejected_watch_calls = 0
        self._at_watch_limit = False

    def Check(  # noqa: N802 (the name is fixed by the generated servicer)
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        with self._lock:
            status = self._statuses.get(request.service)
        if status is None:
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details(f"unknown service {request.service!r}")
            return health_pb2.HealthCheckResponse()
        return health_pb2.HealthCheckResponse(status=status)

    @_non_blocking
    def Watch(  # noqa: N802 (the name is fixed by the generated servicer)
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.ServicerContext,
        send_response_callback: Callable[[health_pb2.HealthCheckResponse], None],
    ) -> None:
        stream = _WatchStream(request.service, context, send_response_callback)
        if not self._add_stream(stream):
            # abort() raises, which ends the call with this status.
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the health service already has {self._max_watch_streams} open Watch "
                "streams; close unused streams or poll with Check",
            )
        # add_callback returns False when the call has already ended.
        if not context.add_callback(lambda: self._remove_stream(stream)):
            self._remove_stream(stream)

    def set(self, service: str, status: int) -> None:
        """Set the status of service and queue it for the streams that watch it.

        Has no effect after enter_graceful_shutdown().
        """
        with self._lock:
            if self._frozen:
                return
            self._statuses[service] = status
            for stream in self._streams:
                if stream.service == service:
                    self._queue_locked(stream)

    def enter_graceful_shutdown(self) -> None:
        """Set every service NOT_SERVING for good and queue that for every stream."""
        with self._lock:
            if self._frozen:
                return
            self._frozen = True
            for service in self._statuses:
                self._statuses[service] = NOT_SERVING
            for stream in self._streams:
                self._queue_locked(stream)

    def start_sender(self) -> None:
        self._sender = threading.Thread(
            target=self._run_sender, name="health-watch-sender", daemon=True
        )
        self._sender.start()

    def stop_sender(self, timeout_s: float) -> None:
        with self._lock:
            self._sender_stopping = True
            self._changed.notify_all()
        if self._sender is not None:
            self._sender.join(timeout=timeout_s)

    def wait_until_sent(self, timeout_s: float) -> bool:
        """Wait until every queued status was sent and return whether that happened in time."""
        with self._lock:
            return self._changed.wait_for(
                lambda: not self._send_queue and self._sending is None, timeout=timeout_s
            )

    def cancel_stalled_send(self, max_wait_s: float) -> None:
        """Cancel the Watch call whose send has waited for longer than max_wait_s.

        A send waits while the client's HTTP/2 flow-control window is full, which
        happens only when the client stops reading. Cancelling the call ends the
        send, so the sender goes on with the other streams.
        """
        with self._lock:
            if self._sending is None:
                return
            stream, started_at = self._sending
        waited_s = time.monotonic() - started_at
        if waited_s <= max_wait_s:
            return
        _LOGGER.warning(
            "health_watch_stream_cancelled",
            reason="client stopped reading",
            service=stream.service,
            peer=stream.context.peer(),
            waited_s=round(waited_s, 3),
        )
        stream.context.cancel()

    def _queue_locked(self, stream: _WatchStream) -> None:
        if not stream.queued and not stream.closed:
            stream.queued = True
            self._send_queue.append(stream)
            self._changed.notify_all()

    def _run_sender(self) -> None:
        while True:
            with self._lock:
                self._changed.wait_for(lambda: self._send_queue or self._sender_stopping)
                if self._sender_stopping:
                    return
                stream = self._send_queue.popleft()
                stream.queued = False
                status = self._statuses.get(stream.service, SERVICE_UNKNOWN)
                if stream.closed or status == stream.last_sent:
                    self._changed.notify_all()
                    continue
                self._sending = (stream, time.monotonic())

            # grpcio returns at once when the call has ended, and otherwise when the
            # message was accepted by the transport. A status set meanwhile queues
            # the stream again, so the newest status is always sent last.
            stream.send_response(health_pb2.HealthCheckResponse(status=status))

            with self._lock:
                stream.last_sent = status
                self._sending = None
                self._changed.notify_all()

    def _add_stream(self, stream: _WatchStream) -> bool:
        with self._lock:
            if len(self._streams) < self._max_watch_streams:
                self._streams.add(stream)
                self._queue_locked(stream)
                self._at_watch_limit = False
                return True
            self._rejected_watch_calls += 1
            rejected_total = self._rejected_watch_calls
            first_rejection_at_limit = not self._at_watch_limit
            self._at_watch_limit = True
        # Logged once each time the limit is reached, not once per rejected call.
        if first_rejection_at_limit:
            _LOGGER.warning(
                "health_watch_limit_reached",
                max_watch_streams=self._max_watch_streams,
                rejected_total=rejected_total,
            )
        return False

    def _remove_stream(self, stream: _WatchStream) -> None:
        with self._lock:
            stream.closed = True
            self._streams.discard(stream)


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

    cycle_completed(), export_succeeded() and export_failed() record a time and wake
    the watchdog thread only when that can change a status at once. They do no
    network I/O, so the collection loop does not wait for health clients. The
    watchdog publishes status changes to Check and to open Watch streams.
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

        self._max_watch_streams = max_watch_streams
        self._servicer = _HealthServicer(max_watch_streams)
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
            maximum_concurrent_rpcs=self._max_watch_streams + _CONCURRENT_CALL_MARGIN,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        try:
            target, port = self._bind(server)
        except HealthBindError:
            server.stop(None)
            executor.shutdown(wait=False)
            raise
        self._servicer.start_sender()
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
        """Record that the collection loop completed a cycle.

        A cycle only moves the liveness deadline later, so the watchdog is woken
        only while liveness is not SERVING. The watchdog's own deadline or period
        picks up the new time otherwise.
        """
        self._signals.record_cycle()
        if self._published[defaults.LIVENESS_SERVICE] != SERVING:
            self._wake.set()

    def export_succeeded(self) -> None:
        """Record a delivered export, and wake the watchdog if it ends a run of failures."""
        if self._signals.record_export(succeeded=True):
            self._wake.set()

    def export_failed(self) -> None:
        """Record a failed export, and wake the watchdog if it begins a run of failures."""
        if self._signals.record_export(succeeded=False):
            self._wake.set()

    def begin_shutdown(self) -> None:
        """Set every service NOT_SERVING for good, for Check at once.

        The sender thread then sends NOT_SERVING to every open Watch stream. Later
        events change no status. Calling it again has no effect.
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
        """Set every service NOT_SERVING, then stop the server and the threads.

        Open Watch streams get up to grace_s seconds to receive NOT_SERVING, and
        calls in progress get what remains of grace_s to finish. Watch streams never
        finish on their own, so stop() cancels those still open when grace_s ends.
        """
        deadline = time.monotonic() + grace_s
        self.begin_shutdown()
        self._servicer.wait_until_sent(grace_s)
        if self._server is not None:
            self._server.stop(max(deadline - time.monotonic(), 0.0)).wait()
            self._server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

        self._stopping.set()
        self._wake.set()
        self._servicer.stop_sender(timeout_s=_THREAD_JOIN_TIMEOUT_S)
        if self._watchdog is not None:
            self._watchdog.join(timeout=_THREAD_JOIN_TIMEOUT_S)
            self._watchdog = None
            _LOGGER.info("health_server_stopped", address=self._bound_target, port=self._bound_port)

    def _bind(self, server: grpc.Server) -> tuple[str, int]:
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

    def _run_watchdog(self) -> None:
        while True:
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._servicer.cancel_stalled_send(_MAX_SEND_WAIT_S)
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
                return _WATCHDOG_PERIOD_S
            for service, status in evaluation.statuses.items():
                if self._log_change(
                    service,
                    status,
                    last_cycle_age_s=evaluation.last_cycle_age_s,
                    export_failing_for_s=evaluation.export_failing_for_s,
                ):
                    self._servicer.set(service, status)

        if evaluation.next_change_in_s is None:
            return _WATCHDOG_PERIOD_S
        return min(_WATCHDOG_PERIOD_S, evaluation.next_change_in_s + _DEADLINE_MARGIN_S)

    def _log_change(self, service: str, status: int, **fields: Any) -> bool:
        """Record status as published for service and log it if it changed.

        Returns whether the status changed. The caller holds _publish_lock.
        """
        if self._published[service] == status:
            return False
        self._published[service] = status
        _LOGGER.info("health_status_changed", service=service, status=status_name(status), **fields)
        return True
