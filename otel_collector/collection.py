"""The collection cycle: run every scraper once and keep the points for the callbacks."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog

from otel_collector.scrapers.base import ErrorLog, Point, Reading, Scraper, keep
from otel_collector.selftelemetry import AgentStats

_log = structlog.get_logger(__name__)


class Collection:
    """Runs the scrapers in order and publishes one cycle's points at once.

    ``run_cycle`` is called from the metric reader's thread right before the
    SDK invokes the observable callbacks, which then read ``points``.
    """

    def __init__(
        self,
        scrapers: Sequence[Scraper],
        enabled: frozenset[str],
        errors: ErrorLog,
        stats: AgentStats,
        on_cycle: Callable[[], None] = lambda: None,
    ) -> None:
        self._scrapers = scrapers
        self._enabled = enabled
        self._errors = errors
        self._stats = stats
        self._on_cycle = on_cycle
        self._points: Reading = {}
        self.cycles = 0

    def run_cycle(self) -> None:
        points: Reading = {}
        for scraper in self._scrapers:
            started = time.perf_counter()
            try:
                reading = scraper.scrape()
            except Exception as error:  # noqa: BLE001 - one scraper's bug must not stop the rest
                self._errors.failed(
                    scraper.name, "scrape", "scraper_failed",
                    error=f"{type(error).__name__}: {error}",
                )
                reading = {}
            else:
                self._errors.succeeded(scraper.name, "scrape")
            self._stats.scraper_took(scraper.name, time.perf_counter() - started)
            points.update(keep(reading, self._enabled))
        self._points = points
        self.cycles += 1
        self._on_cycle()

    def points(self, metric: str) -> list[Point]:
        return self._points.get(metric, [])

    @property
    def reading(self) -> Reading:
        """This cycle's points of every metric that produced a reading."""
        return self._points

    def close(self) -> None:
        for scraper in self._scrapers:
            scraper.close()
