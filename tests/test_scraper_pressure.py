"""Pressure scraper: /proc/pressure parsed, read on this host, and missing or broken files."""

from __future__ import annotations

from pathlib import Path

import pytest
from scraper_context import make_scraper, value

from otel_collector.scrapers import pressure

PRESSURE = Path("/proc/pressure")
# The format of Linux 6.x: "some" and "full", each with three averages and a total.
IO_FILE = (
    b"some avg10=0.45 avg60=0.60 avg300=0.42 total=10703087\n"
    b"full avg10=0.34 avg60=0.50 avg300=0.36 total=9165481\n"
)


def test_parse_converts_microseconds_to_seconds() -> None:
    totals = pressure.parse_pressure(IO_FILE, "/proc/pressure/io")

    assert totals == {"some": 10.703087, "full": 9.165481}


def test_parse_keeps_the_lines_present() -> None:
    # cpu before Linux 5.13 has only "some", and irq only "full".
    cpu = b"some avg10=0.00 avg60=0.00 avg300=0.00 total=42\n"
    irq = b"full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n"

    assert pressure.parse_pressure(cpu, "cpu") == {"some": 0.000042}
    assert pressure.parse_pressure(irq, "irq") == {"full": 0.000007}


@pytest.mark.parametrize("text", [b"", b"some avg10=0.00\n", b"total=5\n"])
def test_parse_rejects_a_file_without_totals(text: bytes) -> None:
    with pytest.raises(ValueError, match="/proc/pressure/memory"):
        pressure.parse_pressure(text, "/proc/pressure/memory")


@pytest.mark.skipif(not PRESSURE.is_dir(), reason="this kernel has no /proc/pressure")
def test_pressure_between_two_readings_of_the_files() -> None:
    """Totals only grow, so each point lies between the file read before and after it."""
    resources = [path.name for path in sorted(PRESSURE.iterdir())]
    before = {
        name: pressure.parse_pressure((PRESSURE / name).read_bytes(), name) for name in resources
    }
    reading = make_scraper("pressure").scrape()
    after = {
        name: pressure.parse_pressure((PRESSURE / name).read_bytes(), name) for name in resources
    }

    for name in resources:
        metric = pressure.metric_name(name)
        assert {point.attributes["system.pressure.stall_type"] for point in reading[metric]} == set(
            before[name]
        ), name
        for stall_type, seconds in before[name].items():
            scraped = value(reading, metric, **{"system.pressure.stall_type": stall_type})
            assert seconds <= scraped <= after[name][stall_type], (name, stall_type)


def test_missing_pressure_directory_is_not_an_error(tmp_path: Path) -> None:
    # A kernel without PSI, or booted with psi=0, has no /proc/pressure.
    (tmp_path / "proc").mkdir()
    scraper = make_scraper("pressure", root=str(tmp_path))

    assert scraper.scrape() == {}
    assert scraper.context.errors.errors_by_scraper() == {}


def test_broken_file_costs_only_its_resource(tmp_path: Path) -> None:
    directory = tmp_path / "proc" / "pressure"
    directory.mkdir(parents=True)
    (directory / "io").write_bytes(IO_FILE)
    (directory / "memory").write_bytes(b"not pressure stall information\n")
    scraper = make_scraper("pressure", root=str(tmp_path))

    reading = scraper.scrape()

    assert set(reading) == {"system.io.linux.pressure.total"}
    assert value(
        reading, "system.io.linux.pressure.total", **{"system.pressure.stall_type": "full"}
    ) == 9.165481
    assert scraper.context.errors.errors_by_scraper() == {"pressure": 1}
