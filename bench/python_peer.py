"""The Python peer: opentelemetry-instrumentation-system-metrics with its defaults.

A MeterProvider with one PeriodicExportingMetricReader and an
OTLPMetricExporter (gRPC), configured by the SDK's own environment variables
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_METRIC_EXPORT_INTERVAL, ...), and
SystemMetricsInstrumentor() without a config, so with its default metric set.
Runs until SIGTERM or SIGINT, then flushes once and exits.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader


def main() -> None:
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    provider = MeterProvider(metric_readers=[reader])
    SystemMetricsInstrumentor().instrument(meter_provider=provider)
    stop.wait()
    provider.shutdown()


if __name__ == "__main__":
    main()
