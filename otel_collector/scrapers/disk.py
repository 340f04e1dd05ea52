"""Disk scraper: bytes, operations, merges and busy time per block device (psutil)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psutil

from otel_collector.scrapers.base import NameFilter, Point, Reading, Scraper


def disk_points(counters: Mapping[str, Any], admit: NameFilter) -> Reading:
    """Shape psutil's per-disk counters; psutil reports times in milliseconds."""
    reading: Reading = {
        "system.disk.io": [],
        "system.disk.operations": [],
        "system.disk.merged": [],
        "system.disk.io_time": [],
        "system.disk.operation_time": [],
    }
    for device, c in counters.items():
        if not admit.admits(device):
            continue
        read = {"system.device": device, "disk.io.direction": "read"}
        write = {"system.device": device, "disk.io.direction": "write"}
        reading["system.disk.io"] += [Point(c.read_bytes, read), Point(c.write_bytes, write)]
        reading["system.disk.operations"] += [
            Point(c.read_count, read), Point(c.write_count, write),
        ]
        reading["system.disk.merged"] += [
            Point(c.read_merged_count, read), Point(c.write_merged_count, write),
        ]
        reading["system.disk.io_time"].append(Point(c.busy_time / 1e3, {"system.device": device}))
        reading["system.disk.operation_time"] += [
            Point(c.read_time / 1e3, read), Point(c.write_time / 1e3, write),
        ]
    return reading


class DiskScraper(Scraper):
    name = "disk"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._filter = NameFilter(
            self.config.disk_devices_include, self.config.disk_devices_exclude
        )

    def scrape(self) -> Reading:
        # nowrap keeps the counters monotonic when the kernel's 32-bit fields wrap.
        counters = self.read(
            "disk_io_counters", psutil.disk_io_counters, perdisk=True, nowrap=True
        )
        return disk_points(counters, self._filter) if counters else {}
