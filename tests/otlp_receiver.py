"""An OTLP/gRPC metrics receiver for tests, with switchable faults and TLS.

The receiver plays the gateway that the agent exports to. It binds only to
127.0.0.1, records every accepted ExportMetricsServiceRequest, flattens the
requests into `Point` objects, and can reject, delay or never respond to
requests while it runs. `make_test_pki` writes the certificates for the TLS tests.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"

# gRPC's default max_receive_message_length, which gateways built on gRPC
# keep unless configured. The --otlp-grpc-max-recv-msg-size-mib flag of rotel 0.0.1a15
# also defaults to 4 (MiB).
DEFAULT_MAX_RECEIVE_BYTES = 4 * 1024 * 1024

# The trailing-metadata key under which gRPC servers send a serialized
# google.rpc.RetryInfo, and which the OpenTelemetry SDK exporters read.
RETRY_INFO_METADATA_KEY = "google.rpc.retryinfo-bin"

# Every black-holed or delayed request holds one server thread until it is
# released, so the pool is sized well above what one test keeps waiting.
_MAX_WORKERS = 32

# How often wait_for evaluates its predicate when no request arrives, for
# predicates that depend on more than the recorded requests.
_POLL_INTERVAL_SECONDS = 0.2

_T = TypeVar("_T")


# The kernel takes the ports of servers on port 0, and the source ports of
# outgoing connections, from this range (ip(7)).
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# The number of ports below the ephemeral range that free_port() picks from.
_FREE_PORT_SPAN = 10_000
_handed_out: set[int] = set()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago, for the caller to bind.

    The port lies below the kernel's ephemeral range, so that a server on port
    0 or an outgoing connection started meanwhile cannot take it. Each port is
    handed out once per test process. Another process can still bind it first.
    """
    try:
        first_ephemeral = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768  # Linux's default
    low = max(1024, first_ephemeral - _FREE_PORT_SPAN)
    if low >= first_ephemeral:
        raise RuntimeError(
            f"the ephemeral port range in {_EPHEMERAL_RANGE} starts at {first_ephemeral}, "
            "which leaves no port above 1023 below it; raise its first number"
        )
    for _attempt in range(200):
        port = random.randrange(low, first_ephemeral)  # noqa: S311 - a port, not a secret
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(
        f"no free TCP port found on {HOST} in 200 tries between {low} and "
        f"{first_ephemeral - 1}; stop the servers listening there or raise _FREE_PORT_SPAN"
    )


@dataclass(frozen=True)
class TlsConfig:
    """Server certificate and key in PEM, and the CA that client certificates must chain to.

    With `client_ca_pem` set, the receiver requires and verifies a client
    certificate (mutual TLS).
    """

    server_cert_pem: bytes
    server_key_pem: bytes
    client_ca_pem: bytes | None = None

    @classmethod
    def from_files(
        cls, server_cert: Path, server_key: Path, client_ca: Path | None = None
    ) -> TlsConfig:
        return cls(
            server_cert_pem=server_cert.read_bytes(),
            server_key_pem=server_key.read_bytes(),
            client_ca_pem=client_ca.read_bytes() if client_ca is not None else None,
        )


