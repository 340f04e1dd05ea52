"""Observable instruments built from the catalogue, fed by the collection cycle."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

from otel_collector import __version__, catalogue
from otel_collector.collection import Collection

Callback = Callable[[CallbackOptions], Iterable[Observation]]


def _callback(collection: Collection, metric: str) -> Callback:
    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(p.value, p.attributes) for p in collection.points(metric)]

    return observe


def _create(meter: Meter, spec: catalogue.MetricSpec, callback: Callback) -> None:
    create = {
        catalogue.Kind.COUNTER: meter.create_observable_counter,
        catalogue.Kind.UPDOWNCOUNTER: meter.create_observable_up_down_counter,
        catalogue.Kind.GAUGE: meter.create_observable_gauge,
    }[spec.kind]
    create(spec.name, callbacks=[callback], unit=spec.unit, description=spec.description)


def register(provider: MeterProvider, collection: Collection, enabled: frozenset[str]) -> int:
    """Register one instrument per enabled metric, one meter per scraper; return the count."""
    meters: dict[str, Meter] = {}
    count = 0
    for spec in catalogue.METRICS:
        if spec.name not in enabled:
            continue
        if spec.scraper not in meters:
            meters[spec.scraper] = provider.get_meter(
                f"otel_collector.scrapers.{spec.scraper}", __version__,
                schema_url=catalogue.SCHEMA_URL,
            )
        _create(meters[spec.scraper], spec, _callback(collection, spec.name))
        count += 1
    return count
