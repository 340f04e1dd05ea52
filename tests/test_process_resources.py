"""A resource per process: this host's real processes, and the reuse of resources between exports."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData, NumberDataPoint
from opentelemetry.sdk.resources import Resource

from otel_collector import catalogue, config, instruments, scrapers
from otel_collector.collection import Collection
from otel_collector.hostfs import HostRoot
from otel_collector.process_resources import ProcessResources
from otel_collector.scrapers.base import ErrorLog, ScraperContext
from otel_collector.selftelemetry import AgentStats

IDENTITY_KEYS = {a.key for a in catalogue.PROCESS_IDENTITY} | {"process.command_line"}
BASE = Resource.create({"host.name": "resource-test"}, schema_url="https://x/1")


def points(data: MetricsData) -> Iterator[tuple[Resource, str, NumberDataPoint]]:
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    yield resource_metrics.resource, metric.name, point  # type: ignore[misc]


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


def test_real_processes_get_own_resource() -> None:
    data = collect_host({"HOST_AGENT_SCRAPERS": "memory,process", "HOST_AGENT_PROCESS_TOP": "5",
                         "HOST_AGENT_PROCESS_COMMAND_LINE": "true"})
    split = ProcessResources().split(data)

    before = list(points(data))
    after = list(points(split))
    assert len(after) == len(before)
    host, *processes = split.resource_metrics
    assert host.resource is BASE
    assert {m.name for s in host.scope_metrics for m in s.metrics} == {
        spec.name for spec in catalogue.for_scraper("memory") if spec.enabled
    }
    assert len(processes) == 5
    pids = [r.resource.attributes["process.pid"] for r in processes]
    assert len(set(pids)) == 5
    # Kernel threads have no command line; the busiest processes include user ones.
    assert any("process.command_line" in r.resource.attributes for r in processes)
    for resource_metrics in processes:
        attributes = resource_metrics.resource.attributes
        assert attributes["host.name"] == "resource-test"
        assert attributes["process.executable.name"]
        assert resource_metrics.resource.schema_url == BASE.schema_url
        assert resource_metrics.schema_url == host.schema_url
        for scope_metrics in resource_metrics.scope_metrics:
            assert scope_metrics.scope.name == "otel_collector.scrapers.process"
            for metric in scope_metrics.metrics:
                assert metric.name.startswith("process.")
                for point in metric.data.data_points:
                    assert not IDENTITY_KEYS & set(point.attributes or {}), metric.name
    # Every point of one process's series moved under that process's resource.
    for resource, name, point in before:
        if "process.pid" not in (point.attributes or {}):
            continue
        pid = point.attributes["process.pid"]  # type: ignore[index]
        owner = next(r for r in processes if r.resource.attributes["process.pid"] == pid)
        moved = [p for s in owner.scope_metrics for m in s.metrics if m.name == name
                 for p in m.data.data_points]
        assert point.value in [p.value for p in moved], (name, pid)
        assert resource is BASE


def test_host_metrics_unchanged() -> None:
    data = collect_host({"HOST_AGENT_SCRAPERS": "memory,load"})
    assert ProcessResources().split(data) is data


def test_resources_reused_while_process_lives() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader], resource=BASE).get_meter("test")
    pids = [1, 2]

    def observe(_options: object) -> list[Observation]:
        return [Observation(float(pid), {"process.pid": pid, "cpu.mode": mode})
                for pid in pids for mode in ("user", "system")]

    meter.create_observable_counter("process.cpu.time", callbacks=[observe])
    splitter = ProcessResources()

    def resources() -> dict[int, Resource]:
        data = reader.get_metrics_data()
        assert data is not None
        split = splitter.split(data)
        return {r.resource.attributes["process.pid"]: r.resource  # type: ignore[misc]
                for r in split.resource_metrics}

    first = resources()
    assert sorted(first) == [1, 2]
    pids[:] = [2, 3]
    second = resources()
    assert second[2] is first[2]
    assert second[3].attributes["host.name"] == "resource-test"
    pids[:] = [1]
    third = resources()
    assert third[1] is not first[1]  # pid 1 ended in between: its resource was forgotten
    assert third[1] == first[1]


def test_new_base_resource_rebuilds() -> None:
    splitter = ProcessResources()
    built = {}
    for host_name in ("before", "after"):
        reader = InMemoryMetricReader()
        meter = MeterProvider(metric_readers=[reader],
                              resource=Resource.create({"host.name": host_name})).get_meter("t")
        meter.create_observable_gauge(
            "process.uptime", callbacks=[lambda _o: [Observation(1.0, {"process.pid": 7})]]
        )
        data = reader.get_metrics_data()
        assert data is not None
        (resource_metrics,) = splitter.split(data).resource_metrics
        built[host_name] = resource_metrics.resource.attributes["host.name"]
    assert built == {"before": "before", "after": "after"}