@dataclass(frozen=True)
class RequestRecord:
    """One Export call that reached the receiver's handler.

    `size_bytes` is the serialized size of the decoded request, which is the
    uncompressed size: gRPC compression on the wire is not counted.
    """

    index: int  # order of arrival among all requests, accepted and rejected, from 0
    size_bytes: int
    received_at: float  # time.time() when the handler started
    received_monotonic: float  # time.monotonic() at the same moment
    metadata: tuple[tuple[str, str | bytes], ...]
    peer: str
    # What the TLS layer verified about the client (SAN or CN of its
    # certificate); empty without mutual TLS.
    peer_identities: tuple[bytes, ...]
    request: metrics_service_pb2.ExportMetricsServiceRequest = field(repr=False)
    status: grpc.StatusCode = grpc.StatusCode.OK
    status_details: str = ""

    def header(self, name: str) -> str | bytes | None:
        """Return the first value of request header `name` (lowercase), or None."""
        for key, value in self.metadata:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Point:
    """One data point of an accepted request, with its metric, scope and resource.

    `kind` is the name of the Metric.data field: "gauge", "sum", "histogram",
    "exponential_histogram" or "summary". `temporality` is "cumulative",
    "delta" or "unspecified" for sums and histograms, and None otherwise.
    `value` is set for gauges and sums; histograms and summaries fill `count`,
    `sum` and, where they have them, `min`, `max` and the buckets. `raw` is the
    data point message for anything else (exemplars, exponential buckets).
    """

    resource: dict[str, Any]
    resource_schema_url: str
    scope_name: str
    scope_version: str
    scope_schema_url: str
    name: str
    unit: str
    description: str
    kind: str
    is_monotonic: bool | None
    temporality: str | None
    attributes: dict[str, Any]
    value: int | float | None
    start_time_unix_nano: int
    time_unix_nano: int
    request_index: int  # RequestRecord.index of the request that carried the point
    count: int | None = None
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    bucket_counts: tuple[int, ...] = ()
    explicit_bounds: tuple[float, ...] = ()
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass
class _Fault:
    """The receiver's current response mode for Export calls; one instance per mode switch."""

    kind: str  # "normal", "error" or "black_hole"
    remaining: int | None = None  # requests left before the mode ends; None for no limit
    code: grpc.StatusCode = grpc.StatusCode.OK
    details: str = ""
    retry_delay: float | None = None

    def describe(self) -> str:
        limit = "" if self.remaining is None else f", {self.remaining} request(s) left"
        if self.kind == "error":
            return f"respond_with({self.code.name}{limit})"
        if self.kind == "black_hole":
            return f"black_hole({limit.lstrip(', ')})"
        return "normal"


_NORMAL = _Fault("normal")


