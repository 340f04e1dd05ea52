"""Network scraper: psutil counters per interface, TCP states from /proc/net/tcp and tcp6, and
the TCP and UDP totals from /proc/net/sockstat."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections import Counter, namedtuple
from collections.abc import Callable
from pathlib import Path

import pytest
from scraper_context import make_scraper, value

from otel_collector.scrapers import network
from otel_collector.scrapers.base import NameFilter

Counters = namedtuple(
    "Counters", "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout"
)


def test_directions_and_device_attribute() -> None:
    reading = network.interface_points({"eth0": Counters(10, 20, 1, 2, 3, 4, 5, 6)}, NameFilter())
    assert value(reading, "system.network.io", **{"network.io.direction": "transmit"}) == 10
    assert value(reading, "system.network.packet.count",
                 **{"system.device": "eth0", "network.io.direction": "receive"}) == 2
    assert value(reading, "system.network.errors", **{"network.io.direction": "receive"}) == 3
    assert value(reading, "system.network.packet.dropped",
                 **{"network.io.direction": "transmit"}) == 6


Link = namedtuple("Link", "isup speed")


def test_link_speed_in_bytes_per_second() -> None:
    links = {"eth0": Link(True, 10_000), "veth1": Link(False, 0)}

    reading = network.link_points(links, NameFilter())

    up = "system.network.linux.interface.up"
    assert value(reading, up, **{"network.interface.name": "eth0"}) == 1
    assert value(reading, up, **{"network.interface.name": "veth1"}) == 0
    # 10 Gbit/s, in bytes a second; veth1 reports no speed, so it has no point.
    assert reading["system.network.linux.interface.speed"] == [
        network.Point(1_250_000_000, {"network.interface.name": "eth0"})
    ]


def test_link_state_matches_sysfs() -> None:
    """Every interface of this host has a state that agrees with its sysfs files."""
    reading = make_scraper("network").scrape()

    interfaces = sorted(path.name for path in Path("/sys/class/net").iterdir())
    up = "system.network.linux.interface.up"
    assert sorted(p.attributes["network.interface.name"] for p in reading[up]) == interfaces
    for interface in interfaces:
        named = {"network.interface.name": interface}
        if Path(f"/sys/class/net/{interface}/operstate").read_text().strip() == "up":
            assert value(reading, up, **named) == 1
        # IFF_UP, bit 0 of flags, is off on an interface that is set down.
        if int(Path(f"/sys/class/net/{interface}/flags").read_text(), 16) & 0x1 == 0:
            assert value(reading, up, **named) == 0
        # Set up but without a carrier (docker0 with no container) is not operational.
        operstate = Path(f"/sys/class/net/{interface}/operstate").read_text().strip()
        if operstate in ("down", "lowerlayerdown", "dormant", "notpresent"):
            assert value(reading, up, **named) == 0


def test_interface_exclude() -> None:
    reading = network.interface_points(
        {"lo": Counters(*[1] * 8), "eth0": Counters(*[1] * 8)},
        NameFilter(exclude=(re.compile("lo"),)),
    )
    assert {p.attributes["network.interface.name"] for p in reading["system.network.io"]} == {"eth0"}


TCP_TABLE = b"""\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1077 1
   1: 0100007F:A1B2 0100007F:07E8 01 00000000:00000000 00:00000000 00000000  1000        0 2001 1
   2: 0100007F:A1B4 0100007F:07E8 0C 00000000:00000000 00:00000000 00000000  1000        0 2002 1
   3: 0100007F:A1B6 0100007F:07E8 0D 00000000:00000000 00:00000000 00000000  1000        0 2003 1
