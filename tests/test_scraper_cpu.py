"""CPU scraper: shaping of canned readings, and the real scraper against /proc/stat."""

from __future__ import annotations

import os
import time
from collections import namedtuple

import pytest
from scraper_context import make_scraper, value, values

from otel_collector.scrapers import cpu

Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_modes_fold_interrupts_and_skip_guest() -> None:
    modes = cpu.times_by_mode(Times(10, 1, 5, 100, 2, 0.5, 0.25, 0.1, 3, 0.4))
    assert modes["interrupt"] == 0.75
    assert modes["user"] == 10
    assert "guest" not in modes
    assert sum(modes.values()) == pytest.approx(10 + 1 + 5 + 100 + 2 + 0.75 + 0.1)


def test_utilization_is_share_of_elapsed_time() -> None:
    before = {"user": 10.0, "idle": 90.0}
    after = {"user": 13.0, "idle": 91.0}
    shares = cpu.utilization(before, after)
    assert shares == {"user": 0.75, "idle": 0.25}


def test_utilization_empty_when_no_time_elapsed() -> None:
    assert cpu.utilization({"user": 1.0}, {"user": 1.0}) == {}


def test_time_points_sum_cpus_or_keep_them_apart() -> None:
    per_cpu = [{"user": 1.0, "idle": 2.0}, {"user": 3.0, "idle": 4.0}]
    summed = {p.attributes["cpu.mode"]: p.value for p in cpu.time_points(per_cpu, detailed=False)}
    assert summed == {"user": 4.0, "idle": 6.0}
    detailed = cpu.time_points(per_cpu, detailed=True)
    assert len(detailed) == 4
    assert {p.attributes["cpu.logical_number"] for p in detailed} == {0, 1}


def test_frequency_converts_mhz_to_hz() -> None:
    Freq = namedtuple("Freq", "current min max")
    points = cpu.frequency_points([Freq(2400.0, 800, 3000), Freq(0.0, 0, 0)])
    assert [(p.value, p.attributes["cpu.logical_number"]) for p in points] == [(2.4e9, 0)]


def _proc_stat_seconds() -> dict[str, float]:
    """Independent reading: the "cpu" line of /proc/stat in USER_HZ ticks."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as file:
        fields = file.readline().split()
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    return {name: int(raw) / ticks for name, raw in zip(names, fields[1:], strict=False)}


def test_cpu_time_against_proc_stat() -> None:
    before = _proc_stat_seconds()
    reading = make_scraper("cpu").scrape()
    after = _proc_stat_seconds()
    for mode, field in (("user", "user"), ("system", "system"), ("idle", "idle")):
        exported = value(reading, "system.cpu.time", **{"cpu.mode": mode})
        # A tick or two per CPU may pass between the readings.
        assert before[field] - 0.05 <= exported <= after[field] + 0.05, mode


def test_first_scrape_is_baseline_second_has_utilization() -> None:
    scraper = make_scraper("cpu", {"HOST_AGENT_METRICS_ENABLE": "system.cpu.utilization"})
    first = scraper.scrape()
    assert "system.cpu.utilization" not in first
    # /proc/stat counts in ticks of 10 ms (USER_HZ 100), and with no tick between
    # the two readings there is no utilization to export. A busy loop of a fixed
    # size can end within one tick on a fast machine, but 100 ms of sleep spans ten.
    time.sleep(0.1)
    second = scraper.scrape()
    shares = values(second, "system.cpu.utilization")
    assert shares
    assert sum(shares) == pytest.approx(1.0)
    assert all(0.0 <= share <= 1.0 for share in shares)


def test_counts_against_os() -> None:
    reading = make_scraper("cpu").scrape()
    assert value(reading, "system.cpu.logical.count") == os.cpu_count()
    assert value(reading, "system.cpu.physical.count") >= 1


def test_per_cpu_adds_logical_number() -> None:
    reading = make_scraper("cpu", {"HOST_AGENT_PER_CPU": "true"}).scrape()
    numbers = {p.attributes["cpu.logical_number"] for p in reading["system.cpu.time"]}
    assert numbers == set(range(os.cpu_count() or 1))


def test_failing_source_costs_only_its_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake cpu_freq that raises stands in for a kernel without cpufreq."""

    def unsupported(*_args: object, **_kwargs: object) -> None:
        raise NotImplementedError("cpufreq not available")

    monkeypatch.setattr(cpu.psutil, "cpu_freq", unsupported)
    scraper = make_scraper("cpu")
    reading = scraper.scrape()
    assert "system.cpu.frequency" not in reading
    assert reading["system.cpu.time"]
    assert scraper.context.errors.errors_by_scraper() == {"cpu": 1}


def test_cores_counted_again_only_on_hotplug(monkeypatch: pytest.MonkeyPatch) -> None:
    """psutil.cpu_count is wrapped: a recorder around the real call, and a CPU
    going offline is faked by lowering the logical count, which a test cannot
    do to the real host."""
    real_count = cpu.psutil.cpu_count
    physical_calls = []
    offline = 0

    def recording_count(logical: bool = True) -> int | None:
        if not logical:
            physical_calls.append(1)
            return real_count(logical=False)
        found = real_count(logical=True)
        return None if found is None else found - offline

    monkeypatch.setattr(cpu.psutil, "cpu_count", recording_count)
    scraper = make_scraper("cpu")
    for _ in range(5):
        reading = scraper.scrape()
    assert len(physical_calls) == 1
    assert value(reading, "system.cpu.physical.count") == real_count(logical=False)

    offline = 1
    reading = scraper.scrape()
    assert len(physical_calls) == 2
    assert value(reading, "system.cpu.logical.count") == real_count(logical=True) - 1
