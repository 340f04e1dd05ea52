"""The collection cycle: every scraper runs, and only enabled metrics are kept."""

from __future__ import annotations

from otel_collector import config
from otel_collector.collection import Collection
from otel_collector.hostfs import HostRoot
from otel_collector.scrapers.base import ErrorLog, Point, Reading, Scraper, ScraperContext
from otel_collector.selftelemetry import AgentStats


class TwoMetricScraper(Scraper):
    """Scraper that reports two metrics whether or not they are enabled."""

    name = "memory"

    def scrape(self) -> Reading:
        return {
            "system.memory.usage": [Point(1, {"system.memory.state": "used"})],
            "system.memory.limit": [Point(2)],
        }


class FailingScraper(Scraper):
    """Scraper whose every scrape raises."""

    name = "load"

    def scrape(self) -> Reading:
        raise RuntimeError("broken source")


def test_cycle_drops_disabled_metrics() -> None:
    settings = config.resolve({}, {})
    enabled = frozenset({"system.memory.usage"})
    errors = ErrorLog()
    context = ScraperContext(settings, HostRoot("/"), enabled, errors)
    collection = Collection([FailingScraper(context), TwoMetricScraper(context)], enabled,
                            errors, AgentStats())

    collection.run_cycle()

    assert set(collection.reading) == {"system.memory.usage"}
    assert collection.points("system.memory.usage") == [Point(1, {"system.memory.state": "used"})]
    assert collection.points("system.memory.limit") == []
    assert errors.errors_by_scraper() == {"load": 1}
    assert collection.cycles == 1
