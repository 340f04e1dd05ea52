"""Series pruning: the SDK forgets series the cycle no longer reports."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from otel_collector import config, instruments
from otel_collector.collection import Collection
from otel_collector.exporter import CollectingReader, DiscardingExporter
from otel_collector.hostfs import HostRoot
from otel_collector.scrapers.base import ErrorLog, Point, Reading, Scraper, ScraperContext
from otel_collector.selftelemetry import AgentStats
from otel_collector.series import SeriesPruner


class ChurningScraper(Scraper):
    """Stands in for process churn: every cycle reports five new pids."""

    name = "process"

    def __init__(self, context: ScraperContext) -> None:
        super().__init__(context)
        self.cycle = 0
        self.fail = False

    def scrape(self) -> Reading:
        self.cycle += 1
        if self.fail:
            return {}
        return {"process.uptime": [Point(1.0, {"process.pid": self.cycle * 10 + i}) for i in range(5)]}


def _agent_parts() -> tuple[CollectingReader, SeriesPruner, Collection, ChurningScraper]:
    settings = config.resolve({}, {"HOST_AGENT_SCRAPERS": "process"})
    enabled = frozenset({"process.uptime"})
    context = ScraperContext(settings, HostRoot("/"), enabled, ErrorLog())
    scraper = ChurningScraper(context)
    collection = Collection([scraper], enabled, context.errors, AgentStats())
    reader = CollectingReader(DiscardingExporter(), before_collect=collection.run_cycle,
                              export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    instruments.register(provider, collection, enabled)
    pruner = SeriesPruner(provider, reader)
    reader.after_collect = lambda: pruner.prune(collection.reading) and None
    return reader, pruner, collection, scraper


def _series_count(pruner: SeriesPruner) -> int:
    return sum(len(match._attributes_aggregation) for matches in pruner._matches().values()
               for match in matches)


@pytest.mark.faults
def test_churned_series_are_forgotten() -> None:
    reader, pruner, _, _ = _agent_parts()
    for _ in range(50):
        reader.collect()
    assert _series_count(pruner) == 5
    reader.shutdown()


def test_series_kept_while_source_fails() -> None:
    reader, pruner, _, scraper = _agent_parts()
    reader.collect()
    scraper.fail = True
    reader.collect()
    assert _series_count(pruner) == 5
    reader.shutdown()
