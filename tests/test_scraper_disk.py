"""Disk scraper: shaping of psutil counters, and the real scraper against /proc/diskstats
and the sizes of the block devices."""

from __future__ import annotations

import os
import re
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
from scraper_context import make_scraper, value

from otel_collector.scrapers import disk
from otel_collector.scrapers.base import NameFilter

Counters = namedtuple(
    "Counters",
    "read_count write_count read_bytes write_bytes read_time write_time "
    "read_merged_count write_merged_count busy_time",
)


def test_times_are_seconds_and_filters_apply() -> None:
    counters = {"sda": Counters(1, 2, 512, 1024, 1500, 2500, 3, 4, 4000),
                "loop0": Counters(0, 0, 0, 0, 0, 0, 0, 0, 0)}
    reading = disk.disk_points(counters, NameFilter(exclude=(re.compile(r"loop\d+"),)))
    assert value(reading, "system.disk.io_time", **{"system.device": "sda"}) == 4.0
    assert value(reading, "system.disk.operation_time", **{"disk.io.direction": "write"}) == 2.5
    assert value(reading, "system.disk.merged", **{"disk.io.direction": "read"}) == 3
    assert not [p for p in reading["system.disk.io"] if p.attributes["system.device"] == "loop0"]


def test_include_list_limits_devices() -> None:
    counters = {"sda": Counters(*[1] * 9), "vdb": Counters(*[1] * 9)}
    reading = disk.disk_points(counters, NameFilter(include=(re.compile("vd.*"),)))
    assert {p.attributes["system.device"] for p in reading["system.disk.io"]} == {"vdb"}


def _diskstats() -> dict[str, list[int]]:
    """Independent reading; fields as in the kernel's Documentation/admin-guide/iostats.rst."""
    stats = {}
    with open("/proc/diskstats") as file:
        for line in file:
            fields = line.split()
            stats[fields[2]] = [int(f) for f in fields[3:]]
    return stats


def test_disk_against_proc_diskstats() -> None:
    before = _diskstats()
    reading = make_scraper("disk").scrape()
    after = _diskstats()
    devices = {p.attributes["system.device"] for p in reading["system.disk.io"]}
    assert devices
    for device in devices:
        # Field 3 is sectors read; a sector is 512 bytes whatever the device's block size.
        read_bytes = value(reading, "system.disk.io", **{"system.device": device,
                                                        "disk.io.direction": "read"})
        assert before[device][2] * 512 <= read_bytes <= after[device][2] * 512
        reads = value(reading, "system.disk.operations", **{"system.device": device,
                                                           "disk.io.direction": "read"})
        assert before[device][0] <= reads <= after[device][0]


ENABLE_LIMIT = {"HOST_AGENT_METRICS_ENABLE": "system.disk.limit"}


def test_limit_is_device_size_by_seek() -> None:
    """Independent reading: the size the block device itself reports, by seeking to its end."""
    reading = make_scraper("disk", ENABLE_LIMIT).scrape()
    limits = {p.attributes["system.device"]: p.value for p in reading["system.disk.limit"]}
    assert limits  # the default exclude list leaves the host's real disks
    checked = 0
    for device, size in limits.items():
        try:
            fd = os.open(f"/dev/{device}", os.O_RDONLY)
        except OSError:
            continue  # no device node here, or no permission to open it
        try:
            assert size == os.lseek(fd, 0, os.SEEK_END), device
        finally:
            os.close(fd)
        checked += 1
    if not checked:
        pytest.skip("no block device of the host could be opened to read its size")


def test_limit_skips_an_unreadable_size(tmp_path: Path) -> None:
    """Fault injected with a copy of the host's sysfs sizes: one device's size file is gone."""
    devices = sorted(p.attributes["system.device"] for p in
                     make_scraper("disk", ENABLE_LIMIT).scrape()["system.disk.limit"])
    for device in devices:
        (tmp_path / "sys/class/block" / device).mkdir(parents=True)
        shutil.copy(f"/sys/class/block/{device}/size", tmp_path / "sys/class/block" / device)
    (tmp_path / "sys/class/block" / devices[0] / "size").unlink()
    (tmp_path / "proc").mkdir()  # a host root must contain proc/
    # psutil still reads this host's /proc/diskstats: only the agent sets psutil.PROCFS_PATH.
    scraper = make_scraper("disk", ENABLE_LIMIT, root=str(tmp_path))

    reading = scraper.scrape()

    limits = {p.attributes["system.device"] for p in reading["system.disk.limit"]}
    assert limits == set(devices[1:])
    assert reading["system.disk.io"]  # the counters still go out
    assert scraper.context.errors.errors_by_scraper() == {"disk": 1}


def test_limit_maps_slash_in_device_names(tmp_path: Path) -> None:
    """sysfs names cciss/c0d0 as cciss!c0d0, and the point keeps the diskstats name."""
    (tmp_path / "proc").mkdir()
    (tmp_path / "sys/class/block/cciss!c0d0").mkdir(parents=True)
    (tmp_path / "sys/class/block/cciss!c0d0/size").write_text("2048\n")
    scraper = make_scraper("disk", ENABLE_LIMIT, root=str(tmp_path))

    points = scraper.capacity_points(["cciss/c0d0"])

    assert [(p.value, p.attributes) for p in points] == [
        (2048 * 512, {"system.device": "cciss/c0d0"})
    ]
