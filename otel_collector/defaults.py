"""Defaults that the image, compose.yaml and the Kubernetes manifests repeat.

This module imports nothing, so that the health probe and the tests can read
it cheaply. Tests compare the deployment files with these values.
"""

SERVICE_NAME = "otel-host-agent"
EXECUTABLE = "otel-host-agent"

# The health service listens on the IPv6 wildcard, which also accepts IPv4 on
# dual-stack hosts; the server falls back to 0.0.0.0 where IPv6 is disabled.
HEALTH_HOST = "::"
HEALTH_PORT = 13134
LIVENESS_SERVICE = "liveness"
READINESS_SERVICE = "readiness"

# Mount point of the host's "/" in the container image and the manifests.
CONTAINER_HOST_ROOT = "/hostfs"
RUNTIME_UID = 65532
RUNTIME_GID = 65532
