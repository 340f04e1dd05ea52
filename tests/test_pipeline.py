"""The SDK side of the agent: exemplars are switched off at both ends."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.metrics import AlwaysOnExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View

from otel_collector.pipeline import NoExemplarReservoir, no_exemplars


def test_reservoir_keeps_nothing_offered() -> None:
    reservoir = NoExemplarReservoir(size=4)
    reservoir.offer(1.5, 10, {"cpu.mode": "user"}, Context())
    assert reservoir.collect({"cpu.mode": "user"}) == []


def test_view_drops_exemplars_filter_would_keep() -> None:
    """Even with a filter that samples every measurement, no exemplar is exported."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        exemplar_filter=AlwaysOnExemplarFilter(),
        views=[View(instrument_name="*", exemplar_reservoir_factory=no_exemplars)],
    )
    provider.get_meter("test").create_counter("requests").add(3, {"route": "/"})
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        point
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        for point in metric.data.data_points
    ]
    assert [point.value for point in points] == [3]
    assert points[0].exemplars == []
