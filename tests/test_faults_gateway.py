"""Gateway faults: a real OTLP receiver that is absent, silent, rejecting or flooded."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from agent_process import AgentProcess, free_port
from fault_helpers import (
    NOT_SERVING,
    SERVING,
    by_collection,
    by_request,
    check_health,
    rss_kib,
    series_key,
    wait_for_health,
)
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from otlp_receiver import DEFAULT_MAX_RECEIVE_BYTES, OtlpReceiver, RequestRecord

from otel_collector.exporter import (
    ExportRequest,
    SizeLimitedOtlpExporter,
    count_points,
    split_request,
)

INTERVAL_S = 1.0


def _flatten_request(record: RequestRecord) -> list[Any]:
    """Every data point message of a request, accepted or rejected."""
    return [
        point
        for resource_metrics in record.request.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        for point in getattr(metric, metric.WhichOneof("data")).data_points
    ]


def _restart_delay(receiver: OtlpReceiver, accepted_before: int) -> float:
    """Start the stopped receiver and return the seconds until the agent's next request arrives."""
    receiver.start()
    appeared = time.monotonic()
    requests = receiver.wait_for_requests(accepted_before + 1, timeout=10)
    return requests[accepted_before].received_monotonic - appeared


@pytest.mark.faults
@pytest.mark.slow
def test_gateway_absent_then_restarted(tmp_path: Path) -> None:
    """Exports and readiness resume after a late start and a restart of the gateway, in one agent."""
    port = free_port()
    receiver = OtlpReceiver(port)
    env = {"HOST_AGENT_HEALTH_RECOVERY_WINDOW": "2000"}
    try:
        with AgentProcess(
            tmp_path, endpoint=f"http://127.0.0.1:{port}", interval_ms=int(INTERVAL_S * 1000),
            env=env,
        ) as agent:
            agent.wait_for_event("agent_started")
            began = time.monotonic()
            health = agent.health_port

            # Absent at start: readiness turns NOT_SERVING after the recovery window,
            # while collection goes on and liveness stays SERVING.
            wait_for_health(health, "readiness", NOT_SERVING, timeout=6)
            while time.monotonic() - began < 20:
                assert check_health(health, "liveness") == SERVING
                time.sleep(0.5)

            appeared_ns = time.time_ns()
            delay = _restart_delay(receiver, 0)
            assert delay <= 2 * INTERVAL_S, f"first export {delay:.2f} s after the gateway appeared"
            wait_for_health(health, "readiness", SERVING, timeout=1)

            # Stopped without grace, as a killed gateway: readiness turns NOT_SERVING again.
            receiver.stop()
            accepted = len(receiver.requests)
            wait_for_health(health, "readiness", NOT_SERVING, timeout=6)
            assert check_health(health, "liveness") == SERVING

            delay = _restart_delay(receiver, accepted)
            assert delay <= 2 * INTERVAL_S, f"first export {delay:.2f} s after the restart"
            wait_for_health(health, "readiness", SERVING, timeout=1)
            receiver.wait_for_requests(accepted + 2, timeout=5)

            status, _ = agent.stop()
    finally:
        receiver.stop()
    assert status == 0

    # Cumulative counters keep the start time of the agent's first cycle across both gaps.
    cycles = by_request(receiver.points())
    first, last = cycles[min(cycles)], cycles[max(cycles)]
    start_times = {series_key(p): p.start_time_unix_nano for p in first if p.is_monotonic}
    assert ("system.cpu.time", (("cpu.mode", "user"),)) in start_times
    later = [p for p in last if p.is_monotonic and series_key(p) in start_times]
    assert later
    for point in later:
        assert point.start_time_unix_nano == start_times[series_key(point)], point.name
    # The start time is the agent's first collection, before the gateway appeared,
    # not the first delivery.
    for point in first:
        if point.is_monotonic:
            assert point.start_time_unix_nano < appeared_ns, point.name


