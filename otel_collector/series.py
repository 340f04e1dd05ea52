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

It also replaces the SDK's function that turns an attribute set into its
aggregation key (see use_exact_size_keys).

NOTE: this reaches into SDK internals that the lock file pins. If they
change shape, pruning turns itself off with one warning and the agent keeps
working, with the SDK's own memory behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader

from otel_collector.scrapers.base import Reading

_log = structlog.get_logger(__name__)


_SCALARS = (type(None), str, int, float, bool, bytes)
_SCALAR_TYPES = frozenset(_SCALARS)


def _sort_key(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


def exact_size_key(value: Any) -> Any:
    """Return the SDK's aggregation key for an attribute set or value, built from lists.

    The result equals that of the SDK's ``_hash_attributes`` (1.45), which
    builds its tuples from generators. CPython 3.11 allocates a tuple of 10
    slots for a generator and shrinks it, so each key of n attributes moves
    one block into the free list of n-tuples, which keeps up to 2000 of each
    length. With 5-attribute file system series, that list grew by 12 tuples
    a cycle until it held 2000 (128 KB) after about 170 cycles, which read as
    memory growth. A tuple made from a list is allocated at its final size,
    from that same free list.
    """
    if type(value) is dict:
        # The scrapers build attribute sets with string keys and values of
        # exact scalar types. Sorting by the keys alone then orders the
        # entries as the SDK does, without its isinstance checks against
        # abstract base classes.
        entries = []
        for key, item in value.items():
            if type(key) is not str or type(item) not in _SCALAR_TYPES:
                break
            entries.append((key, (type(item).__name__, item)))
        else:
            entries.sort()
            return ("mapping", tuple(entries))
    if isinstance(value, _SCALARS):
        return (type(value).__name__, value)
    if isinstance(value, Sequence):
        return ("sequence", tuple([exact_size_key(item) for item in value]))
    if isinstance(value, Mapping):
        return (
            "mapping",
            tuple([(key, exact_size_key(value[key])) for key in sorted(value, key=_sort_key)]),
        )
    return None


def use_exact_size_keys() -> bool:
    """Make the SDK build aggregation keys with exact_size_key, and return whether it could."""
    try:
        from opentelemetry.sdk.metrics._internal import _view_instrument_match
    except ImportError:
        _log.warning("sdk_key_function_kept", reason="no _view_instrument_match module")
        return False
    if not callable(getattr(_view_instrument_match, "_hash_attributes", None)):
        _log.warning("sdk_key_function_kept", reason="no _hash_attributes function")
        return False
    _view_instrument_match._hash_attributes = exact_size_key
    return True


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