12345: 0100007F:A1B8 0100007F:07E8 06 00000000:00000000 00:00000000 00000000     0        0 0 1
"""


def test_tcp_states_counted_and_named() -> None:
    counts: Counter[str] = Counter()
    network.count_tcp_states(TCP_TABLE, counts)
    network.count_tcp_states(TCP_TABLE, counts)  # the tcp6 table adds to the same counts
    points = network.connection_points(counts)
    by_state = {p.attributes["network.connection.state"]: p.value for p in points}

    assert by_state["listen"] == 2
    assert by_state["established"] == 2
    assert by_state["syn_received"] == 2  # NEW_SYN_RECV (0C)
    assert by_state["time_wait"] == 2  # a wide slot number does not shift the columns
    assert sum(by_state.values()) == 8  # the unknown state 0D is skipped
    assert len(points) == 11  # every state of the conventions, zeros included


def _net_dev() -> dict[str, list[int]]:
    stats = {}
    with open("/proc/net/dev") as file:
        for line in file.readlines()[2:]:
            name, rest = line.split(":", 1)
            stats[name.strip()] = [int(f) for f in rest.split()]
    return stats


def test_network_against_proc_net_dev() -> None:
    before = _net_dev()
    reading = make_scraper("network").scrape()
    after = _net_dev()
    for interface in before:
        received = value(reading, "system.network.io", **{"network.interface.name": interface,
                                                         "network.io.direction": "receive"})
        assert before[interface][0] <= received <= after[interface][0]


def test_connection_count_sees_a_listener() -> None:
    """Independent reading: the count grows by the listeners and the connection the test opens."""
    scraper = make_scraper("network", {"HOST_AGENT_CONNECTION_STATES": "true"})

    def count(state: str) -> float:
        reading = scraper.scrape()
        return value(reading, "system.network.connection.count",
                     **{"network.connection.state": state, "network.transport": "tcp"})

    before = count("listen")
    with socket.socket() as listener, socket.socket(socket.AF_INET6) as listener6:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener6.bind(("::1", 0))
        listener6.listen()
        with socket.create_connection(listener.getsockname()):
            established = count("established")
            listening = count("listen")
    assert listening >= before + 2
    assert established >= 2  # both ends of the loopback connection


SOCKSTAT = b"""\
sockets: used 24
TCP: inuse 5 orphan 1 tw 19 alloc 7 mem 2
UDP: inuse 3 mem 0
"""


def test_tcp_total_adds_both_families_and_time_wait() -> None:
    assert network.tcp_total(SOCKSTAT, b"TCP6: inuse 4\nUDP6: inuse 1\n") == 5 + 19 + 4
    assert network.tcp_total(SOCKSTAT, None) == 5 + 19  # a kernel without IPv6


@pytest.mark.parametrize(
    "table", [b"UDP: inuse 3 mem 0\n", b"TCP: inuse 5 orphan 1\n", b"", b"TCP: inuse x tw 1\n"]
)
def test_tcp_total_rejects_a_table_without_the_counters(table: bytes) -> None:
    with pytest.raises(ValueError):
        network.tcp_total(table, None)


def test_tcp_total_error_names_the_file() -> None:
    with pytest.raises(ValueError, match="TCP6 'inuse' counter missing from /proc/net/sockstat6"):
        network.tcp_total(SOCKSTAT, b"UDP6: inuse 1\n")


def test_udp_total_adds_both_families() -> None:
    assert network.udp_total(SOCKSTAT, b"TCP6: inuse 4\nUDP6: inuse 2\n") == 3 + 2
    assert network.udp_total(SOCKSTAT, None) == 3  # a kernel without IPv6


def test_udp_total_error_names_the_file() -> None:
    with pytest.raises(ValueError, match="UDP 'inuse' counter missing from /proc/net/sockstat"):
        network.udp_total(b"TCP: inuse 5 orphan 1 tw 19\n", None)
    with pytest.raises(ValueError, match="UDP6 'inuse' counter missing from /proc/net/sockstat6"):
        network.udp_total(SOCKSTAT, b"TCP6: inuse 4\n")


def _totals_while_open(scraper: network.NetworkScraper,
                       open_sockets: Callable[[contextlib.ExitStack], None]) -> tuple[dict, dict]:
    """Return the totals by transport before and while `open_sockets` keeps its sockets open.

    The totals cover the whole network namespace, so a reading counts only
    when the totals before and after the sockets agree: no other socket of
    the host came or went meanwhile.
    """

    def totals() -> dict[str, float]:
        points = scraper.scrape()["system.network.connection.count"]
        assert [point.attributes for point in points] == [
            {"network.transport": "tcp"}, {"network.transport": "udp"}
        ]
        return {point.attributes["network.transport"]: point.value for point in points}

    for _ in range(20):
        before = totals()
        with contextlib.ExitStack() as stack:
            open_sockets(stack)
            during = totals()
        if totals() == before:
            return before, during
        time.sleep(0.05)
    raise AssertionError("the host's sockets kept changing for 20 readings")


LOOPBACKS = ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"))


def test_default_tcp_total_sees_listeners() -> None:
    def listen(stack: contextlib.ExitStack) -> None:
        for family, host in LOOPBACKS * 5:
            listener = stack.enter_context(socket.socket(family))
            listener.bind((host, 0))
            listener.listen()

    before, during = _totals_while_open(make_scraper("network"), listen)

    assert during["tcp"] == before["tcp"] + 10
    assert during["udp"] == before["udp"]


def test_default_udp_total_sees_bound_sockets() -> None:
    def bind(stack: contextlib.ExitStack) -> None:
        for family, host in LOOPBACKS * 4:
            udp = stack.enter_context(socket.socket(family, socket.SOCK_DGRAM))
            udp.bind((host, 0))
        # A socket that is never bound or connected has no port and is not in "inuse".
        stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    before, during = _totals_while_open(make_scraper("network"), bind)

    assert during["udp"] == before["udp"] + 8
    assert during["tcp"] == before["tcp"]


def test_states_mode_keeps_the_udp_total() -> None:
    reading = make_scraper("network", {"HOST_AGENT_CONNECTION_STATES": "true"}).scrape()
    points = reading["system.network.connection.count"]
    udp = [point for point in points if point.attributes["network.transport"] == "udp"]

    assert [point.attributes for point in udp] == [{"network.transport": "udp"}]
    assert len(points) == len(set(network.TCP_STATES.values())) + 1


CONNTRACK = Path("/proc/sys/net/netfilter")
# A host root made by a test has no /proc/net/sockstat for the connection count.
WITHOUT_SOCKSTAT = {
    "HOST_AGENT_METRICS_DISABLE": ",".join(
        ("system.network.connection.count", *network.SOCKET_METRICS)
    )
}


@pytest.mark.skipif(
    not (CONNTRACK / "nf_conntrack_count").exists(), reason="nf_conntrack is not loaded here"
)
def test_conntrack_matches_sysctl_files() -> None:
    """The points equal the kernel's files, read just before and after the scrape.

    Entries come and go with the host's traffic, so a reading counts only when
    the file read before and the one after agree.
    """
    scraper = make_scraper("network")
    limit = int((CONNTRACK / "nf_conntrack_max").read_text())
    for _ in range(20):
        before = int((CONNTRACK / "nf_conntrack_count").read_text())
        reading = scraper.scrape()
        after = int((CONNTRACK / "nf_conntrack_count").read_text())
        if before == after:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the conntrack table kept changing for 20 readings")

    assert value(reading, "system.network.conntrack.count") == before
    assert value(reading, "system.network.conntrack.max") == limit


def test_conntrack_absent_without_module(tmp_path: Path) -> None:
    # A host root whose /proc has no netfilter directory, as on a host where
    # nf_conntrack is not loaded: no points and no error.
    (tmp_path / "proc").mkdir()
    scraper = make_scraper("network", WITHOUT_SOCKSTAT, root=str(tmp_path))

    reading = scraper.scrape()

    assert network.read_conntrack(f"{tmp_path}/proc") is None
    assert "system.network.conntrack.count" not in reading
    assert "system.network.conntrack.max" not in reading
    assert scraper.context.errors.errors_by_scraper() == {}


def test_conntrack_unreadable_costs_only_its_points(tmp_path: Path) -> None:
    directory = tmp_path / "proc" / "sys" / "net" / "netfilter"
    directory.mkdir(parents=True)
    (directory / "nf_conntrack_count").write_text("not a number\n")
    (directory / "nf_conntrack_max").write_text("65536\n")
    scraper = make_scraper("network", WITHOUT_SOCKSTAT, root=str(tmp_path))

    reading = scraper.scrape()

    assert "system.network.conntrack.count" not in reading
    assert reading["system.network.io"], "interface counters still come from psutil"
    assert scraper.context.errors.errors_by_scraper() == {"network": 1}


def test_read_conntrack_parses_both_files(tmp_path: Path) -> None:
    directory = tmp_path / "sys" / "net" / "netfilter"
    directory.mkdir(parents=True)
    (directory / "nf_conntrack_count").write_text("42\n")
    (directory / "nf_conntrack_max").write_text("262144\n")

    assert network.read_conntrack(str(tmp_path)) == (42, 262144)


def test_sockets_match_sockstat() -> None:
    """Sockets open and close all the time, so a reading counts when the file agrees around it."""
    scraper = make_scraper("network")
    for _ in range(20):
        before = Path("/proc/net/sockstat").read_text()
        reading = scraper.scrape()
        if Path("/proc/net/sockstat").read_text() == before:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("sockstat kept changing for 20 readings")
    fields = {}
    for line in before.splitlines():
        label, _, rest = line.partition(":")
        words = rest.split()
        fields[label] = dict(zip(words[::2], map(int, words[1::2]), strict=True))
    page = os.sysconf("SC_PAGE_SIZE")

    assert value(reading, "system.network.linux.socket.count") == fields["sockets"]["used"]
    assert value(reading, "system.network.linux.tcp.orphans") == fields["TCP"]["orphan"]
    memory = "system.network.linux.socket.memory"
    assert value(reading, memory, **{"network.transport": "tcp"}) == fields["TCP"]["mem"] * page
    assert value(reading, memory, **{"network.transport": "udp"}) == fields["UDP"]["mem"] * page


def test_sockstat_in_a_host_root(tmp_path: Path) -> None:
    # A host root made by the test, to check values that this host's sockstat may not show.
    net = tmp_path / "proc" / "net"
    net.mkdir(parents=True)
    (net / "sockstat").write_bytes(
        b"sockets: used 25\nTCP: inuse 1 orphan 2 tw 0 alloc 1 mem 115\nUDP: inuse 0 mem 3\n"
    )
    scraper = make_scraper("network", root=str(tmp_path))

    reading = scraper.scrape()

    assert value(reading, "system.network.linux.tcp.orphans") == 2
    assert value(reading, "system.network.linux.socket.memory", **{"network.transport": "udp"}) == (
        3 * os.sysconf("SC_PAGE_SIZE")
    )
    assert value(reading, "system.network.linux.socket.count") == 25
    assert value(reading, "system.network.connection.count", **{"network.transport": "tcp"}) == 1