@pytest.mark.faults
@pytest.mark.slow
def test_black_hole_gateway_bounded(tmp_path: Path) -> None:
    """A gateway that accepts and never responds costs each export its timeout and nothing more."""
    black_hole_s = 12.0
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=int(INTERVAL_S * 1000)
    ) as agent:
        receiver.wait_for_requests(1, timeout=10)
        receiver.black_hole()
        began = time.monotonic()
        rss_samples: list[int] = []
        held_for: list[float] = []
        while time.monotonic() - began < black_hole_s:
            receiver.wait_for(lambda r: r.held == 1, timeout=3 * INTERVAL_S, description="a held request")
            arrived = time.monotonic()
            rejected = receiver.rejected
            receiver.wait_for(lambda r, n=rejected: r.rejected > n, timeout=3 * INTERVAL_S,
                              description="the agent giving up")
            held_for.append(time.monotonic() - arrived)
            assert check_health(agent.health_port, "liveness") == SERVING
            rss_samples.append(rss_kib(agent.pid))
        attempts = [r for r in receiver.rejected_requests if r.received_monotonic >= began]
        receiver.reset()
        released = time.monotonic()
        accepted = len(receiver.requests)
        fresh = receiver.wait_for_requests(accepted + 1, timeout=3 * INTERVAL_S)[accepted]

        receiver.black_hole()
        receiver.wait_for(lambda r: r.held == 1, timeout=3 * INTERVAL_S, description="a held request")
        status, seconds = agent.stop()

    # Each export gives up at its deadline, which never runs into the next cycle.
    assert max(held_for) <= INTERVAL_S + 0.2, held_for
    # No cycle is skipped: one export attempt per interval while the gateway is silent.
    arrivals = [r.received_monotonic for r in attempts]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert max(gaps) <= 1.3 * INTERVAL_S, gaps
    assert len(attempts) >= black_hole_s / INTERVAL_S - 2
    # The first request after the gateway recovers carries this cycle's values,
    # and counts every export the black hole swallowed.
    fresh_points = by_request(receiver.points())[fresh.index]
    collected_ns = max(p.time_unix_nano for p in fresh_points)
    assert fresh.received_at * 1e9 - collected_ns < INTERVAL_S * 1e9
    assert fresh.received_monotonic - released <= 2 * INTERVAL_S
    failures = [p.value for p in fresh_points
                if p.name == "otel_host_agent.export.requests" and p.attributes["outcome"] == "failure"]
    assert failures == [len(attempts)]
    # Memory stays flat: the agent keeps no backlog of unsent requests.
    assert max(rss_samples[len(rss_samples) // 2:]) - rss_samples[2] < 4096, rss_samples
    assert status == 0
    assert seconds < 5
    # Liveness never flapped: every cycle completed within two intervals of the previous one.
    lines = agent.lines()
    stopped = next(i for i, line in enumerate(lines) if line["event"] == "stop_requested")
    flaps = [line for line in lines[:stopped] if line["event"] == "health_status_changed"
             and line["service"] == "liveness" and line["status"] == NOT_SERVING]
    assert flaps == []


@pytest.mark.faults
@pytest.mark.slow
def test_transient_rejections_retried_then_delivered(tmp_path: Path) -> None:
    """UNAVAILABLE and RESOURCE_EXHAUSTED are retried with backoff within one export's timeout."""
    interval_s = 4.0
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=int(interval_s * 1000)
    ) as agent:
        receiver.respond_with(grpc.StatusCode.UNAVAILABLE, count=2)
        unavailable = receiver.wait_for_requests(1, timeout=3 * interval_s)[0]
        receiver.respond_with(grpc.StatusCode.RESOURCE_EXHAUSTED, count=3, retry_delay=0.3)
        exhausted = receiver.wait_for_requests(2, timeout=2 * interval_s)[1]
        agent.stop()

    rejected = receiver.rejected_requests
    for delivered, code, count in ((unavailable, grpc.StatusCode.UNAVAILABLE, 2),
                                   (exhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, 3)):
        attempts = [r for r in rejected if r.status == code]
        assert len(attempts) == count, code
        # The retries resend the same request, and the last one is delivered
        # before the export's deadline, which is at most one interval.
        for attempt in attempts:
            assert attempt.request == delivered.request, code
        assert delivered.received_monotonic - attempts[0].received_monotonic < interval_s, code
    # The SDK backs off about 1 s, then 2 s (each within 20 %) without RetryInfo ...
    first, second = (r.received_monotonic for r in rejected if r.status == grpc.StatusCode.UNAVAILABLE)
    assert 0.7 <= second - first <= 1.5
    assert 1.5 <= unavailable.received_monotonic - second <= 2.7
    # ... and waits as long as the gateway's RetryInfo requests.
    times = [r.received_monotonic for r in rejected if r.status == grpc.StatusCode.RESOURCE_EXHAUSTED]
    times.append(exhausted.received_monotonic)
    for earlier, later in itertools.pairwise(times):
        assert 0.25 <= later - earlier <= 0.8


@pytest.mark.faults
def test_invalid_argument_not_retried_logged_once(tmp_path: Path) -> None:
    """INVALID_ARGUMENT ends an export at once, and several cycles of it log one line."""
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=500
    ) as agent:
        # A different failure first: its line must not hide the next, different one.
        receiver.respond_with(grpc.StatusCode.UNAVAILABLE)
        receiver.wait_for(lambda r: r.rejected >= 3, timeout=10, description="3 UNAVAILABLE")
        receiver.respond_with(grpc.StatusCode.INVALID_ARGUMENT)
        receiver.wait_for(
            lambda r: sum(x.status == grpc.StatusCode.INVALID_ARGUMENT for x in r.rejected_requests) >= 6,
            timeout=10, description="6 INVALID_ARGUMENT",
        )
        agent.stop()

    invalid = [r for r in receiver.rejected_requests if r.status == grpc.StatusCode.INVALID_ARGUMENT]
    collections = [max(p.time_unix_nano for p in _flatten_request(r)) for r in invalid]
    assert len(set(collections)) == len(invalid), "a request was sent twice: it was retried"
    logged = [line for line in agent.lines()
              if "INVALID_ARGUMENT" in str(line.get("message", "")) + str(line.get("error", ""))]
    assert len(logged) == 1, logged
    assert logged[0]["level"] == "error"