class _MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    # The method name is fixed by the generated MetricsService base class.
    def Export(  # noqa: N802
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        return self._receiver._handle_export(request, context)


class OtlpReceiver:
    """An OTLP/gRPC MetricsService on 127.0.0.1 that records what it accepts.

    Use it as a context manager, or call `start()` and `stop()`. A receiver
    can be stopped and started again on the same port, and it keeps its
    records across restarts. With port 0, the first start picks a free port
    and later starts reuse it. stop() ends every fault mode because a
    restarted gateway responds normally, but a mode set while the receiver
    is stopped applies from the next start.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        max_receive_bytes: int = DEFAULT_MAX_RECEIVE_BYTES,
        tls: TlsConfig | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port}")
        if max_receive_bytes <= 0:
            raise ValueError(f"max_receive_bytes must be positive, got {max_receive_bytes}")
        self._port = port
        self._max_receive_bytes = max_receive_bytes
        self._tls = tls
        self._server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None

        # One lock guards every field below; the condition wakes wait_for.
        self._cond = threading.Condition(threading.RLock())
        self._generation = 0  # bumped on every recorded request, accepted or rejected
        self._attempts = 0
        self._requests: list[RequestRecord] = []
        self._points: list[Point] = []  # the accepted requests, flattened once on arrival
        self._rejected: list[RequestRecord] = []
        self._fault = _NORMAL
        self._delay_seconds = 0.0
        self._delay_remaining: int | None = None
        self._stopping = False
        # Events of the handlers that black_hole() or delay() holds. reset()
        # and stop() set them all and bump the release generation. A handler
        # that took its fault before that bump then does not wait at all.
        self._waiters: set[threading.Event] = set()
        self._release_generation = 0

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> OtlpReceiver:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Bind 127.0.0.1 on the configured port and start serving."""
        if self._server is not None:
            raise RuntimeError(f"receiver on port {self._port} is already running")
        executor = futures.ThreadPoolExecutor(
            max_workers=_MAX_WORKERS, thread_name_prefix="otlp-receiver"
        )
        server = grpc.server(
            executor,
            options=[
                ("grpc.max_receive_message_length", self._max_receive_bytes),
                # grpc sets SO_REUSEPORT by default, so two grpc servers
                # could bind one port and split its connections. Without it,
                # a start on a port that is in use fails.
                ("grpc.so_reuseport", 0),
            ],
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _MetricsServicer(self), server
        )
        address = f"{HOST}:{self._port}"
        try:
            if self._tls is None:
                bound = server.add_insecure_port(address)
            else:
                bound = server.add_secure_port(address, self._server_credentials(self._tls))
        except RuntimeError as error:
            executor.shutdown(wait=False)
            raise RuntimeError(f"binding the OTLP receiver to {address} failed: {error}") from error
        if bound == 0:
            # Older grpc versions return 0 in place of raising.
            executor.shutdown(wait=False)
            raise RuntimeError(f"binding the OTLP receiver to {address} failed")

        with self._cond:
            self._stopping = False
        server.start()
        self._port = bound
        self._server = server
        self._executor = executor
        logger.info("OTLP receiver started on %s (tls=%s)", self.endpoint, self._tls is not None)

    def stop(self, grace: float | None = 0) -> None:
        """Stop serving, release every held request and wait for the handlers to end.

        Requests still held by black_hole() or delay() are aborted with
        UNAVAILABLE and counted as rejected. Every fault mode ends.
        """
        server, executor = self._server, self._executor
        if server is None or executor is None:
            return
        with self._cond:
            self._stopping = True
            self._fault = _NORMAL
            self._delay_seconds = 0.0
            self._delay_remaining = None
            self._release_waiters()
        server.stop(grace).wait()
        executor.shutdown(wait=True)
        self._server = None
        self._executor = None
        logger.info("OTLP receiver on port %d stopped", self._port)

    @staticmethod
    def _server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(tls.server_key_pem, tls.server_cert_pem)],
            root_certificates=tls.client_ca_pem,
            require_client_auth=tls.client_ca_pem is not None,
        )

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port; 0 until a receiver created with port 0 first starts."""
        return self._port

    @property
    def endpoint(self) -> str:
        """The URL for an OTLP exporter: http://127.0.0.1:PORT, or https with TLS."""
        if self._port == 0:
            raise RuntimeError("the receiver has no port yet: call start() first")
        scheme = "http" if self._tls is None else "https"
        return f"{scheme}://{HOST}:{self._port}"

    # -- fault modes -------------------------------------------------------

    def respond_with(
        self,
        code: grpc.StatusCode,
        count: int | None = None,
        *,
        retry_delay: float | None = None,
        details: str | None = None,
    ) -> None:
        """Abort the next `count` requests (all, if None, until reset()) with status `code`.

        `retry_delay` (seconds) adds a google.rpc.RetryInfo to the trailing
        metadata, which sets how long OTLP exporters wait before a retry.
        """
        if code == grpc.StatusCode.OK:
            raise ValueError("respond_with needs an error status; use reset() to accept requests")
        _check_count(count)
        if retry_delay is not None and retry_delay < 0:
            raise ValueError(f"retry_delay must be non-negative seconds, got {retry_delay}")
        if details is None:
            details = f"rejected by the test receiver: {code.name}"
        fault = _Fault(
            "error", remaining=count, code=code, details=details, retry_delay=retry_delay
        )
        self._set_fault(fault)

    def black_hole(self, count: int | None = None) -> None:
        """Accept the next `count` requests (all, if None) and never respond to them.

        A held request ends when its client gives up (deadline or cancel), at
        reset(), which responds to it normally, or at stop().
        """
        _check_count(count)
        self._set_fault(_Fault("black_hole", remaining=count))

    def delay(self, seconds: float, count: int | None = None) -> None:
        """Hold the next `count` requests (all, if None) for `seconds` before responding.

        The delay comes before any other fault mode, so delay() combined with
        respond_with() sends the error late.
        """
        if seconds < 0:
            raise ValueError(f"delay must be non-negative seconds, got {seconds}")
        _check_count(count)
        with self._cond:
            self._delay_seconds = seconds
            self._delay_remaining = count
        logger.info("OTLP receiver on port %d: delay(%s s, count=%s)", self._port, seconds, count)

    def reset(self) -> None:
        """Respond normally again and release the requests held until now."""
        with self._cond:
            self._fault = _NORMAL
            self._delay_seconds = 0.0
            self._delay_remaining = None
            self._release_waiters()
        logger.info("OTLP receiver on port %d: reset to normal responses", self._port)

    def clear(self) -> None:
        """Drop every record, accepted and rejected, without changing the fault mode."""
        with self._cond:
            self._requests.clear()
            self._points.clear()
            self._rejected.clear()
            self._attempts = 0
            self._generation += 1
            self._cond.notify_all()

    def _set_fault(self, fault: _Fault) -> None:
        with self._cond:
            self._fault = fault
        logger.info("OTLP receiver on port %d: %s", self._port, fault.describe())

    def _release_waiters(self) -> None:
        self._release_generation += 1
        for event in self._waiters:
            event.set()
        self._waiters.clear()

    # -- request handling --------------------------------------------------

    def _handle_export(
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        received_at, received_monotonic = time.time(), time.monotonic()
        with self._cond:
            index = self._attempts
            self._attempts += 1
            delay = self._take_delay()
            fault = self._take_fault()
            release_generation = self._release_generation

        def record(code: grpc.StatusCode = grpc.StatusCode.OK, details: str = "") -> RequestRecord:
            return RequestRecord(
                index=index,
                size_bytes=request.ByteSize(),
                received_at=received_at,
                received_monotonic=received_monotonic,
                metadata=tuple((item.key, item.value) for item in context.invocation_metadata()),
                peer=context.peer(),
                peer_identities=tuple(context.peer_identities() or ()),
                request=request,
                status=code,
                status_details=details,
            )

        if delay > 0:
            self._hold(context, release_generation, timeout=delay)
        if fault.kind == "black_hole":
            self._hold(context, release_generation, timeout=None)

        if self._is_stopping():
            self._reject(record(grpc.StatusCode.UNAVAILABLE, "receiver stopped"))
            context.abort(grpc.StatusCode.UNAVAILABLE, "the test receiver is stopping")
        if not context.is_active():
            # The client gave up while the request was held.
            self._reject(record(grpc.StatusCode.CANCELLED, "client gave up while held"))
            return metrics_service_pb2.ExportMetricsServiceResponse()
        if fault.kind == "error":
            if fault.retry_delay is not None:
                context.set_trailing_metadata(
                    ((RETRY_INFO_METADATA_KEY, _retry_info(fault.retry_delay)),)
                )
            self._reject(record(fault.code, fault.details))
            context.abort(fault.code, fault.details)

        self._accept(record())
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def _take_delay(self) -> float:
        """Return the delay for one request and count it against delay()'s limit."""
        if self._delay_seconds <= 0:
            return 0.0
        seconds = self._delay_seconds
        if self._delay_remaining is not None:
            self._delay_remaining -= 1
            if self._delay_remaining <= 0:
                self._delay_seconds = 0.0
                self._delay_remaining = None
        return seconds

    def _take_fault(self) -> _Fault:
        """Return the fault for one request and count it against the mode's limit."""
        fault = self._fault
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._fault = _NORMAL
        return fault

    def _hold(
        self, context: grpc.ServicerContext, release_generation: int, timeout: float | None
    ) -> None:
        """Block until `timeout` passes, the RPC ends, or reset() or stop() releases it."""
        released = threading.Event()
        with self._cond:
            if self._stopping or self._release_generation != release_generation:
                return
            self._waiters.add(released)
            self._cond.notify_all()
        # The callback runs when the RPC terminates, including a client's
        # deadline or cancel, so an abandoned request frees its thread. It
        # returns False when the RPC has already terminated.
        if context.add_callback(released.set):
            released.wait(timeout)
        with self._cond:
            self._waiters.discard(released)

    def _is_stopping(self) -> bool:
        with self._cond:
            return self._stopping

    def _accept(self, record: RequestRecord) -> None:
        points = list(_flatten(record))
        with self._cond:
            self._requests.append(record)
            self._points.extend(points)
            self._generation += 1
            self._cond.notify_all()

    def _reject(self, record: RequestRecord) -> None:
        logger.info(
            "OTLP receiver on port %d rejected request %d with %s: %s",
            self._port,
            record.index,
            record.status.name,
            record.status_details,
        )
        with self._cond:
            self._rejected.append(record)
            self._generation += 1
            self._cond.notify_all()

    # -- recorded data -----------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """The accepted requests, oldest first (a copy)."""
        with self._cond:
            return list(self._requests)

    @property
    def rejected_requests(self) -> list[RequestRecord]:
        """Requests rejected with an error status or abandoned while held, oldest first (a copy).

        NOTE: requests over max_receive_bytes are rejected by gRPC before the
        handler runs, so they appear neither here nor in `requests`.
        """
        with self._cond:
            return list(self._rejected)

    @property
    def rejected(self) -> int:
        with self._cond:
            return len(self._rejected)

    @property
    def held(self) -> int:
        """The number of requests that black_hole() or delay() is holding now."""
        with self._cond:
            return len(self._waiters)

    def points(self, name: str | None = None) -> list[Point]:
        """Flatten the accepted requests into data points, optionally of one metric."""
        with self._cond:
            found = list(self._points)
        if name is not None:
            found = [point for point in found if point.name == name]
        return found

    def metric_names(self) -> set[str]:
        return {
            metric.name
            for record in self.requests
            for resource_metrics in record.request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        }

    # -- waiting -----------------------------------------------------------

    def wait_for(
        self,
        predicate: Callable[[OtlpReceiver], _T],
        timeout: float = 10.0,
        description: str | None = None,
    ) -> _T:
        """Wait until `predicate(self)` is truthy and return its value.

        The predicate runs again whenever a request is recorded, and at least
        every 0.2 s. On timeout this raises AssertionError with what the
        receiver has seen, so a failing test shows why.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                generation = self._generation
            result = predicate(self)
            if result:
                return result
            with self._cond:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self._generation == generation:
                    self._cond.wait(min(remaining, _POLL_INTERVAL_SECONDS))
        what = description or getattr(predicate, "__name__", repr(predicate))
        raise AssertionError(f"timed out after {timeout} s waiting for {what}: {self.summary()}")

    def wait_for_points(
        self,
        predicate: Callable[[list[Point]], object],
        timeout: float = 10.0,
        description: str | None = None,
    ) -> list[Point]:
        """Wait until `predicate(points)` is truthy and return the points it was given."""
        found: list[Point] = []

        def check(receiver: OtlpReceiver) -> bool:
            nonlocal found
            found = receiver.points()
            return bool(predicate(found))

        what = description or getattr(predicate, "__name__", "a point predicate")
        self.wait_for(check, timeout, description=what)
        return found

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RequestRecord]:
        """Wait until at least `count` requests were accepted and return all of them."""
        self.wait_for(
            lambda receiver: len(receiver.requests) >= count,
            timeout,
            description=f"{count} accepted request(s)",
        )
        return self.requests

    def summary(self) -> str:
        """Describe the receiver's state in one line, for failure messages."""
        with self._cond:
            accepted, rejected = len(self._requests), len(self._rejected)
            fault = self._fault.describe()
            delay = self._delay_seconds
            point_count = len(self._points)
        names = sorted(self.metric_names())
        return (
            f"{accepted} request(s) accepted, {rejected} rejected, "
            f"{point_count} point(s), mode {fault}, delay {delay} s, "
            f"metric names seen: {names}"
        )


def _check_count(count: int | None) -> None:
    if count is not None and count < 1:
        raise ValueError(f"count must be a positive number of requests or None, got {count}")


def _retry_info(seconds: float) -> bytes:
    whole = int(seconds)
    delay = duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))
    serialized: bytes = error_details_pb2.RetryInfo(retry_delay=delay).SerializeToString()
    return serialized


