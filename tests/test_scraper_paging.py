"""Paging scraper: /proc/swaps and /proc/vmstat shaping, and the real files."""

from __future__ import annotations

from pathlib import Path

from scraper_context import make_scraper, value

from otel_collector.scrapers import paging

SWAPS = """Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority
/dev/dm-1                               partition\t1000000\t\t250000\t\t-2
/swap\\040file                           file\t\t200\t\t0\t\t-3
"""
VMSTAT = "pgfault 1000\npgmajfault 40\npswpin 7\npswpout 9\npgpgin 100\npgpgout 200\n"


def test_swap_usage_per_device() -> None:
    reading = paging.usage_points(paging.parse_swaps(SWAPS))
    assert value(reading, "system.paging.usage", **{"system.device": "/dev/dm-1",
                                                    "system.paging.state": "used"}) == 256_000_000
    assert value(reading, "system.paging.utilization", **{"system.device": "/dev/dm-1",
                                                          "system.paging.state": "free"}) == 0.75
    assert value(reading, "system.paging.usage", **{"system.device": "/swap file",
                                                    "system.paging.state": "free"}) == 204_800


def test_minor_faults_exclude_major() -> None:
    reading = paging.vmstat_points(paging.parse_vmstat(VMSTAT))
    assert value(reading, "system.paging.faults", **{"system.paging.fault.type": "minor"}) == 960
    assert value(reading, "system.paging.operations", **{"system.paging.fault.type": "major",
                                                         "system.paging.direction": "out"}) == 9


def test_paging_against_proc_vmstat() -> None:
    reading = make_scraper("paging").scrape()
    vmstat = paging.parse_vmstat(Path("/proc/vmstat").read_text())
    major = value(reading, "system.paging.faults", **{"system.paging.fault.type": "major"})
    assert vmstat["pgmajfault"] - 100 <= major <= vmstat["pgmajfault"]
    swaps = paging.parse_swaps(Path("/proc/swaps").read_text())
    assert len(reading["system.paging.usage"]) == 2 * len(swaps)
