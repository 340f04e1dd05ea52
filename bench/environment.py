"""The machine and the versions of every peer, for the record of a run."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata

from bench.peers import NODE_EXPORTER
from bench.wire import ROOT

PYTHON_PEER_PACKAGES = (
    "opentelemetry-instrumentation-system-metrics",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-grpc",
    "psutil",
    "grpcio",
)


def _first_line(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "unknown")
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    load1, load5, _ = os.getloadavg()
    return {
        "CPU": f"{_cpu_model()}, {os.cpu_count()} logical CPUs",
        "memory": _memory_total(),
        "OS": _os_name(),
        "kernel": platform.release(),
        "load average at start (1 min, 5 min)": f"{load1:.2f}, {load5:.2f}",
    }


def versions() -> dict[str, str]:
    from otel_collector import __version__

    found = {
        "otel-host-agent": f"{__version__} (commit {_git_revision()})",
        "Python": sys.version.split()[0],
    }
    executable = shutil.which(NODE_EXPORTER)
    if executable is None:
        found["node_exporter"] = "not installed"
    else:
        package = _first_line(["dpkg-query", "--showformat=${Version}", "--show", NODE_EXPORTER])
        found["node_exporter"] = (
            f"{_first_line([executable, '--version'])}; Debian package {package}"
        )
    for name in PYTHON_PEER_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    docker = shutil.which("docker")
    if docker is not None:
        found["Docker Engine"] = _first_line([docker, "version", "--format", "{{.Server.Version}}"])
    return found


def _git_revision() -> str:
    revision = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"])
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{revision}{' with uncommitted changes' if status.stdout.strip() else ''}"