# -- flattening ------------------------------------------------------------

_TEMPORALITY = {
    metrics_pb2.AGGREGATION_TEMPORALITY_UNSPECIFIED: "unspecified",
    metrics_pb2.AGGREGATION_TEMPORALITY_DELTA: "delta",
    metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE: "cumulative",
}


def decode_any_value(value: common_pb2.AnyValue) -> Any:
    """Convert an OTLP AnyValue to str, bool, int, float, bytes, tuple, dict or None."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(decode_any_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    return getattr(value, kind)


def decode_attributes(attributes: Sequence[common_pb2.KeyValue]) -> dict[str, Any]:
    return {item.key: decode_any_value(item.value) for item in attributes}


def _flatten(record: RequestRecord) -> Iterator[Point]:
    for resource_metrics in record.request.resource_metrics:
        resource = decode_attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                common = {
                    "resource": resource,
                    "resource_schema_url": resource_metrics.schema_url,
                    "scope_name": scope_metrics.scope.name,
                    "scope_version": scope_metrics.scope.version,
                    "scope_schema_url": scope_metrics.schema_url,
                    "name": metric.name,
                    "unit": metric.unit,
                    "description": metric.description,
                    "request_index": record.index,
                }
                yield from _metric_points(metric, common)


def _metric_points(metric: metrics_pb2.Metric, common: dict[str, Any]) -> Iterator[Point]:
    kind = metric.WhichOneof("data")
    if kind is None:
        return
    data = getattr(metric, kind)
    is_monotonic = data.is_monotonic if kind == "sum" else None
    temporality = (
        _TEMPORALITY.get(data.aggregation_temporality, str(data.aggregation_temporality))
        if kind in ("sum", "histogram", "exponential_histogram")
        else None
    )
    for data_point in data.data_points:
        yield Point(
            **common,
            kind=kind,
            is_monotonic=is_monotonic,
            temporality=temporality,
            attributes=decode_attributes(data_point.attributes),
            start_time_unix_nano=data_point.start_time_unix_nano,
            time_unix_nano=data_point.time_unix_nano,
            raw=data_point,
            **_point_values(kind, data_point),
        )


def _point_values(kind: str, data_point: Any) -> dict[str, Any]:
    """Return the value fields of one data point, keyed like Point's fields."""
    if kind in ("gauge", "sum"):
        which = data_point.WhichOneof("value")
        return {"value": getattr(data_point, which) if which else None}
    values: dict[str, Any] = {"value": None, "count": data_point.count}
    # Histograms declare sum, min and max optional. A summary always has a
    # sum and has no min or max.
    for name in ("sum", "min", "max"):
        if name in data_point.DESCRIPTOR.fields_by_name and (
            kind == "summary" or data_point.HasField(name)
        ):
            values[name] = getattr(data_point, name)
    if kind == "histogram":
        values["bucket_counts"] = tuple(data_point.bucket_counts)
        values["explicit_bounds"] = tuple(data_point.explicit_bounds)
    return values


