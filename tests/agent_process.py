"""Run the agent as a real process on this host, the way a user starts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from otlp_receiver import free_port

__all__ = ["ROOT", "AgentProcess", "free_port", "run_cli"]

ROOT = Path(__file__).resolve().parent.parent


class AgentProcess:
    """The agent in a subprocess, its stdout captured to a file and parsed as JSON lines."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        endpoint: str | None = None,
        interval_ms: int = 500,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        python_prelude: str | None = None,
    ) -> None:
        self.health_port = free_port()
        self.log_path = tmp_path / f"agent-{self.health_port}.log"
        environment = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("OTEL_", "HOST_AGENT_"))
        }
        environment.update(
            {
                "OTEL_METRIC_EXPORT_INTERVAL": str(interval_ms),
                "HOST_AGENT_HEALTH_HOST": "127.0.0.1",
                "HOST_AGENT_HEALTH_PORT": str(self.health_port),
                "HOST_AGENT_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if endpoint is not None:
            environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        environment.update(env or {})
        if python_prelude is None:
            command = [sys.executable, "-m", "otel_collector", *args]
        else:
            # A fault injected into the agent's own process: the prelude runs
            # first, then the agent's entry point, as the console script would.
            script = f"{python_prelude}\nfrom otel_collector.cli import main\nmain()\n"
            command = [sys.executable, "-c", script, *args]
        self._log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, stdout=self._log_file, stderr=subprocess.STDOUT, env=environment, cwd=ROOT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as JSON; a line that is not JSON fails the test."""
        parsed = []
        for line in self.output().splitlines():
            if line.strip():
                parsed.append(json.loads(line))
        return parsed

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]

    def wait_for_log(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if predicate(line):
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no matching log line within {timeout} s; output:\n{self.output()[-4000:]}")

    def wait_for_event(self, name: str, timeout: float = 10) -> dict[str, Any]:
        return self.wait_for_log(lambda line: line.get("event") == name, timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, float]:
        """Send ``sig`` and wait; return the exit status and the seconds it took."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"agent did not exit within {timeout} s of {sig!r}") from None
        return status, time.monotonic() - started

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_file.close()

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_cli(args: Sequence[str], env: Mapping[str, str] | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the executable once (config, healthcheck, or a run that must fail fast)."""
    environment = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "HOST_AGENT_"))
    }
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "otel_collector", *args],
        capture_output=True, text=True, env=environment, timeout=timeout, cwd=ROOT, check=False,
    )
