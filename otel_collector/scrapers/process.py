"""Process scraper (opt-in): CPU, memory, I/O, threads, descriptors and faults per process.

Each cycle reads /proc/PID/stat of every process once: that one file holds
the name, parent, CPU ticks, faults, threads, start time and memory used to
filter and rank them. Only the selected processes (the top N after the
include and exclude filters) are then read in full with psutil. Fields the
agent may not read (another user's /proc/PID/io or fd/ when it runs as a
non-root user) are left out of that process's points, counted, and
summarized in at most one debug line per cycle.

Identity (pid, parent pid, executable, owner, command line when asked) rides
on each point here, because one MeterProvider has one resource and the SDK
keeps series apart by their point attributes. The encoder moves it to a
resource per process when it builds the export request (encoding.py).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psutil
import structlog

from otel_collector.scrapers.base import Point, Reading, Scraper, read_small_file

_log = structlog.get_logger(__name__)

# USER_HZ: the unit of the CPU times and start time in /proc/PID/stat (proc(5)).
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of /proc/PID/stat the scraper uses (proc(5) numbers them from 1)."""

    pid: int
    name: str  # field 2, the kernel's 15-character comm
    ppid: int  # field 4
    minor_faults: int  # field 10
    major_faults: int  # field 12
    user_ticks: int  # field 14
    system_ticks: int  # field 15
    threads: int  # field 20
    start_ticks: int  # field 22, since boot
    virtual_bytes: int  # field 23
    rss_pages: int  # field 24, approximate: used only to rank by memory

    @property
    def cpu_ticks(self) -> int:
        return self.user_ticks + self.system_ticks


def parse_stat(text: str) -> ProcStat:
    """Parse /proc/PID/stat; the name sits in parentheses and may hold spaces or ')'."""
    open_paren = text.index("(")
    close_paren = text.rindex(")")
    rest = text[close_paren + 2 :].split()
    # rest[0] is field 3 (state), so field n is rest[n - 3].
    return ProcStat(
        pid=int(text[:open_paren]),
        name=text[open_paren + 1 : close_paren],
        ppid=int(rest[1]),
        minor_faults=int(rest[7]),
        major_faults=int(rest[9]),
        user_ticks=int(rest[11]),
        system_ticks=int(rest[12]),
        threads=int(rest[17]),
        start_ticks=int(rest[19]),
        virtual_bytes=int(rest[20]),
        rss_pages=int(rest[21]),
    )


def select(
    stats: Iterable[ProcStat],
    previous: dict[tuple[int, int], tuple[int, int]],
    *,
    top: int,
    by: str,
) -> list[ProcStat]:
    """Return the ``top`` processes by CPU used since the previous cycle, or by memory.

    ``previous`` maps each process to its user and system ticks at the previous
    cycle. A process seen for the first time is ranked by all the CPU it has
    used. ``top`` 0 keeps every process.
    """

    def cpu_since_previous(stat: ProcStat) -> int:
        return stat.cpu_ticks - sum(previous.get((stat.pid, stat.start_ticks), (0, 0)))

    key = cpu_since_previous if by == "cpu" else (lambda stat: stat.rss_pages)
    ranked = sorted(stats, key=key, reverse=True)
    return ranked if top == 0 else ranked[:top]


def stat_points(stat: ProcStat, identity: dict[str, Any], uptime_s: float) -> Reading:
    """Shape the metrics that come from /proc/PID/stat alone."""

    def tagged(extra: dict[str, Any]) -> dict[str, Any]:
        return {**identity, **extra}

    return {
        "process.cpu.time": [
            Point(stat.user_ticks / TICKS_PER_SECOND, tagged({"cpu.mode": "user"})),
            Point(stat.system_ticks / TICKS_PER_SECOND, tagged({"cpu.mode": "system"})),
        ],
        "process.thread.count": [Point(stat.threads, identity)],
        "process.paging.faults": [
            Point(stat.major_faults, tagged({"system.paging.fault.type": "major"})),
            Point(stat.minor_faults, tagged({"system.paging.fault.type": "minor"})),
        ],
        "process.uptime": [
            Point(max(uptime_s - stat.start_ticks / TICKS_PER_SECOND, 0.0), identity)
        ],
    }


def utilization_points(
    stat: ProcStat,
    previous: tuple[int, int] | None,
    elapsed_s: float,
    cpus: int,
    identity: dict[str, Any],
) -> list[Point]:
    """Build process.cpu.utilization: CPU time by mode over `elapsed_s` times `cpus`.

    `previous` is the user and system ticks of the last reading, and None
    measures from the start of the process, when its CPU time was 0.
    Returns no point when no time elapsed.
    """
    if elapsed_s <= 0 or cpus <= 0:
        return []
    user_before, system_before = previous or (0, 0)
    capacity_ticks = elapsed_s * cpus * TICKS_PER_SECOND
    return [
        Point(max(stat.user_ticks - user_before, 0) / capacity_ticks,
              {**identity, "cpu.mode": "user"}),
        Point(max(stat.system_ticks - system_before, 0) / capacity_ticks,
              {**identity, "cpu.mode": "system"}),
    ]


