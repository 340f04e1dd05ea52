"""CPU scraper: time by mode, utilization, counts and frequency (psutil)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psutil

from otel_collector.scrapers.base import Point, Reading, Scraper

# psutil's Linux fields mapped to cpu.mode. guest and guest_nice are left out
# because the kernel already counts them in user and nice (see proc(5),
# /proc/stat); softirq and irq are both interrupt time.
MODE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "user": ("user",),
    "nice": ("nice",),
    "system": ("system",),
    "idle": ("idle",),
    "iowait": ("iowait",),
    "interrupt": ("irq", "softirq"),
    "steal": ("steal",),
}


def times_by_mode(times: Any) -> dict[str, float]:
    """Fold one psutil cputimes tuple into seconds per cpu.mode."""
    return {
        mode: sum(getattr(times, name, 0.0) for name in fields)
        for mode, fields in MODE_FIELDS.items()
    }


def utilization(previous: Mapping[str, float], current: Mapping[str, float]) -> dict[str, float]:
    """Share of each mode in the time elapsed between two readings.

    Returns an empty mapping when no time elapsed, so that no made-up value
    is exported.
    """
    deltas = {mode: max(current[mode] - previous.get(mode, 0.0), 0.0) for mode in current}
    total = sum(deltas.values())
    if total <= 0:
        return {}
    return {mode: delta / total for mode, delta in deltas.items()}


def time_points(per_cpu: Sequence[Mapping[str, float]], detailed: bool) -> list[Point]:
    """Build system.cpu.time points, per logical CPU or summed over all of them."""
    if detailed:
        return [
            Point(seconds, {"cpu.mode": mode, "cpu.logical_number": number})
            for number, modes in enumerate(per_cpu)
            for mode, seconds in modes.items()
        ]
    totals: dict[str, float] = {}
    for modes in per_cpu:
        for mode, seconds in modes.items():
            totals[mode] = totals.get(mode, 0.0) + seconds
    return [Point(seconds, {"cpu.mode": mode}) for mode, seconds in totals.items()]


def utilization_points(
    previous: Sequence[Mapping[str, float]], current: Sequence[Mapping[str, float]], detailed: bool
) -> list[Point]:
    """Build system.cpu.utilization points from two readings of every CPU."""
    if len(previous) != len(current):
        return []  # a CPU went online or offline between the readings
    if detailed:
        return [
            Point(share, {"cpu.mode": mode, "cpu.logical_number": number})
            for number, (before, after) in enumerate(zip(previous, current, strict=True))
            for mode, share in utilization(before, after).items()
        ]
    summed_before = _sum_modes(previous)
    summed_after = _sum_modes(current)
    return [
        Point(share, {"cpu.mode": mode})
        for mode, share in utilization(summed_before, summed_after).items()
    ]


def _sum_modes(per_cpu: Sequence[Mapping[str, float]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for modes in per_cpu:
        for mode, seconds in modes.items():
            totals[mode] = totals.get(mode, 0.0) + seconds
    return totals


def frequency_points(frequencies: Sequence[Any]) -> list[Point]:
    """Build system.cpu.frequency points; psutil reports MHz."""
    return [
        Point(freq.current * 1e6, {"cpu.logical_number": number})
        for number, freq in enumerate(frequencies)
        if freq.current
    ]


class CpuScraper(Scraper):
    name = "cpu"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._previous: list[dict[str, float]] | None = None
        # (logical count, physical count) of the last cycle: counting cores
        # reads the topology files of every CPU (67 µs here), and the cores
        # change only when CPUs go on or offline, which changes the logical count.
        self._cores: tuple[int, int] | None = None

    def _physical_count(self, logical: int | None) -> int | None:
        """Return the number of cores, counted again only when the logical count changes."""
        if logical and self._cores is not None and self._cores[0] == logical:
            return self._cores[1]
        physical = self.read("cpu_count_physical", psutil.cpu_count, logical=False)
        self._cores = (logical, physical) if logical and physical else None
        return physical

    def scrape(self) -> Reading:
        reading: Reading = {}
        detailed = bool(self.config.per_cpu)
        if self.wants("system.cpu.time") or self.wants("system.cpu.utilization"):
            times = self.read("cpu_times", psutil.cpu_times, percpu=True)
            if times is not None:
                current = [times_by_mode(t) for t in times]
                reading["system.cpu.time"] = time_points(current, detailed)
                # The first cycle only records the baseline: the agent runs one
                # at start, so the first exported utilization is a real value.
                if self._previous is not None:
                    reading["system.cpu.utilization"] = utilization_points(
                        self._previous, current, detailed
                    )
                self._previous = current
        logical = None
        if self.wants("system.cpu.logical.count") or self.wants("system.cpu.physical.count"):
            logical = self.read("cpu_count", psutil.cpu_count, logical=True)
        if logical and self.wants("system.cpu.logical.count"):
            reading["system.cpu.logical.count"] = [Point(logical)]
        if self.wants("system.cpu.physical.count"):
            physical = self._physical_count(logical)
            if physical:
                reading["system.cpu.physical.count"] = [Point(physical)]
        if self.wants("system.cpu.frequency"):
            frequencies = self.read("cpu_freq", psutil.cpu_freq, percpu=True)
            if frequencies:
                reading["system.cpu.frequency"] = frequency_points(frequencies)
        return reading
