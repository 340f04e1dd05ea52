"""The kernel's accounting of other processes, read from /proc (see proc(5))."""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
KIB = 1024
MIB = 1024 * 1024


def cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time of every thread of `pid`, in seconds.

    The fields are utime and stime, fields 14 and 15 of /proc/PID/stat. They
    count in clock ticks (SC_CLK_TCK, 100 per second on this machine), so one reading
    is exact to 10 ms: divide a difference over many cycles by their number.
    """
    with open(f"/proc/{pid}/stat", "rb") as file:
        stat = file.read().decode("ascii", "replace")
    # The command name in field 2 may contain spaces and parentheses, so split
    # after its closing parenthesis; field 3 is then the first one.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS_PER_SECOND


@dataclass(frozen=True)
class Memory:
    """Resident memory of a process, from /proc/PID/status, in bytes."""

    rss: int  # VmRSS: resident now
    hwm: int  # VmHWM: the peak of VmRSS
    anonymous: int  # RssAnon: the heap and other private memory, without mapped files


def memory(pid: int) -> Memory:
    """Return VmRSS, VmHWM and RssAnon of `pid`."""
    fields = {"VmRSS:": 0, "VmHWM:": 0, "RssAnon:": 0}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as file:
        for line in file:
            key = line.split(maxsplit=1)[0] if line.strip() else ""
            if key in fields:
                fields[key] = int(line.split()[1]) * KIB
    return Memory(fields["VmRSS:"], fields["VmHWM:"], fields["RssAnon:"])


def process_count() -> int:
    """Return the number of processes on the host, as the /proc listing shows them."""
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def children(pid: int) -> list[int]:
    """Return the child processes of `pid`, from /proc/PID/task/*/children."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as file:
                found.extend(int(child) for child in file.read().split())
        except FileNotFoundError:
            continue
    return found
