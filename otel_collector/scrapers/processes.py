"""Processes scraper: processes by state and processes created since boot.

The state of each process is the third field of /proc/PID/stat; the scraper
reads that one file per process, which costs less than building a
psutil.Process for each. Processes that exit while being read are skipped.
"""

from __future__ import annotations

import os
from collections import Counter

from otel_collector.scrapers.base import Point, Reading, Scraper, read_small_file

# Kernel state letters (proc(5), /proc/PID/stat field 3) mapped to process.state.
# D (uninterruptible sleep), I (idle kernel thread) and P (parked) are sleeps;
# X (dead) is skipped: the process is gone.
STATE_BY_LETTER = {
    "R": "running",
    "S": "sleeping",
    "D": "sleeping",
    "I": "sleeping",
    "P": "sleeping",
    "W": "sleeping",
    "T": "stopped",
    "t": "stopped",
    "Z": "defunct",
}


def state_letter(stat: bytes) -> str:
    """Return the state field of /proc/PID/stat; the command name before it may hold spaces."""
    return chr(stat[stat.rindex(b")") + 2])


def count_points(letters: Counter[str]) -> list[Point]:
    counts: Counter[str] = Counter()
    for letter, count in letters.items():
        state = STATE_BY_LETTER.get(letter)
        if state is not None:
            counts[state] += count
    return [Point(counts[state], {"process.state": state}) for state in
            ("running", "sleeping", "stopped", "defunct")]


def parse_created(proc_stat: str) -> int | None:
    """Return the "processes" line of /proc/stat: forks since boot."""
    for line in proc_stat.splitlines():
        if line.startswith("processes "):
            return int(line.split()[1])
    return None


class ProcessesScraper(Scraper):
    name = "processes"

    def _letters(self) -> Counter[str]:
        letters: Counter[str] = Counter()
        procfs = self.host.procfs
        for name in os.listdir(procfs):
            if not name.isdigit():
                continue
            try:
                letters[state_letter(read_small_file(f"{procfs}/{name}/stat"))] += 1
            except (OSError, ValueError, IndexError):
                continue  # the process exited between the listing and the read
        return letters

    def scrape(self) -> Reading:
        reading: Reading = {}
        if self.wants("system.process.count"):
            letters = self.read("proc_pid_stat", self._letters)
            if letters is not None:
                reading["system.process.count"] = count_points(letters)
        if self.wants("system.process.created"):
            text = self.read("proc_stat", self.host.read_text, "/proc/stat")
            created = parse_created(text) if text is not None else None
            if created is not None:
                reading["system.process.created"] = [Point(created)]
        return reading
