"""Tests of the test receivers themselves, with the OpenTelemetry SDK as the sender."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from otlp_receiver import (
    RETRY_INFO_METADATA_KEY,
    OtlpReceiver,
    PkiPaths,
    Point,
    free_port,
    make_test_pki,
)
from rotel_peer import RotelPeer, parse_debug_output

SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"
MIB = 1024 * 1024


def _gauge_callback(_options: CallbackOptions) -> list[Observation]:
    return [
        Observation(0.25, {"cpu": "0", "state": "idle"}),
        Observation(0.75, {"cpu": "1", "state": "idle"}),
    ]


def _make_metrics_data() -> MetricsData:
    """Record one metric of each instrument kind and collect it as the SDK would export it."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "receiver-test", "host.name": "test-host"}),
    )
    meter = provider.get_meter("receiver.test", "1.0", schema_url=SCHEMA_URL)
    meter.create_counter("test.io", unit="By", description="Bytes moved").add(
        4096, {"device": "sda", "direction": "read"}
    )
    meter.create_up_down_counter("test.processes", unit="{process}").add(-3, {"state": "running"})
    histogram = meter.create_histogram("test.duration", unit="s")
    histogram.record(0.5, {"phase": "scrape"})
    histogram.record(12.0, {"phase": "scrape"})
    meter.create_observable_gauge("test.utilization", callbacks=[_gauge_callback], unit="1")
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data


@pytest.fixture(scope="module")
def metrics_data() -> MetricsData:
    return _make_metrics_data()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as started:
        yield started


def _export(
    endpoint: str, data: MetricsData, **exporter_options: object
) -> tuple[MetricExportResult, float]:
    """Export `data` once with a new SDK exporter, and return the result and the seconds it took."""
    exporter = OTLPMetricExporter(endpoint=endpoint, **exporter_options)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        result = exporter.export(data)
        return result, time.monotonic() - started
    finally:
        exporter.shutdown()


def _raw_export(
    receiver: OtlpReceiver,
    request: metrics_service_pb2.ExportMetricsServiceRequest,
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.Call:
    """Send one Export call without the SDK's retries, and return the call or raise RpcError."""
    target = f"127.0.0.1:{receiver.port}"
    channel = (
        grpc.insecure_channel(target)
        if credentials is None
        else grpc.secure_channel(target, credentials)
    )
    with channel:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        _response, call = stub.Export.with_call(request, timeout=5)
        return call


def _request_of_size(size_bytes: int) -> metrics_service_pb2.ExportMetricsServiceRequest:
    """Build a request whose serialized size is close to `size_bytes`, padded by one attribute."""
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    attribute = request.resource_metrics.add().resource.attributes.add()
    attribute.key = "padding"
    attribute.value.CopyFrom(common_pb2.AnyValue(string_value="x" * size_bytes))
    return request


def _one_point(points: list[Point], name: str, **attributes: object) -> Point:
    matching = [
        point
        for point in points
        if point.name == name and all(point.attributes.get(k) == v for k, v in attributes.items())
    ]
    assert len(matching) == 1, f"expected one point of {name} with {attributes}, got {matching}"
    return matching[0]


# -- plain delivery ------------------------------------------------------------


def test_points_carry_metric_fields(receiver: OtlpReceiver, metrics_data: MetricsData) -> None:
    result, _ = _export(receiver.endpoint, metrics_data)

    assert result is MetricExportResult.SUCCESS
    points = receiver.points()
    assert receiver.metric_names() == {
        "test.io",
        "test.processes",
        "test.duration",
        "test.utilization",
    }

    counter = _one_point(points, "test.io")
    assert counter.kind == "sum"
    assert counter.unit == "By"
    assert counter.description == "Bytes moved"
    assert counter.is_monotonic is True
    assert counter.temporality == "cumulative"
    assert counter.attributes == {"device": "sda", "direction": "read"}
    assert counter.value == 4096
    assert isinstance(counter.value, int)
    assert counter.resource["service.name"] == "receiver-test"
    assert counter.resource["host.name"] == "test-host"
    assert counter.scope_name == "receiver.test"
    assert counter.scope_version == "1.0"
    assert counter.scope_schema_url == SCHEMA_URL
    assert 0 < counter.start_time_unix_nano <= counter.time_unix_nano
    assert counter.request_index == 0

    up_down = _one_point(points, "test.processes")
    assert up_down.kind == "sum"
    assert up_down.is_monotonic is False
    assert up_down.value == -3

    histogram = _one_point(points, "test.duration")
    assert histogram.kind == "histogram"
    assert histogram.temporality == "cumulative"
    assert histogram.value is None
    assert histogram.count == 2
    assert histogram.sum == 12.5
    assert histogram.min == 0.5
    assert histogram.max == 12.0
    assert sum(histogram.bucket_counts) == 2
    assert len(histogram.bucket_counts) == len(histogram.explicit_bounds) + 1

    gauge = _one_point(points, "test.utilization", cpu="1")
    assert gauge.kind == "gauge"
    assert gauge.is_monotonic is None
    assert gauge.temporality is None
    assert gauge.value == 0.75
    assert gauge.unit == "1"


def test_request_record_has_size_and_headers(
    receiver: OtlpReceiver, metrics_data: MetricsData
) -> None:
    _export(receiver.endpoint, metrics_data, headers={"x-scope-orgid": "tenant-1"})

    [record] = receiver.requests
    assert record.size_bytes == record.request.ByteSize()
    assert record.size_bytes > 100
    assert record.header("x-scope-orgid") == "tenant-1"
    user_agent = record.header("user-agent")
    assert isinstance(user_agent, str)
    assert user_agent.startswith("OTel-OTLP-Exporter-Python/")
    assert abs(record.received_at - time.time()) < 10
    assert record.status == grpc.StatusCode.OK
    assert receiver.rejected == 0


def test_periodic_reader_exports_arrive(receiver: OtlpReceiver) -> None:
    exporter = OTLPMetricExporter(endpoint=receiver.endpoint)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=200)
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("periodic.test").create_observable_gauge(
        "test.utilization", callbacks=[_gauge_callback]
    )
    try:
        records = receiver.wait_for_requests(2, timeout=10)
    finally:
        provider.shutdown()

    assert records[1].received_monotonic > records[0].received_monotonic
    assert len(receiver.points("test.utilization")) >= 4


