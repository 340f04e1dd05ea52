"""Kernel scraper: file handles, entropy, the clock's NTP state and SELinux mode.

/proc/sys/fs/file-nr has three numbers: file handles allocated, allocated but
unused (always 0 since Linux 2.6), and the limit, fs.file-max. The first
number comes from a per-CPU counter read without summing, so it is an
estimate that can lag by a few handles a CPU. At the limit,
processes without CAP_SYS_ADMIN fail to open files, sockets and pipes (ENFILE).
/proc/sys/kernel/random/entropy_avail has the bits of entropy the kernel
estimates it holds, which read 256 at all times since Linux 5.18, when the
random number generator stopped blocking once seeded. The conventions have
no name for either area, so the metrics are system.linux.file_handle.* and
system.linux.entropy.available. Both files are host-wide, also in a container.

The clock's state comes from adjtimex(2) with no mode bits set, which only
reads and needs no privilege: whether an NTP daemon (chronyd, ntpd,
systemd-timesyncd) keeps the kernel's clock synchronized, and the offset and
error bounds that it last set. The system clock is not namespaced, so a
container reads the host's. These are system.linux.clock.*.

SELinux is enabled when the host has its file system, selinuxfs, at
/sys/fs/selinux, whose enforce file reads 1 in enforcing mode and 0 in
permissive mode.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Any, Final

from otel_collector.scrapers.base import Point, Reading, Scraper, read_small_file

CLOCK_METRICS: Final = (
    "system.linux.clock.synchronized",
    "system.linux.clock.offset",
    "system.linux.clock.max_error",
    "system.linux.clock.estimated_error",
)
# adjtimex(2): the clock state returned while the clock is not synchronized,
# and the status bit that makes offset count nanoseconds instead of microseconds.
_TIME_ERROR: Final = 5
_STA_NANO: Final = 0x2000
_MICROSECONDS_PER_SECOND: Final = 1_000_000
_NANOSECONDS_PER_SECOND: Final = 1_000_000_000


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Timex(ctypes.Structure):
    """struct timex of <sys/timex.h>, whose layout Linux and glibc share."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("reserved", ctypes.c_int * 11),
    )


@dataclass(frozen=True)
class ClockState:
    """The kernel clock's NTP state, in seconds."""

    synchronized: bool
    offset_s: float
    max_error_s: float
    estimated_error_s: float


def clock_state(state: int, timex: _Timex) -> ClockState:
    """Convert what adjtimex returned, and the struct it filled, to seconds.

    NOTE: kernels without the fix "ntp: Remove invalid cast in time offset
    math" (December 2024) return a negative offset in microsecond mode cast
    to 32 bits unsigned, about +4.29 s. The value is passed on as read.
    """
    offset_unit = _NANOSECONDS_PER_SECOND if timex.status & _STA_NANO else _MICROSECONDS_PER_SECOND
    return ClockState(
        synchronized=state != _TIME_ERROR,
        offset_s=timex.offset / offset_unit,
        max_error_s=timex.maxerror / _MICROSECONDS_PER_SECOND,
        estimated_error_s=timex.esterror / _MICROSECONDS_PER_SECOND,
    )


def read_clock(libc: ctypes.CDLL) -> ClockState:
    """Read the clock's state with adjtimex(2); raises OSError when the call fails."""
    timex = _Timex()  # modes 0: read only
    state = libc.adjtimex(ctypes.byref(timex))
    if state == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, f"adjtimex failed: {os.strerror(errno)}")
    return clock_state(state, timex)


def parse_file_nr(text: bytes, path: str) -> tuple[int, int]:
    """Return the file handles in use and the limit from /proc/sys/fs/file-nr.

    Raises ValueError, naming `path`, when the file does not have three numbers.
    """
    fields = text.split()
    if len(fields) != 3 or not all(field.isdigit() for field in fields):
        raise ValueError(f"invalid {path}: expected 3 numbers, got {text[:80]!r}")
    allocated, unused, limit = (int(field) for field in fields)
    return allocated - unused, limit


class KernelScraper(Scraper):
    name = "kernel"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The C library that the interpreter is linked with.
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.adjtimex.argtypes = (ctypes.POINTER(_Timex),)
        self._libc.adjtimex.restype = ctypes.c_int

    def _file_handles(self) -> tuple[int, int]:
        path = f"{self.host.procfs}/sys/fs/file-nr"
        return parse_file_nr(read_small_file(path), path)

    def _entropy(self) -> int:
        return int(read_small_file(f"{self.host.procfs}/sys/kernel/random/entropy_avail"))

    def _selinux(self) -> tuple[int, int | None]:
        """Return whether SELinux is enabled and, if it is, whether it enforces."""
        try:
            enforce = read_small_file(self.host.path("/sys/fs/selinux/enforce"))
        except FileNotFoundError:
            return 0, None
        return 1, int(enforce)

    def scrape(self) -> Reading:
        reading: Reading = {}
        if self.wants("system.linux.selinux.enabled") or self.wants(
            "system.linux.selinux.enforcing"
        ):
            selinux = self.read("selinux", self._selinux)
            if selinux is not None:
                reading["system.linux.selinux.enabled"] = [Point(selinux[0])]
                if selinux[1] is not None:
                    reading["system.linux.selinux.enforcing"] = [Point(selinux[1])]
        if self.wants("system.linux.file_handle.count") or self.wants(
            "system.linux.file_handle.limit"
        ):
            handles = self.read("file-nr", self._file_handles)
            if handles is not None:
                reading["system.linux.file_handle.count"] = [Point(handles[0])]
                reading["system.linux.file_handle.limit"] = [Point(handles[1])]
        if self.wants_any(CLOCK_METRICS):
            clock = self.read("adjtimex", read_clock, self._libc)
            if clock is not None:
                values = (
                    int(clock.synchronized),
                    clock.offset_s,
                    clock.max_error_s,
                    clock.estimated_error_s,
                )
                for metric, value in zip(CLOCK_METRICS, values, strict=True):
                    reading[metric] = [Point(value)]
        if self.wants("system.linux.entropy.available"):
            entropy = self.read("entropy_avail", self._entropy)
            if entropy is not None:
                reading["system.linux.entropy.available"] = [Point(entropy)]
        return reading
