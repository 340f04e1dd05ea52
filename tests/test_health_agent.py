"""The health service of a running agent, checked with a real gRPC client."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from agent_process import AgentProcess, free_port, run_cli
from grpc_health.v1 import health_pb2, health_pb2_grpc
from otlp_receiver import OtlpReceiver

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def check(port: int, service: str = "") -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status


def wait_for_status(port: int, service: str, status: int, timeout: float) -> float:
    """Poll Check until ``service`` reports ``status``; return the seconds it took."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < timeout:
        try:
            last = check(port, service)
        except grpc.RpcError as error:
            last = error.code()
        if last == status:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{service!r} stayed {last} for {timeout} s, expected {status}")


# Fault injection: psutil.cpu_times stands in for a slow first reading, so the
# test can ask the health service before the first cycle completes.
SLOW_FIRST_CYCLE = """
import time, psutil
_real_cpu_times = psutil.cpu_times
_calls = []
def _slow_cpu_times(*args, **kwargs):
    if not _calls:
        _calls.append(1)
        time.sleep(3)
    return _real_cpu_times(*args, **kwargs)
psutil.cpu_times = _slow_cpu_times
"""

# Fault injection: psutil.getloadavg blocks while the flag file exists, which
# stalls the collection loop the way a stuck scraper would.
STALL_WHILE_FLAG = """
import os, time, psutil
_real_getloadavg = psutil.getloadavg
def _stalling_getloadavg():
    while os.path.exists({flag!r}):
        time.sleep(0.05)
    return _real_getloadavg()
psutil.getloadavg = _stalling_getloadavg
"""


def test_not_serving_until_first_cycle(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, python_prelude=SLOW_FIRST_CYCLE
    ) as agent:
        agent.wait_for_event("health_server_started")
        for service in ("", "liveness", "readiness"):
            assert check(agent.health_port, service) == NOT_SERVING
        seconds = wait_for_status(agent.health_port, "", SERVING, timeout=10)
        assert seconds > 1  # it waited for the slow first reading


def test_serving_after_first_cycle(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, AgentProcess(tmp_path, endpoint=receiver.endpoint) as agent:
        wait_for_status(agent.health_port, "", SERVING, timeout=10)
        assert check(agent.health_port, "liveness") == SERVING
        assert check(agent.health_port, "readiness") == SERVING


def test_unknown_service_not_found(tmp_path: Path) -> None:
    with AgentProcess(tmp_path, env={"OTEL_METRICS_EXPORTER": "none"}) as agent:
        wait_for_status(agent.health_port, "", SERVING, timeout=10)
        with pytest.raises(grpc.RpcError) as caught:
            check(agent.health_port, "no-such-service")
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.slow
def test_readiness_follows_receiver(tmp_path: Path) -> None:
    receiver = OtlpReceiver()
    receiver.start()
    with AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=500,
        env={"HOST_AGENT_HEALTH_RECOVERY_WINDOW": "1500"},
    ) as agent:
        receiver.wait_for_requests(1, timeout=15)
        assert check(agent.health_port, "readiness") == SERVING
        receiver.stop()
        stopped = time.monotonic()
        wait_for_status(agent.health_port, "readiness", NOT_SERVING, timeout=15)
        assert time.monotonic() - stopped >= 1.5  # not before the recovery window
        assert check(agent.health_port, "liveness") == SERVING
        assert check(agent.health_port, "") == NOT_SERVING
        receiver.start()
        wait_for_status(agent.health_port, "readiness", SERVING, timeout=15)
        assert check(agent.health_port, "") == SERVING
        status, _ = agent.stop()
    receiver.stop()
    assert status == 0


@pytest.mark.slow
def test_liveness_fails_when_collection_stalls(tmp_path: Path) -> None:
    flag = tmp_path / "stall"
    with AgentProcess(
        tmp_path, interval_ms=500, env={"OTEL_METRICS_EXPORTER": "none"},
        python_prelude=STALL_WHILE_FLAG.format(flag=str(flag)),
    ) as agent:
        wait_for_status(agent.health_port, "liveness", SERVING, timeout=10)
        flag.touch()
        seconds = wait_for_status(agent.health_port, "liveness", NOT_SERVING, timeout=10)
        assert seconds <= 2 * 0.5 + 1.0  # within two intervals of the last completed cycle
        assert check(agent.health_port, "") == NOT_SERVING
        flag.unlink()
        wait_for_status(agent.health_port, "liveness", SERVING, timeout=10)
        status, _ = agent.stop()
    assert status == 0