def test_wait_for_timeout_summarizes_state(
    receiver: OtlpReceiver, metrics_data: MetricsData
) -> None:
    _export(receiver.endpoint, metrics_data)

    with pytest.raises(AssertionError) as failure:
        receiver.wait_for_points(
            lambda points: any(point.name == "system.cpu.time" for point in points),
            timeout=0.3,
            description="system.cpu.time",
        )

    message = str(failure.value)
    assert "waiting for system.cpu.time" in message
    assert "1 request(s) accepted, 0 rejected" in message
    assert "test.io" in message


def test_restart_on_same_port_keeps_records(metrics_data: MetricsData) -> None:
    with OtlpReceiver() as receiver:
        port = receiver.port
        assert _export(receiver.endpoint, metrics_data)[0] is MetricExportResult.SUCCESS
        receiver.stop()
        assert not receiver.running

        receiver.start()
        assert receiver.port == port
        assert _export(receiver.endpoint, metrics_data)[0] is MetricExportResult.SUCCESS

    assert len(receiver.requests) == 2


def test_start_on_taken_port_fails() -> None:
    with OtlpReceiver() as first:
        second = OtlpReceiver(first.port)

        with pytest.raises(RuntimeError, match=f"127.0.0.1:{first.port} failed"):
            second.start()

        assert not second.running


def test_max_receive_bytes_matches_gateway_default(receiver: OtlpReceiver) -> None:
    _raw_export(receiver, _request_of_size(4 * MIB - 1024))

    with pytest.raises(grpc.RpcError) as failure:
        _raw_export(receiver, _request_of_size(4 * MIB + 1024))

    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(receiver.requests) == 1
    assert receiver.requests[0].size_bytes < 4 * MIB


def test_max_receive_bytes_is_configurable() -> None:
    with OtlpReceiver(max_receive_bytes=64 * 1024) as receiver:
        with pytest.raises(grpc.RpcError) as failure:
            _raw_export(receiver, _request_of_size(65 * 1024))

        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert receiver.requests == []


# -- fault modes -----------------------------------------------------------------