# -- test certificates -----------------------------------------------------


@dataclass(frozen=True)
class PkiPaths:
    """PEM files written by make_test_pki.

    The server certificate is valid for 127.0.0.1, ::1 and localhost. The
    client certificate chains to `ca_cert`; `other_client_cert` chains to
    `other_ca_cert`, a CA that nothing else trusts.
    """

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path
    other_client_cert: Path
    other_client_key: Path

    def server_tls(self, *, require_client_cert: bool = False) -> TlsConfig:
        """Return the receiver's TLS settings, with mutual TLS when require_client_cert is true."""
        return TlsConfig.from_files(
            self.server_cert,
            self.server_key,
            self.ca_cert if require_client_cert else None,
        )


def make_test_pki(directory: Path) -> PkiPaths:
    """Write a CA, a server and a client certificate, and an unrelated CA with its own client.

    Keys are ECDSA P-256, written unencrypted as PKCS#8 with mode 0600.
    Certificates are valid from one day ago for 30 days.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca("otel-host-agent test CA")
    other_ca_key, other_ca_cert = _make_ca("unrelated test CA")
    server_key, server_cert = _make_leaf(
        ca_key,
        ca_cert,
        common_name="localhost",
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alt_names=[
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
            x509.IPAddress(ipaddress.IPv6Address("::1")),
            x509.DNSName("localhost"),
        ],
    )
    client_key, client_cert = _make_leaf(
        ca_key,
        ca_cert,
        common_name="otel-host-agent-test-client",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        alt_names=[],
    )
    other_client_key, other_client_cert = _make_leaf(
        other_ca_key,
        other_ca_cert,
        common_name="unrelated-test-client",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        alt_names=[],
    )

    paths = PkiPaths(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
        other_ca_cert=directory / "other-ca.pem",
        other_client_cert=directory / "other-client.pem",
        other_client_key=directory / "other-client-key.pem",
    )
    _write_cert(paths.ca_cert, ca_cert)
    _write_cert(paths.other_ca_cert, other_ca_cert)
    _write_cert(paths.server_cert, server_cert)
    _write_cert(paths.client_cert, client_cert)
    _write_cert(paths.other_client_cert, other_client_cert)
    _write_key(paths.server_key, server_key)
    _write_key(paths.client_key, client_key)
    _write_key(paths.other_client_key, other_client_key)
    return paths


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)


def _make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_before, not_after = _validity()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    *,
    common_name: str,
    usage: x509.ObjectIdentifier,
    alt_names: list[x509.GeneralName],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.write_bytes(pem)
