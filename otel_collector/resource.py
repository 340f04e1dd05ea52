"""The exported resource: service, host and OS attributes, merged with the environment."""

from __future__ import annotations

import platform
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


def os_description(host: HostRoot) -> str:
    """PRETTY_NAME from the host's os-release, followed by the kernel release."""
    kernel = f"Linux {platform.release()}"
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = host.read_text(path)
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key == "PRETTY_NAME":
                return f"{value.strip().strip(chr(34))} ({kernel})"
    return kernel


def detect(host: HostRoot, service_name: str) -> dict[str, str]:
    """Attributes the agent detects itself, before the environment is merged in."""
    attributes = {
        "service.name": service_name,
        "service.version": __version__,
        "host.name": socket.gethostname(),
        "host.arch": ARCH.get(platform.machine().lower(), platform.machine().lower()),
        "os.type": "linux",
        "os.description": os_description(host),
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
