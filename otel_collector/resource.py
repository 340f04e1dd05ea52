"""The exported resource: service, host and OS attributes, merged with the environment."""

from __future__ import annotations

import platform
import shlex
import socket
import urllib.parse
import uuid

from opentelemetry.sdk.resources import Resource

from otel_collector import __version__
from otel_collector.hostfs import HostRoot

# The namespace the semantic conventions give for a service.instance.id derived
# from a stable ID with UUID version 5 (service.instance.id, registry v1.44.0).
INSTANCE_ID_NAMESPACE = uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320")

# platform.machine() values mapped to the host.arch values of the conventions.
ARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm32", "armv6l": "arm32", "i386": "x86", "i686": "x86",
    "ppc64le": "ppc64", "ppc64": "ppc64", "s390x": "s390x",
}


def machine_id(host: HostRoot) -> str | None:
    """Return the host's machine-id (see machine-id(5)), or None when it has none."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            value = host.read_text(path).strip()
        except OSError:
            continue
        if value:
            return value
    return None


# os-release(5) variables mapped to the os.* attributes of the conventions.
OS_RELEASE_ATTRIBUTES = {"NAME": "os.name", "VERSION_ID": "os.version", "BUILD_ID": "os.build_id"}


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release(5): KEY=value lines whose values follow shell quoting."""
    variables = {}
    for line in text.splitlines():
        key, separator, value = line.partition("=")
        key = key.strip()
        if not separator or not key or key.startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:  # an unterminated quote
            continue
        variables[key] = " ".join(words)
    return variables


def os_release(host: HostRoot) -> dict[str, str]:
    """Return the variables of the host's os-release, or {} when it has none."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            return parse_os_release(host.read_text(path))
        except OSError:
            continue
    return {}


def os_attributes(host: HostRoot) -> dict[str, str]:
    """Return the os.* attributes: os.type, and the rest from os-release and the kernel.

    os.description is PRETTY_NAME followed by the kernel release. os.name,
    os.version and os.build_id, from NAME, VERSION_ID and BUILD_ID, are left
    out when their variable is missing or empty.
    """
    release = os_release(host)
    kernel = f"Linux {platform.release()}"
    pretty_name = release.get("PRETTY_NAME")
    attributes = {
        "os.type": "linux",
        "os.description": f"{pretty_name} ({kernel})" if pretty_name else kernel,
    }
    for variable, attribute in OS_RELEASE_ATTRIBUTES.items():
        if release.get(variable):
            attributes[attribute] = release[variable]
    return attributes


def detect(host: HostRoot, service_name: str) -> dict[str, str]:
    """Attributes the agent detects itself, before the environment is merged in."""
    attributes = {
        "service.name": service_name,
        "service.version": __version__,
        "host.name": socket.gethostname(),
        "host.arch": ARCH.get(platform.machine().lower(), platform.machine().lower()),
        **os_attributes(host),
    }
    host_id = machine_id(host)
    if host_id:
        attributes["host.id"] = host_id
        # Stable across restarts of the agent on the same host.
        attributes["service.instance.id"] = str(
            uuid.uuid5(INSTANCE_ID_NAMESPACE, f"{host_id}/{service_name}")
        )
    else:
        attributes["service.instance.id"] = str(uuid.uuid4())
    return attributes


def parse_attributes(text: str) -> dict[str, str]:
    """Parse OTEL_RESOURCE_ATTRIBUTES: comma-separated key=value pairs, values percent-encoded."""
    attributes = {}
    for member in text.split(","):
        key, separator, value = member.partition("=")
        if separator and key.strip():
            attributes[key.strip()] = urllib.parse.unquote(value.strip())
    return attributes


def build(
    host: HostRoot, service_name: str, service_name_is_set: bool, resource_attributes: str
) -> Resource:
    """Merge detected attributes with the resource attributes and the service name settings.

    As the SDK specification requires, OTEL_RESOURCE_ATTRIBUTES (or its flag)
    wins over detection, and OTEL_SERVICE_NAME (or its flag) wins over both.
    The values come from the resolved settings, so flags apply like variables.
    """
    sdk = {k: v for k, v in Resource.create().attributes.items() if k.startswith("telemetry.sdk.")}
    attributes = {**sdk, **detect(host, service_name), **parse_attributes(resource_attributes)}
    if service_name_is_set:
        attributes["service.name"] = service_name
    return Resource(attributes)
