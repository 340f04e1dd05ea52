"""Processes and system scrapers against this host's /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from scraper_context import make_scraper, value

from otel_collector.scrapers import processes, system


def test_state_letter_after_command_with_spaces() -> None:
    assert processes.state_letter(b"42 (my (odd) cmd) Z 1 2 3") == "Z"


def test_counts_map_kernel_states() -> None:
    from collections import Counter

    points = processes.count_points(Counter({"R": 2, "S": 5, "D": 1, "I": 3, "Z": 1, "t": 1, "X": 4}))
    counts = {p.attributes["process.state"]: p.value for p in points}
    assert counts == {"running": 2, "sleeping": 9, "stopped": 1, "defunct": 1}


def test_zombie_counted_as_defunct() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{child.pid}/stat", "rb") as file:
            if processes.state_letter(file.read()) == "Z":
                break
        time.sleep(0.02)
    try:
        reading = make_scraper("processes").scrape()
        assert value(reading, "system.process.count", **{"process.state": "defunct"}) >= 1
    finally:
        child.wait()


def test_total_matches_proc_listing() -> None:
    reading = make_scraper("processes").scrape()
    total = sum(p.value for p in reading["system.process.count"])
    listed = len([name for name in os.listdir("/proc") if name.isdigit()])
    assert abs(total - listed) <= 5  # processes come and go between the two listings


def test_created_against_proc_stat() -> None:
    reading = make_scraper("processes").scrape()
    created = value(reading, "system.process.created")
    with open("/proc/stat") as file:
        line = next(line for line in file if line.startswith("processes "))
    assert created <= int(line.split()[1])
    assert created > 0


def test_uptime_against_proc_uptime() -> None:
    reading = make_scraper("system").scrape()
    with open("/proc/uptime") as file:
        uptime = float(file.read().split()[0])
    assert abs(value(reading, "system.uptime") - uptime) < 1.0
    assert system.parse_uptime("350735.47 234388.90\n") == 350735.47


def test_load_against_getloadavg() -> None:
    reading = make_scraper("load").scrape()
    assert value(reading, "system.cpu.load_average.15m") == os.getloadavg()[2]
