"""Netstat scraper: parsing, this host's counters moved by loopback traffic, and broken files."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from scraper_context import make_scraper, value, values

from otel_collector.scrapers import netstat

NET = Path("/proc/net")
SNMP = (
    b"Tcp: RtoAlgorithm ActiveOpens PassiveOpens InSegs OutSegs RetransSegs InErrs OutRsts\n"
    b"Tcp: 1 61 44 9694 7630 3 1 16\n"
    b"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\n"
    b"Udp: 35 2 7 36 5 1 2\n"
)
NETSTAT = (
    b"TcpExt: SyncookiesSent ListenOverflows ListenDrops\n"
    b"TcpExt: 0 4 6\n"
    b"IpExt: InNoRoutes InOctets\n"
    b"IpExt: 0 100\n"
)


def mib(path: Path, protocol: str) -> dict[str, int]:
    """Read one protocol of a /proc/net MIB file, parsed apart from the scraper's parser."""
    lines = [line.split() for line in path.read_text().splitlines()]
    header, numbers = [pair for pair in lines if pair[0] == f"{protocol}:"]
    return dict(zip(header[1:], map(int, numbers[1:]), strict=True))


def test_parse_mib_table_keeps_the_requested_protocols() -> None:
    tables = netstat.parse_mib_table(NETSTAT, "/proc/net/netstat", ("TcpExt", "Missing"))

    assert tables == {"TcpExt": {"SyncookiesSent": 0, "ListenOverflows": 4, "ListenDrops": 6}}


def test_parse_mib_table_rejects_uneven_lines() -> None:
    text = b"Tcp: ActiveOpens PassiveOpens\nTcp: 1\n"

    with pytest.raises(ValueError, match="/proc/net/snmp"):
        netstat.parse_mib_table(text, "/proc/net/snmp", ("Tcp",))


def test_tcp_points_from_both_files() -> None:
    tables = netstat.parse_mib_table(SNMP, "snmp", ("Tcp", "Udp"))
    tables |= netstat.parse_mib_table(NETSTAT, "netstat", ("TcpExt",))

    reading = netstat.tcp_points(tables)

    segments = "system.network.linux.tcp.segments"
    assert value(reading, segments, **{"network.io.direction": "receive"}) == 9694
    assert value(reading, segments, **{"network.io.direction": "transmit"}) == 7630
    assert value(reading, "system.network.linux.tcp.retransmits") == 3
    assert value(reading, "system.network.linux.tcp.errors") == 1
    assert value(reading, "system.network.linux.tcp.resets") == 16
    opens = "system.network.linux.tcp.opens"
    assert value(reading, opens, **{"system.network.linux.tcp.open_type": "active"}) == 61
    assert value(reading, opens, **{"system.network.linux.tcp.open_type": "passive"}) == 44
    assert value(reading, "system.network.linux.tcp.listen.overflows") == 4
    assert value(reading, "system.network.linux.tcp.listen.drops") == 6


def test_receive_other_floor() -> None:
    udp = netstat.parse_mib_table(SNMP, "snmp", ("Udp",))["Udp"]

    reading = netstat.udp_points([udp], receive_other_floor=5)

    assert value(reading, "system.network.linux.udp.errors", **{"error.type": "receive_other"}) == 5


def test_udp_errors_are_disjoint_and_versions_added() -> None:
    udp = netstat.parse_mib_table(SNMP, "snmp", ("Udp",))["Udp"]
    udp6 = netstat.parse_snmp6(b"Udp6InDatagrams 4\nUdp6OutDatagrams 5\nUdp6NoPorts 1\n", "Udp6")

    reading = netstat.udp_points([udp, udp6])

    errors = {
        point.attributes["error.type"]: point.value
        for point in reading["system.network.linux.udp.errors"]
    }
    assert errors == {"no_port": 3, "receive_buffer": 5, "receive_other": 2, "send_buffer": 1}
    # InErrors (7), NoPorts of both versions (3) and SndbufErrors (1), each counted once.
    assert sum(errors.values()) == 7 + 3 + 1
    datagrams = "system.network.linux.udp.datagrams"
    assert value(reading, datagrams, **{"network.io.direction": "receive"}) == 35 + 4
    assert value(reading, datagrams, **{"network.io.direction": "transmit"}) == 36 + 5


