"""Forget the series a cycle no longer reports.

The OpenTelemetry SDK (1.45) keeps the aggregation of every attribute set an
asynchronous instrument has ever observed, for the life of the process, in
``_ViewInstrumentMatch._attributes_aggregation``. A series that disappears
(an exited process, a removed veth interface, an unmounted file system) is
no longer exported, but its aggregation stays in memory and counts against
the cardinality limit. On a node with container churn that grows without
bound, so after each collection this module drops the aggregations of the
series that the cycle's reading no longer contains.

Only metrics whose scraper produced a reading this cycle are pruned: when a
source fails for a cycle, its series are kept, so that delta temporality
does not see a counter restart from zero when the source returns.

NOTE: this reaches into SDK internals that the lock file pins. If they
change shape, pruning turns itself off with one warning and the agent keeps
working, with the SDK's own memory behaviour.
"""

from __future__ import annotations

from typing import Any

import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader

from otel_collector.scrapers.base import Reading

_log = structlog.get_logger(__name__)


class SeriesPruner:
    """Drops stale aggregations of one reader's instruments after each collection."""

    def __init__(self, provider: MeterProvider, reader: MetricReader) -> None:
        self._provider = provider
        self._reader = reader
        self._enabled = True
        try:
            from opentelemetry.sdk.metrics._internal._view_instrument_match import (
                _hash_attributes,
            )
        except ImportError:
            self._disable("opentelemetry.sdk has no _hash_attributes")
            return
        self._hash = _hash_attributes

    def _disable(self, reason: str) -> None:
        self._enabled = False
        _log.warning("series_pruning_disabled", reason=reason)

    def _matches(self) -> dict[Any, list[Any]]:
        consumer = self._provider._measurement_consumer
        storage = consumer._reader_storages[self._reader]
        matches: dict[Any, list[Any]] = storage._instrument_view_instrument_matches
        return matches

    def prune(self, reading: Reading) -> int:
        """Drop the series of ``reading``'s metrics that it does not contain; return the count."""
        if not self._enabled:
            return 0
        try:
            matches = self._matches()
        except (AttributeError, KeyError) as error:
            self._disable(f"SDK internals changed: {error!r}")
            return 0
        dropped = 0
        for instrument, view_matches in list(matches.items()):
            points = reading.get(instrument.name)
            if points is None:
                continue
            live: set[Any] | None = None
            for match in view_matches:
                with match._lock:
                    aggregations = match._attributes_aggregation
                    # Every point of this cycle has an aggregation, so as many
                    # aggregations as points means none is stale: the common
                    # case costs no hashing.
                    if len(aggregations) <= len(points):
                        continue
                    if live is None:
                        live = {self._hash(dict(point.attributes)) for point in points}
                    stale = [key for key in aggregations if key not in live]
                    for key in stale:
                        del aggregations[key]
                    dropped += len(stale)
        return dropped
