"""The agent's container image through the docker CLI: size, start, bundled probe.

Containers run with `--network host` and get names that start with
CONTAINER_PREFIX; the callers remove every container they start, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_IMAGE = "otel-host-agent:dev"
CONTAINER_PREFIX = "otel-host-agent-bench-"
# The bundled executable's path inside the image (images/Dockerfile).
BUNDLE_DIR = "/agent"
BUNDLE_EXECUTABLE = "/agent/otel-host-agent"
# How the agent's container reads the host, as the README's container section
# describes: the host's "/" read-only at /hostfs (the image's
# HOST_AGENT_HOST_ROOT) and the host's PID namespace.
HOST_READING_OPTIONS = ("--pid", "host", "--volume", "/:/hostfs:ro")
_DOCKER_TIMEOUT_S = 120


@dataclass(frozen=True)
class ImageInfo:
    """The image's facts from `docker image inspect`."""

    reference: str
    image_id: str
    size_bytes: int  # uncompressed: the sum of the layers as unpacked on disk
    created: str
    labels: Mapping[str, str]


def docker_cli() -> str | None:
    return shutil.which("docker")


def _docker(
    args: Sequence[str], timeout: float = _DOCKER_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    docker = docker_cli()
    if docker is None:
        raise FileNotFoundError("the docker CLI is not installed")
    return subprocess.run(
        [docker, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def inspect_image(reference: str) -> tuple[ImageInfo | None, str]:
    """Return the image's facts, or None and the reason it cannot be used."""
    if docker_cli() is None:
        return None, "the docker CLI is not installed"
    try:
        result = _docker(["image", "inspect", reference])
    except subprocess.TimeoutExpired:
        return None, "docker image inspect timed out"
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"
        return (
            None,
            f"image {reference} is not available ({reason}); build it with images/build-offline",
        )
    facts = json.loads(result.stdout)[0]
    labels = (facts.get("Config") or {}).get("Labels") or {}
    return (
        ImageInfo(reference, facts["Id"], int(facts["Size"]), facts.get("Created", ""), labels),
        "",
    )


def new_container_name() -> str:
    return f"{CONTAINER_PREFIX}{uuid.uuid4().hex[:12]}"


def run_detached(
    image: str, name: str, env: Mapping[str, str], *, extra: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Start the image's entrypoint in the background, on the host's network."""
    args = ["run", "--detach", "--name", name, "--network", "host", *extra]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    return _docker([*args, image])


def run_command(
    image: str, name: str, env: Mapping[str, str], *, extra: Sequence[str] = ()
) -> list[str]:
    """Return the docker command that runs the image in the foreground and removes it on exit."""
    docker = docker_cli() or "docker"
    command = [docker, "run", "--rm", "--name", name, "--network", "host", *extra]
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    return [*command, image]


def main_pid(name: str, timeout_s: float) -> int:
    """Return the host PID of the container's main process, waiting until it runs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = _docker(["inspect", "--format", "{{.State.Pid}}", name], timeout=20)
        if result.returncode == 0 and result.stdout.strip() not in ("", "0"):
            return int(result.stdout.strip())
        time.sleep(0.05)
    raise RuntimeError(f"container {name} did not start within {timeout_s:.0f} s")


def signal_container(name: str, signal_name: str) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired, FileNotFoundError):
        _docker(["kill", "--signal", signal_name, name], timeout=20)


def run_probe_command(image: str, env: Mapping[str, str]) -> list[str]:
    """Return the docker command that runs the bundled `healthcheck` once in a new container."""
    docker = docker_cli() or "docker"
    command = [docker, "run", "--rm", "--network", "host", "--entrypoint", BUNDLE_EXECUTABLE]
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    return [*command, image, "healthcheck"]


def logs(name: str) -> str:
    try:
        result = _docker(["logs", "--tail", "40", name], timeout=20)
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return ""
    return result.stdout + result.stderr


def remove(name: str) -> None:
    """Remove the container `name`, stopping it first; a missing container is fine."""
    with contextlib.suppress(subprocess.TimeoutExpired, FileNotFoundError):
        _docker(["rm", "--force", name], timeout=60)


def copy_bundle(image: str, destination: Path) -> Path:
    """Copy the bundled agent out of the image; return the executable's path on this host.

    The bundle then runs on this host with the host's C library, which fits
    when the host has the image's build base (Debian bookworm here).
    """
    name = new_container_name()
    created = _docker(["create", "--name", name, image])
    if created.returncode != 0:
        raise RuntimeError(f"docker create {image} failed: {created.stderr.strip()}")
    try:
        copied = _docker(["cp", f"{name}:{BUNDLE_DIR}", str(destination)])
        if copied.returncode != 0:
            raise RuntimeError(f"docker cp {name}:{BUNDLE_DIR} failed: {copied.stderr.strip()}")
    finally:
        remove(name)
    # docker cp copies the folder itself into an existing destination folder.
    return destination / Path(BUNDLE_DIR).name / Path(BUNDLE_EXECUTABLE).name
