"""TCP counts from the sock_diag dump against the kernel's /proc/net/tcp, tcp6 and sockstat."""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from scraper_context import make_scraper, value

from otel_collector.scrapers import network, sock_diag

# Enough sockets that the dump spans several receive buffers: each socket's
# message is about 100 bytes, and the kernel fills at most 32 KiB a buffer.
PAIRS_IPV4 = 400
PAIRS_IPV6 = 100
BY_STATE = {"HOST_AGENT_CONNECTION_STATES": "true"}
# Connections the server side closes first: the server end waits in fin_wait_2
# and the client end in close_wait.
HALF_CLOSED = 30
# Connections both ends close, the client first: the client end waits in time_wait.
CLOSED = 20
# Handshakes a listener with TCP_DEFER_ACCEPT leaves in syn_received.
DEFERRED = 10


def by_name(numbers: list[int]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for name, count in zip(sock_diag.STATE_NAMES, numbers, strict=False):
        if name is not None and count:
            counts[name] += count
    return counts


def from_proc() -> Counter[str]:
    counts: Counter[str] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        network.count_tcp_states(Path(table).read_bytes(), counts)
    return +counts


def settled_counts() -> tuple[Counter[str], Counter[str]]:
    """Read dump, tables, dump until both dumps agree, so no socket changed in between."""
    for _ in range(20):
        first = by_name(sock_diag.tcp_state_counts())
        tables = from_proc()
        if by_name(sock_diag.tcp_state_counts()) == first:
            return first, tables
        time.sleep(0.05)
    raise AssertionError("the host's TCP sockets kept changing for 20 readings")


@contextlib.contextmanager
def loopback_connections() -> Iterator[None]:
    """Open connections on 127.0.0.1 and ::1 and leave some half closed and some closed."""
    with contextlib.ExitStack() as stack:
        pairs = []
        for family, host, count in (
            (socket.AF_INET, "127.0.0.1", PAIRS_IPV4),
            (socket.AF_INET6, "::1", PAIRS_IPV6),
        ):
            listener = stack.enter_context(socket.socket(family))
            listener.bind((host, 0))
            listener.listen(count)
            for _ in range(count):
                client = stack.enter_context(socket.socket(family))
                client.connect(listener.getsockname()[:2])
                server, _ = listener.accept()
                stack.enter_context(server)
                pairs.append((client, server))
        for _client, server in pairs[:HALF_CLOSED]:
            server.close()
        for client, server in pairs[HALF_CLOSED : HALF_CLOSED + CLOSED]:
            client.close()
            server.close()
        time.sleep(0.2)  # the FIN and ACK exchanges on loopback
        yield


def test_dump_matches_proc_tables() -> None:
    with loopback_connections():
        dumped, tables = settled_counts()

    assert dumped == tables
    assert dumped["listen"] >= 2
    assert dumped["established"] >= 2 * (PAIRS_IPV4 + PAIRS_IPV6 - HALF_CLOSED - CLOSED)
    assert dumped["fin_wait_2"] >= HALF_CLOSED
    assert dumped["close_wait"] >= HALF_CLOSED
    assert dumped["time_wait"] >= CLOSED


def test_scraper_counts_opened_connections() -> None:
    scraper = make_scraper("network", BY_STATE)
    with loopback_connections():
        reading = scraper.scrape()
    established = value(reading, "system.network.connection.count",
                        **{"network.connection.state": "established", "network.transport": "tcp"})
    assert established >= 2 * (PAIRS_IPV4 + PAIRS_IPV6 - HALF_CLOSED - CLOSED)


@contextlib.contextmanager
def deferred_handshakes(count: int) -> Iterator[None]:
    """Connect to a listener with TCP_DEFER_ACCEPT: the server ends stay in syn_received."""
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 30)
        listener.bind(("127.0.0.1", 0))
        listener.listen(count)
        for _ in range(count):
            client = stack.enter_context(socket.socket())
            client.connect(listener.getsockname())
        time.sleep(0.2)  # the handshakes on loopback
        yield


