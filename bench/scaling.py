"""Figure 6: how the agent's CPU per cycle grows with the processes and the
mounted file systems on the host, one scraper at a time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import procfs
from bench.peers import AgentPeer, PeerFailedError
from bench.runs import window

# The agent's default file system types to leave out, minus tmpfs, so that
# the benchmark's tmpfs mounts are reported (otel_collector/config.py).
FILESYSTEM_TYPES_EXCLUDE_WITHOUT_TMPFS = (
    "autofs,binfmt_misc,bpf,cgroup,cgroup2,configfs,debugfs,devpts,devtmpfs,fusectl,"
    "hugetlbfs,mqueue,nsfs,overlay,proc,pstore,rpc_pipefs,securityfs,selinuxfs,squashfs,"
    "sysfs,tracefs,ramfs,efivarfs,fuse.lxcfs,nfsd"
)
_SLEEP_SECONDS = "900"  # the spawned processes end by themselves if the benchmark is killed
_SLACK_PER_CYCLE_S = 5.0
_START_SLACK_S = 30.0


class SleepingProcesses:
    """`sleep` processes started and reaped by this process, to load /proc."""

    def __init__(self) -> None:
        self._pids: list[int] = []
        self._sleep = shutil.which("sleep") or "/bin/sleep"

    def grow_to(self, total: int) -> int:
        """Start processes until the host has about `total`; return the count reached."""
        missing = total - procfs.process_count()
        for _ in range(max(0, missing)):
            self._pids.append(os.posix_spawn(self._sleep, ["sleep", _SLEEP_SECONDS], {}))
        return procfs.process_count()

    def close(self) -> None:
        for pid in self._pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self._pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self._pids.clear()

    def __enter__(self) -> SleepingProcesses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class ScalePoint:
    """CPU per cycle of one agent configuration at one amount of work."""

    scraper: str  # the agent configuration: its scraper and any setting that changes the work
    work: int  # processes on the host, or mounts the agent reports
    cpu_per_cycle_s: float
    data_points: float


def measure_agent(
    log_dir: Path,
    name: str,
    *,
    interval_ms: int,
    warmup: int,
    cycles: int,
    env: dict[str, str],
    wrapper: Sequence[str] = (),
) -> tuple[float, float]:
    """Run one agent alone; return its CPU per cycle and data points per cycle."""
    agent = AgentPeer(log_dir, name, interval_ms=interval_ms, env=env, wrapper=wrapper)
    try:
        first, last = warmup + 1, warmup + 1 + cycles
        agent.wait_for_cycles(
            last, _START_SLACK_S + last * (interval_ms / 1000 + _SLACK_PER_CYCLE_S)
        )
        result = window(agent, first, last)
    finally:
        agent.stop()
    return result.cpu_per_cycle_s, result.data_points


@dataclass(frozen=True)
class Variant:
    """One agent configuration of the process figures, with the levels it runs at.

    The interval is per variant because a slow scraper must finish its cycle
    within the interval, or the agent drops that cycle's export.
    """

    label: str
    env: dict[str, str]
    levels: tuple[int, ...]
    interval_ms: int
    warmup: int
    cycles: int


def process_scaling(log_dir: Path, variants: Sequence[Variant]) -> list[ScalePoint]:
    """Measure each variant at each of its levels, growing the host's processes as it goes."""
    points: list[ScalePoint] = []
    with SleepingProcesses() as sleepers:
        for level in sorted({level for variant in variants for level in variant.levels}):
            reached = sleepers.grow_to(level)
            for variant in variants:
                if level not in variant.levels:
                    continue
                cpu, data_points = measure_agent(
                    log_dir,
                    f"agent-scale-{len(points)}",
                    interval_ms=variant.interval_ms,
                    warmup=variant.warmup,
                    cycles=variant.cycles,
                    env=variant.env,
                )
                points.append(ScalePoint(variant.label, reached, cpu, data_points))
    return points


def unshare_prefix() -> list[str] | None:
    """Return the unshare command that gives the agent its own mount and PID namespaces.

    The agent reads the mount table of PID 1, so it runs as PID 1 of a new
    PID namespace whose mount namespace contains the benchmark's tmpfs mounts;
    the host's mount table never changes. Without root, a user namespace
    maps the caller to root inside it. None when unshare is missing.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    prefix = [unshare, "--mount", "--pid", "--fork", "--mount-proc", "--kill-child"]
    if os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-root-user"]
    return prefix


# Runs inside the new namespaces: mount $1 tmpfs file systems under $2, then
# replace the shell with the agent (the remaining arguments).
_MOUNT_SCRIPT = (
    "count=$1; base=$2; shift 2; i=0; "
    'while [ "$i" -lt "$count" ]; do i=$((i + 1)); mkdir -p "$base/$i"; '
    'mount -t tmpfs -o size=1m "bench$i" "$base/$i" || exit 97; done; exec "$@"'
)


def filesystem_scaling(
    log_dir: Path,
    *,
    levels: Sequence[int],
    interval_ms: int,
    warmup: int,
    cycles: int,
) -> tuple[list[ScalePoint], str]:
    """Measure the filesystem scraper with `levels` extra tmpfs mounts; return points and a note."""
    prefix = unshare_prefix()
    if prefix is None:
        return [], "skipped: unshare (util-linux) is not installed"
    env = {
        "HOST_AGENT_SCRAPERS": "filesystem",
        "HOST_AGENT_FILESYSTEM_TYPES_EXCLUDE": FILESYSTEM_TYPES_EXCLUDE_WITHOUT_TMPFS,
    }
    points: list[ScalePoint] = []
    for level in levels:
        with tempfile.TemporaryDirectory(prefix="otel-host-agent-bench-mounts-") as base:
            wrapper = [*prefix, "sh", "-c", _MOUNT_SCRIPT, "sh", str(level), base]
            try:
                cpu, data_points = measure_agent(
                    log_dir,
                    f"agent-filesystem-{level}",
                    interval_ms=interval_ms,
                    warmup=warmup,
                    cycles=cycles,
                    env=env,
                    wrapper=wrapper,
                )
            except PeerFailedError as error:
                return points, f"skipped: the agent in its own mount namespace failed: {error}"
        points.append(ScalePoint("filesystem", level, cpu, data_points))
    return points, ""
