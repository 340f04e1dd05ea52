"""HTTP/2 frames the agent sends to the gateway, read off the TCP stream by a recording proxy."""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from pathlib import Path

from agent_process import AgentProcess
from otlp_receiver import OtlpReceiver

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113, section 3.4
DATA, HEADERS, PING = 0x0, 0x1, 0x6
ACK = 0x1


class RecordingProxy:
    """Forward one TCP connection on 127.0.0.1 to `upstream_port` and keep what the client sent."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sent = bytearray()
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def client_bytes(self) -> bytes:
        with self._lock:
            return bytes(self._sent)

    def close(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return  # closed before the agent connected
        upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
        threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()
        self._pipe(client, upstream, True)

    def _pipe(self, source: socket.socket, target: socket.socket, record: bool) -> None:
        """Copy until either side closes; the other direction's thread closes its sockets too."""
        try:
            while chunk := source.recv(65536):
                if record:
                    with self._lock:
                        self._sent += chunk
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            source.close()
            target.close()


def frame_types(stream: bytes) -> Counter[tuple[int, int]]:
    """Count the frames of a client's HTTP/2 byte stream by (type, flags)."""
    assert stream.startswith(PREFACE)
    counts: Counter[tuple[int, int]] = Counter()
    offset = len(PREFACE)
    while offset + 9 <= len(stream):
        length_high, length_low, kind, flags = struct.unpack_from(">BHBB", stream, offset)
        counts[(kind, flags)] += 1
        offset += 9 + (length_high << 16 | length_low)
    return counts


def test_agent_sends_no_bdp_pings(tmp_path: Path) -> None:
    """The channel turns off gRPC's BDP probe, which pings the gateway after responses arrive.

    The agent receives only small export responses, so the probe cannot
    size a window that matters, and its pings woke gRPC's threads about
    20 more times a second at a 1 s interval.
    """
    exports = 5
    with OtlpReceiver() as receiver:
        proxy = RecordingProxy(receiver.port)
        try:
            with AgentProcess(tmp_path, endpoint=f"http://127.0.0.1:{proxy.port}",
                              interval_ms=300):
                receiver.wait_for_requests(exports, timeout=30)
        finally:
            proxy.close()
    counts = frame_types(proxy.client_bytes())

    headers = sum(count for (kind, _), count in counts.items() if kind == HEADERS)
    data = sum(count for (kind, _), count in counts.items() if kind == DATA)
    pings = sum(count for (kind, flags), count in counts.items()
                if kind == PING and not flags & ACK)
    assert headers >= exports
    assert data >= exports
    assert pings == 0
