"""The request encoder: the same request as the SDK's encoder, from this host's real readings."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    InMemoryMetricReader,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from process_split import split_by_process

from otel_collector import config, instruments, scrapers
from otel_collector.collection import Collection
from otel_collector.encoding import RequestEncoder
from otel_collector.hostfs import HostRoot
from otel_collector.scrapers.base import ErrorLog, ScraperContext
from otel_collector.selftelemetry import AgentStats

EVERY_SCRAPER = "cpu,memory,paging,disk,filesystem,network,pressure,load,processes,system,process"


def _host_collector() -> tuple[InMemoryMetricReader, Collection]:
    """Build every scraper on this host's /proc, behind a reader that keeps what it collects."""
    settings = config.resolve({}, {"HOST_AGENT_SCRAPERS": EVERY_SCRAPER,
                                   "HOST_AGENT_PROCESS_TOP": "10"})
    enabled = config.enabled_metrics(settings)
    context = ScraperContext(settings, HostRoot("/"), enabled, ErrorLog())
    collection = Collection(scrapers.build(settings.scrapers, context), enabled,
                            context.errors, AgentStats())
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"host.name": "encoding-test"}, schema_url="https://x/1"),
    )
    instruments.register(provider, collection, enabled)
    return reader, collection


def _collect(reader: InMemoryMetricReader, collection: Collection) -> MetricsData:
    collection.run_cycle()
    data = reader.get_metrics_data()
    assert data is not None
    return data


def test_host_readings_encode_as_sdk_does() -> None:
    """The same bytes as the SDK's encoder gives for the data with a resource per process."""
    reader, collection = _host_collector()
    encoder = RequestEncoder()
    try:
        for _cycle in range(3):  # the first fills the caches, the others use them
            data = _collect(reader, collection)
            expected = encode_metrics(split_by_process(data))
            encoded = encoder.encode(data)
            assert len(encoded.resource_metrics) > 1  # the host and its processes
            assert encoded == expected
            assert encoded.SerializeToString() == expected.SerializeToString()
    finally:
        collection.close()


def test_cache_keeps_only_last_export() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    pids = [1, 2, 3]

    def observe(_options: object) -> list[Observation]:
        return [Observation(1.0, {"process.pid": pid}) for pid in pids]

    meter.create_observable_gauge("process.uptime", callbacks=[observe])
    encoder = RequestEncoder()
    first = reader.get_metrics_data()
    assert first is not None
    encoder.encode(first)
    assert encoder.cached_attribute_sets == 3
    assert encoder.cached_resources == 3  # one per process, and none for the host

    pids[:] = [3, 4]
    second = reader.get_metrics_data()
    assert second is not None
    encoded = encoder.encode(second)
    assert encoded == encode_metrics(split_by_process(second))
    assert encoder.cached_attribute_sets == 2  # pids 1 and 2 ended: forgotten
    assert encoder.cached_resources == 2

    pids[:] = [5]
    third = reader.get_metrics_data()
    assert third is not None
    encoder.encode(third)
    assert encoder.cached_attribute_sets == 1
    assert encoder.cached_resources == 1


def test_gauge_start_time_left_out_as_sdk_does() -> None:
    """A gauge point that carries a start time is encoded without it, as the SDK's encoder does."""
    point = NumberDataPoint(attributes={"cpu.mode": "user"}, start_time_unix_nano=5,
                            time_unix_nano=9, value=0.25, exemplars=[])
    metric = Metric(name="system.cpu.utilization", description="", unit="1",
                    data=Gauge(data_points=[point]))
    data = MetricsData(resource_metrics=[ResourceMetrics(
        resource=Resource.create({}),
        scope_metrics=[ScopeMetrics(scope=InstrumentationScope("test"), metrics=[metric],
                                    schema_url="")],
        schema_url="",
    )])
    encoded = RequestEncoder().encode(data)

    assert encoded == encode_metrics(data)
    gauge = encoded.resource_metrics[0].scope_metrics[0].metrics[0].gauge
    assert gauge.data_points[0].start_time_unix_nano == 0


def test_histogram_goes_to_sdk_encoder() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    meter.create_histogram("request.duration", unit="s").record(0.25, {"route": "/"})
    meter.create_counter("requests").add(2, {"route": "/"})
    data = reader.get_metrics_data()
    assert data is not None
    assert RequestEncoder().encode(data) == encode_metrics(data)


def test_sequence_attribute_encodes_every_time() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    counter = meter.create_up_down_counter("queue.size")
    counter.add(3, {"queue.names": ("a", "b"), "queue.kind": "fifo"})
    counter.add(-1, {"queue.flags": [True, False]})
    data = reader.get_metrics_data()
    assert data is not None
    encoder = RequestEncoder()
    assert encoder.encode(data) == encode_metrics(data)
    assert encoder.encode(data) == encode_metrics(data)
