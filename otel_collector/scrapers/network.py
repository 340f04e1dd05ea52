"""Network scraper: traffic, packets, errors and drops per interface; TCP connections (psutil)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
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


def connection_points(statuses: Iterable[str]) -> list[Point]:
    """Count TCP connections by state; psutil writes states such as "ESTABLISHED", "SYN_RECV"."""
    renamed = {"syn_recv": "syn_received", "close": "closed", "fin_wait1": "fin_wait_1",
               "fin_wait2": "fin_wait_2"}
    counts = Counter(renamed.get(s.lower(), s.lower()) for s in statuses if s != psutil.CONN_NONE)
    return [
        Point(count, {"network.transport": "tcp", "network.connection.state": state})
        for state, count in sorted(counts.items())
    ]


class NetworkScraper(Scraper):
    name = "network"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._filter = NameFilter(
            self.config.net_interfaces_include, self.config.net_interfaces_exclude
        )

    def scrape(self) -> Reading:
        reading: Reading = {}
        counters = self.read("net_io_counters", psutil.net_io_counters, pernic=True, nowrap=True)
        if counters:
            reading.update(interface_points(counters, self._filter))
        if self.wants("system.network.connection.count"):
            connections = self.read("net_connections", psutil.net_connections, kind="tcp")
            if connections is not None:
                reading["system.network.connection.count"] = connection_points(
                    c.status for c in connections
                )
        return reading
