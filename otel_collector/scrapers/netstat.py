"""Netstat scraper: TCP and UDP protocol counters, softnet and ARP.

The counters are the kernel's SNMP and extended MIBs: /proc/net/snmp and
/proc/net/netstat (pairs of lines, a header of names and a line of values per
protocol) and /proc/net/snmp6 (one "name value" per line). The TCP counters
cover IPv4 and IPv6 together. UDP has one set per IP version, and the
scraper adds them up, as it does with the queues of udp and udp6. Further
sources: the per-CPU packet backlog from /proc/net/softnet_stat, the UDP send
and receive queues of every socket from /proc/net/udp and udp6, and the ARP
table from /proc/net/arp. The socket counts and memory of /proc/net/sockstat
come from the network scraper, which reads that file for its connection
totals.

The conventions have no names for these, so the metrics are
system.network.linux.*. The protocol counters, the UDP queues and the ARP
table belong to the network namespace of the reader, so they are the host's
only when the agent runs in the host's network namespace. softnet_stat is
the whole host's. A kernel without IPv6 has no snmp6 and udp6, and the UDP
metrics then count IPv4 alone.

NOTE: softnet_stat prints each CPU's counters in 32 bits and lists online
CPUs only, so a sum can fall when a column wraps or a CPU goes offline, which
a backend reads as a counter reset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from otel_collector.scrapers.base import Point, Reading, Scraper, read_proc_file

Mib = dict[str, dict[str, int]]

# MIB counters read once per cycle: (protocol, counter) to a metric and its attributes.
TCP_COUNTERS: Final[Mapping[tuple[str, str], tuple[str, Mapping[str, str]]]] = {
    ("Tcp", "InSegs"): ("system.network.linux.tcp.segments", {"network.io.direction": "receive"}),
    ("Tcp", "OutSegs"): (
        "system.network.linux.tcp.segments", {"network.io.direction": "transmit"}
    ),
    ("Tcp", "RetransSegs"): ("system.network.linux.tcp.retransmits", {}),
    ("Tcp", "InErrs"): ("system.network.linux.tcp.errors", {}),
    ("Tcp", "OutRsts"): ("system.network.linux.tcp.resets", {}),
    ("Tcp", "ActiveOpens"): (
        "system.network.linux.tcp.opens", {"system.network.linux.tcp.open_type": "active"}
    ),
    ("Tcp", "PassiveOpens"): (
        "system.network.linux.tcp.opens", {"system.network.linux.tcp.open_type": "passive"}
    ),
    ("TcpExt", "ListenOverflows"): ("system.network.linux.tcp.listen.overflows", {}),
    ("TcpExt", "ListenDrops"): ("system.network.linux.tcp.listen.drops", {}),
}
MIB_METRICS: Final = frozenset(name for name, _ in TCP_COUNTERS.values())
UDP_METRICS: Final = ("system.network.linux.udp.datagrams", "system.network.linux.udp.errors")
SOFTNET_METRICS: Final = (
    "system.network.linux.softnet.dropped",
    "system.network.linux.softnet.time_squeeze",
)
UDP_QUEUE_METRIC: Final = "system.network.linux.udp.queue.usage"
ARP_METRIC: Final = "system.network.linux.arp.count"


def parse_mib_table(text: bytes, path: str, protocols: Iterable[str]) -> Mib:
    """Parse the counters of `protocols` in /proc/net/snmp or /proc/net/netstat.

    Each protocol has a line of names and then a line of values, both starting
    with "Protocol:". A protocol that the file lacks is left out. Raises
    ValueError, naming `path`, when the two lines of a protocol differ.
    """
    tables: Mib = {}
    lines = text.split(b"\n")
    by_label = {f"{protocol}:".encode(): protocol for protocol in protocols}
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        names = header.split()
        protocol = by_label.get(names[0]) if names else None
        if protocol is None:
            continue
        numbers = values.split()
        if numbers[:1] != names[:1] or len(numbers) != len(names):
            raise ValueError(
                f"invalid {path}: the {protocol} lines differ ({len(names) - 1} names, "
                f"{len(numbers) - 1} values)"
            )
        tables[protocol] = {
            name.decode(): int(number) for name, number in zip(names[1:], numbers[1:], strict=True)
        }
    return tables


def parse_snmp6(text: bytes, prefix: str) -> dict[str, int]:
    """Return the counters of /proc/net/snmp6 ("Name value" lines) that start with `prefix`.

    The names are returned without the prefix, so that Udp6InDatagrams becomes
    InDatagrams, as in /proc/net/snmp.
    """
    counters: dict[str, int] = {}
    start = prefix.encode()
    for line in text.split(b"\n"):
        if line.startswith(start):
            name, number = line.split()
            counters[name[len(start):].decode()] = int(number)
    return counters


def tcp_points(mib: Mib) -> Reading:
    """Shape the TCP counters of /proc/net/snmp and /proc/net/netstat into points.

    A counter that the kernel does not have is left out with its point.
    """
    reading: Reading = {}
    for (protocol, counter), (metric, attributes) in TCP_COUNTERS.items():
        found = mib.get(protocol, {}).get(counter)
        if found is not None:
            reading.setdefault(metric, []).append(Point(found, attributes))
    return reading


def udp_points(versions: Sequence[Mapping[str, int]], receive_other_floor: int = 0) -> Reading:
    """Shape the UDP counters of each IP version, named as in /proc/net/snmp, into points.

    The versions are added up. The errors split into disjoint types, so that
    their sum is every error: InErrors counts the receive buffer errors and
    also checksum and memory errors, which go under receive_other. That
    difference never falls below `receive_other_floor`, the value sent before:
    the kernel raises RcvbufErrors before InErrors, and the file shows
    InErrors first, so a reading during drops can see it fall by a few.
    """
    total: Counter[str] = Counter()
    for udp in versions:
        total.update(udp)
    datagrams = [
        Point(total["InDatagrams"], {"network.io.direction": "receive"}),
        Point(total["OutDatagrams"], {"network.io.direction": "transmit"}),
    ]
    by_type = {
        "no_port": total["NoPorts"],
        "receive_buffer": total["RcvbufErrors"],
        "receive_other": max(receive_other_floor, total["InErrors"] - total["RcvbufErrors"]),
        "send_buffer": total["SndbufErrors"],
    }
    errors = [Point(count, {"error.type": error_type}) for error_type, count in by_type.items()]
    return {UDP_METRICS[0]: datagrams, UDP_METRICS[1]: errors}


def parse_softnet(text: bytes) -> tuple[int, int]:
    """Return the packets dropped and the time squeezes of every CPU together.

    Each line of /proc/net/softnet_stat is one CPU, in hexadecimal columns:
    packets processed, dropped, time squeezes, and others.
    """
    dropped = squeezed = 0
    for line in text.split(b"\n"):
        columns = line.split()
        if len(columns) >= 3:
            dropped += int(columns[1], 16)
            squeezed += int(columns[2], 16)
    return dropped, squeezed


def udp_queue_bytes(table: bytes) -> tuple[int, int]:
    """Return the bytes in the send and the receive queues of a /proc/net/udp table.

    The fifth column is "tx_queue:rx_queue", two hexadecimal numbers.
    """
    transmit = receive = 0
    for line in table.split(b"\n")[1:]:
        fields = line.split(None, 5)
        if len(fields) > 4:
            tx_queue, _, rx_queue = fields[4].partition(b":")
            transmit += int(tx_queue, 16)
            receive += int(rx_queue, 16)
    return transmit, receive


def arp_entries(table: bytes) -> Counter[str]:
    """Count the entries of /proc/net/arp by interface, the last column."""
    counts: Counter[str] = Counter()
    for line in table.split(b"\n")[1:]:
        fields = line.split()
        if len(fields) == 6:
            counts[fields[5].decode()] += 1
    return counts


class NetstatScraper(Scraper):
    name = "netstat"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receive_other = 0

    def _read(self, table: str) -> bytes:
        return read_proc_file(f"{self.host.procfs}/net/{table}")

    def _optional(self, table: str) -> bytes | None:
        """Read an IPv6 table of /proc/net, or return None on a kernel without IPv6."""
        try:
            return self._read(table)
        except FileNotFoundError:
            return None

    def _mib(self, table: str, protocols: tuple[str, ...]) -> Mib:
        return parse_mib_table(self._read(table), f"/proc/net/{table}", protocols)

    def _udp(self, mib: Mib) -> Reading:
        # Without the IPv4 counters (snmp failed) the sums would fall for a cycle.
        if "Udp" not in mib:
            return {}
        versions = [mib["Udp"]]
        snmp6 = self._optional("snmp6")
        if snmp6 is not None:
            versions.append(parse_snmp6(snmp6, "Udp6"))
        reading = udp_points(versions, self._receive_other)
        for point in reading[UDP_METRICS[1]]:
            if point.attributes["error.type"] == "receive_other":
                self._receive_other = int(point.value)
        return reading

    def _udp_queues(self) -> list[Point]:
        transmit = receive = 0
        for table in ("udp", "udp6"):
            text = self._read(table) if table == "udp" else self._optional(table)
            if text is not None:
                queued = udp_queue_bytes(text)
                transmit += queued[0]
                receive += queued[1]
        return [
            Point(transmit, {"network.io.direction": "transmit"}),
            Point(receive, {"network.io.direction": "receive"}),
        ]

    def _softnet(self) -> Reading:
        counts = parse_softnet(self._read("softnet_stat"))
        return {
            metric: [Point(count)] for metric, count in zip(SOFTNET_METRICS, counts, strict=True)
        }

    def _arp(self) -> Reading:
        entries = arp_entries(self._read("arp"))
        return {
            ARP_METRIC: [
                Point(count, {"network.interface.name": interface})
                for interface, count in sorted(entries.items())
            ]
        }

    def scrape(self) -> Reading:
        reading: Reading = {}
        mib: Mib = {}
        if self.wants_any(MIB_METRICS) or self.wants_any(UDP_METRICS):
            # Two sources, so that a fault in one costs only its own counters.
            for table, protocols in (("snmp", ("Tcp", "Udp")), ("netstat", ("TcpExt",))):
                mib.update(self.read(table, self._mib, table, protocols) or {})
            reading.update(tcp_points(mib))
        sources = (
            (UDP_METRICS, "udp_counters", lambda: self._udp(mib)),
            (SOFTNET_METRICS, "softnet_stat", self._softnet),
            ((UDP_QUEUE_METRIC,), "udp_queues", lambda: {UDP_QUEUE_METRIC: self._udp_queues()}),
            ((ARP_METRIC,), "arp", self._arp),
        )
        for metrics, source, function in sources:
            if self.wants_any(metrics):
                part = self.read(source, function)
                if part is not None:
                    reading.update(part)
        return reading
