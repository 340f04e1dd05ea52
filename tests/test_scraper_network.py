"""Network scraper: shaping of psutil counters, and the real scraper against /proc/net/dev."""

from __future__ import annotations

import re
import socket
from collections import namedtuple

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


def test_interface_exclude() -> None:
    reading = network.interface_points(
        {"lo": Counters(*[1] * 8), "eth0": Counters(*[1] * 8)},
        NameFilter(exclude=(re.compile("lo"),)),
    )
    assert {p.attributes["network.interface.name"] for p in reading["system.network.io"]} == {"eth0"}


def test_connection_states_renamed() -> None:
    points = network.connection_points(["ESTABLISHED", "SYN_RECV", "LISTEN", "LISTEN", "NONE"])
    counts = {p.attributes["network.connection.state"]: p.value for p in points}
    assert counts == {"established": 1, "syn_received": 1, "listen": 2}


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
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        reading = make_scraper(
            "network", {"HOST_AGENT_METRICS_ENABLE": "system.network.connection.count"}
        ).scrape()
    assert value(reading, "system.network.connection.count",
                 **{"network.connection.state": "listen"}) >= 1
