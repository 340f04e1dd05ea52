"""Process scraper: /proc/PID/stat parsing, selection, permissions and series churn."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_process import AgentProcess
from otlp_receiver import OtlpReceiver
from rotel_peer import RotelPeer
from scraper_context import make_scraper

from otel_collector import catalogue
from otel_collector.scrapers import process
from otel_collector.scrapers.base import Point

STAT = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 500 0 7 0 250 100 0 0 20 0 3 0 9000 123456 42 18446744073709551615"


def test_parse_stat_fields() -> None:
    stat = process.parse_stat(STAT)
    assert stat.pid == 1234
    assert stat.name == "my (odd) name"
    assert stat.ppid == 1
    assert stat.minor_faults == 500
    assert stat.major_faults == 7
    assert (stat.user_ticks, stat.system_ticks) == (250, 100)
    assert stat.threads == 3
    assert stat.start_ticks == 9000
    assert stat.virtual_bytes == 123456
    assert stat.rss_pages == 42


def test_select_top_by_recent_cpu_and_memory() -> None:
    busy = process.parse_stat(STAT)
    idle_but_old = process.ProcStat(2, "old", 1, 0, 0, 5000, 0, 1, 10, 0, 1000)
    previous = {(2, 10): (4000, 1000), (1234, 9000): (200, 100)}
    assert [s.pid for s in process.select([busy, idle_but_old], previous, top=1, by="cpu")] == [1234]
    assert [s.pid for s in process.select([busy, idle_but_old], previous, top=1, by="memory")] == [2]
    assert len(process.select([busy, idle_but_old], {}, top=0, by="cpu")) == 2


def test_stat_points_use_ticks_and_pages() -> None:
    reading = process.stat_points(process.parse_stat(STAT), {"process.pid": 1234}, uptime_s=1000.0)
    user = next(p for p in reading["process.cpu.time"] if p.attributes["cpu.mode"] == "user")
    assert user.value == 250 / process.TICKS_PER_SECOND
    assert reading["process.thread.count"] == [Point(3, {"process.pid": 1234})]
    assert reading["process.uptime"][0].value == pytest.approx(1000.0 - 9000 / process.TICKS_PER_SECOND)


def test_utilization_shares_of_elapsed_cpu_time() -> None:
    stat = process.parse_stat(STAT)  # 250 user and 100 system ticks
    hz = process.TICKS_PER_SECOND
    identity = {"process.pid": 1234}

    since_previous = process.utilization_points(stat, (200, 50), 10.0, 2, identity)
    since_start = process.utilization_points(stat, None, 10.0, 1, identity)

    assert since_previous == [
        Point(50 / (10.0 * 2 * hz), {"process.pid": 1234, "cpu.mode": "user"}),
        Point(50 / (10.0 * 2 * hz), {"process.pid": 1234, "cpu.mode": "system"}),
    ]
    assert [p.value for p in since_start] == [250 / (10.0 * hz), 100 / (10.0 * hz)]
    assert process.utilization_points(stat, (200, 50), 0.0, 2, identity) == []


# Pins itself to one CPU of its affinity mask, then spins.
SPIN_ON_ONE_CPU = "import os\nos.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\nwhile True: pass"


def test_utilization_of_busy_pinned_process() -> None:
    """A loop pinned to one CPU uses about all of the one CPU its affinity mask allows.

    Divided by every CPU of a 2-CPU host instead, it would be about 0.5.
    """
    busy = subprocess.Popen([sys.executable, "-c", SPIN_ON_ONE_CPU])
    idle = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(1.0)
        scraper = make_scraper("process", {"HOST_AGENT_SCRAPERS": "process",
                                           "HOST_AGENT_METRICS_ENABLE": "process.cpu.utilization",
                                           "HOST_AGENT_PROCESS_TOP": "0"})
        first = scraper.scrape()  # measured from each process's start
        time.sleep(1.0)
        second = scraper.scrape()  # measured from the first scrape
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()

    for reading in (first, second):
        busy_share = sum(p.value for p in _own_points(reading, busy.pid, "process.cpu.utilization"))
        idle_share = sum(p.value for p in _own_points(reading, idle.pid, "process.cpu.utilization"))
        modes = {p.attributes["cpu.mode"]
                 for p in _own_points(reading, busy.pid, "process.cpu.utilization")}
        assert modes == {"user", "system"}
        assert 0.6 <= busy_share <= 1.05
        assert idle_share < 0.05


def test_utilization_is_opt_in() -> None:
    reading = make_scraper("process", {"HOST_AGENT_SCRAPERS": "process"}).scrape()

    assert "process.cpu.time" in reading
    assert "process.cpu.utilization" not in reading


def _own_points(reading: dict, pid: int, metric: str) -> list[Point]:
    return [p for p in reading.get(metric, []) if p.attributes["process.pid"] == pid]


def test_real_process_against_proc_status() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.5)
        scraper = make_scraper("process", {"HOST_AGENT_SCRAPERS": "process",
                                           "HOST_AGENT_PROCESS_NAMES_INCLUDE": "sleep",
                                           "HOST_AGENT_PROCESS_TOP": "0"})
        reading = scraper.scrape()
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{child.pid}/status").read_text().splitlines())
        threads = _own_points(reading, child.pid, "process.thread.count")
        assert threads[0].value == int(status["Threads"])
        rss = _own_points(reading, child.pid, "process.memory.usage")[0].value
        # statm's resident field, in pages, is the same counter as stat's rss.
        resident_pages = int(Path(f"/proc/{child.pid}/statm").read_text().split()[1])
        assert rss == resident_pages * os.sysconf("SC_PAGE_SIZE")
        identity = threads[0].attributes
        assert identity["process.executable.name"] == "sleep"
        assert identity["process.parent_pid"] == os.getpid()
        switches = _own_points(reading, child.pid, "process.context_switches")
        voluntary = next(p for p in switches if p.attributes["process.context_switch.type"] == "voluntary")
        assert voluntary.value <= int(status["voluntary_ctxt_switches"])
        assert {p.attributes["process.pid"] for p in reading["process.cpu.time"]} <= {
            int(name) for name in os.listdir("/proc") if name.isdigit()
        }
    finally:
        child.kill()
        child.wait()


def test_command_line_filter_and_attribute() -> None:
    child = subprocess.Popen(["sleep", "31.5"])
    try:
        time.sleep(0.1)
        reading = make_scraper("process", {"HOST_AGENT_SCRAPERS": "process",
                                           "HOST_AGENT_PROCESS_COMMAND_LINES_INCLUDE": r"sleep 31\.5",
                                           "HOST_AGENT_PROCESS_COMMAND_LINE": "true"}).scrape()
        pids = {p.attributes["process.pid"] for p in reading["process.uptime"]}
        assert pids == {child.pid}
        assert reading["process.uptime"][0].attributes["process.command_line"] == "sleep 31.5"
    finally:
        child.kill()
        child.wait()


def test_top_caps_the_number_of_processes() -> None:
    reading = make_scraper("process", {"HOST_AGENT_SCRAPERS": "process",
                                       "HOST_AGENT_PROCESS_TOP": "3"}).scrape()
    assert len({p.attributes["process.pid"] for p in reading["process.uptime"]}) == 3


def _scrape_as_nonroot(queue: multiprocessing.Queue) -> None:
    os.setgroups([])
    os.setgid(65532)
    os.setuid(65532)
    scraper = make_scraper("process", {"HOST_AGENT_SCRAPERS": "process", "HOST_AGENT_PROCESS_TOP": "0"})
    reading = scraper.scrape()
    owners = {p.attributes.get("process.owner") for p in reading.get("process.uptime", [])}
    with_io = {p.attributes["process.pid"] for p in reading.get("process.disk.io", [])}
    queue.put((len(reading.get("process.uptime", [])), owners, len(with_io),
               scraper.context.errors.errors_by_scraper()))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to uid 65532")
def test_nonroot_reports_other_users_without_errors() -> None:
    """A forked child drops to uid 65532 and scrapes; root's processes stay reported."""
    holder = subprocess.Popen(["sleep", "30"])  # a process owned by root
    try:
        queue: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
        child = multiprocessing.get_context("fork").Process(target=_scrape_as_nonroot, args=(queue,))
        child.start()
        processes, owners, with_io, errors = queue.get(timeout=30)
        child.join(10)
    finally:
        holder.kill()
        holder.wait()
    assert processes > 2
    assert "root" in owners  # other users' processes are reported
    assert with_io < processes  # their /proc/PID/io is denied, and left out
    assert errors == {}  # denied fields are not errors


