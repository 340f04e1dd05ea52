"""Filesystem scraper: mountinfo, host root prefixing, filters and stuck mounts."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest
from scraper_context import make_scraper, value, values

from otel_collector.hostfs import HostRoot, parse_mountinfo
from otel_collector.scrapers import base, filesystem
from otel_collector.scrapers.base import NameFilter

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 8:2 / /boot ro,relatime shared:2 - ext4 /dev/sda2 rw
24 22 8:3 / /data rw,relatime - xfs /dev/sdb1 rw
25 22 0:5 / /proc rw,nosuid - proc proc rw
26 22 0:6 / /run rw - tmpfs tmpfs rw
27 22 0:7 /x /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw
28 22 8:1 /etc/hosts /etc/hosts rw - ext4 /dev/sda1 rw
29 22 8:4 / /mnt/my\\040disk rw - ext4 /dev/sdc1 rw
"""


def fake_host_root(tmp_path: Path) -> Path:
    root = tmp_path / "hostfs"
    (root / "proc" / "1").mkdir(parents=True)
    (root / "proc" / "1" / "mountinfo").write_text(MOUNTINFO)
    for mountpoint in ("boot", "data", "mnt/my disk", "run"):
        (root / mountpoint).mkdir(parents=True)
    return root


def test_mountinfo_fields_and_escapes() -> None:
    mounts = {m.mountpoint: m for m in parse_mountinfo(MOUNTINFO)}
    assert mounts["/boot"].mode == "ro"
    assert mounts["/data"].fstype == "xfs"
    assert mounts["/data"].device == "/dev/sdb1"
    assert "/mnt/my disk" in mounts


def test_host_root_prefix_added_once() -> None:
    assert HostRoot("/hostfs").path("/data") == "/hostfs/data"
    assert HostRoot("/hostfs/").path("/") == "/hostfs"
    assert HostRoot("/").path("/data") == "/data"