def test_parse_snmp6_strips_the_prefix() -> None:
    text = b"Ip6InReceives  \t5\nUdp6InDatagrams                 \t12\nUdp6NoPorts\t3\n"

    assert netstat.parse_snmp6(text, "Udp6") == {"InDatagrams": 12, "NoPorts": 3}


def test_softnet_sums_every_cpu() -> None:
    text = b"00000932 00000001 00000002 00000000\n00001cd2 00000010 00000000 00000000\n"

    assert netstat.parse_softnet(text) == (0x11, 2)


def test_udp_queue_bytes_reads_hex_columns() -> None:
    table = (
        b"   sl  local_address rem_address   st tx_queue rx_queue tr tm->when\n"
        b"  1: 0100007F:0035 00000000:0000 07 00000000:00000300 00:00000000\n"
        b"  2: 0100007F:1F90 00000000:0000 07 00000010:00000000 00:00000000\n"
    )

    assert netstat.udp_queue_bytes(table) == (0x10, 0x300)


def test_arp_entries_by_interface() -> None:
    table = (
        b"IP address       HW type     Flags       HW address            Mask     Device\n"
        b"192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0\n"
        b"192.0.2.7        0x1         0x2         02:fc:00:00:00:07     *        eth0\n"
        b"198.51.100.1     0x1         0x2         02:fc:00:00:00:09     *        eth1\n"
    )

    assert netstat.arp_entries(table) == {"eth0": 2, "eth1": 1}


def test_tcp_counters_moved_by_a_connection() -> None:
    """Counters only grow: each point lies between the files read before and after it."""
    scraper = make_scraper("netstat")
    before = mib(NET / "snmp", "Tcp")
    first = scraper.scrape()
    after = mib(NET / "snmp", "Tcp")
    opens = "system.network.linux.tcp.opens"
    active = value(first, opens, **{"system.network.linux.tcp.open_type": "active"})
    assert before["ActiveOpens"] <= active <= after["ActiveOpens"]
    received = value(first, "system.network.linux.tcp.segments", **{"network.io.direction": "receive"})
    assert before["InSegs"] <= received <= after["InSegs"]
    retransmits = value(first, "system.network.linux.tcp.retransmits")
    assert before["RetransSegs"] <= retransmits <= after["RetransSegs"]

    # One loopback connection: one active and one passive open, and segments both ways.
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        client.close()
        accepted.close()
    second = scraper.scrape()

    assert value(second, opens, **{"system.network.linux.tcp.open_type": "active"}) >= active + 1
    passive = {"system.network.linux.tcp.open_type": "passive"}
    assert value(second, opens, **passive) >= value(first, opens, **passive) + 1
    assert value(
        second, "system.network.linux.tcp.segments", **{"network.io.direction": "receive"}
    ) >= received + 3


def test_udp_closed_port_counts_no_port() -> None:
    """A datagram to a loopback port without a socket raises NoPorts by one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    scraper = make_scraper("netstat")
    no_port = {"error.type": "no_port"}
    start = value(scraper.scrape(), "system.network.linux.udp.errors", **no_port)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"x", ("127.0.0.1", closed_port))
    deadline = time.monotonic() + 3
    while True:
        current = value(scraper.scrape(), "system.network.linux.udp.errors", **no_port)
        if current > start or time.monotonic() > deadline:
            break
        time.sleep(0.01)

    assert current >= start + 1


def test_unread_datagram_waits_in_the_receive_queue() -> None:
    """A datagram that is never read stays in the socket's receive queue until it is read."""
    receive = {"network.io.direction": "receive"}
    scraper = make_scraper("netstat")
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        sender.sendto(os.urandom(1000), receiver.getsockname())
        time.sleep(0.05)
        queued = value(scraper.scrape(), "system.network.linux.udp.queue.usage", **receive)
        # The queue counts the buffer's memory, which is more than the payload.
        assert queued >= 1000
        receiver.recv(2000)


def softnet_sums() -> tuple[int, int]:
    """Add up the dropped and time squeeze columns of softnet_stat, apart from the scraper."""
    rows = [line.split() for line in (NET / "softnet_stat").read_text().splitlines()]
    return sum(int(row[1], 16) for row in rows), sum(int(row[2], 16) for row in rows)


