"""Series pruning, and the aggregation keys that the SDK builds from attribute sets."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import Any

import pytest
from module_copies import fresh_copy
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal import _view_instrument_match

from otel_collector import config, instruments
from otel_collector.collection import Collection
from otel_collector.exporter import CollectingReader, DiscardingExporter
from otel_collector.hostfs import HostRoot
from otel_collector.scrapers.base import ErrorLog, Point, Reading, Scraper, ScraperContext
from otel_collector.selftelemetry import AgentStats
from otel_collector.series import SeriesPruner, exact_size_key, use_exact_size_keys


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
    # Each test shuts the reader down, so the provider must not do it again at exit.
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
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


def _sdk_key_function() -> Any:
    """Return the SDK's key function from a copy of its module that nothing has replaced."""
    return fresh_copy(_view_instrument_match)._hash_attributes


@pytest.mark.parametrize(
    "value",
    [
        {"system.device": "/dev/vda", "system.filesystem.state": "used", "mode": "rw"},
        {"b": 1, "a": 1.0, "c": True, "d": None, "e": b"x"},
        {"list": ["x", "y"], "tuple": (1, 2), "nested": {"z": 1, "y": [True]}},
        {1: "non-string key", "1": "string key"},
        {10: "int keys", 2: "sort by their text"},
        {},
        ("a", 1),
        "plain",
    ],
)
def test_exact_size_key_equals_sdk_key(value: Any) -> None:
    sdk_key = _sdk_key_function()(value)
    assert exact_size_key(value) == sdk_key
    assert repr(exact_size_key(value)) == repr(sdk_key)  # True, 1 and 1.0 stay apart


class FileSystemLikeScraper(Scraper):
    """Reports twelve constant points with five attributes, as file system usage does."""

    name = "filesystem"

    def scrape(self) -> Reading:
        return {"system.filesystem.usage": [
            Point(1, {"system.device": f"/dev/vd{i}", "system.filesystem.state": "used",
                      "system.filesystem.type": "ext4", "system.filesystem.mode": "rw",
                      "system.filesystem.mountpoint": f"/mnt/{i}"})
            for i in range(12)
        ]}


def _free_tuples(length: int) -> int:
    """Return how many tuples of ``length`` CPython keeps in its free list."""
    with tempfile.TemporaryFile() as output:
        saved = os.dup(2)
        os.dup2(output.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        output.seek(0)
        text = output.read().decode()
    found = re.search(rf"(\d+) free {length}-sized PyTupleObjects", text)
    if found is None:
        pytest.skip("this Python prints no tuple free lists in sys._debugmallocstats")
    return int(found.group(1))


def test_collections_leave_tuple_free_list_alone() -> None:
    assert use_exact_size_keys()
    settings = config.resolve({}, {"HOST_AGENT_SCRAPERS": "filesystem"})
    enabled = frozenset({"system.filesystem.usage"})
    context = ScraperContext(settings, HostRoot("/"), enabled, ErrorLog())
    collection = Collection([FileSystemLikeScraper(context)], enabled, context.errors,
                            AgentStats())
    reader = CollectingReader(DiscardingExporter(), before_collect=collection.run_cycle,
                              export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    instruments.register(provider, collection, enabled)
    reader.collect()

    # Holding many 5-tuples empties that free list, so that growth can show:
    # the SDK's own key function adds one tuple a point, 1,200 in 100 cycles.
    five_tuples_in_use = [(i, 0, 0, 0, 0) for i in range(2500)]
    before = _free_tuples(5)
    for _ in range(100):
        reader.collect()
    grown = _free_tuples(5) - before
    del five_tuples_in_use
    reader.shutdown()

    assert grown < 100, f"the free list of 5-tuples grew by {grown} in 100 cycles"
