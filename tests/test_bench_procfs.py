"""The benchmark's reading of another process's CPU time, against the process's own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench import procfs

# The child burns CPU, prints its own CPU time (CLOCK_PROCESS_CPUTIME_ID), then
# blocks on stdin, so that it spends almost nothing after the print.
BURN = """
import sys, time
deadline = time.process_time() + 0.3
while time.process_time() < deadline:
    pass
print(repr(time.process_time()), flush=True)
sys.stdin.read()
"""
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def test_cpu_seconds_matches_own_clock() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        own = float(child.stdout.readline())
        seen = procfs.cpu_seconds(child.pid)
        with open(f"/proc/{child.pid}/stat", encoding="ascii") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        ticks = (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND
    finally:
        child.communicate("")

    # Read after the print: the child's own figure plus what it spent since.
    assert own <= seen < own + 0.005
    # /proc/PID/stat holds the same sum, cut to clock ticks.
    assert own > 0.3
    assert abs(seen - ticks) <= 2 / TICKS_PER_SECOND


def test_cpu_seconds_of_reaped_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        procfs.cpu_seconds(child.pid)