def test_unavailable_twice_then_sdk_retry_lands(
    receiver: OtlpReceiver, metrics_data: MetricsData
) -> None:
    receiver.respond_with(grpc.StatusCode.UNAVAILABLE, count=2, retry_delay=0.05)

    result, seconds = _export(receiver.endpoint, metrics_data)

    assert result is MetricExportResult.SUCCESS
    assert receiver.rejected == 2
    assert [r.status for r in receiver.rejected_requests] == [grpc.StatusCode.UNAVAILABLE] * 2
    assert len(receiver.requests) == 1
    assert receiver.requests[0].index == 2
    assert receiver.metric_names() == {
        "test.io",
        "test.processes",
        "test.duration",
        "test.utilization",
    }
    # Without RetryInfo, the SDK exporter (1.45) backs off about 1 s and
    # then 2 s. The 50 ms in RetryInfo replaces that.
    assert seconds < 1.5


def test_retry_info_sent_only_when_requested(receiver: OtlpReceiver) -> None:
    request = _request_of_size(10)

    receiver.respond_with(grpc.StatusCode.RESOURCE_EXHAUSTED, count=1, retry_delay=2.5)
    with pytest.raises(grpc.RpcError) as with_delay:
        _raw_export(receiver, request)
    receiver.respond_with(grpc.StatusCode.RESOURCE_EXHAUSTED, count=1)
    with pytest.raises(grpc.RpcError) as without_delay:
        _raw_export(receiver, request)

    assert with_delay.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(with_delay.value.trailing_metadata())
    retry_info = error_details_pb2.RetryInfo.FromString(trailers[RETRY_INFO_METADATA_KEY])
    assert retry_info.retry_delay.seconds == 2
    assert retry_info.retry_delay.nanos == 500_000_000
    assert RETRY_INFO_METADATA_KEY not in dict(without_delay.value.trailing_metadata())
    # Both counted requests used up their fault, so the next one lands.
    _raw_export(receiver, request)
    assert receiver.rejected == 2
    assert len(receiver.requests) == 1


def test_invalid_argument_is_not_retried(receiver: OtlpReceiver, metrics_data: MetricsData) -> None:
    receiver.respond_with(grpc.StatusCode.INVALID_ARGUMENT)

    result, _ = _export(receiver.endpoint, metrics_data)

    assert result is MetricExportResult.FAILURE
    assert receiver.rejected == 1
    assert receiver.points() == []

    receiver.reset()
    assert _export(receiver.endpoint, metrics_data)[0] is MetricExportResult.SUCCESS
    assert len(receiver.requests) == 1


def test_black_hole_times_out_export(receiver: OtlpReceiver, metrics_data: MetricsData) -> None:
    receiver.black_hole()

    result, seconds = _export(receiver.endpoint, metrics_data, timeout=1)

    assert result is MetricExportResult.FAILURE
    assert seconds >= 0.9
    # The abandoned request frees its handler once the client's deadline passes.
    receiver.wait_for(lambda r: r.rejected == 1, timeout=5, description="1 rejected request")
    assert receiver.rejected_requests[0].status == grpc.StatusCode.CANCELLED
    assert receiver.held == 0
    assert receiver.requests == []

    receiver.reset()
    assert _export(receiver.endpoint, metrics_data)[0] is MetricExportResult.SUCCESS


def test_reset_releases_held_request(receiver: OtlpReceiver, metrics_data: MetricsData) -> None:
    receiver.black_hole()
    results: list[MetricExportResult] = []
    sender = threading.Thread(
        target=lambda: results.append(_export(receiver.endpoint, metrics_data, timeout=10)[0])
    )
    sender.start()
    receiver.wait_for(lambda r: r.held == 1, timeout=5, description="1 held request")

    receiver.reset()
    sender.join(timeout=5)

    assert results == [MetricExportResult.SUCCESS]
    assert len(receiver.requests) == 1
    assert receiver.rejected == 0


def test_stop_releases_held_request(metrics_data: MetricsData) -> None:
    receiver = OtlpReceiver()
    receiver.start()
    receiver.black_hole()
    sender = threading.Thread(
        target=_export, args=(receiver.endpoint, metrics_data), kwargs={"timeout": 3}
    )
    sender.start()
    receiver.wait_for(lambda r: r.held == 1, timeout=5, description="1 held request")

    started = time.monotonic()
    receiver.stop()
    stop_seconds = time.monotonic() - started
    sender.join(timeout=10)

    assert stop_seconds < 2
    assert not sender.is_alive()
    assert [r.status for r in receiver.rejected_requests] == [grpc.StatusCode.UNAVAILABLE]
    assert receiver.requests == []