def _fake_root_with_mounts(tmp_path: Path, count: int) -> tuple[Path, set[str]]:
    """Write a host root whose mountinfo lists ``count`` ext4 mounts with 200-character names."""
    root = tmp_path / "hostfs"
    (root / "proc" / "1").mkdir(parents=True)
    lines = ["1 0 8:1 / / rw,relatime - ext4 /dev/root rw"]
    mountpoints = {"/"}
    for number in range(count):
        name = f"{number:05d}-" + "m" * 194
        (root / "mnt" / name).mkdir(parents=True)
        mountpoint = f"/mnt/{name}"
        mountpoints.add(mountpoint)
        lines.append(f"{number + 2} 1 8:{number % 256} / {mountpoint} rw - ext4 /dev/fake{number} rw")
    (root / "proc" / "1" / "mountinfo").write_text("\n".join(lines) + "\n")
    return root, mountpoints


@pytest.mark.faults
@pytest.mark.slow
def test_ten_thousand_mounts_split_and_delivered(tmp_path: Path) -> None:
    """A host with 10,000 mounts: every request fits the gateway's 4 MiB limit and every point arrives.

    30,000 points of system.filesystem.usage, each with a 200-character
    mountpoint, encode to about 12 MiB. Reading, aggregating and encoding them
    takes the agent several seconds on two cores, and the receiver as long
    again, so the cycle has 20 s.
    """
    root, mountpoints = _fake_root_with_mounts(tmp_path, 10_000)
    expected = {(m, state) for m in mountpoints for state in ("used", "free", "reserved")}
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=20_000,
        env={
            "HOST_AGENT_HOST_ROOT": str(root),
            "HOST_AGENT_SCRAPERS": "filesystem",
            "HOST_AGENT_METRICS_DISABLE": "system.filesystem.utilization",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "20000",
        },
    ) as agent:
        receiver.wait_for(
            lambda r: len(r.points("system.filesystem.usage")) >= len(expected),
            timeout=60, description="the points of one cycle",
        )
        status, _ = agent.stop()
    assert status == 0

    requests = receiver.requests
    assert len(requests) >= 3
    assert all(r.size_bytes <= DEFAULT_MAX_RECEIVE_BYTES for r in requests)
    assert receiver.rejected == 0
    cycles = by_collection(receiver.points("system.filesystem.usage"))
    first_cycle = next(iter(cycles.values()))
    series = {(p.attributes["system.filesystem.mountpoint"], p.attributes["system.filesystem.state"])
              for p in first_cycle}
    assert series == expected
    assert len(first_cycle) == len(expected), "a point arrived twice"


