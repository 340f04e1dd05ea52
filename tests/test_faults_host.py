"""Host faults: a stuck mount, process churn, failing psutil calls, and a host root prefix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from agent_process import AgentProcess
from fault_helpers import by_request, thread_count, wait_until
from otlp_receiver import OtlpReceiver, Point

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 8:2 / /boot ro,relatime shared:2 - ext4 /dev/sda2 rw
24 22 8:3 / /data rw,relatime - xfs /dev/sdb1 rw
25 22 0:5 / /proc rw,nosuid - proc proc rw
"""
MOUNTPOINTS = {"/", "/boot", "/data"}


def fake_host_root(tmp_path: Path) -> Path:
    """Build a host root whose PID 1 lists /, /boot and /data, with the rest of /proc linked in.

    Every entry of this host's /proc except 1/ is a symlink to the real one,
    so the other scrapers read real values through the prefix.
    """
    root = tmp_path / "hostfs"
    proc = root / "proc"
    proc.mkdir(parents=True)
    for entry in os.listdir("/proc"):
        if entry != "1":
            (proc / entry).symlink_to(f"/proc/{entry}")
    (proc / "1").mkdir()
    (proc / "1" / "mountinfo").write_text(MOUNTINFO)
    for mountpoint in ("boot", "data"):
        (root / mountpoint).mkdir()
    return root


def mountpoints_of(points: list[Point]) -> set[str]:
    return {p.attributes["system.filesystem.mountpoint"]
            for p in points if p.name == "system.filesystem.usage"}


def cycles_after_first(receiver: OtlpReceiver) -> list[list[Point]]:
    """The points of each accepted request but the first, which may predate a fault."""
    cycles = by_request(receiver.points())
    return [cycles[index] for index in sorted(cycles)[1:]]


def failure_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines that report an unhandled exception, a failed scraper or a traceback."""
    return [
        line for line in lines
        if line.get("event") in ("scraper_failed", "unhandled_exception", "thread_failed")
        or "exception" in line or "Traceback" in json.dumps(line)
    ]


@pytest.mark.faults
def test_stuck_mount_skipped(tmp_path: Path) -> None:
    """A mount whose statvfs never returns is skipped and logged once; everything else goes out.

    Fault injection: the prelude replaces os.statvfs in the agent's process
    with a call that blocks forever for the /data mount, as statvfs does on
    a hard NFS mount whose server is gone. A test cannot produce a dead
    network mount on demand.
    """
    root = fake_host_root(tmp_path)
    blocked_path = tmp_path / "blocked-calls"
    prelude = textwrap.dedent(f"""
        import os, threading
        _real_statvfs = os.statvfs
        _never = threading.Event()
        def _statvfs(path):
            if os.fspath(path) == {str(root / "data")!r}:
                with open({str(blocked_path)!r}, "a") as calls:
                    calls.write("blocked\\n")
                _never.wait()
            return _real_statvfs(path)
        os.statvfs = _statvfs
    """)
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=500, python_prelude=prelude,
        env={"HOST_AGENT_HOST_ROOT": str(root), "HOST_AGENT_FILESYSTEM_TIMEOUT": "200"},
    ) as agent:
        receiver.wait_for_requests(2, timeout=15)
        threads = []
        for count in range(3, 9):
            receiver.wait_for_requests(count, timeout=5)
            threads.append(thread_count(agent.pid))
        status, seconds = agent.stop()

    assert status == 0
    assert seconds < 5
    cycles = cycles_after_first(receiver)
    assert len(cycles) >= 6
    names = {p.name for p in receiver.points()}
    for points in cycles:
        # Every metric in every cycle, and the usage of the two healthy mounts.
        assert {p.name for p in points} == names
        assert mountpoints_of(points) == {"/", "/boot"}
    # One thread waits in the blocked call, and no cycle starts another one for
    # the stuck mount. gRPC sizes its own thread pool as it goes, hence the slack.
    assert blocked_path.read_text().splitlines() == ["blocked"]
    assert max(threads) - min(threads) < len(threads) // 2, threads
    stuck = agent.events("filesystem_stuck")
    assert len(stuck) == 1, stuck
    assert stuck[0]["mountpoint"] == "/data"
    errors = [p.value for p in cycles[-1] if p.name == "otel_host_agent.scraper.errors"
              and p.attributes["scraper"] == "filesystem"]
    assert errors and errors[0] >= len(cycles)


CHURN_SCRIPT = """
import os, random, sys, time
# Starts sleep processes that live 1 to 50 ms, for the given seconds, and reaps them.
random.seed(7)
deadline = time.monotonic() + float(sys.argv[1])
forked = 0
while time.monotonic() < deadline and forked < 100_000:
    seconds = f"{random.uniform(0.001, 0.05):.3f}"
    pid = os.fork()
    if pid == 0:
        os.execv("/bin/sleep", ["sleep", seconds])
    forked += 1
    while True:
        try:
            reaped, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if reaped == 0:
            break
    time.sleep(0.002)
print(forked)
"""

ZOMBIE_SCRIPT = """
import os, sys, time
# Forks one child that exits at once and is never reaped, then waits.
pid = os.fork()
if pid == 0:
    os._exit(0)