def test_delay_responds_late(receiver: OtlpReceiver, metrics_data: MetricsData) -> None:
    receiver.delay(0.5, count=1)

    late, late_seconds = _export(receiver.endpoint, metrics_data)
    prompt, prompt_seconds = _export(receiver.endpoint, metrics_data)

    assert late is MetricExportResult.SUCCESS
    assert late_seconds >= 0.5
    assert prompt is MetricExportResult.SUCCESS
    assert prompt_seconds < 0.5
    assert len(receiver.requests) == 2


# -- TLS -----------------------------------------------------------------------


def _client_credentials(
    ca: Path, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key is not None else None,
        certificate_chain=cert.read_bytes() if cert is not None else None,
    )


def test_tls_delivers_with_trusted_ca(pki: PkiPaths, metrics_data: MetricsData) -> None:
    with OtlpReceiver(tls=pki.server_tls()) as receiver:
        assert receiver.endpoint.startswith("https://127.0.0.1:")

        result, _ = _export(
            receiver.endpoint, metrics_data, credentials=_client_credentials(pki.ca_cert)
        )

        assert result is MetricExportResult.SUCCESS
        assert "test.io" in receiver.metric_names()
        assert receiver.requests[0].peer_identities == ()


def test_tls_rejects_untrusted_server(pki: PkiPaths) -> None:
    with OtlpReceiver(tls=pki.server_tls()) as receiver:
        with pytest.raises(grpc.RpcError) as failure:
            _raw_export(receiver, _request_of_size(10), _client_credentials(pki.other_ca_cert))

        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert receiver.requests == []


def test_mtls_delivers_with_client_cert(pki: PkiPaths, metrics_data: MetricsData) -> None:
    with OtlpReceiver(tls=pki.server_tls(require_client_cert=True)) as receiver:
        credentials = _client_credentials(pki.ca_cert, pki.client_cert, pki.client_key)

        result, _ = _export(receiver.endpoint, metrics_data, credentials=credentials)

        assert result is MetricExportResult.SUCCESS
        assert receiver.requests[0].peer_identities == (b"otel-host-agent-test-client",)


@pytest.mark.parametrize("client_cert", ["none", "other_ca"])
def test_mtls_rejects_bad_client_cert(pki: PkiPaths, client_cert: str) -> None:
    if client_cert == "none":
        credentials = _client_credentials(pki.ca_cert)
    else:
        credentials = _client_credentials(pki.ca_cert, pki.other_client_cert, pki.other_client_key)

    with OtlpReceiver(tls=pki.server_tls(require_client_cert=True)) as receiver:
        with pytest.raises(grpc.RpcError) as failure:
            _raw_export(receiver, _request_of_size(10), credentials)

        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert receiver.requests == []


# -- rotel -----------------------------------------------------------------------

# Printed by rotel-agent 0.0.1-alpha10 for an SDK export, shortened, with one
# colored log line and a string attribute that contains a newline. rotel ends
# lines of empty fields with a space, written here as \x20.
ROTEL_SAMPLE = """\
\x1b[2m2026-12-04T20:04:46.054148Z\x1b[0m \x1b[32m INFO\x1b[0m Starting Rotel.
ResourceMetrics #0
Resource SchemaURL:\x20
Resource attributes:
     -> service.name: Str(try)
     -> host.name: Str(h1)
ScopeMetrics #0
ScopeMetrics SchemaURL: https://opentelemetry.io/schemas/1.26.0
InstrumentationScope try.scope 1.2
Metric #0
Descriptor:
     -> Name: test.counter
     -> Description: A counter
     -> Unit: By
     -> DataType: Sum
     -> IsMonotonic: true
     -> AggregationTemporality: AGGREGATION_TEMPORALITY_CUMULATIVE
NumberDataPoints #0
Data point attributes:
     -> device: Str(sda)
     -> note: Str(line1
line2)
StartTimestamp: 1796414692758647295
Timestamp: 1796414692762024196
Value: 5
Metric #1
Descriptor:
     -> Name: test.histogram
     -> Description:\x20
     -> Unit: s
     -> DataType: Histogram
     -> AggregationTemporality: AGGREGATION_TEMPORALITY_CUMULATIVE
HistogramDataPoints #0
Data point attributes:
     -> flag: Bool(true)
     -> n: Int(3)
     -> f: Double(1.5)
StartTimestamp: 1796414692760426951
Timestamp: 1796414692762024196
Count: 2
Sum: 12.5
Min: 0.5
Max: 12
ExplicitBounds #0: 0
ExplicitBounds #1: 5
Buckets #0, Count: 0
Buckets #1, Count: 1
Buckets #2, Count: 1
Metric #2
Descriptor:
     -> Name: test.gauge
     -> Description:\x20
     -> Unit: 1
     -> DataType: Gauge
NumberDataPoints #0
StartTimestamp: 0
Timestamp: 1796414692762024196
Value: 0.25
"""


