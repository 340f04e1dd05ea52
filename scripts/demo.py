"""Run the agent on this host against rotel, a third-party OTLP collector.

rotel (from PyPI) prints every data point it receives in the Collector's
debug format; the agent's own JSON logs go to .demo/agent.log. Stop with
Ctrl-C: the agent sends a final export and both processes exit.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from rotel_peer import find_rotel_agent  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"demo: rotel did not listen on 127.0.0.1:{port} within {timeout} s")


def wait_for_health_port(
    log_path: Path, agent: subprocess.Popen[bytes], timeout: float
) -> int | None:
    """Return the port from the agent's health_server_started event, or None if it never came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "health_server_started":
                return int(event["port"])
        if agent.poll() is not None:
            return None
        time.sleep(0.1)
    return None


def main() -> None:
    grpc_port, http_port = free_port(), free_port()
    log_dir = ROOT / ".demo"
    log_dir.mkdir(exist_ok=True)
    log_path = log_dir / "agent.log"
    rotel = subprocess.Popen(
        [str(find_rotel_agent()), "start",
         "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
         "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
         "--exporter", "blackhole", "--debug-log", "metrics", "--debug-log-verbosity", "detailed"],
        env={**os.environ, "NO_COLOR": "1"},
        start_new_session=True,  # Ctrl-C reaches the demo, which stops both in order
    )
    wait_for_port(grpc_port, 10)
    interval_ms = os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") or "5000"
    print(f"demo: rotel listens on 127.0.0.1:{grpc_port}; the agent exports every "
          f"{interval_ms} ms; agent logs in {log_path}; Ctrl-C stops", flush=True)
    with log_path.open("wb") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "otel_collector"],
            env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc_port}",
                 "OTEL_METRIC_EXPORT_INTERVAL": interval_ms, "HOST_AGENT_HEALTH_PORT": "0",
                 "HOST_AGENT_HEALTH_HOST": "127.0.0.1",
                 "HOST_AGENT_LOG_FORMAT": "json"},
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )
        seconds = float(os.environ.get("DEMO_SECONDS") or "0")
        try:
            health_port = wait_for_health_port(log_path, agent, 10)
            if health_port is not None:
                print(f"demo: health service on 127.0.0.1:{health_port}; check it with "
                      f".venv/bin/otel-host-agent healthcheck --address 127.0.0.1:{health_port}",
                      flush=True)
            agent.wait(timeout=seconds or None)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            pass
        finally:
            agent.send_signal(signal.SIGTERM)
            status = agent.wait(timeout=10)
            time.sleep(1)  # let rotel print the final export
            rotel.send_signal(signal.SIGTERM)
            rotel.wait(timeout=10)
    if status != 0:
        # A setting the agent rejected, for example: its message is in the log.
        tail = log_path.read_text(errors="replace").splitlines()[-5:]
        print(f"demo: agent exited with status {status}; the end of {log_path}:", *tail,
              sep="\n", file=sys.stderr, flush=True)
        raise SystemExit(status)
    print("demo: agent exited with status 0", flush=True)


if __name__ == "__main__":
    main()
