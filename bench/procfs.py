"""The kernel's accounting of other processes: /proc (see proc(5)) and CPU-time clocks."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

KIB = 1024
MIB = 1024 * 1024

# The clock id of a process's CPU-time clock, as glibc's clock_getcpuclockid(3)
# builds it from the PID (Linux's MAKE_PROCESS_CPUCLOCK with CPUCLOCK_SCHED).
_CPUCLOCK_SCHED = 2


def cpu_seconds(pid: int) -> float:
    """Return the CPU time of every thread of `pid`, ended ones included, in seconds.

    The kernel counts it in nanoseconds for the process's CPU-time clock (see
    clock_getcpuclockid(3)). utime plus stime of /proc/PID/stat is the same
    sum, cut to clock ticks of 10 ms. Raise ProcessLookupError when `pid` is
    gone.
    """
    try:
        return time.clock_gettime((~pid << 3) | _CPUCLOCK_SCHED)
    except OSError as error:  # EINVAL: no such process
        raise ProcessLookupError(pid) from error


# The names that gRPC's C core gives its own threads, as /proc/PID/task/TID/comm
# shows them, cut to 15 bytes by the kernel. They are the EventEngine's worker
# pool, the pool's lifeguard thread and the timer thread.
GRPC_THREAD_NAMES = ("event_engine", "lifeguard", "grpc_global_tim")


def thread_seconds(pid: int, names: tuple[str, ...]) -> float:
    """Return the CPU time of the live threads of `pid` whose name is one of `names`.

    Each thread's time is the first field of /proc/PID/task/TID/schedstat,
    in nanoseconds, which is the count that the process's CPU-time clock
    sums over all threads. A thread that ended is not counted. Raise
    ProcessLookupError when `pid` is gone.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError as error:
        raise ProcessLookupError(pid) from error
    total = 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/comm", encoding="utf-8", errors="replace") as file:
                if file.read().rstrip("\n") not in names:
                    continue
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as file:
                total += int(file.read().split()[0])
        except FileNotFoundError:
            continue  # the thread ended between the listing and the read
    return total / 1e9


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
