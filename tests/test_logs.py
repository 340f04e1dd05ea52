"""The repeat filter for library log records."""

from __future__ import annotations

import logging

from otel_collector.logs import RepeatFilter


def record(message: str, name: str = "grpc._channel") -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, None, None)


class Clock:
    """A settable clock: the host's uptime cannot be chosen by a test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_first_record_passes_soon_after_boot() -> None:
    # time.monotonic() is the uptime on Linux: 5 s after boot is inside a 600 s window.
    repeat_filter = RepeatFilter(window_s=600, clock=Clock(5.0))
    assert repeat_filter.filter(record("export to 10.0.0.1:4317 failed"))


def test_repeats_counted_until_window_ends() -> None:
    clock = Clock(5.0)
    repeat_filter = RepeatFilter(window_s=600, clock=clock)
    assert repeat_filter.filter(record("export failed, retrying in 1 s"))
    clock.now = 300.0
    assert not repeat_filter.filter(record("export failed, retrying in 2 s"))
    assert not repeat_filter.filter(record("export failed, retrying in 4 s"))
    assert repeat_filter.filter(record("another message"))
    clock.now = 605.0
    later = record("export failed, retrying in 8 s")
    assert repeat_filter.filter(later)
    assert later.repeated == 2  # type: ignore[attr-defined]


def test_agent_records_never_filtered() -> None:
    repeat_filter = RepeatFilter(window_s=600, clock=Clock(5.0))
    for _ in range(3):
        assert repeat_filter.filter(record("cycle", name="otel_collector.agent"))