def test_default_total_equals_the_states_summed() -> None:
    """The sockstat total and the per-state dump count the same sockets but one kind.

    The kernel leaves the server side of a handshake in progress out of
    sockstat, so the total is the states summed without syn_received.
    """
    total_scraper = make_scraper("network")
    states_scraper = make_scraper("network", BY_STATE)
    with loopback_connections(), deferred_handshakes(DEFERRED):
        for _ in range(20):
            total = total_scraper.scrape()["system.network.connection.count"]
            states = states_scraper.scrape()["system.network.connection.count"]
            again = total_scraper.scrape()["system.network.connection.count"]
            if total == again:  # no socket of the host came or went in between
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the host's TCP sockets kept changing for 20 readings")

    by_state = {
        point.attributes["network.connection.state"]: point.value
        for point in states
        if point.attributes["network.transport"] == "tcp"
    }
    tcp_total = [point for point in total if point.attributes["network.transport"] == "tcp"]
    assert [point.attributes for point in tcp_total] == [{"network.transport": "tcp"}]
    assert by_state["syn_received"] >= DEFERRED
    assert tcp_total[0].value == sum(by_state.values()) - by_state["syn_received"]
    # Every socket the test left open or in TIME_WAIT is in the total.
    assert total[0].value >= 2 + 2 * (PAIRS_IPV4 + PAIRS_IPV6 - CLOSED) + CLOSED


def message(kind: int, payload: bytes) -> bytes:
    header = struct.pack("=IHHII", 16 + len(payload), kind, 0, 1, 0)
    return header + payload + bytes(-len(payload) % 4)


def test_error_message_raises_with_code() -> None:
    # A crafted buffer: the kernel replies with NLMSG_ERROR only on faults that a
    # test cannot cause on demand.
    counts = [0] * sock_diag.COUNTS_SIZE
    error = message(sock_diag.NLMSG_ERROR, struct.pack("=i", -errno.EPERM) + bytes(16))
    with pytest.raises(OSError) as caught:
        sock_diag.count_states(error, counts)
    assert caught.value.errno == errno.EPERM


def test_truncated_message_raises() -> None:
    counts = [0] * sock_diag.COUNTS_SIZE
    whole = message(20, bytes([socket.AF_INET, 1]) + bytes(70))
    with pytest.raises(OSError) as caught:
        sock_diag.count_states(whole[:40], counts)
    assert caught.value.errno == errno.EBADMSG


def test_done_message_ends_the_dump() -> None:
    counts = [0] * sock_diag.COUNTS_SIZE
    buffer = (
        message(20, bytes([socket.AF_INET6, 10]) + bytes(70))
        + message(20, bytes([socket.AF_INET, 12]) + bytes(70))
        + message(sock_diag.NLMSG_DONE, struct.pack("=i", 0))
    )
    assert sock_diag.count_states(buffer, counts) is True
    assert by_name(counts) == Counter({"listen": 1, "syn_received": 1})


def test_scraper_falls_back_to_proc_tables(monkeypatch) -> None:
    # A fake failure: this host allows netlink sockets, as most do, but some
    # sandboxes reject them with EAFNOSUPPORT or EPERM.
    def unavailable() -> list[int]:
        raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")

    monkeypatch.setattr(sock_diag, "tcp_state_counts", unavailable)
    scraper = make_scraper("network", BY_STATE)
    with structlog.testing.capture_logs() as logs, socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        first = scraper.scrape()
        scraper.scrape()

    listening = value(first, "system.network.connection.count",
                      **{"network.connection.state": "listen", "network.transport": "tcp"})
    assert listening >= 1
    warnings = [entry for entry in logs if entry["event"] == "sock_diag_unavailable"]
    assert len(warnings) == 1
    assert warnings[0]["fallback"] == "/proc/net/tcp"
