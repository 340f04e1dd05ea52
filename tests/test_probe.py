"""Tests of the health probe, run as a subprocess against servers in the test process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from otel_collector import defaults, probe
from otel_collector.health import SERVING, HealthServer

REPO_ROOT = Path(__file__).resolve().parent.parent
PUBLISH_TIMEOUT_S = 3.0


class FakeClock:
    """Monotonic clock that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m otel_collector.probe` with args, without the port variable unless given."""
    probe_env = {key: value for key, value in os.environ.items() if key != probe.HEALTH_PORT_ENV}
    probe_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "otel_collector.probe", *args],
        capture_output=True,
        text=True,
        env=probe_env,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )


def wait_until_serving(port: int, service: str = "") -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + PUBLISH_TIMEOUT_S
        request = health_pb2.HealthCheckRequest(service=service)
        while stub.Check(request, timeout=2).status != SERVING:
            assert time.monotonic() < deadline, f"service {service!r} never became SERVING"
            time.sleep(0.01)


@pytest.fixture
def health_server() -> Iterator[HealthServer]:
    server = HealthServer("127.0.0.1", 0, cycle_interval_s=30.0, recovery_window_s=30.0)
    server.start()
    yield server
    server.stop(grace_s=0)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """Port on 127.0.0.1 that is bound but not listening, so connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as reserved:
        reserved.bind(("127.0.0.1", 0))
        yield reserved.getsockname()[1]


def test_probe_serving_exits_0(health_server):
    health_server.cycle_completed()
    wait_until_serving(health_server.port)

    result = run_probe("--address", f"127.0.0.1:{health_server.port}")

    assert result.returncode == probe.EXIT_SERVING, result.stderr
    assert result.stderr == ""


def test_probe_not_serving_exits_1(health_server):
    result = run_probe("--address", f"127.0.0.1:{health_server.port}")

    assert result.returncode == probe.EXIT_NOT_SERVING, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "NOT_SERVING" in result.stderr


def test_probe_checks_selected_service():
    # With the injected clock, exports fail for longer than the window while the
    # loop keeps completing cycles. So readiness and "" are NOT_SERVING, and liveness
    # is SERVING.
    clock = FakeClock()
    server = HealthServer("127.0.0.1", 0, cycle_interval_s=10.0, recovery_window_s=5.0, clock=clock)
    server.start()
    try:
        server.export_failed()
        clock.now += 6.0
        server.cycle_completed()
        wait_until_serving(server.port, defaults.LIVENESS_SERVICE)
        address = f"127.0.0.1:{server.port}"

        liveness = run_probe("--address", address, "--service", defaults.LIVENESS_SERVICE)
        readiness = run_probe("--address", address, "--service", defaults.READINESS_SERVICE)
        overall = run_probe("--address", address)
    finally:
        server.stop(grace_s=0)

    assert liveness.returncode == probe.EXIT_SERVING, liveness.stderr
    assert readiness.returncode == probe.EXIT_NOT_SERVING, readiness.stderr
    assert '"readiness"' in readiness.stderr
    assert overall.returncode == probe.EXIT_NOT_SERVING, overall.stderr


def test_probe_unknown_service_exits_1(health_server):
    health_server.cycle_completed()
    wait_until_serving(health_server.port)

    result = run_probe(
        "--address", f"127.0.0.1:{health_server.port}", "--service", "no-such-service"
    )

    assert result.returncode == probe.EXIT_NOT_SERVING, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "NOT_FOUND" in result.stderr
    assert '"no-such-service"' in result.stderr


def test_probe_nothing_listening_exits_3(closed_port):
    started = time.monotonic()
    result = run_probe("--address", f"127.0.0.1:{closed_port}", "--timeout", "0.5")
    elapsed = time.monotonic() - started

    assert result.returncode == probe.EXIT_CANNOT_CONNECT, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert f"127.0.0.1:{closed_port}" in result.stderr
    # The budget is 0.5 s; the rest is the interpreter and the grpc import.
    assert elapsed < 10


def test_probe_unimplemented_exits_4():
    # A gRPC server without the health service returns UNIMPLEMENTED for Check.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        result = run_probe("--address", f"127.0.0.1:{port}")
    finally:
        server.stop(None)

    assert result.returncode == probe.EXIT_RPC_FAILED, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "UNIMPLEMENTED" in result.stderr


def test_probe_slow_check_exits_4():
    def slow_check(
        request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        time.sleep(3)
        return health_pb2.HealthCheckResponse(status=SERVING)

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                slow_check,
                request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        result = run_probe("--address", f"127.0.0.1:{port}", "--timeout", "1")
    finally:
        server.stop(None)

    assert result.returncode == probe.EXIT_RPC_FAILED, result.stderr
    assert "DEADLINE_EXCEEDED" in result.stderr


def test_probe_port_option_and_environment(health_server):
    health_server.cycle_completed()
    wait_until_serving(health_server.port)
    port = str(health_server.port)

    # Both forms connect to localhost, which resolves to the loopback addresses.
    with_option = run_probe("--port", port)
    with_environment = run_probe(env={probe.HEALTH_PORT_ENV: port})

    assert with_option.returncode == probe.EXIT_SERVING, with_option.stderr
    assert with_environment.returncode == probe.EXIT_SERVING, with_environment.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--port", "0"], {}, "--port must be a port number"),
        (["--port", "abc"], {}, "invalid int value"),
        (["--timeout", "0"], {}, "--timeout must be a positive number"),
        (["--timeout", "nan"], {}, "--timeout must be a positive number"),
        (["--address", ""], {}, "--address must not be empty"),
        (["--address", "127.0.0.1:1", "--port", "1"], {}, "not allowed with"),
        (["--no-such-option"], {}, "unrecognized arguments"),
        ([], {probe.HEALTH_PORT_ENV: "abc"}, f"{probe.HEALTH_PORT_ENV} must be a port number"),
        ([], {probe.HEALTH_PORT_ENV: "70000"}, f"{probe.HEALTH_PORT_ENV} must be a port number"),
    ],
)
def test_probe_invalid_arguments_exit_2(args, env, expected):
    result = run_probe(*args, env=env)

    assert result.returncode == probe.EXIT_INVALID_ARGUMENTS, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert expected in result.stderr


def test_main_returns_status_instead_of_exiting(capsys):
    assert probe.main(["--help"]) == 0
    assert "--service" in capsys.readouterr().out
    assert probe.main(["--timeout", "-1"]) == probe.EXIT_INVALID_ARGUMENTS


def test_probe_import_loads_no_agent_dependencies():
    code = "import json, sys; import otel_collector.probe; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=True,
    )
    modules = json.loads(result.stdout)

    for heavy in ("opentelemetry", "structlog", "psutil", "otel_collector.health"):
        loaded = [name for name in modules if name == heavy or name.startswith(heavy + ".")]
        assert loaded == [], f"importing the probe loaded {loaded}"
    assert "grpc" in modules
