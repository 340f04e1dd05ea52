"""Export: the OTLP/gRPC exporter, split to the gateway's size limit, and the reader.

The SDK's OTLPMetricExporter retries retryable status codes with backoff
inside its timeout; this module adds what a host agent needs on top: no
request above the gateway's message size limit, outcomes reported to the
health service and the agent's own metrics, and a collection cycle that runs
the scrapers right before the SDK calls the observable callbacks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)

from otel_collector.config import Config

ResultCallback = Callable[[bool, int], None]

_TEMPORALITY: dict[str, dict[type, AggregationTemporality]] = {
    "cumulative": dict.fromkeys(
        (Counter, ObservableCounter, Histogram, UpDownCounter, ObservableUpDownCounter,
         ObservableGauge),
        AggregationTemporality.CUMULATIVE,
    ),
    # As the SDK environment specification defines the two preferences.
    "delta": {
        Counter: AggregationTemporality.DELTA,
        ObservableCounter: AggregationTemporality.DELTA,
        Histogram: AggregationTemporality.DELTA,
        UpDownCounter: AggregationTemporality.CUMULATIVE,
        ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    },
    "lowmemory": {
        Counter: AggregationTemporality.DELTA,
        ObservableCounter: AggregationTemporality.CUMULATIVE,
        Histogram: AggregationTemporality.DELTA,
        UpDownCounter: AggregationTemporality.CUMULATIVE,
        ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    },
}


def count_points(data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    )


def split_in_half(data: MetricsData) -> tuple[MetricsData, MetricsData]:
    """Split the data points into two requests of about equal point count.

    Resource, scope and metric descriptions are repeated in both halves, as
    a gateway expects of every request.
    """
    half = count_points(data) // 2
    first: list[Any] = []
    second: list[Any] = []
    seen = 0
    for resource_metrics in data.resource_metrics:
        scopes_first, scopes_second = [], []
        for scope_metrics in resource_metrics.scope_metrics:
            metrics_first: list[Any] = []
            metrics_second: list[Any] = []
            for metric in scope_metrics.metrics:
                points = list(metric.data.data_points)
                cut = max(0, min(len(points), half - seen))
                seen += len(points)
                for target, part in ((metrics_first, points[:cut]), (metrics_second, points[cut:])):
                    if part:
                        body = dataclasses.replace(metric.data, data_points=part)  # type: ignore[arg-type]
                        target.append(dataclasses.replace(metric, data=body))
            if metrics_first:
                scopes_first.append(dataclasses.replace(scope_metrics, metrics=metrics_first))
            if metrics_second:
                scopes_second.append(dataclasses.replace(scope_metrics, metrics=metrics_second))
        if scopes_first:
            first.append(dataclasses.replace(resource_metrics, scope_metrics=scopes_first))
        if scopes_second:
            second.append(dataclasses.replace(resource_metrics, scope_metrics=scopes_second))
    return MetricsData(resource_metrics=first), MetricsData(resource_metrics=second)


class SizeLimitedOtlpExporter(OTLPMetricExporter):
    """OTLPMetricExporter that keeps every request under ``max_request_bytes``.

    Each export is encoded once; when the request is too large its points
    are halved until every part fits. The encoded request is kept for the
    SDK's send path, so nothing is encoded twice.
    """

    def __init__(
        self, *, max_request_bytes: int, on_result: ResultCallback, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._max_request_bytes = max_request_bytes
        self._on_result = on_result
        self._encoded: tuple[int, Any] | None = None
        self.requests_sent = 0

    def _translate_data(self, data: MetricsData) -> Any:
        if self._encoded is not None and self._encoded[0] == id(data):
            return self._encoded[1]
        return super()._translate_data(data)

    def _parts(self, data: MetricsData) -> Iterator[MetricsData]:
        request = super()._translate_data(data)
        if request.ByteSize() <= self._max_request_bytes or count_points(data) <= 1:
            # NOTE: a single point larger than the limit is sent as it is;
            # the gateway rejects it and the failure is logged and counted.
            self._encoded = (id(data), request)
            yield data
            return
        for half in split_in_half(data):
            yield from self._parts(half)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        outcome = MetricExportResult.SUCCESS
        for part in self._parts(metrics_data):
            result = self._export(data=part)
            self._encoded = None
            self.requests_sent += 1
            success = result is MetricExportResult.SUCCESS
            self._on_result(success, count_points(part))
            if not success:
                outcome = MetricExportResult.FAILURE
        return outcome


class DiscardingExporter(MetricExporter):
    """OTEL_METRICS_EXPORTER=none: collect on schedule, send nothing."""

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


class CollectingReader(PeriodicExportingMetricReader):
    """PeriodicExportingMetricReader that runs a collection cycle before each collect.

    ``collect`` is where every collection passes: the periodic tick, a
    force flush and the last collection on shutdown. The SDK marks it final
    for typing, but it is the one hook that sees every cycle.
    """

    def __init__(self, exporter: MetricExporter, *, before_collect: Callable[[], None],
                 **kwargs: Any) -> None:
        self._before_collect = before_collect
        self.after_collect: Callable[[], None] = lambda: None
        super().__init__(exporter, **kwargs)

    def collect(self, timeout_millis: float = 10_000) -> None:  # type: ignore[misc]
        self._before_collect()
        super().collect(timeout_millis=timeout_millis)
        self.after_collect()


def _credentials(config: Config) -> grpc.ChannelCredentials:
    def read(path: str) -> bytes | None:
        if not path:
            return None
        with open(path, "rb") as file:
            return file.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(config.certificate),
        private_key=read(config.client_key),
        certificate_chain=read(config.client_certificate),
    )


def effective_export_timeout_ms(config: Config) -> int:
    """The export deadline: an export never runs into the next cycle."""
    return int(min(config.export_timeout_ms, config.otlp_timeout_ms, config.export_interval_ms))


def build_exporter(config: Config, on_result: ResultCallback) -> MetricExporter:
    """Create the exporter OTEL_METRICS_EXPORTER names, from validated settings only."""
    temporality = _TEMPORALITY[config.temporality]
    if config.metrics_exporter == "none":
        return DiscardingExporter(preferred_temporality=temporality)
    if config.metrics_exporter == "console":
        return ConsoleMetricExporter(
            preferred_temporality=temporality,
            formatter=lambda data: data.to_json(indent=None) + "\n",
        )
    insecure = config.insecure
    if insecure is None:
        insecure = config.endpoint.startswith("http://")
    compression = grpc.Compression.Gzip if config.compression == "gzip" else None
    # gRPC waits up to 120 s between reconnection attempts by default; a
    # gateway that comes back should see exports within a cycle or two.
    reconnect_ms = max(1000, min(config.export_interval_ms, 30_000))
    return SizeLimitedOtlpExporter(
        endpoint=config.endpoint,
        insecure=insecure,
        credentials=None if insecure else _credentials(config),
        headers=config.headers,
        timeout=effective_export_timeout_ms(config) / 1e3,
        compression=compression or grpc.Compression.NoCompression,
        preferred_temporality=temporality,
        max_request_bytes=config.max_request_bytes,
        on_result=on_result,
        channel_options=(
            ("grpc.initial_reconnect_backoff_ms", 500),
            ("grpc.max_reconnect_backoff_ms", reconnect_ms),
        ),
    )
