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


# The child names one thread as gRPC's lifeguard thread and burns 0.2 s of CPU
# in it, then as much in the main thread. With "live" the named thread stays
# alive, with "ended" it returns. The child prints the named thread's own CPU
# time, then blocks on stdin.
NAMED_THREAD = """
import sys, threading, time
def burn(seconds):
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass
def named():
    with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as comm:
        comm.write("lifeguard")
    burn(0.2)
    spent.append(time.thread_time())
    if sys.argv[1] == "live":
        release.wait()
spent, release = [], threading.Event()
threading.Thread(target=named, daemon=True).start()
while not spent:
    time.sleep(0.01)
burn(0.2)
print(repr(spent[0]), flush=True)
sys.stdin.read()
"""

# A child that starts gRPC's C core, as a client channel does, then blocks.
GRPC_CHANNEL = """
import sys, grpc
channel = grpc.insecure_channel("127.0.0.1:9")
print("started", flush=True)
sys.stdin.read()
"""


def _named_thread_child(mode: str) -> tuple[float, float, float]:
    """Return the named thread's own CPU time, thread_seconds and cpu_seconds of the child."""
    child = subprocess.Popen(
        [sys.executable, "-c", NAMED_THREAD, mode], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        own = float(child.stdout.readline())
        named = procfs.thread_seconds(child.pid, procfs.GRPC_THREAD_NAMES)
        total = procfs.cpu_seconds(child.pid)
    finally:
        child.communicate("")
    return own, named, total


def test_thread_seconds_counts_only_named_threads() -> None:
    own, named, total = _named_thread_child("live")
    assert own >= 0.2
    assert named >= own
    assert named < own + 0.005
    # The main thread's 0.2 s is in the process total only.
    assert total > named + 0.2


def test_thread_seconds_leaves_out_ended_threads() -> None:
    own, named, total = _named_thread_child("ended")
    assert named == 0.0
    assert total > own + 0.2


def test_grpc_thread_names_match_grpcio() -> None:
    """The names in GRPC_THREAD_NAMES are those the installed grpcio gives its threads."""
    child = subprocess.Popen(
        [sys.executable, "-c", GRPC_CHANNEL], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "started\n"
        names = set()
        for task in os.listdir(f"/proc/{child.pid}/task"):
            with open(f"/proc/{child.pid}/task/{task}/comm", encoding="utf-8") as file:
                names.add(file.read().rstrip("\n"))
    finally:
        child.communicate("")
    assert set(procfs.GRPC_THREAD_NAMES) <= names, names
