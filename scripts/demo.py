"""Run the agent on this host against rotel, a third-party OTLP collector.

rotel (from PyPI) prints every data point it receives in the Collector's
debug format; the agent's own JSON logs go to .demo/agent.log. Stop with
Ctrl-C: the agent sends a final export and both processes exit.
"""

from __future__ import annotations

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


def main() -> None:
    grpc_port, http_port = free_port(), free_port()
    log_dir = ROOT / ".demo"
    log_dir.mkdir(exist_ok=True)
    rotel = subprocess.Popen(
        [str(find_rotel_agent()), "start",
         "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
         "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
         "--exporter", "blackhole", "--debug-log", "metrics", "--debug-log-verbosity", "detailed"],
        env={**os.environ, "NO_COLOR": "1"},
        start_new_session=True,  # Ctrl-C reaches the demo, which stops both in order
    )
    wait_for_port(grpc_port, 10)
    interval_ms = os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "5000")
    print(f"demo: rotel listens on 127.0.0.1:{grpc_port}; the agent exports every "
          f"{interval_ms} ms; agent logs in {log_dir / 'agent.log'}; Ctrl-C stops", flush=True)
    with (log_dir / "agent.log").open("wb") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "otel_collector"],
            env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc_port}",
                 "OTEL_METRIC_EXPORT_INTERVAL": interval_ms, "HOST_AGENT_HEALTH_PORT": "0",
                 "HOST_AGENT_HEALTH_HOST": "127.0.0.1",
                 "HOST_AGENT_LOG_FORMAT": "json"},
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )
        seconds = float(os.environ.get("DEMO_SECONDS", "0"))
        try:
            agent.wait(timeout=seconds or None)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            pass
        finally:
            agent.send_signal(signal.SIGTERM)
            status = agent.wait(timeout=10)
            time.sleep(1)  # let rotel print the final export
            rotel.send_signal(signal.SIGTERM)
            rotel.wait(timeout=10)
    print(f"demo: agent exited with status {status}", flush=True)


if __name__ == "__main__":
    main()