print(pid, flush=True)
time.sleep(float(sys.argv[1]))
"""


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as file:
        text = file.read()
    return text[text.rindex(")") + 2]


@pytest.mark.faults
@pytest.mark.slow
def test_process_churn_and_zombie(tmp_path: Path) -> None:
    """Processes living 1-50 ms for 30 s and one zombie: no failure, the zombie counted as defunct."""
    churn_s = 30.0
    zombie_maker = subprocess.Popen(
        [sys.executable, "-c", ZOMBIE_SCRIPT, str(churn_s + 30)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert zombie_maker.stdout is not None
        zombie = int(zombie_maker.stdout.readline())
        wait_until(lambda: _state(zombie) == "Z", timeout=5, what="the child to become a zombie")
        with OtlpReceiver() as receiver, AgentProcess(
            tmp_path, endpoint=receiver.endpoint, interval_ms=100,
            # Per-process metrics of every sleep process: each one vanishes
            # within 50 ms, often between the listing and the reads.
            env={
                "HOST_AGENT_SCRAPERS": "processes,process,system",
                "HOST_AGENT_PROCESS_NAMES_INCLUDE": "sleep",
                "HOST_AGENT_PROCESS_TOP": "0",
            },
        ) as agent:
            receiver.wait_for_requests(1, timeout=30)
            churn = subprocess.run(
                [sys.executable, "-c", CHURN_SCRIPT, str(churn_s)],
                capture_output=True, text=True, timeout=churn_s + 30, check=True,
            )
            assert _state(zombie) == "Z"
            status, _ = agent.stop()
    finally:
        zombie_maker.kill()
        zombie_maker.wait()

    assert status == 0
    assert int(churn.stdout) > 1000, "the churn script forked too few processes"
    lines = agent.lines()
    assert failure_lines(lines) == []
    assert not [line for line in lines if line.get("event") == "scraper_source_failed"]
    # Cycles went on through the churn: the agent counted an export attempt for
    # each, delivered or not. On a loaded machine the receiver, in this test's
    # process, may miss the 100 ms deadlines, so only some arrive.
    last = max(by_request(receiver.points()).values(), key=lambda points: points[0].time_unix_nano)
    attempts = sum(p.value for p in last if p.name == "otel_host_agent.export.requests")
    assert attempts >= churn_s / 0.1 / 4, f"only {attempts} cycles in {churn_s} s"
    cycles = cycles_after_first(receiver)
    assert len(cycles) >= 10
    for points in cycles:
        defunct = [p.value for p in points if p.name == "system.process.count"
                   and p.attributes["process.state"] == "defunct"]
        assert defunct and defunct[0] >= 1
    sleepers = [p for p in receiver.points() if p.name == "process.cpu.time"]
    assert sleepers, "no short-lived process was ever read in full"


@pytest.mark.faults
def test_failing_psutil_calls_cost_one_instrument(tmp_path: Path) -> None:
    """cpu_freq raising NotImplementedError and getloadavg raising AttributeError cost only their metrics.

    Fault injection: the prelude replaces the two psutil functions in the
    agent's process, as on platforms where psutil lacks them; this host has both.
    """
    prelude = textwrap.dedent("""
        import psutil
        def _cpu_freq(percpu=False):
            raise NotImplementedError("cpu_freq is not available on this platform")
        def _getloadavg():
            raise AttributeError("module 'os' has no attribute 'getloadavg'")
        psutil.cpu_freq = _cpu_freq
        psutil.getloadavg = _getloadavg
    """)
    lost = {"system.cpu.frequency", "system.cpu.load_average.1m",
            "system.cpu.load_average.5m", "system.cpu.load_average.15m"}
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=300, python_prelude=prelude
    ) as agent:
        receiver.wait_for_requests(6, timeout=15)
        status, _ = agent.stop()

    assert status == 0
    with OtlpReceiver() as reference_receiver, AgentProcess(
        tmp_path, endpoint=reference_receiver.endpoint, interval_ms=300
    ):
        reference_receiver.wait_for_requests(2, timeout=15)
    expected = {p.name for p in reference_receiver.points()} - lost
    for points in cycles_after_first(receiver):
        assert {p.name for p in points} == expected
    failed = {line["source"]: line for line in agent.events("scraper_source_failed")}
    assert set(failed) == {"cpu_freq", "getloadavg"}
    assert len(agent.events("scraper_source_failed")) == 2
    assert failed["cpu_freq"]["error"].startswith("NotImplementedError")
    assert failed["getloadavg"]["error"].startswith("AttributeError")
    assert failure_lines(agent.lines()) == []


@pytest.mark.faults
def test_host_root_statvfs_once_per_mount(tmp_path: Path) -> None:
    """Under a host root, statvfs runs once per mount and cycle on the prefixed path.

    The prelude wraps os.statvfs with a recorder that calls the real one and
    appends each path to a file.
    """
    root = fake_host_root(tmp_path)
    calls_path = tmp_path / "statvfs-calls.jsonl"
    prelude = textwrap.dedent(f"""
        import json, os
        _real_statvfs = os.statvfs
        def _statvfs(path):
            with open({str(calls_path)!r}, "a") as calls:
                calls.write(json.dumps(os.fspath(path)) + "\\n")
            return _real_statvfs(path)
        os.statvfs = _statvfs
    """)
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=300, python_prelude=prelude,
        env={"HOST_AGENT_HOST_ROOT": str(root), "HOST_AGENT_SCRAPERS": "filesystem"},
    ) as agent:
        receiver.wait_for_requests(4, timeout=15)
        status, _ = agent.stop()

    assert status == 0
    calls = [json.loads(line) for line in calls_path.read_text().splitlines()]
    prefixed = {str(root), f"{root}/boot", f"{root}/data"}
    assert set(calls) == prefixed
    # One call per mount in each cycle: the baseline cycle and one per request.
    cycles = len(receiver.requests) + 1
    assert all(calls.count(path) == cycles for path in prefixed), (calls, cycles)
    for points in by_request(receiver.points()).values():
        assert mountpoints_of(points) == MOUNTPOINTS