def _watch(port: int, received: list[int], ready: threading.Event) -> None:
    """Record the statuses of one Watch stream on "" until it reports NOT_SERVING after SERVING."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=30
        )
        try:
            for response in stream:
                received.append(response.status)
                if response.status == SERVING:
                    ready.set()
                if response.status == NOT_SERVING and ready.is_set():
                    return
        except grpc.RpcError:
            return


def test_sigterm_turns_every_service_not_serving(tmp_path: Path) -> None:
    received: list[int] = []
    ready = threading.Event()
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=3_600_000,
        env={"HOST_AGENT_SHUTDOWN_TIMEOUT": "3000"},
    ) as agent:
        wait_for_status(agent.health_port, "", SERVING, timeout=10)
        # One export in flight to a slow receiver keeps the agent alive after SIGTERM.
        receiver.delay(2.0)
        watcher = threading.Thread(
            target=_watch, args=(agent.health_port, received, ready), daemon=True
        )
        watcher.start()
        assert ready.wait(5)
        agent.process.send_signal(signal.SIGTERM)
        agent.wait_for_event("stop_requested", timeout=5)
        statuses = {}
        for service in ("", "liveness", "readiness"):
            # The signal handler only sets a flag; the main thread turns the
            # services NOT_SERVING a moment later, then stops the server.
            deadline = time.monotonic() + 1
            while True:
                try:
                    statuses[service] = check(agent.health_port, service)
                except grpc.RpcError:
                    statuses[service] = "stopped"
                if statuses[service] != SERVING or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        watcher.join(10)
        status, seconds = agent.stop()
    assert received[-1] == NOT_SERVING
    assert all(value in (NOT_SERVING, "stopped") for value in statuses.values()), statuses
    assert NOT_SERVING in statuses.values()
    assert status == 0
    assert seconds < 5


def test_second_agent_on_same_port_exits_with_message(tmp_path: Path) -> None:
    with AgentProcess(tmp_path, env={"OTEL_METRICS_EXPORTER": "none"}) as first:
        wait_for_status(first.health_port, "", SERVING, timeout=10)
        second = run_cli(
            [], env={"HOST_AGENT_HEALTH_PORT": str(first.health_port),
                     "HOST_AGENT_HEALTH_HOST": "127.0.0.1", "OTEL_METRICS_EXPORTER": "none",
                     "HOST_AGENT_LOG_FORMAT": "json"},
        )
        assert check(first.health_port) == SERVING  # the first one is unaffected
    assert second.returncode != 0
    assert str(first.health_port) in second.stdout + second.stderr
    assert "already in use" in second.stdout + second.stderr


def test_healthcheck_exit_statuses(tmp_path: Path) -> None:
    with AgentProcess(tmp_path, env={"OTEL_METRICS_EXPORTER": "none"}) as agent:
        wait_for_status(agent.health_port, "", SERVING, timeout=10)
        env = {"HOST_AGENT_HEALTH_PORT": str(agent.health_port)}
        assert run_cli(["healthcheck"], env=env).returncode == 0
        assert run_cli(["healthcheck", "--service", "liveness"], env=env).returncode == 0
        assert run_cli(["healthcheck", "--service", "nope"], env=env).returncode == 1
        agent.stop()
    unreachable = run_cli(["healthcheck", "--port", str(free_port()), "--timeout", "0.5"])
    assert unreachable.returncode == 3
    assert run_cli(["healthcheck", "--bogus-flag"]).returncode == 2


def test_healthcheck_not_serving_status(tmp_path: Path) -> None:
    with AgentProcess(tmp_path, python_prelude=SLOW_FIRST_CYCLE,
                      env={"OTEL_METRICS_EXPORTER": "none"}) as agent:
        agent.wait_for_event("health_server_started")
        result = run_cli(["healthcheck", "--port", str(agent.health_port)])
        assert result.returncode == 1
        assert result.stderr.strip()


def test_probe_imports_only_what_check_needs() -> None:
    import subprocess

    code = ("import sys; from otel_collector import probe; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('opentelemetry', 'structlog', 'psutil')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