@pytest.mark.slow
def test_exited_process_series_stop_at_next_export(tmp_path: Path) -> None:
    # A name of its own: other work on the host may run thousands of "sleep".
    unique = tmp_path / "exitsoonprobe"
    unique.symlink_to(shutil.which("sleep") or "/bin/sleep")
    child = subprocess.Popen([str(unique), "32.25"])
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=500,
        env={"HOST_AGENT_SCRAPERS": "process", "HOST_AGENT_PROCESS_NAMES_INCLUDE": "exitsoonprobe",
             "HOST_AGENT_PROCESS_TOP": "0"},
    ):
        receiver.wait_for_points(
            lambda points: any(p.resource.get("process.pid") == child.pid for p in points), 20
        )
        child.kill()
        child.wait()
        killed_at = len(receiver.requests)
        receiver.wait_for_requests(killed_at + 3, timeout=20)
        later = [p for p in receiver.points() if p.request_index >= receiver.requests[killed_at + 1].index]
    assert later  # the agent kept exporting
    assert not [p for p in later if p.resource.get("process.pid") == child.pid]


@pytest.mark.slow
def test_each_process_arrives_as_resource(tmp_path: Path) -> None:
    """rotel, a third-party collector, decodes one resource per process, identity included."""
    names = ("resprobeone", "resprobetwo")
    children = {}
    for name in names:
        (tmp_path / name).symlink_to(shutil.which("sleep") or "/bin/sleep")
        children[name] = subprocess.Popen([str(tmp_path / name), "33.5"])
    try:
        with RotelPeer() as rotel, AgentProcess(
            tmp_path, endpoint=rotel.endpoint, interval_ms=500,
            env={"HOST_AGENT_SCRAPERS": "memory,process",
                 "HOST_AGENT_PROCESS_NAMES_INCLUDE": ",".join(names)},
        ):
            rotel.wait_for_metric("process.cpu.time", timeout=20)
            time.sleep(1)  # one more cycle, so that both processes were printed
            points = rotel.parsed().points
    finally:
        for child in children.values():
            child.kill()
            child.wait()

    identity_keys = {attribute.key for attribute in catalogue.PROCESS_IDENTITY}
    memory = [p for p in points if p.metric == "system.memory.usage"]
    assert memory
    assert all("process.pid" not in p.resource for p in memory)
    assert all(p.resource["host.name"] == memory[0].resource["host.name"] for p in points)
    for name, child in children.items():
        mine = [p for p in points if p.resource.get("process.pid") == child.pid]
        assert {p.metric for p in mine} >= {"process.cpu.time", "process.memory.usage",
                                            "process.uptime"}, name
        assert mine[0].resource["process.executable.name"] == "sleep", name
        assert mine[0].resource["process.parent_pid"] == os.getpid(), name
        modes = {p.attributes.get("cpu.mode") for p in mine if p.metric == "process.cpu.time"}
        assert modes == {"user", "system"}, name
        for point in mine:
            assert not identity_keys & set(point.attributes), point