def _request_with_mixed_points() -> ExportRequest:
    """Two resources, two scopes each, and a gauge and a sum per scope with points of many sizes."""
    request = ExportRequest()
    for resource_number in range(2):
        resource_metrics = request.resource_metrics.add()
        attribute = resource_metrics.resource.attributes.add(key="host.name")
        attribute.value.string_value = f"host-{resource_number}"
        for scope_number in range(2):
            scope_metrics = resource_metrics.scope_metrics.add()
            scope_metrics.scope.name = f"scope-{scope_number}"
            gauge = scope_metrics.metrics.add(name="test.gauge", unit="1")
            total = scope_metrics.metrics.add(name="test.sum", unit="By")
            total.sum.is_monotonic = True
            for number in range(60):
                for points in (gauge.gauge.data_points, total.sum.data_points):
                    point = points.add(as_int=number)
                    label = point.attributes.add(key="label")
                    label.value.string_value = "x" * (number * 7 % 300)
    return request


def _point_identities(request: ExportRequest) -> list[tuple[str, str, str, bytes]]:
    return sorted(
        (rm.resource.attributes[0].value.string_value, sm.scope.name, metric.name,
         point.SerializeToString())
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for point in getattr(metric, metric.WhichOneof("data")).data_points
    )


@pytest.mark.faults
def test_split_request_keeps_every_point() -> None:
    """Splitting at any limit keeps each point once, with its resource, scope and metric."""
    request = _request_with_mixed_points()
    expected = _point_identities(request)
    for limit in (1, 200, 1_000, 4_096, 20_000, request.ByteSize() - 1, request.ByteSize()):
        parts = split_request(request, limit, len(expected))
        found = []
        for part in parts:
            found += _point_identities(part.request)
            assert part.points == len(_point_identities(part.request))
            if part.points > 1:
                assert part.request.ByteSize() <= limit, limit
        assert found == expected, limit
        for part in parts:
            for rm in part.request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        assert metric.WhichOneof("data") is not None
                        if metric.name == "test.sum":
                            assert metric.sum.is_monotonic
    assert len(split_request(request, request.ByteSize(), len(expected))) == 1


@pytest.mark.faults
@pytest.mark.parametrize("max_request_bytes", [4 * 1024 * 1024, 2_000])
def test_export_reports_points_per_request(max_request_bytes: int) -> None:
    """The counts reported per request add up to the points a real receiver accepted.

    With the gateway's limit the export is one request; with 2,000 bytes it
    is split into several, each reported with its own count.
    """
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("test")
    meter.create_observable_gauge(
        "test.level",
        callbacks=[lambda _options: [Observation(n * 0.5, {"slot": str(n)}) for n in range(150)]],
    )
    meter.create_observable_counter(
        "test.total", callbacks=[lambda _options: [Observation(7, {"kind": "a"})]],
    )
    data = reader.get_metrics_data()
    assert data is not None
    assert count_points(data) == 151
    reported: list[tuple[bool, int]] = []
    with OtlpReceiver() as receiver:
        exporter = SizeLimitedOtlpExporter(
            endpoint=receiver.endpoint, insecure=True, timeout=10,
            max_request_bytes=max_request_bytes,
            on_result=lambda success, points: reported.append((success, points)),
        )
        try:
            assert exporter.export(data) is MetricExportResult.SUCCESS
        finally:
            exporter.shutdown()
        received = by_request(receiver.points())
    provider.shutdown()
    assert sum(len(points) for points in received.values()) == 151
    assert all(success for success, _points in reported)
    # The exporter sends the parts in order, one at a time.
    assert [points for _success, points in reported] == [
        len(received[index]) for index in sorted(received)
    ]
    assert (len(reported) == 1) == (max_request_bytes > 100_000)
