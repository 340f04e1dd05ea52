"""Network scraper: traffic, packets, errors and drops per interface; TCP connections.

Interface counters come from psutil. TCP connections are counted by state
from /proc/net/tcp and /proc/net/tcp6, reading only the state column.
psutil.net_connections reads the same tables and also lists /proc/PID/fd of
every process to find each socket's owner, which the counts do not need:
8.0 ms against 3.4 ms per cycle here, most of both in the kernel.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

import psutil

from otel_collector.scrapers.base import NameFilter, Point, Reading, Scraper


def interface_points(counters: Mapping[str, Any], admit: NameFilter) -> Reading:
    reading: Reading = {
        "system.network.io": [],
        "system.network.packet.count": [],
        "system.network.errors": [],
        "system.network.packet.dropped": [],
    }
    for interface, c in counters.items():
        if not admit.admits(interface):
            continue
        for direction, sent_or_received in (("transmit", "sent"), ("receive", "recv")):
            named = {"network.interface.name": interface, "network.io.direction": direction}
            # The conventions name the device attribute system.device on packet.count.
            device = {"system.device": interface, "network.io.direction": direction}
            suffix = "out" if direction == "transmit" else "in"
            reading["system.network.io"].append(
                Point(getattr(c, f"bytes_{sent_or_received}"), named)
            )
            reading["system.network.packet.count"].append(
                Point(getattr(c, f"packets_{sent_or_received}"), device)
            )
            reading["system.network.errors"].append(Point(getattr(c, f"err{suffix}"), named))
            reading["system.network.packet.dropped"].append(
                Point(getattr(c, f"drop{suffix}"), named)
            )
    return reading


_TABLE_READ_BYTES = 1 << 20
_PAGE_BYTES = 4096

# Kernel TCP states (include/net/tcp_states.h), as /proc/net/tcp writes them
# in hex, mapped to network.connection.state. NEW_SYN_RECV is a request
# socket for a handshake in progress, so it counts as syn_received.
TCP_STATES: Mapping[bytes, str] = {
    b"01": "established",
    b"02": "syn_sent",
    b"03": "syn_received",
    b"04": "fin_wait_1",
    b"05": "fin_wait_2",
    b"06": "time_wait",
    b"07": "closed",
    b"08": "close_wait",
    b"09": "last_ack",
    b"0A": "listen",
    b"0B": "closing",
    b"0C": "syn_received",
}


def count_tcp_states(table: bytes, counts: Counter[str]) -> None:
    """Add the sockets of one /proc/net/tcp or tcp6 table to ``counts`` by state.

    Each line after the header is "sl: local remote st ...", so the state is
    the fourth field; states this agent does not know are skipped.
    """
    for line in table.split(b"\n")[1:]:
        fields = line.split(None, 4)
        if len(fields) > 3:
            state = TCP_STATES.get(fields[3])
            if state is not None:
                counts[state] += 1


def read_proc_table(path: str) -> bytes:
    """Read a /proc/net table, stopping at a short read instead of reading to an empty one.

    Each read call makes the kernel walk its TCP hash table, so the extra
    empty read that file.read() makes to find the end doubled the cost:
    3.4 ms against 1.7 ms for /proc/net/tcp here. The kernel fills a read
    with whole lines (about 150 bytes each), so a read that comes back more
    than a page short of the buffer has reached the end.
    """
    chunks = []
    descriptor = os.open(path, os.O_RDONLY)
    try:
        while True:
            chunk = os.read(descriptor, _TABLE_READ_BYTES)
            chunks.append(chunk)
            if len(chunk) < _TABLE_READ_BYTES - _PAGE_BYTES:
                return b"".join(chunks)
    finally:
        os.close(descriptor)


def connection_points(counts: Mapping[str, int]) -> list[Point]:
    """Build one point per TCP state, zero included, so that no series comes and goes."""
    return [
        Point(counts.get(state, 0), {"network.transport": "tcp", "network.connection.state": state})
        for state in sorted(set(TCP_STATES.values()))
    ]


class NetworkScraper(Scraper):
    name = "network"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._filter = NameFilter(
            self.config.net_interfaces_include, self.config.net_interfaces_exclude
        )

    def _tcp_states(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for table in ("tcp", "tcp6"):
            try:
                count_tcp_states(read_proc_table(f"{self.host.procfs}/net/{table}"), counts)
            except FileNotFoundError:
                if table == "tcp":
                    raise
                # A kernel without IPv6 has no tcp6 table.
        return counts

    def scrape(self) -> Reading:
        reading: Reading = {}
        counters = self.read("net_io_counters", psutil.net_io_counters, pernic=True, nowrap=True)
        if counters:
            reading.update(interface_points(counters, self._filter))
        if self.wants("system.network.connection.count"):
            counts = self.read("proc_net_tcp", self._tcp_states)
            if counts is not None:
                reading["system.network.connection.count"] = connection_points(counts)
        return reading
