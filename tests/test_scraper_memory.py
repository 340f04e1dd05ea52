"""Memory scraper: meminfo shaping, and the real scraper against /proc/meminfo."""

from __future__ import annotations

from scraper_context import make_scraper, value

from otel_collector.scrapers import memory

MEMINFO = """MemTotal:       16000000 kB
MemFree:         2000000 kB
MemAvailable:   10000000 kB
Buffers:          500000 kB
Cached:          6000000 kB
Shmem:            250000 kB
SReclaimable:     700000 kB
SUnreclaim:       300000 kB
HugePages_Total:       0
"""


def test_used_is_total_minus_available() -> None:
    reading = memory.memory_points(memory.parse_meminfo(MEMINFO))
    assert value(reading, "system.memory.usage", **{"system.memory.state": "used"}) == 6_000_000 * 1024
    assert value(reading, "system.memory.linux.available") == 10_000_000 * 1024
    assert value(reading, "system.memory.limit") == 16_000_000 * 1024


def test_cached_excludes_reclaimable_slab() -> None:
    reading = memory.memory_points(memory.parse_meminfo(MEMINFO))
    assert value(reading, "system.memory.usage", **{"system.memory.state": "cached"}) == 6_000_000 * 1024
    slab = {p.attributes["system.memory.linux.slab.state"]: p.value
            for p in reading["system.memory.linux.slab.usage"]}
    assert slab == {"reclaimable": 700_000 * 1024, "unreclaimable": 300_000 * 1024}


def test_shared_is_shmem() -> None:
    reading = memory.memory_points(memory.parse_meminfo(MEMINFO))
    assert value(reading, "system.memory.linux.shared") == 250_000 * 1024


def test_utilization_is_usage_over_total() -> None:
    reading = memory.memory_points(memory.parse_meminfo(MEMINFO))
    assert value(reading, "system.memory.utilization", **{"system.memory.state": "free"}) == 0.125


def test_unitless_lines_are_counts() -> None:
    assert memory.parse_meminfo(MEMINFO)["HugePages_Total"] == 0


def _meminfo_bytes() -> dict[str, int]:
    fields = {}
    with open("/proc/meminfo") as file:
        for line in file:
            name, rest = line.split(":", 1)
            fields[name] = int(rest.split()[0]) * 1024
    return fields


def test_memory_against_proc_meminfo() -> None:
    reading = make_scraper(
        "memory", {"HOST_AGENT_METRICS_ENABLE": "system.memory.limit,system.memory.linux.shared"}
    ).scrape()
    meminfo = _meminfo_bytes()
    assert value(reading, "system.memory.limit") == meminfo["MemTotal"]
    shared = value(reading, "system.memory.linux.shared")
    assert abs(shared - meminfo["Shmem"]) < 64 * 1024 * 1024
    used = value(reading, "system.memory.usage", **{"system.memory.state": "used"})
    expected_used = meminfo["MemTotal"] - meminfo["MemAvailable"]
    # Memory moves between the two readings; 64 MiB is generous on an idle host.
    assert abs(used - expected_used) < 64 * 1024 * 1024
    assert reading["system.memory.linux.slab.usage"]
