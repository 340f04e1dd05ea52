"""Memory scraper: usage by state, utilization, limit, available, shared and slab.

It parses /proc/meminfo itself, once per cycle: psutil.virtual_memory()
folds SReclaimable into "cached" and does not expose SUnreclaim, both of
which the conventions need apart.
"""

from __future__ import annotations

from collections.abc import Mapping

from otel_collector.scrapers.base import Point, Reading, Scraper


def parse_meminfo(text: str) -> dict[str, int]:
    """Parse /proc/meminfo into bytes by field name (the kernel writes kB, meaning KiB)."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        multiplier = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
        fields[name] = int(parts[0]) * multiplier
    return fields


def memory_points(meminfo: Mapping[str, int]) -> Reading:
    """Shape meminfo fields into the memory metrics.

    "used" is MemTotal - MemAvailable, as the conventions define it since
    v1.37; "cached" is the page cache alone (Cached).
    """
    total = meminfo["MemTotal"]
    available = meminfo.get("MemAvailable", meminfo["MemFree"])
    states = {
        "used": total - available,
        "free": meminfo["MemFree"],
        "buffers": meminfo.get("Buffers", 0),
        "cached": meminfo.get("Cached", 0),
    }
    reading: Reading = {
        "system.memory.usage": [
            Point(value, {"system.memory.state": state}) for state, value in states.items()
        ],
        "system.memory.limit": [Point(total)],
        "system.memory.linux.available": [Point(available)],
    }
    if "Shmem" in meminfo:
        reading["system.memory.linux.shared"] = [Point(meminfo["Shmem"])]
    if total > 0:
        reading["system.memory.utilization"] = [
            Point(value / total, {"system.memory.state": state}) for state, value in states.items()
        ]
    if "SReclaimable" in meminfo and "SUnreclaim" in meminfo:
        reading["system.memory.linux.slab.usage"] = [
            Point(meminfo["SReclaimable"], {"system.memory.linux.slab.state": "reclaimable"}),
            Point(meminfo["SUnreclaim"], {"system.memory.linux.slab.state": "unreclaimable"}),
        ]
    return reading


class MemoryScraper(Scraper):
    name = "memory"

    def scrape(self) -> Reading:
        text = self.read("meminfo", self.host.read_text, "/proc/meminfo")
        if text is None:
            return {}
        return memory_points(parse_meminfo(text))
