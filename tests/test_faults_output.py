"""Lifecycle and output faults: SIGTERM during a slow export, and stdout that must stay JSON."""

from __future__ import annotations

import datetime
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from agent_process import AgentProcess
from fault_helpers import (
    NOT_SERVING,
    SERVING,
    SplitOutputAgent,
    by_request,
    check_health,
    library_messages,
    wait_for_health,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from otlp_receiver import OtlpReceiver


class _WatchRecorder:
    """A Watch stream on the agent's health service, recording each status with its arrival time."""

    def __init__(self, port: int, service: str = "") -> None:
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = health_pb2_grpc.HealthStub(self._channel)
        self._stream = stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=30)
        self.statuses: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self._stream:
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                self.statuses.append((time.monotonic(), name))
        except grpc.RpcError:
            pass  # the server closed the stream when it stopped

    def close(self) -> None:
        self._stream.cancel()
        self._channel.close()
        self._thread.join(timeout=5)


@pytest.mark.faults
@pytest.mark.slow
def test_sigterm_during_slow_export(tmp_path: Path) -> None:
    """SIGTERM while the gateway delays an export: NOT_SERVING at once, one final export, exit 0 in 5 s.

    The export in flight may run 6 s, longer than the 4 s shutdown budget,
    so the agent has to cut it short to make its final export in time.
    """
    interval_s = 6.0
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=int(interval_s * 1000)
    ) as agent:
        wait_for_health(agent.health_port, "", SERVING, timeout=10)
        watch = _WatchRecorder(agent.health_port)
        receiver.delay(30, count=1)
        receiver.wait_for(lambda r: r.held == 1, timeout=2 * interval_s, description="a held export")
        time.sleep(0.5)
        signalled = time.monotonic()
        status, seconds = agent.stop(signal.SIGTERM)
        watch.close()

    assert status == 0
    assert seconds < 5
    # Every service turned NOT_SERVING at once, and the Watch stream saw it.
    not_serving = [at for at, name in watch.statuses if name == NOT_SERVING and at >= signalled]
    assert not_serving, watch.statuses
    assert not_serving[0] - signalled < 0.5
    # One final export, with values collected after SIGTERM, was delivered.
    assert len(receiver.requests) == 1, receiver.summary()
    final = by_request(receiver.points())[receiver.requests[0].index]
    assert min(p.time_unix_nano for p in final) > time.time_ns() - (time.monotonic() - signalled) * 1e9
    assert "system.cpu.time" in {p.name for p in final}
    assert agent.lines()[-1]["event"] == "agent_stopped"


LEVELS = {"debug", "info", "warning", "error", "critical"}


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = {key for key in keys if keys.count(key) > 1}
    assert not duplicates, f"a log line has the keys {sorted(duplicates)} more than once"
    return dict(pairs)


def _check_log_lines(stdout: str) -> list[dict[str, Any]]:
    """Parse every stdout line as one JSON object with one timestamp and one level."""
    lines = []
    for number, text in enumerate(stdout.splitlines(), start=1):
        try:
            line = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
        except json.JSONDecodeError:
            raise AssertionError(f"stdout line {number} is not JSON: {text[:300]!r}") from None
        assert isinstance(line, dict), f"stdout line {number} is not an object"
        assert datetime.datetime.fromisoformat(line["timestamp"]).tzinfo is not None, line
        assert line["level"] in LEVELS, line
        assert isinstance(line["event"], str), line
        lines.append(line)
    return lines


@pytest.mark.faults
def test_stdout_json_with_grpc_debug_output(tmp_path: Path) -> None:
    """The SDK's retry warnings are JSON lines, and gRPC's C-core debug log stays on stderr."""
    with OtlpReceiver() as receiver:
        receiver.respond_with(grpc.StatusCode.UNAVAILABLE)
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            # Long enough for the SDK to retry within one export.
            "OTEL_METRIC_EXPORT_INTERVAL": "3000",
            "OTEL_LOG_LEVEL": "debug",
            "GRPC_VERBOSITY": "debug",
            "GRPC_TRACE": "http,channel,subchannel",
        }
        with SplitOutputAgent(tmp_path, env) as agent:
            receiver.wait_for(lambda r: r.rejected >= 3, timeout=15, description="3 UNAVAILABLE")
            status = agent.stop()

    assert status == 0
    lines = _check_log_lines(agent.stdout())
    retries = library_messages(lines, "Transient error StatusCode.UNAVAILABLE")
    assert retries, "no retry warning of the SDK was logged"
    assert retries[0]["level"] == "warning"
    assert lines[-1]["event"] == "agent_stopped"
    # The C core did write its debug log, to stderr.
    assert "chttp2" in agent.stderr() or "subchannel" in agent.stderr()


@pytest.mark.faults
def test_second_agent_on_same_port_exits(tmp_path: Path) -> None:
    """A second agent on a taken health port exits 1 with a JSON line naming the reason."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_METRIC_EXPORT_INTERVAL": "1000"}
    with SplitOutputAgent(tmp_path, env) as first:
        first.wait_for_event("agent_started", timeout=10)
        with SplitOutputAgent(tmp_path, env, health_port=first.health_port) as second:
            second_status = second.process.wait(timeout=20)
        assert check_health(first.health_port) == SERVING
        first.stop()

    assert second_status == 1
    lines = _check_log_lines(second.stdout())
    [failure] = [line for line in lines if line["event"] == "agent_start_failed"]
    assert failure["level"] == "error"
    assert "address already in use" in failure["error"]
    assert str(first.health_port) in failure["error"]
    assert "agent_started" not in {line["event"] for line in lines}
    _check_log_lines(first.stdout())