class ProcessScraper(Scraper):
    name = "process"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = self.config
        self._names_include: tuple[re.Pattern[str], ...] = config.process_names_include
        self._names_exclude: tuple[re.Pattern[str], ...] = config.process_names_exclude
        self._commands_include: tuple[re.Pattern[str], ...] = config.process_command_lines_include
        self._commands_exclude: tuple[re.Pattern[str], ...] = config.process_command_lines_exclude
        # User and system ticks of the live processes, and the host's uptime, at
        # the previous cycle: for ranking by recent CPU and for
        # process.cpu.utilization. Rebuilt every cycle, so exited processes leave nothing.
        self._previous: dict[tuple[int, int], tuple[int, int]] = {}
        self._previous_uptime_s: float | None = None

    def _read_stats(self) -> list[ProcStat]:
        procfs = self.host.procfs
        stats = []
        for name in os.listdir(procfs):
            if not name.isdigit():
                continue
            try:
                stat = read_small_file(f"{procfs}/{name}/stat")
                stats.append(parse_stat(stat.decode("utf-8", "replace")))
            except (OSError, ValueError, IndexError):
                continue  # the process exited between the listing and the read
        return stats

    def _command_line(self, pid: int) -> str | None:
        try:
            with open(f"{self.host.procfs}/{pid}/cmdline", "rb") as file:
                return file.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            return None

    def _admitted(self, stat: ProcStat) -> bool:
        if self._names_include and not any(p.fullmatch(stat.name) for p in self._names_include):
            return False
        if any(p.fullmatch(stat.name) for p in self._names_exclude):
            return False
        if not (self._commands_include or self._commands_exclude):
            return True
        command = self._command_line(stat.pid) or ""
        if self._commands_include and not any(p.search(command) for p in self._commands_include):
            return False
        return not any(p.search(command) for p in self._commands_exclude)

    def _details(self, stat: ProcStat, denied: Counter[str]) -> tuple[dict[str, Any], Reading]:
        """Read what /proc/PID/stat lacks, with psutil; denied fields are left out."""
        identity: dict[str, Any] = {
            "process.pid": stat.pid,
            "process.parent_pid": stat.ppid,
            "process.executable.name": stat.name,
        }
        reading: Reading = {}
        process = psutil.Process(stat.pid)
        with process.oneshot():
            for field, read in (
                ("memory", process.memory_info),
                ("exe", process.exe),
                ("owner", process.username),
                ("io", process.io_counters),
                ("fds", process.num_fds),
                ("ctx", process.num_ctx_switches),
            ):
                try:
                    value = read()
                except psutil.AccessDenied:
                    denied[field] += 1
                    continue
                if field == "memory":
                    # statm, which the kernel keeps exact; stat's rss field is an
                    # approximation on kernels with per-CPU RSS counters.
                    reading["process.memory.usage"] = [Point(value.rss)]
                    reading["process.memory.virtual"] = [Point(value.vms)]
                elif field == "exe" and value:
                    identity["process.executable.path"] = value
                    identity["process.executable.name"] = os.path.basename(value)
                elif field == "owner":
                    identity["process.owner"] = value
                elif field == "io":
                    reading["process.disk.io"] = [
                        Point(value.read_bytes, {"disk.io.direction": "read"}),
                        Point(value.write_bytes, {"disk.io.direction": "write"}),
                    ]
                elif field == "fds":
                    reading["process.unix.file_descriptor.count"] = [Point(value)]
                elif field == "ctx":
                    reading["process.context_switches"] = [
                        Point(value.voluntary, {"process.context_switch.type": "voluntary"}),
                        Point(value.involuntary, {"process.context_switch.type": "involuntary"}),
                    ]
        if self.config.process_command_line:
            command = self._command_line(stat.pid)
            if command:
                identity["process.command_line"] = command
        return identity, reading

    def _collect(self) -> Reading:
        uptime_s = float(self.host.read_text("/proc/uptime").split(maxsplit=1)[0])
        stats = [stat for stat in self._read_stats() if self._admitted(stat)]
        chosen = select(
            stats, self._previous, top=self.config.process_top, by=self.config.process_top_by
        )
        previous, previous_uptime_s = self._previous, self._previous_uptime_s
        self._previous = {(s.pid, s.start_ticks): (s.user_ticks, s.system_ticks) for s in stats}
        self._previous_uptime_s = uptime_s
        with_utilization = self.wants("process.cpu.utilization")
        reading: Reading = {}
        denied: Counter[str] = Counter()
        for stat in chosen:
            try:
                identity, details = self._details(stat, denied)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # exited since the stat read: skipped quietly
            for name, points in stat_points(stat, identity, uptime_s).items():
                reading.setdefault(name, []).extend(points)
            if with_utilization:
                reading.setdefault("process.cpu.utilization", []).extend(
                    self._utilization(stat, identity, uptime_s, previous, previous_uptime_s)
                )
            for name, points in details.items():
                reading.setdefault(name, []).extend(
                    Point(p.value, {**identity, **p.attributes}) for p in points
                )
        if denied:
            _log.debug("process_fields_denied", scraper=self.name, fields=dict(denied))
        return reading

    def _utilization(
        self,
        stat: ProcStat,
        identity: dict[str, Any],
        uptime_s: float,
        previous: dict[tuple[int, int], tuple[int, int]],
        previous_uptime_s: float | None,
    ) -> list[Point]:
        """Return the utilization points since the previous cycle, or since the start if new.

        The CPUs available to the process are its affinity mask.
        NOTE: a cgroup CPU quota (a container's CPU limit) is not taken into account.
        """
        ticks = previous.get((stat.pid, stat.start_ticks))
        if ticks is not None and previous_uptime_s is not None:
            elapsed_s = uptime_s - previous_uptime_s
        else:
            ticks = None
            elapsed_s = uptime_s - stat.start_ticks / TICKS_PER_SECOND
        try:
            cpus = len(os.sched_getaffinity(stat.pid))
        except OSError:
            return []  # the process exited since its stat was read
        return utilization_points(stat, ticks, elapsed_s, cpus, identity)

    def scrape(self) -> Reading:
        return self.read("proc", self._collect) or {}
