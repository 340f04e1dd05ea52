"""Disk scraper: bytes, operations, merges and busy time per block device (psutil), and capacity.

The capacity comes from /sys/class/block/DEVICE/size, which the kernel
writes in 512-byte sectors whatever the device's own sector size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psutil

from otel_collector.scrapers.base import NameFilter, Point, Reading, Scraper, read_small_file

SECTOR_BYTES = 512


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

    def capacity_points(self, devices: list[str]) -> list[Point]:
        """Build one system.disk.limit point per device whose size sysfs gives."""
        points = []
        for device in devices:
            # sysfs writes the "/" of names such as cciss/c0d0 as "!".
            sysfs_name = device.replace("/", "!")
            path = self.host.path(f"/sys/class/block/{sysfs_name}/size")
            try:
                sectors = int(read_small_file(path))
            except (OSError, ValueError) as error:
                self.partial_failure(
                    f"size:{device}", "disk_size_unreadable", device=device, path=path,
                    error=f"{type(error).__name__}: {error}",
                )
                continue
            self.recovered(f"size:{device}")
            points.append(Point(sectors * SECTOR_BYTES, {"system.device": device}))
        return points

    def scrape(self) -> Reading:
        # nowrap keeps the counters monotonic when the kernel's 32-bit fields wrap.
        counters = self.read(
            "disk_io_counters", psutil.disk_io_counters, perdisk=True, nowrap=True
        )
        if not counters:
            return {}
        reading = disk_points(counters, self._filter)
        if self.wants("system.disk.limit"):
            devices = [device for device in counters if self._filter.admits(device)]
            reading["system.disk.limit"] = self.capacity_points(devices)
        return reading
