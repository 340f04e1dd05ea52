"""Loopback plumbing between a peer and the benchmark: a byte-counting TCP
proxy, and the tests' OTLP receiver reduced to a per-request callback.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The OTLP receiver is the tests' own (tests/otlp_receiver.py), which pytest
# imports from the tests folder; the benchmark does the same.
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

# free_port is imported for the benchmark's other modules, which import it from here.
from otlp_receiver import OtlpReceiver, RequestRecord, free_port  # noqa: E402, F401

LOOPBACK = "127.0.0.1"
_CHUNK_BYTES = 64 * 1024
_ACCEPT_POLL_SECONDS = 0.2


class CountingProxy:
    """A TCP proxy from a port on 127.0.0.1 to `upstream_port` on 127.0.0.1.

    It counts the bytes of the TCP payload in each direction: what clients
    send (`sent_by_client`) and what the upstream sends back
    (`sent_by_upstream`). HTTP/2 and HTTP framing are counted, TCP and IP
    headers are not.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream = (LOOPBACK, upstream_port)
        self._lock = threading.Lock()
        self._counts = {"client": 0, "upstream": 0}
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(_ACCEPT_POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]
        self._accepter = threading.Thread(
            target=self._accept_loop, name="proxy-accept", daemon=True
        )
        self._accepter.start()

    @property
    def sent_by_client(self) -> int:
        with self._lock:
            return self._counts["client"]

    @property
    def sent_by_upstream(self) -> int:
        with self._lock:
            return self._counts["upstream"]

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, target, side in (
                (client, upstream, "client"),
                (upstream, client, "upstream"),
            ):
                thread = threading.Thread(
                    target=self._pump,
                    args=(source, target, side),
                    name=f"proxy-{side}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, target: socket.socket, side: str) -> None:
        while True:
            try:
                chunk = source.recv(_CHUNK_BYTES)
            except OSError:
                chunk = b""
            if not chunk:
                with contextlib.suppress(OSError):
                    target.shutdown(socket.SHUT_WR)
                return
            with self._lock:
                self._counts[side] += len(chunk)
            try:
                target.sendall(chunk)
            except OSError:
                return

    def close(self) -> None:
        """Stop accepting, close every connection and wait for the pump threads."""
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._accepter.join(timeout=2)
        for thread in self._threads:
            thread.join(timeout=2)


@dataclass(frozen=True)
class ExportSummary:
    """One accepted export request, reduced to what the benchmark counts."""

    data_points: int
    serialized_bytes: int  # ByteSize() of the decoded request: the uncompressed size
    metric_names: frozenset[str]
    resource_keys: frozenset[str]  # attribute keys of the requests' resources
    request: Any  # the ExportMetricsServiceRequest, for the gzip cross-check
    # Seconds between the receiver's clock at arrival and the timestamp of the
    # request's first data point; None for a request without points.
    clock_skew_s: float | None = None


def summarize(record: RequestRecord) -> ExportSummary:
    points = 0
    names: set[str] = set()
    keys: set[str] = set()
    first_timestamp_ns = None
    for resource_metrics in record.request.resource_metrics:
        keys.update(attribute.key for attribute in resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                names.add(metric.name)
                kind = metric.WhichOneof("data")
                if kind is not None:
                    data_points = getattr(metric, kind).data_points
                    points += len(data_points)
                    if first_timestamp_ns is None and data_points:
                        first_timestamp_ns = data_points[0].time_unix_nano
    skew = None
    if first_timestamp_ns is not None:
        skew = abs(record.received_at - first_timestamp_ns / 1e9)
    return ExportSummary(
        points, record.size_bytes, frozenset(names), frozenset(keys), record.request, skew
    )


class CountingReceiver(OtlpReceiver):
    """The tests' OtlpReceiver, handing each accepted request to `on_export`.

    It keeps no records: the benchmark's runs send thousands of requests, and
    flattening and storing each one would load the benchmark's own process,
    which shares the two cores with the processes it measures.
    """

    def __init__(self, on_export: Callable[[ExportSummary], None]) -> None:
        super().__init__()
        self._on_export = on_export

    def _accept(self, record: RequestRecord) -> None:
        self._on_export(summarize(record))
