"""What the fault tests read from outside the agent: health, threads, memory, series."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from agent_process import ROOT, free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc
from otlp_receiver import Point

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"


def check_health(port: int, service: str = "", timeout: float = 1.0) -> str:
    """Send one Check to the agent's health port and return the status name."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def wait_for_health(port: int, service: str, status: str, timeout: float) -> float:
    """Poll Check until ``service`` reports ``status``; return the seconds it took."""
    started = time.monotonic()
    seen = "no answer"
    while time.monotonic() - started < timeout:
        try:
            seen = check_health(port, service)
        except grpc.RpcError as error:
            seen = f"RPC failed: {error.code()}"
        if seen == status:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"health service {service!r} is {seen}, expected {status} within {timeout} s")


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from the VmRSS line of /proc/PID/status."""
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no VmRSS line")


def thread_count(pid: int) -> int:
    """Number of threads of a process: the entries of /proc/PID/task."""
    return len(os.listdir(f"/proc/{pid}/task"))


def series_key(point: Point) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """Identify a series by its metric name and attributes."""
    return point.name, tuple(sorted(point.attributes.items()))


def by_request(points: Iterable[Point]) -> dict[int, list[Point]]:
    """Group points by the index of the request that carried them."""
    grouped: dict[int, list[Point]] = {}
    for point in points:
        grouped.setdefault(point.request_index, []).append(point)
    return grouped


def by_collection(points: Iterable[Point]) -> dict[int, list[Point]]:
    """Group points by collection time: the parts of one split export share it."""
    grouped: dict[int, list[Point]] = {}
    for point in points:
        grouped.setdefault(point.time_unix_nano, []).append(point)
    return dict(sorted(grouped.items()))


def library_messages(lines: Iterable[Mapping[str, Any]], fragment: str) -> list[Mapping[str, Any]]:
    """library_log lines whose message contains ``fragment``."""
    return [
        line for line in lines
        if line.get("event") == "library_log" and fragment in str(line.get("message", ""))
    ]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` every 50 ms until it is truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class SplitOutputAgent:
    """The agent in a subprocess with stdout and stderr captured to two files.

    AgentProcess merges the two streams. This class keeps them apart for the
    tests that check that stdout carries JSON lines only, whatever gRPC's C
    core writes to stderr.
    """

    def __init__(
        self,
        tmp_path: Path,
        env: Mapping[str, str],
        args: Sequence[str] = (),
        health_port: int | None = None,
    ) -> None:
        self.health_port = free_port() if health_port is None else health_port
        self.stdout_path = tmp_path / f"stdout-{self.health_port}-{time.monotonic_ns()}.log"
        self.stderr_path = self.stdout_path.with_name(self.stdout_path.name.replace("stdout", "stderr"))
        environment = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("OTEL_", "HOST_AGENT_", "GRPC_"))
        }
        environment.update(
            {
                "HOST_AGENT_HEALTH_HOST": "127.0.0.1",
                "HOST_AGENT_HEALTH_PORT": str(self.health_port),
                "HOST_AGENT_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
            }
        )
        environment.update(env)
        self._stdout = self.stdout_path.open("wb")
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otel_collector", *args],
            stdout=self._stdout, stderr=self._stderr, env=environment, cwd=ROOT,
        )

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def lines(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as JSON; a line that is not JSON fails the test."""
        parsed = []
        for number, line in enumerate(self.stdout().splitlines(), start=1):
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"stdout line {number} is not JSON: {line[:300]!r}") from None
        return parsed

    def wait_for_event(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if line.get("event") == name:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {name} event within {timeout} s; stdout:\n{self.stdout()[-3000:]}")

    def stop(self, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._stdout.close()
        self._stderr.close()

    def __enter__(self) -> SplitOutputAgent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
