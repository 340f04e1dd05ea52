"""The README's first quick-start command: scripts/demo.py against rotel."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from agent_process import ROOT

DEMO = ROOT / "scripts" / "demo.py"


def run_demo(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("OTEL_", "HOST_AGENT_", "DEMO_"))}
    environment.update(env)
    return subprocess.run([sys.executable, str(DEMO)], env=environment, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.slow
def test_demo_prints_points_and_exits_0() -> None:
    result = run_demo(DEMO_SECONDS="4", OTEL_METRIC_EXPORT_INTERVAL="1000")
    assert result.returncode == 0, result.stderr
    assert "demo: health service on 127.0.0.1:" in result.stdout
    assert "system.cpu.time" in result.stdout  # printed by rotel
    assert result.stdout.rstrip().endswith("demo: agent exited with status 0")


def test_demo_shows_rejected_setting() -> None:
    result = run_demo(DEMO_SECONDS="10", HOST_AGENT_SCRAPERS="cpu,bogus")
    assert result.returncode == 2
    assert "invalid HOST_AGENT_SCRAPERS='cpu,bogus'" in result.stderr
    assert "unknown scraper 'bogus'" in result.stderr
