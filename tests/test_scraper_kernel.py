"""Kernel scraper: file handles, entropy and the clock on this host, and faults."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agent_process import free_port
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

    assert "system.linux.file_handle.count" not in reading
    assert "system.linux.file_handle.limit" not in reading
    assert value(reading, "system.linux.entropy.available") == 256
    assert scraper.context.errors.errors_by_scraper() == {"kernel": 1}


DISABLED = (
    "system.linux.file_handle.count",
    "system.linux.file_handle.limit",
    "system.linux.entropy.available",
    "system.linux.clock.synchronized",
    "system.linux.clock.offset",
    "system.linux.clock.max_error",
    "system.linux.clock.estimated_error",
    "system.linux.selinux.enabled",
    "system.linux.selinux.enforcing",
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


def test_clock_state_units() -> None:
    timex = kernel._Timex(offset=-2500, maxerror=16_000_000, esterror=1500, status=0x1)

    state = kernel.clock_state(0, timex)

    assert state == kernel.ClockState(
        synchronized=True, offset_s=-0.0025, max_error_s=16.0, estimated_error_s=0.0015
    )


def test_clock_state_nanoseconds_and_unsynchronized() -> None:
    # STA_NANO (0x2000) makes offset count nanoseconds; STA_UNSYNC (0x40) comes with TIME_ERROR.
    timex = kernel._Timex(offset=1_500_000, maxerror=0, esterror=0, status=0x2000 | 0x40)

    state = kernel.clock_state(5, timex)

    assert state.offset_s == 0.0015
    assert not state.synchronized


def test_timex_layout_matches_the_kernel() -> None:
    """Fields at the wrong offset would not read the two constants the kernel always fills in.

    On an unsynchronized host, maxerror and esterror are equal and offset and
    freq are 0, so those cannot tell neighbouring fields apart.
    """
    timex = kernel._Timex()
    libc = ctypes.CDLL(None, use_errno=True)

    assert libc.adjtimex(ctypes.byref(timex)) >= 0
    # glibc's struct timex on 64-bit Linux; kernel/time/ntp.c sets precision to 1 µs
    # and tolerance to MAXFREQ (500 ppm) in the kernel's 16-bit fixed point.
    assert ctypes.sizeof(kernel._Timex) == 208
    assert timex.precision == 1
    assert timex.tolerance == 500 << 16


@pytest.fixture
def node_exporter_timex() -> Iterator[Callable[[], dict[str, float]]]:
    """Start node_exporter with only its timex collector on a loopback port."""
    binary = shutil.which("prometheus-node-exporter")
    if binary is None:
        pytest.skip("prometheus-node-exporter is not installed: run scripts/install-test-tools")
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
         "--collector.timex"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def scrape() -> dict[str, float]:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
                    text = reply.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "node_exporter did not answer"
                time.sleep(0.05)
        return {
            name: float(number)
            for name, number in (
                line.split() for line in text.splitlines() if line.startswith("node_timex_")
            )
        }

    yield scrape
    process.terminate()
    process.wait(timeout=10)


def test_clock_matches_node_exporter(node_exporter_timex: Callable[[], dict[str, float]]) -> None:
    """node_exporter reads adjtimex(2) on its own, in Go: both see the same kernel state."""
    peer = node_exporter_timex()
    reading = make_scraper("kernel").scrape()

    assert value(reading, "system.linux.clock.synchronized") == peer["node_timex_sync_status"]
    # maxerror grows by 500 µs a second while unsynchronized, so allow a few seconds apart.
    assert value(reading, "system.linux.clock.max_error") == pytest.approx(
        peer["node_timex_maxerror_seconds"], abs=0.005
    )
    assert value(reading, "system.linux.clock.offset") == pytest.approx(
        peer["node_timex_offset_seconds"], abs=0.001
    )


class FailingLibc:
    """Stands in for the C library to inject a failed adjtimex, which a real host does not give."""

    def adjtimex(self, _timex: object) -> int:
        return -1


def test_failed_adjtimex_costs_only_the_clock() -> None:
    scraper = make_scraper("kernel")
    scraper._libc = FailingLibc()  # type: ignore[attr-defined]

    reading = scraper.scrape()

    assert not set(kernel.CLOCK_METRICS) & set(reading)
    assert "system.linux.file_handle.count" in reading
    assert scraper.context.errors.errors_by_scraper() == {"kernel": 1}


def test_selinux_matches_the_host() -> None:
    enforce = Path("/sys/fs/selinux/enforce")

    reading = make_scraper("kernel").scrape()

    assert value(reading, "system.linux.selinux.enabled") == int(enforce.exists())
    if enforce.exists():
        assert value(reading, "system.linux.selinux.enforcing") == int(enforce.read_text())
    else:
        assert "system.linux.selinux.enforcing" not in reading


@pytest.mark.parametrize(("enforce", "enforcing"), [("1", 1), ("0", 0)])
def test_selinux_modes_in_a_host_root(tmp_path: Path, enforce: str, enforcing: int) -> None:
    # A host root made by the test: this host's SELinux mode cannot be changed by a test.
    (tmp_path / "proc").mkdir()
    selinuxfs = tmp_path / "sys" / "fs" / "selinux"
    selinuxfs.mkdir(parents=True)
    (selinuxfs / "enforce").write_text(enforce)

    reading = make_scraper("kernel", root=str(tmp_path)).scrape()

    assert value(reading, "system.linux.selinux.enabled") == 1
    assert value(reading, "system.linux.selinux.enforcing") == enforcing