def test_host_root_statvfs_once_per_prefixed_path(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """statvfs is wrapped with a recorder that calls the real one."""
    root = fake_host_root(tmp_path)
    calls: list[str] = []
    real_statvfs = os.statvfs

    def recording_statvfs(path: str) -> os.statvfs_result:
        calls.append(path)
        return real_statvfs(path)

    monkeypatch.setattr(filesystem.os, "statvfs", recording_statvfs)
    scraper = make_scraper("filesystem", root=str(root))
    reading = scraper.scrape()
    scraper.close()
    assert sorted(calls) == sorted([str(root), f"{root}/boot", f"{root}/data", f"{root}/mnt/my disk"])
    mountpoints = {p.attributes["system.filesystem.mountpoint"] for p in reading["system.filesystem.usage"]}
    assert mountpoints == {"/", "/boot", "/data", "/mnt/my disk"}


def test_default_excludes_virtual_and_bind_files(tmp_path: Path) -> None:
    scraper = make_scraper("filesystem", root=str(fake_host_root(tmp_path)))
    reading = scraper.scrape()
    mountpoints = {p.attributes["system.filesystem.mountpoint"] for p in reading["system.filesystem.usage"]}
    assert not mountpoints & {"/proc", "/run", "/etc/hosts", "/var/lib/docker/overlay2/abc/merged"}


def test_tmpfs_reported_when_asked(tmp_path: Path) -> None:
    scraper = make_scraper(
        "filesystem",
        {"HOST_AGENT_FILESYSTEM_TYPES_EXCLUDE": "proc,overlay"},
        root=str(fake_host_root(tmp_path)),
    )
    reading = scraper.scrape()
    assert values(reading, "system.filesystem.usage", **{"system.filesystem.mountpoint": "/run"})


def test_filters_on_type_device_and_mountpoint(tmp_path: Path) -> None:
    root = str(fake_host_root(tmp_path))
    for env, expected in (
        ({"HOST_AGENT_FILESYSTEM_TYPES_INCLUDE": "xfs"}, {"/data"}),
        ({"HOST_AGENT_FILESYSTEM_DEVICES_EXCLUDE": "/dev/sda.*"}, {"/data", "/mnt/my disk"}),
        ({"HOST_AGENT_FILESYSTEM_MOUNTPOINTS_INCLUDE": "/boot|/data"}, {"/boot", "/data"}),
    ):
        reading = make_scraper("filesystem", env, root=root).scrape()
        got = {p.attributes["system.filesystem.mountpoint"] for p in reading["system.filesystem.usage"]}
        assert got == expected, env


def test_usage_states_add_up_to_limit() -> None:
    scraper = make_scraper("filesystem", {"HOST_AGENT_METRICS_ENABLE": "system.filesystem.limit"})
    reading = scraper.scrape()
    stat = os.statvfs("/")
    limit = value(reading, "system.filesystem.limit", **{"system.filesystem.mountpoint": "/"})
    assert limit == stat.f_blocks * stat.f_frsize
    states = values(reading, "system.filesystem.usage", **{"system.filesystem.mountpoint": "/"})
    assert sum(states) == limit
    shares = values(reading, "system.filesystem.utilization", **{"system.filesystem.mountpoint": "/"})
    assert sum(shares) == pytest.approx(1.0)


def test_root_usage_against_df() -> None:
    """Independent reading: statvfs of / taken by the test itself."""
    reading = make_scraper("filesystem").scrape()
    stat = os.statvfs("/")
    free = value(reading, "system.filesystem.usage",
                 **{"system.filesystem.mountpoint": "/", "system.filesystem.state": "free"})
    assert abs(free - stat.f_bavail * stat.f_frsize) < 256 * 1024 * 1024


def test_stuck_mount_skipped_with_one_waiting_thread(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake statvfs that blocks for /data stands in for a dead network mount."""
    root = fake_host_root(tmp_path)
    release = threading.Event()
    real_statvfs = os.statvfs

    def blocking_statvfs(path: str) -> os.statvfs_result:
        if path == f"{root}/data":
            release.wait()
        return real_statvfs(path)

    monkeypatch.setattr(filesystem.os, "statvfs", blocking_statvfs)
    scraper = make_scraper("filesystem", {"HOST_AGENT_FILESYSTEM_TIMEOUT": "200"}, root=str(root))
    threads_before = threading.active_count()
    try:
        for _ in range(5):
            started = time.monotonic()
            reading = scraper.scrape()
            assert time.monotonic() - started < 1.0
            mountpoints = {p.attributes["system.filesystem.mountpoint"]
                           for p in reading["system.filesystem.usage"]}
            assert mountpoints == {"/", "/boot", "/mnt/my disk"}
        assert scraper._statvfs.waiting_threads() == 1
        assert threading.active_count() <= threads_before + 2
        assert scraper.context.errors.errors_by_scraper()["filesystem"] == 5
    finally:
        release.set()
    time.sleep(0.1)
    reading = scraper.scrape()
    scraper.close()
    assert values(reading, "system.filesystem.usage", **{"system.filesystem.mountpoint": "/data"})


def test_stuck_mount_logged_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same fake blocking statvfs; structlog's capture shows one warning for five cycles."""
    import structlog.testing

    root = fake_host_root(tmp_path)
    release = threading.Event()
    real_statvfs = os.statvfs
    monkeypatch.setattr(
        filesystem.os, "statvfs",
        lambda path: release.wait() and real_statvfs(path) if path.endswith("/boot") else real_statvfs(path),
    )
    scraper = make_scraper("filesystem", {"HOST_AGENT_FILESYSTEM_TIMEOUT": "100"}, root=str(root))
    try:
        with structlog.testing.capture_logs() as logs:
            for _ in range(5):
                scraper.scrape()
    finally:
        release.set()
        scraper.close()
    stuck = [entry for entry in logs if entry["event"] == "filesystem_stuck"]
    assert len(stuck) == 1
    assert stuck[0]["mountpoint"] == "/boot"


def test_name_filter_verdicts_bounded() -> None:
    """Verdicts are kept per name, and a stream of new names does not grow them without end."""
    admit = NameFilter(include=(re.compile(r"/data/.*"),), exclude=(re.compile(r"/data/tmp\d+"),))
    for _ in range(2):  # the second pass uses the kept verdicts
        assert admit.admits("/data/a")
        assert not admit.admits("/data/tmp1")
        assert not admit.admits("/home")
    for number in range(10_000):
        admit.admits(f"/data/volume{number}")
    assert len(admit._verdicts) <= base._MAX_VERDICTS
    assert admit.admits("/data/volume9999")
    assert not admit.admits("/data/tmp2")