def test_parse_debug_output_sample() -> None:
    parsed = parse_debug_output(ROTEL_SAMPLE)

    assert parsed.metric_names == ["test.counter", "test.histogram", "test.gauge"]
    counter, histogram, gauge = parsed.points
    assert counter.metric == "test.counter"
    assert counter.unit == "By"
    assert counter.data_type == "Sum"
    assert counter.is_monotonic is True
    assert counter.temporality == "AGGREGATION_TEMPORALITY_CUMULATIVE"
    assert counter.resource == {"service.name": "try", "host.name": "h1"}
    assert counter.scope_name == "try.scope"
    assert counter.scope_version == "1.2"
    assert counter.attributes == {"device": "sda", "note": "line1\nline2"}
    assert counter.start_time_unix_nano == 1796414692758647295
    assert counter.value == 5

    assert histogram.data_type == "Histogram"
    assert histogram.description == ""
    assert histogram.is_monotonic is None
    assert histogram.attributes == {"flag": True, "n": 3, "f": 1.5}
    assert histogram.count == 2
    assert histogram.sum == 12.5
    assert histogram.max == 12
    assert histogram.explicit_bounds == [0, 5]
    assert histogram.bucket_counts == [0, 1, 1]

    assert gauge.attributes == {}
    assert gauge.value == 0.25


def test_parse_debug_output_skips_partial_line() -> None:
    # Cut inside "Value: 0.25", as if rotel were still writing that line.
    truncated = ROTEL_SAMPLE.removesuffix("5\n")

    gauge = parse_debug_output(truncated).points[-1]

    assert gauge.metric == "test.gauge"
    assert gauge.time_unix_nano == 1796414692762024196
    assert gauge.value is None


def test_rotel_prints_sdk_export(metrics_data: MetricsData) -> None:
    with RotelPeer() as rotel:
        result, _ = _export(rotel.endpoint, metrics_data)
        assert result is MetricExportResult.SUCCESS

        counter_points = rotel.wait_for_metric("test.io", timeout=10)
        rotel.wait_for_metric("test.utilization", timeout=10)

        assert {"test.io", "test.duration", "test.utilization"} <= rotel.metric_names()
        [counter] = counter_points
        assert counter.unit == "By"
        assert counter.data_type == "Sum"
        assert counter.is_monotonic is True
        assert counter.attributes == {"device": "sda", "direction": "read"}
        assert counter.value == 4096
        assert counter.resource["service.name"] == "receiver-test"
        gauges = {p.attributes["cpu"]: p.value for p in rotel.data_points("test.utilization")}
        assert gauges == {"0": 0.25, "1": 0.75}
        [histogram] = rotel.data_points("test.duration")
        assert histogram.data_type == "Histogram"
        assert histogram.count == 2

    assert rotel.returncode is not None
    assert "test.io" in rotel.output()


def test_rotel_start_failure_shows_output() -> None:
    peer = RotelPeer(extra_args=("--no-such-flag",))

    with pytest.raises(RuntimeError, match="rotel exited with code") as failure:
        peer.start()

    assert "--no-such-flag" in str(failure.value)
    assert peer.returncode not in (None, 0)


def test_free_port_below_ephemeral_range() -> None:
    """Ports handed out lie below the kernel's ephemeral range, differ, and can be bound."""
    first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)
    for port in ports:
        assert 1024 <= port < first_ephemeral
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
