"""Check the Kubernetes manifests against the API schemas and against the agent's own code.

Everything here runs offline: the schemas come with kubernetes-validate, and the
optional kustomize build uses the local kubectl binary.
"""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from otel_collector import __version__, config, defaults

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_DIR = REPO_ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = MANIFEST_DIR / "kustomization.yaml"
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
BENCHMARK_PAGE = REPO_ROOT / "docs" / "benchmarks.md"

# Oldest Kubernetes minor release the manifests are written for. The strict
# schemas of that release reject every field added later, and the stable APIs
# used here (v1, apps/v1) only gain fields, so passing here covers newer
# releases too. kubernetes-validate 1.37 ships schemas for 1.28 to 1.37.
KUBERNETES_VERSION = "1.33"

NAMESPACE = "otel-host-agent"
AGENT_NAME = "otel-host-agent"
GATEWAY_NAME = "otel-gateway"
GATEWAY_CONFIG_NAME = "otel-gateway-config"
GATEWAY_IMAGE_PATTERN = re.compile(
    r"^otel/opentelemetry-collector-contrib:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$"
)
# The standard OTLP/gRPC port, which the gateway Service and receiver use.
OTLP_GRPC_PORT = 4317
# Interval between the agent's collections and exports (OTEL_METRIC_EXPORT_INTERVAL).
EXPORT_INTERVAL_MILLISECONDS = "60000"


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Load every non-empty YAML document of a file."""
    with path.open(encoding="utf-8") as stream:
        return [document for document in yaml.safe_load_all(stream) if document]


def manifest_files() -> list[Path]:
    """List the manifest files, which are every YAML file except the kustomization."""
    return sorted(path for path in MANIFEST_DIR.glob("*.yaml") if path != KUSTOMIZATION)


def all_documents() -> list[tuple[str, dict[str, Any]]]:
    """Pair every manifest document with a label such as 'gateway.yaml:Service/otel-gateway'."""
    labeled = []
    for path in manifest_files():
        for document in load_documents(path):
            label = f"{path.name}:{document['kind']}/{document['metadata']['name']}"
            labeled.append((label, document))
    return labeled


def find_resource(kind: str, name: str) -> dict[str, Any]:
    matches = [
        document
        for _, document in all_documents()
        if document["kind"] == kind and document["metadata"]["name"] == name
    ]
    assert len(matches) == 1, f"expected one {kind}/{name} in {MANIFEST_DIR}, found {len(matches)}"
    return matches[0]


def only_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']} should run one container"
    return containers[0]


def env_values(container: dict[str, Any]) -> dict[str, str]:
    """Map the container's literal env variables to their values."""
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def volumes_by_name(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {volume["name"]: volume for volume in workload["spec"]["template"]["spec"]["volumes"]}


def env_names(container: dict[str, Any]) -> list[str]:
    return [item["name"] for item in container.get("env", [])]


def effective_security_setting(workload: dict[str, Any], key: str) -> Any:
    """Return a security setting as applied: the container's value, else the pod's."""
    pod_context = workload["spec"]["template"]["spec"].get("securityContext", {})
    container_context = only_container(workload).get("securityContext", {})
    return container_context.get(key, pod_context.get(key))


def gateway_config() -> dict[str, Any]:
    config_map = find_resource("ConfigMap", GATEWAY_CONFIG_NAME)
    return yaml.safe_load(config_map["data"]["config.yaml"])


def resource_identity(document: dict[str, Any]) -> tuple[str, str]:
    return (document["kind"], document["metadata"]["name"])


def port_of(endpoint: str) -> int:
    """Return the port of a 'host:port' endpoint."""
    return int(endpoint.rsplit(":", 1)[1])


# Schema validation


LABELED_DOCUMENTS = all_documents()


@pytest.mark.parametrize(
    "document",
    [document for _, document in LABELED_DOCUMENTS],
    ids=[label for label, _ in LABELED_DOCUMENTS],
)
def test_manifest_validates_strictly(document: dict[str, Any]) -> None:
    try:
        schema_version = kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        location = ".".join(str(part) for part in error.path)
        pytest.fail(f"invalid at {location or 'top level'}: {error.message}")

    # validate() silently falls back to an older schema set when the requested
    # one is missing, so check which one it used.
    assert schema_version == KUBERNETES_VERSION


def test_strict_schema_rejects_unknown_field() -> None:
    daemon_set = find_resource("DaemonSet", AGENT_NAME)
    only_container(daemon_set)["imagePullPolicyy"] = "IfNotPresent"

    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolicyy"):
        kubernetes_validate.validate(daemon_set, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_existing_files() -> None:
    resources = load_documents(KUSTOMIZATION)[0]["resources"]

    assert len(resources) == len(set(resources)), f"duplicate entries in {resources}"
    for resource in resources:
        assert (MANIFEST_DIR / resource).is_file(), f"kustomization.yaml lists missing {resource}"


def test_kustomization_lists_every_manifest() -> None:
    resources = set(load_documents(KUSTOMIZATION)[0]["resources"])

    for path in manifest_files():
        assert path.name in resources, f"kustomization.yaml does not list {path.name}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_build_outputs_manifests() -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    result = subprocess.run(
        [kubectl, "kustomize", str(MANIFEST_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize failed: {result.stderr}"

    built = [document for document in yaml.safe_load_all(result.stdout) if document]
    expected = [document for _, document in all_documents()]
    assert sorted(built, key=resource_identity) == sorted(expected, key=resource_identity)


# Namespace


def test_namespace_enforces_privileged_pod_security() -> None:
    namespace = find_resource("Namespace", NAMESPACE)

    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_resources_live_in_namespace() -> None:
    for label, document in all_documents():
        if document["kind"] == "Namespace":
            continue
        assert document["metadata"].get("namespace") == NAMESPACE, f"{label} is not in {NAMESPACE}"


# Agent DaemonSet


def test_agent_health_port_matches_defaults() -> None:
    container = only_container(find_resource("DaemonSet", AGENT_NAME))

    assert env_values(container)["HOST_AGENT_HEALTH_PORT"] == str(defaults.HEALTH_PORT)
    assert [port["containerPort"] for port in container["ports"]] == [defaults.HEALTH_PORT]
    assert container["livenessProbe"]["grpc"]["port"] == defaults.HEALTH_PORT
    assert container["readinessProbe"]["grpc"]["port"] == defaults.HEALTH_PORT


def test_agent_probes_use_health_services() -> None:
    container = only_container(find_resource("DaemonSet", AGENT_NAME))

    assert container["livenessProbe"]["grpc"]["service"] == defaults.LIVENESS_SERVICE
    assert container["readinessProbe"]["grpc"]["service"] == defaults.READINESS_SERVICE


def test_agent_mounts_host_root_read_only() -> None:
    daemon_set = find_resource("DaemonSet", AGENT_NAME)
    container = only_container(daemon_set)
    host_root = defaults.CONTAINER_HOST_ROOT
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == host_root]
    assert len(mounts) == 1, f"expected one mount at {host_root}"
    mount = mounts[0]
    volumes = volumes_by_name(daemon_set)

    assert mount["readOnly"] is True
    assert mount["mountPropagation"] == "HostToContainer"
    assert volumes[mount["name"]]["hostPath"]["path"] == "/"
    assert env_values(container)["HOST_AGENT_HOST_ROOT"] == host_root


def test_agent_shares_host_namespaces() -> None:
    pod_spec = find_resource("DaemonSet", AGENT_NAME)["spec"]["template"]["spec"]

    assert pod_spec["hostPID"] is True
    assert pod_spec["hostNetwork"] is True
    assert pod_spec["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_agent_runs_as_runtime_user() -> None:
    daemon_set = find_resource("DaemonSet", AGENT_NAME)

    assert effective_security_setting(daemon_set, "runAsNonRoot") is True
    assert effective_security_setting(daemon_set, "runAsUser") == defaults.RUNTIME_UID
    assert effective_security_setting(daemon_set, "runAsGroup") == defaults.RUNTIME_GID


def test_agent_security_context_is_restricted() -> None:
    daemon_set = find_resource("DaemonSet", AGENT_NAME)

    assert effective_security_setting(daemon_set, "readOnlyRootFilesystem") is True
    assert effective_security_setting(daemon_set, "allowPrivilegeEscalation") is False
    assert effective_security_setting(daemon_set, "capabilities") == {"drop": ["ALL"]}
    assert effective_security_setting(daemon_set, "seccompProfile") == {"type": "RuntimeDefault"}
    assert effective_security_setting(daemon_set, "privileged") in (None, False)


def test_agent_has_no_api_token() -> None:
    pod_spec = find_resource("DaemonSet", AGENT_NAME)["spec"]["template"]["spec"]
    service_account = find_resource("ServiceAccount", pod_spec["serviceAccountName"])

    assert pod_spec["automountServiceAccountToken"] is False
    assert service_account["automountServiceAccountToken"] is False


def test_agent_tolerates_every_taint() -> None:
    tolerations = find_resource("DaemonSet", AGENT_NAME)["spec"]["template"]["spec"]["tolerations"]

    # A toleration with operator Exists and no key or effect matches every
    # taint, the control-plane taint included.
    assert {"operator": "Exists"} in tolerations


def test_agent_image_matches_package_version() -> None:
    container = only_container(find_resource("DaemonSet", AGENT_NAME))

    assert container["image"] == f"{defaults.SERVICE_NAME}:{__version__}"
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_agent_sets_requests_and_limits() -> None:
    daemon_set = find_resource("DaemonSet", AGENT_NAME)
    resources = only_container(daemon_set)["resources"]

    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}
    assert daemon_set["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 0


def _mebibytes(quantity: str) -> float:
    """Convert a Kubernetes memory quantity in Mi or Gi to MiB."""
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert match, f"memory quantity {quantity!r} is not in Mi or Gi"
    return int(match[1]) * (1024 if match[2] == "Gi" else 1)


def _benchmarked_container_rss_mib() -> float:
    """Read the container's peak RSS at cycle 1000 from the committed benchmark page."""
    for line in BENCHMARK_PAGE.read_text().splitlines():
        if line.startswith("| 2 | Peak RSS (VmHWM)"):
            return float(line.split("|")[4])  # the "Agent in container" column
    raise AssertionError(f"no peak RSS row in {BENCHMARK_PAGE}")


def test_memory_request_covers_benchmarked_rss() -> None:
    resources = only_container(find_resource("DaemonSet", AGENT_NAME))["resources"]
    rss_mib = _benchmarked_container_rss_mib()

    assert _mebibytes(resources["requests"]["memory"]) >= rss_mib * 1.25
    assert _mebibytes(resources["limits"]["memory"]) >= 2 * rss_mib


def test_agent_exporter_settings() -> None:
    values = env_values(only_container(find_resource("DaemonSet", AGENT_NAME)))

    assert values["OTEL_SERVICE_NAME"] == defaults.SERVICE_NAME
    assert values["OTEL_METRIC_EXPORT_INTERVAL"] == EXPORT_INTERVAL_MILLISECONDS
    assert values["OTEL_EXPORTER_OTLP_INSECURE"] == "true"


def test_agent_resource_attributes_name_node_and_pod() -> None:
    container = only_container(find_resource("DaemonSet", AGENT_NAME))
    field_paths = {
        item["name"]: item["valueFrom"]["fieldRef"]["fieldPath"]
        for item in container["env"]
        if "valueFrom" in item
    }
    raw_attributes = env_values(container)["OTEL_RESOURCE_ATTRIBUTES"]
    attributes = dict(pair.split("=", 1) for pair in raw_attributes.split(","))
    names = env_names(container)

    assert attributes["k8s.node.name"] == "$(K8S_NODE_NAME)"
    assert attributes["k8s.pod.name"] == "$(K8S_POD_NAME)"
    assert field_paths["K8S_NODE_NAME"] == "spec.nodeName"
    assert field_paths["K8S_POD_NAME"] == "metadata.name"
    # Kubernetes expands $(NAME) only from variables defined earlier in the list.
    assert names.index("K8S_NODE_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")
    assert names.index("K8S_POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")


def test_agent_environment_resolves_in_config(tmp_path: Path) -> None:
    daemon_set = find_resource("DaemonSet", AGENT_NAME)
    environ = env_values(only_container(daemon_set))
    # Stand-ins for what the kubelet provides: the downward API values, and the
    # host root, which config.resolve() requires to contain proc/.
    environ = {
        name: value.replace("$(K8S_NODE_NAME)", "node-1").replace("$(K8S_POD_NAME)", "agent-1")
        for name, value in environ.items()
    }
    (tmp_path / "proc").mkdir()
    environ["HOST_AGENT_HOST_ROOT"] = str(tmp_path)
    grace_milliseconds = (
        daemon_set["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] * 1000
    )

    resolved = config.resolve({}, environ)

    assert resolved.health_port == defaults.HEALTH_PORT
    assert resolved.export_interval_ms == int(EXPORT_INTERVAL_MILLISECONDS)
    assert resolved.insecure is True
    assert resolved.service_name == defaults.SERVICE_NAME
    assert resolved.shutdown_timeout_ms < grace_milliseconds


def test_agent_endpoint_targets_gateway_service() -> None:
    container = only_container(find_resource("DaemonSet", AGENT_NAME))
    endpoint = urlsplit(env_values(container)["OTEL_EXPORTER_OTLP_ENDPOINT"])
    service = find_resource("Service", GATEWAY_NAME)
    service_ports = [port["port"] for port in service["spec"]["ports"]]

    assert endpoint.scheme == "http"
    assert endpoint.hostname == f"{GATEWAY_NAME}.{service['metadata']['namespace']}.svc"
    assert endpoint.port in service_ports


# Gateway


def test_service_reaches_gateway_receiver() -> None:
    service = find_resource("Service", GATEWAY_NAME)
    container = only_container(find_resource("Deployment", GATEWAY_NAME))
    container_ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    receiver_endpoint = gateway_config()["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    (service_port,) = service["spec"]["ports"]

    assert service_port["port"] == OTLP_GRPC_PORT
    assert service_port["appProtocol"] == "grpc"
    assert container_ports[service_port["targetPort"]] == port_of(receiver_endpoint)
    assert receiver_endpoint == f"0.0.0.0:{OTLP_GRPC_PORT}"


def test_service_selects_gateway_pods() -> None:
    service = find_resource("Service", GATEWAY_NAME)
    pod_labels = find_resource("Deployment", GATEWAY_NAME)["spec"]["template"]["metadata"]["labels"]

    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_workload_selectors_match_pod_labels() -> None:
    for kind, name in (("DaemonSet", AGENT_NAME), ("Deployment", GATEWAY_NAME)):
        workload = find_resource(kind, name)
        selector = workload["spec"]["selector"]["matchLabels"]
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items(), f"{kind}/{name} selector misses its pods"


def test_gateway_image_pinned_by_tag_and_digest() -> None:
    image = only_container(find_resource("Deployment", GATEWAY_NAME))["image"]

    assert GATEWAY_IMAGE_PATTERN.match(image), f"{image} is not pinned by version tag and digest"


def test_gateway_image_matches_compose() -> None:
    if not COMPOSE_FILE.exists():
        pytest.skip("compose.yaml does not exist yet, so there is no image to compare with")
    image = only_container(find_resource("Deployment", GATEWAY_NAME))["image"]
    services = load_documents(COMPOSE_FILE)[0]["services"]
    compose_images = {
        service["image"]
        for service in services.values()
        if "opentelemetry-collector-contrib" in service.get("image", "")
    }

    assert compose_images == {image}


def test_gateway_security_context_is_restricted() -> None:
    deployment = find_resource("Deployment", GATEWAY_NAME)

    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert effective_security_setting(deployment, "runAsNonRoot") is True
    assert effective_security_setting(deployment, "readOnlyRootFilesystem") is True
    assert effective_security_setting(deployment, "allowPrivilegeEscalation") is False
    assert effective_security_setting(deployment, "capabilities") == {"drop": ["ALL"]}
    assert effective_security_setting(deployment, "seccompProfile") == {"type": "RuntimeDefault"}


def test_gateway_reads_mounted_config() -> None:
    deployment = find_resource("Deployment", GATEWAY_NAME)
    container = only_container(deployment)
    volumes = volumes_by_name(deployment)
    config_arguments = [arg for arg in container["args"] if arg.startswith("--config=")]
    assert len(config_arguments) == 1, f"expected one --config argument in {container['args']}"
    config_path = Path(config_arguments[0].removeprefix("--config="))
    mounts = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == config_path.parent]
    assert len(mounts) == 1, f"expected one volume mounted at {config_path.parent}"
    mount = mounts[0]

    assert volumes[mount["name"]]["configMap"]["name"] == GATEWAY_CONFIG_NAME
    assert config_path.name in find_resource("ConfigMap", GATEWAY_CONFIG_NAME)["data"]


def test_gateway_pipeline_limits_memory_and_batches() -> None:
    config = gateway_config()
    pipeline = config["service"]["pipelines"]["metrics"]

    assert pipeline["receivers"] == ["otlp"]
    # memory_limiter must run first to reject data before anything buffers it.
    assert pipeline["processors"][0] == "memory_limiter"
    assert "batch" in pipeline["processors"]
    assert set(pipeline["exporters"]) == {"otlp_grpc", "debug"}


def test_gateway_pipeline_components_are_defined() -> None:
    config = gateway_config()

    for section in ("receivers", "processors", "exporters"):
        for pipeline_name, pipeline in config["service"]["pipelines"].items():
            for component in pipeline[section]:
                assert component in config[section], f"{pipeline_name} uses undefined {component}"
    for extension in config["service"]["extensions"]:
        assert extension in config["extensions"], f"service enables undefined {extension}"


def test_gateway_probes_hit_health_check() -> None:
    container = only_container(find_resource("Deployment", GATEWAY_NAME))
    container_ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    health_endpoint = gateway_config()["extensions"]["health_check"]["endpoint"]

    for probe_name in ("livenessProbe", "readinessProbe"):
        probe_port = container[probe_name]["httpGet"]["port"]
        assert container_ports[probe_port] == port_of(health_endpoint), probe_name
