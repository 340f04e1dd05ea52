"""Three agents as if on three hosts, one receiver: series arrive and stay apart."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from otlp_receiver import OtlpReceiver, Point
from test_image import REPO_ROOT, build_image, root_mount_propagates, run, wait_until_healthy

pytestmark = pytest.mark.docker

FLEET_FILE = REPO_ROOT / "compose.fleet.yaml"
NODES = ("node-a", "node-b", "node-c")
INTERVAL_MS = 1000


@pytest.fixture(scope="module")
def fleet_image() -> str:
    return build_image("otel-host-agent:dev").tag  # cached layers make this seconds


@pytest.fixture
def fleet(fleet_image: str, tmp_path: Path) -> Iterator[tuple[OtlpReceiver, list[str]]]:
    project = f"otelfleet{uuid.uuid4().hex[:8]}"
    with OtlpReceiver() as receiver:
        files = ["--file", str(FLEET_FILE)]
        if not root_mount_propagates():
            # Docker rejects rslave for a bind mount of a private "/"; systemd
            # hosts make "/" shared at boot, this test VM does not.
            override: dict[str, Any] = {
                "services": {node: {"volumes": ["/:/hostfs:ro"]} for node in NODES}
            }
            path = tmp_path / "fleet.override.yaml"
            path.write_text(yaml.safe_dump(override))
            files += ["--file", str(path)]
        compose = ["docker-compose", "--project-name", project, *files]
        environment = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                       "OTEL_METRIC_EXPORT_INTERVAL": str(INTERVAL_MS)}
        try:
            run([*compose, "up", "--detach", "--no-build", *NODES], cwd=REPO_ROOT,
                env=environment)
            yield receiver, compose
        finally:
            run([*compose, "down", "--timeout", "10"], cwd=REPO_ROOT, check=False,
                env=environment)


def hosts_after(points: list[Point], since: float, receiver: OtlpReceiver) -> set[str]:
    """host.name values of the requests that arrived after ``since`` (time.monotonic)."""
    late = {r.index for r in receiver.requests if r.received_monotonic > since}
    return {p.resource["host.name"] for p in points if p.request_index in late}


def test_fleet_series_arrive_apart_and_survive_restart(
    fleet: tuple[OtlpReceiver, list[str]],
) -> None:
    receiver, compose = fleet
    for node in NODES:
        container = run([*compose, "ps", "--quiet", node], cwd=REPO_ROOT).stdout.strip()
        wait_until_healthy(container)
    receiver.wait_for_points(lambda points: {p.resource["host.name"] for p in points} >= set(NODES),
                             timeout=30, description="points from every node")

    # Each request carries one agent's resource, and each agent its own instance id.
    for record in receiver.requests:
        resources = {tuple(sorted((kv.key, kv.value.string_value) for kv in rm.resource.attributes
                                  if kv.key in ("host.name", "service.instance.id")))
                     for rm in record.request.resource_metrics}
        assert len(resources) == 1
        (pairs,) = resources
        assert dict(pairs)["host.name"] == dict(pairs)["service.instance.id"]

    run([*compose, "stop", "--timeout", "10", "node-b"], cwd=REPO_ROOT)
    stopped = time.monotonic()
    time.sleep(3 * INTERVAL_MS / 1000 + 1)
    after_stop = hosts_after(receiver.points(), stopped + 1.0, receiver)
    assert after_stop == {"node-a", "node-c"}

    run([*compose, "start", "node-b"], cwd=REPO_ROOT)
    restarted = time.monotonic()
    receiver.wait_for(lambda rx: "node-b" in hosts_after(rx.points(), restarted, rx),
                      timeout=30, description="node-b exporting again")
    assert hosts_after(receiver.points(), restarted, receiver) >= {"node-a", "node-b", "node-c"}
