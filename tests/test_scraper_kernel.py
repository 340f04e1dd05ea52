"""Kernel scraper: file handles and entropy on this host, and missing or broken files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from scraper_context import make_scraper, value

from otel_collector.scrapers import kernel

FILE_NR = Path("/proc/sys/fs/file-nr")
RANDOM = Path("/proc/sys/kernel/random")


def test_parse_file_nr_subtracts_unused_handles() -> None:
    assert kernel.parse_file_nr(b"1024\t24\t9223372036854775807\n", "file-nr") == (
        1000,
        9223372036854775807,
    )


@pytest.mark.parametrize("text", [b"", b"1024 0\n", b"a b c\n"])
def test_parse_file_nr_rejects_other_formats(text: bytes) -> None:
    with pytest.raises(ValueError, match="/proc/sys/fs/file-nr"):
        kernel.parse_file_nr(text, "/proc/sys/fs/file-nr")


def test_file_handles_match_the_host_file() -> None:
    """Handles open and close all the time, so a reading counts when the file agrees around it."""
    scraper = make_scraper("kernel")
    for _ in range(20):
        before = FILE_NR.read_text().split()
        reading = scraper.scrape()
        after = FILE_NR.read_text().split()
        if before == after:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("file-nr kept changing for 20 readings")

    assert value(reading, "system.linux.file_handle.count") == int(before[0]) - int(before[1])
    assert value(reading, "system.linux.file_handle.limit") == int(before[2])
    assert value(reading, "system.linux.file_handle.limit") == int(
        Path("/proc/sys/fs/file-max").read_text()
    )


def test_entropy_within_the_host_pool() -> None:
    reading = make_scraper("kernel").scrape()

    available = value(reading, "system.linux.entropy.available")
    assert 0 <= available <= int((RANDOM / "poolsize").read_text())


def test_broken_file_costs_only_its_metrics(tmp_path: Path) -> None:
    # A host root made by the test, to inject a file the kernel would not write.
    (tmp_path / "proc" / "sys" / "fs").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "fs" / "file-nr").write_text("not numbers\n")
    random = tmp_path / "proc" / "sys" / "kernel" / "random"
    random.mkdir(parents=True)
    (random / "entropy_avail").write_text("256\n")
    scraper = make_scraper("kernel", root=str(tmp_path))

    reading = scraper.scrape()

    assert set(reading) == {"system.linux.entropy.available"}
    assert scraper.context.errors.errors_by_scraper() == {"kernel": 1}


DISABLED = (
    "system.linux.file_handle.count",
    "system.linux.file_handle.limit",
    "system.linux.entropy.available",
)


def test_disabled_metrics_read_nothing(tmp_path: Path) -> None:
    # An empty host root would fail both reads, so no error means no read.
    (tmp_path / "proc").mkdir()
    scraper = make_scraper(
        "kernel",
        {"HOST_AGENT_METRICS_DISABLE": ",".join(DISABLED)},
        root=str(tmp_path),
    )

    assert scraper.scrape() == {}
    assert scraper.context.errors.errors_by_scraper() == {}
