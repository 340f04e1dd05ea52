"""Figures 3 and 4: time from start to the first SERVING response, and the cost
of one `healthcheck` probe, for the Python process and the container image.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import container
from bench.peers import AgentPeer, NodeExporterPeer, PeerFailedError, clean_environment
from bench.procfs import KIB
from bench.wire import ROOT, CountingReceiver, free_port

_POLL_INTERVAL_S = 0.01
_CHECK_TIMEOUT_S = 0.5
_SERVING_TIMEOUT_S = 30.0
_PROBE_TIMEOUT_S = 30.0


def check_status(port: int, service: str = "") -> int | None:
    """Send one grpc.health.v1 Check to 127.0.0.1:port; return the status, or None on failure.

    A new channel per call: a channel that failed to connect waits out a
    reconnect backoff of a second or more, which would hide the moment the
    server starts listening.
    """
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=_CHECK_TIMEOUT_S
            )
        except grpc.RpcError:
            return None
    status: int = response.status
    return status


def wait_serving(port: int, since: float, is_alive: object = None) -> float:
    """Poll Check every 10 ms until SERVING; return the seconds since `since` (monotonic)."""
    deadline = time.monotonic() + _SERVING_TIMEOUT_S
    while time.monotonic() < deadline:
        if check_status(port) == health_pb2.HealthCheckResponse.SERVING:
            return time.monotonic() - since
        if callable(is_alive) and not is_alive():
            raise PeerFailedError(f"the agent with health port {port} exited before SERVING")
        time.sleep(_POLL_INTERVAL_S)
    raise PeerFailedError(f"health port {port} was not SERVING within {_SERVING_TIMEOUT_S:.0f} s")


def agent_start_times(log_dir: Path, repetitions: int) -> list[float]:
    """Start the agent (default interval) `repetitions` times; return seconds to SERVING."""
    times = []
    for index in range(repetitions):
        agent = AgentPeer(log_dir, f"agent-start-{index}", interval_ms=60_000)
        try:
            times.append(
                wait_serving(agent.health_port, agent.started_at, lambda a=agent: not a.exited())
            )
        except PeerFailedError as error:
            raise PeerFailedError(f"{error}; log:\n{agent.log_tail()}") from error
        finally:
            agent.stop()
    return times


def node_exporter_start_times(log_dir: Path, repetitions: int) -> list[float]:
    """Start node_exporter `repetitions` times; return seconds to its first /metrics response."""
    times = []
    for index in range(repetitions):
        peer = NodeExporterPeer(
            log_dir, f"node_exporter-start-{index}", interval_ms=1000, scrape=False
        )
        try:
            deadline = time.monotonic() + _SERVING_TIMEOUT_S
            while True:
                try:
                    peer.scrape_once()
                    times.append(time.monotonic() - peer.started_at)
                    break
                except OSError:
                    if time.monotonic() > deadline or peer.exited():
                        raise PeerFailedError(
                            f"node_exporter did not respond within {_SERVING_TIMEOUT_S:.0f} s; "
                            f"log:\n{peer.log_tail()}"
                        ) from None
                    time.sleep(_POLL_INTERVAL_S)
        finally:
            peer.stop()
    return times


def container_start_times(image: str, repetitions: int) -> list[float]:
    """Start the image `repetitions` times; return seconds from `docker run` to SERVING.

    The container reads the host through /hostfs in the host's PID and
    network namespaces, as the README's container section describes.
    """
    times = []
    with CountingReceiver(lambda _export: None) as receiver:
        for _ in range(repetitions):
            name = container.new_container_name()
            port = free_port()
            env = {
                "HOST_AGENT_HEALTH_HOST": "127.0.0.1",
                "HOST_AGENT_HEALTH_PORT": str(port),
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            }
            started = time.monotonic()
            try:
                result = container.run_detached(
                    image, name, env, extra=container.HOST_READING_OPTIONS
                )
                if result.returncode == 0:
                    times.append(wait_serving(port, started))
            except PeerFailedError as error:
                raise PeerFailedError(f"{error}; container log:\n{container.logs(name)}") from error
            finally:
                container.remove(name)
            if result.returncode != 0:
                raise PeerFailedError(f"docker run {image} failed: {result.stderr.strip()}")
    return times


@dataclass(frozen=True)
class ProbeRun:
    """One run of a probe command: wall time, peak RSS and exit status."""

    wall_s: float  # from spawn to reaping, measured by bench/measure_child.py
    peak_rss_bytes: int  # ru_maxrss of the command alone, from wait4
    floor_bytes: int  # the smallest peak RSS the helper can report (its own peak)
    exit_status: int
    output: str


_MEASURE_CHILD = Path(__file__).resolve().parent / "measure_child.py"


def run_measured(command: Sequence[str], env: Mapping[str, str]) -> ProbeRun:
    """Run `command` once through bench/measure_child.py and return what it measured."""
    with tempfile.NamedTemporaryFile(prefix="otel-host-agent-probe-") as output:
        result = subprocess.run(
            [sys.executable, "-I", "-S", str(_MEASURE_CHILD), output.name, *command],
            capture_output=True,
            text=True,
            env=dict(env),
            cwd=ROOT,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"measuring {command[0]} failed: {result.stderr.strip()[-500:]}")
        text = Path(output.name).read_text(errors="replace")
    measured = json.loads(result.stdout)
    return ProbeRun(
        wall_s=measured["wall_s"],
        peak_rss_bytes=measured["maxrss_kib"] * KIB,
        floor_bytes=measured["floor_kib"] * KIB,
        exit_status=measured["exit_status"],
        output=text,
    )


@dataclass
class ProbeResults:
    """Figure 4's runs; a list is empty where its variant was skipped, with the reason."""

    python: list[ProbeRun]
    docker_run: list[ProbeRun]
    bundle: list[ProbeRun]
    skipped: dict[str, str]


def healthcheck_runs(
    results: ProbeResults, log_dir: Path, count: int, image: str | None, image_note: str
) -> None:
    """Run each healthcheck variant `count` times against one running agent, into `results`.

    Each variant's runs land in `results` as soon as they finish, so a later
    variant's failure keeps the earlier figures.
    """
    agent = AgentPeer(log_dir, "agent-probe", interval_ms=60_000)
    try:
        wait_serving(agent.health_port, agent.started_at, lambda: not agent.exited())
        env = clean_environment({"HOST_AGENT_HEALTH_PORT": str(agent.health_port)})
        python_command = [sys.executable, "-m", "otel_collector", "healthcheck"]
        results.python = [run_measured(python_command, env) for _ in range(count)]

        if image is None:
            results.skipped["docker_run"] = results.skipped["bundle"] = image_note
            return
        probe_env = {"HOST_AGENT_HEALTH_PORT": str(agent.health_port)}
        docker_command = container.run_probe_command(image, probe_env)
        results.docker_run = [run_measured(docker_command, env) for _ in range(count)]
        with tempfile.TemporaryDirectory(prefix="otel-host-agent-bundle-") as bundle_dir:
            try:
                executable = container.copy_bundle(image, Path(bundle_dir))
            except (RuntimeError, OSError) as error:
                results.skipped["bundle"] = str(error)
                return
            results.bundle = [
                run_measured([str(executable), "healthcheck"], env) for _ in range(count)
            ]
    finally:
        agent.stop()