def test_softnet_between_two_readings_of_the_file() -> None:
    scraper = make_scraper("netstat")
    dropped_before, squeezed_before = softnet_sums()
    reading = scraper.scrape()
    dropped_after, squeezed_after = softnet_sums()

    dropped = value(reading, "system.network.linux.softnet.dropped")
    assert dropped_before <= dropped <= dropped_after
    squeezed = value(reading, "system.network.linux.softnet.time_squeeze")
    assert squeezed_before <= squeezed <= squeezed_after


def test_full_receive_buffer_counts_receive_buffer_errors() -> None:
    """Datagrams to a socket with the smallest receive buffer are dropped as RcvbufErrors."""
    errors = "system.network.linux.udp.errors"
    receive_buffer = {"error.type": "receive_buffer"}
    scraper = make_scraper("netstat")
    before = value(scraper.scrape(), errors, **receive_buffer)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        receiver.bind(("127.0.0.1", 0))
        for _ in range(100):
            sender.sendto(b"x" * 1000, receiver.getsockname())
        time.sleep(0.1)
        after = value(scraper.scrape(), errors, **receive_buffer)

    # The kernel's minimum buffer has room for a datagram or two, so the rest are dropped.
    assert after >= before + 90


def test_receive_other_never_falls(tmp_path: Path) -> None:
    # A host root made by the test, to replay a reading taken between the kernel's
    # two increments (RcvbufErrors raised, InErrors not yet), which a test cannot time.
    net = write_host_root(tmp_path, NETSTAT)
    scraper = make_scraper("netstat", root=str(tmp_path))
    other = {"error.type": "receive_other"}
    first = value(scraper.scrape(), "system.network.linux.udp.errors", **other)
    (net / "snmp").write_bytes(SNMP.replace(b"Udp: 35 2 7 36 5 1 2", b"Udp: 35 2 7 36 6 1 2"))

    second = value(scraper.scrape(), "system.network.linux.udp.errors", **other)

    assert first == 2
    assert second == 2


def test_arp_count_matches_the_host_table() -> None:
    expected: dict[str, int] = {}
    for line in (NET / "arp").read_text().splitlines()[1:]:
        device = line.split()[-1]
        expected[device] = expected.get(device, 0) + 1

    reading = make_scraper("netstat").scrape()

    counted = {
        point.attributes["network.interface.name"]: point.value
        for point in reading.get("system.network.linux.arp.count", [])
    }
    assert counted == expected


def write_host_root(root: Path, netstat_text: bytes) -> Path:
    """Write a /proc/net with IPv4 files only, as on a kernel without IPv6."""
    net = root / "proc" / "net"
    net.mkdir(parents=True)
    (net / "snmp").write_bytes(SNMP)
    (net / "netstat").write_bytes(netstat_text)
    (net / "softnet_stat").write_bytes(b"00000010 00000001 00000002\n")
    (net / "udp").write_bytes(b"   sl  local_address rem_address   st tx_queue rx_queue\n")
    (net / "arp").write_bytes(b"IP address       HW type     Flags       HW address  Mask  Device\n")
    return net


def test_kernel_without_ipv6_counts_ipv4(tmp_path: Path) -> None:
    # A host root made by the test: this host has IPv6, so its absence is simulated.
    write_host_root(tmp_path, NETSTAT)
    scraper = make_scraper("netstat", root=str(tmp_path))

    reading = scraper.scrape()

    assert values(reading, "system.network.linux.udp.datagrams") == [35, 36]
    assert values(reading, "system.network.linux.udp.queue.usage") == [0, 0]
    assert scraper.context.errors.errors_by_scraper() == {}


def test_broken_netstat_costs_only_its_counters(tmp_path: Path) -> None:
    # A host root made by the test, with a file the kernel would not write.
    write_host_root(tmp_path, b"TcpExt: ListenOverflows ListenDrops\nTcpExt: 1\n")
    scraper = make_scraper("netstat", root=str(tmp_path))

    reading = scraper.scrape()

    assert "system.network.linux.tcp.listen.overflows" not in reading
    assert value(reading, "system.network.linux.tcp.resets") == 16
    assert values(reading, "system.network.linux.udp.datagrams") == [35, 36]
    assert value(reading, "system.network.linux.softnet.dropped") == 1
    assert scraper.context.errors.errors_by_scraper() == {"netstat": 1}
