"""A resource per process in the encoded request, from this host's real processes."""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from otlp_receiver import decode_attributes

from otel_collector import catalogue, config, instruments, scrapers
from otel_collector.collection import Collection
from otel_collector.encoding import RequestEncoder
from otel_collector.hostfs import HostRoot
from otel_collector.scrapers.base import ErrorLog, ScraperContext
from otel_collector.selftelemetry import AgentStats

IDENTITY_KEYS = {a.key for a in catalogue.PROCESS_IDENTITY} | {"process.command_line"}
BASE = Resource.create({"host.name": "resource-test"}, schema_url="https://x/1")


def collect_host(settings_env: dict[str, str]) -> MetricsData:
    """Collect one cycle of this host's real readings through the SDK."""
    settings = config.resolve({}, settings_env)
    enabled = config.enabled_metrics(settings)
    context = ScraperContext(settings, HostRoot("/"), enabled, ErrorLog())
    collection = Collection(scrapers.build(settings.scrapers, context), enabled,
                            context.errors, AgentStats())
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=BASE)
    instruments.register(provider, collection, enabled)
    try:
        collection.run_cycle()
        data = reader.get_metrics_data()
    finally:
        collection.close()
    assert data is not None
    return data


def data_points(metric: Any) -> Any:
    return getattr(metric, metric.WhichOneof("data")).data_points


def test_real_processes_get_own_resource() -> None:
    data = collect_host({"HOST_AGENT_SCRAPERS": "memory,process", "HOST_AGENT_PROCESS_TOP": "5",
                         "HOST_AGENT_PROCESS_COMMAND_LINE": "true"})
    request = RequestEncoder().encode(data)

    sdk_points = sum(len(m.data.data_points) for r in data.resource_metrics
                     for s in r.scope_metrics for m in s.metrics)
    encoded_points = sum(len(data_points(m)) for r in request.resource_metrics
                         for s in r.scope_metrics for m in s.metrics)
    assert encoded_points == sdk_points
    host, *processes = request.resource_metrics
    host_attributes = decode_attributes(host.resource.attributes)
    assert host_attributes == dict(BASE.attributes)
    assert {m.name for s in host.scope_metrics for m in s.metrics} == {
        spec.name for spec in catalogue.for_scraper("memory") if spec.enabled
    }
    assert len(processes) == 5
    resources = [decode_attributes(r.resource.attributes) for r in processes]
    assert len({attributes["process.pid"] for attributes in resources}) == 5
    # Kernel threads have no command line; the busiest processes include user ones.
    assert any("process.command_line" in attributes for attributes in resources)
    for resource_metrics, attributes in zip(processes, resources, strict=True):
        assert attributes["host.name"] == "resource-test"
        assert attributes["process.executable.name"]
        assert resource_metrics.schema_url == host.schema_url
        for scope_metrics in resource_metrics.scope_metrics:
            assert scope_metrics.scope.name == "otel_collector.scrapers.process"
            for metric in scope_metrics.metrics:
                assert metric.name.startswith("process.")
                for point in data_points(metric):
                    point_keys = set(decode_attributes(point.attributes))
                    assert not IDENTITY_KEYS & point_keys, metric.name


def test_points_stay_with_their_process() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader], resource=BASE).get_meter("test")

    def observe(_options: object) -> list[Observation]:
        return [Observation(pid + share, {"process.pid": pid, "cpu.mode": mode})
                for pid in (7, 8) for share, mode in ((0.25, "user"), (0.5, "system"))]

    meter.create_observable_counter("process.cpu.time", callbacks=[observe])
    data = reader.get_metrics_data()
    assert data is not None
    request = RequestEncoder().encode(data)

    found = {}
    for resource_metrics in request.resource_metrics:
        pid = decode_attributes(resource_metrics.resource.attributes)["process.pid"]
        for point in data_points(resource_metrics.scope_metrics[0].metrics[0]):
            found[(pid, decode_attributes(point.attributes)["cpu.mode"])] = point.as_double
    assert found == {(7, "user"): 7.25, (7, "system"): 7.5, (8, "user"): 8.25,
                     (8, "system"): 8.5}


def test_new_base_resource_encodes_anew() -> None:
    encoder = RequestEncoder()
    host_names = []
    for host_name in ("before", "after"):
        reader = InMemoryMetricReader()
        meter = MeterProvider(metric_readers=[reader],
                              resource=Resource.create({"host.name": host_name})).get_meter("t")
        meter.create_observable_gauge(
            "process.uptime", callbacks=[lambda _o: [Observation(1.0, {"process.pid": 7})]]
        )
        data = reader.get_metrics_data()
        assert data is not None
        (resource_metrics,) = encoder.encode(data).resource_metrics
        host_names.append(decode_attributes(resource_metrics.resource.attributes)["host.name"])
    assert host_names == ["before", "after"]
