"""Security faults: TLS mistakes, secrets in output, hostile settings, a flooded health port."""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path

import grpc
import pytest
import structlog.testing
from agent_process import AgentProcess, run_cli
from fault_helpers import (
    SERVING,
    SplitOutputAgent,
    check_health,
    library_messages,
    rss_kib,
    wait_for_health,
    wait_until,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult, MetricsData
from otlp_receiver import OtlpReceiver, PkiPaths, make_test_pki

from otel_collector import catalogue, config
from otel_collector import exporter as exporter_module


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def _start(tmp_path: Path, receiver: OtlpReceiver, env: Mapping[str, str]) -> SplitOutputAgent:
    return SplitOutputAgent(
        tmp_path,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_METRIC_EXPORT_INTERVAL": "1000",
         **env},
    )


@pytest.mark.faults
@pytest.mark.slow
def test_tls_and_mutual_tls(tmp_path: Path, pki: PkiPaths) -> None:
    """The right CA and client certificate deliver; a wrong CA or client certificate is rejected."""
    ca = {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki.ca_cert)}
    client = {"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(pki.client_cert),
              "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(pki.client_key)}
    other_client = {"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(pki.other_client_cert),
                    "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(pki.other_client_key)}
    receivers = {
        "tls": OtlpReceiver(tls=pki.server_tls()),
        "wrong_ca": OtlpReceiver(tls=pki.server_tls()),
        "mtls": OtlpReceiver(tls=pki.server_tls(require_client_cert=True)),
        "no_client_cert": OtlpReceiver(tls=pki.server_tls(require_client_cert=True)),
        "other_client_cert": OtlpReceiver(tls=pki.server_tls(require_client_cert=True)),
    }
    settings = {
        "tls": ca,
        "wrong_ca": {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki.other_ca_cert)},
        "mtls": {**ca, **client},
        "no_client_cert": ca,
        "other_client_cert": {**ca, **other_client},
    }
    agents: dict[str, SplitOutputAgent] = {}
    try:
        # Every receiver binds its port before any agent picks a free health port,
        # so no agent can pick a port that a receiver then takes.
        for receiver in receivers.values():
            receiver.start()
        for name, receiver in receivers.items():
            agents[name] = _start(tmp_path, receiver, settings[name])
        receivers["tls"].wait_for_requests(2, timeout=30)
        receivers["mtls"].wait_for_requests(2, timeout=30)
        for name in ("wrong_ca", "no_client_cert", "other_client_cert"):
            wait_until(lambda agent=agents[name]: library_messages(agent.lines(), "Failed to export"),
                       timeout=30, what=f"the {name} agent to log its failed export")
        for agent in agents.values():
            assert agent.stop() == 0
    finally:
        for agent in agents.values():
            agent.close()
        for receiver in receivers.values():
            receiver.stop()

    assert receivers["mtls"].requests[0].peer_identities == (b"otel-host-agent-test-client",)
    for name in ("wrong_ca", "no_client_cert", "other_client_cert"):
        assert receivers[name].requests == [], name
    # A wrong CA names the endpoint and the verification failure.
    failures = library_messages(agents["wrong_ca"].lines(), "Failed to export")
    assert failures, "the TLS failure was not logged"
    assert receivers["wrong_ca"].endpoint.removeprefix("https://") in failures[0]["message"]
    assert "CERTIFICATE_VERIFY_FAILED" in failures[0]["message"]

    # A gateway that rejects the client's certificate, or its absence, only closes the
    # connection. The agent then logs a hint, once per run of failures.
    hints = {name: [line for line in agent.lines() if line["event"] == "export_tls_connection_closed"]
             for name, agent in agents.items()}
    assert len(hints["no_client_cert"]) == 1
    assert hints["no_client_cert"][0]["endpoint"] == receivers["no_client_cert"].endpoint
    assert "requires a client certificate" in hints["no_client_cert"][0]["hint"]
    assert "OTEL_EXPORTER_OTLP_CLIENT_KEY" in hints["no_client_cert"][0]["hint"]
    assert len(hints["other_client_cert"]) == 1
    assert "does not trust the client certificate" in hints["other_client_cert"][0]["hint"]
    for name in ("tls", "wrong_ca", "mtls"):
        assert hints[name] == [], name


@pytest.mark.faults
@pytest.mark.slow
def test_tls_hint_again_after_delivery(pki: PkiPaths) -> None:
    """The closed-connection hint is logged once per run of failures, and again after a delivery.

    The gateway on one port requires a client certificate, then only TLS,
    then a client certificate again. The exporter has none.
    """
    hint = exporter_module.tls_closed_hint(client_certificate_set=False)
    mutual = OtlpReceiver(tls=pki.server_tls(require_client_cert=True))
    mutual.start()
    port = mutual.port
    exporter = exporter_module.SizeLimitedOtlpExporter(
        endpoint=f"https://127.0.0.1:{port}",
        credentials=grpc.ssl_channel_credentials(root_certificates=pki.ca_cert.read_bytes()),
        timeout=3,
        max_request_bytes=4_000_000,
        on_result=lambda success, points: None,
        tls_hint=hint,
        # As the agent sets them, so that the channel retries the new gateway within a second.
        channel_options=(
            ("grpc.initial_reconnect_backoff_ms", 500),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ),
    )
    results = []
    try:
        with structlog.testing.capture_logs() as logs:
            results += [exporter.export(_one_point()), exporter.export(_one_point())]
            mutual.stop()
            with OtlpReceiver(port, tls=pki.server_tls()) as server_only:
                results.append(exporter.export(_one_point()))
                assert len(server_only.requests) == 1
            mutual.start()
            results.append(exporter.export(_one_point()))
    finally:
        exporter.shutdown()
        mutual.stop()

    failure, success = MetricExportResult.FAILURE, MetricExportResult.SUCCESS
    assert results == [failure, failure, success, failure]
    hints = [entry for entry in logs if entry["event"] == "export_tls_connection_closed"]
    assert len(hints) == 2
    assert hints[0]["hint"] == hint
    assert "Socket closed" in hints[0]["details"]
    assert mutual.requests == []


def _one_point() -> MetricsData:
    """Collect one gauge point through the SDK."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("tls-hint-test").create_observable_gauge(
        "test.gauge", callbacks=[lambda _options: [Observation(1)]]
    )
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data


SECRET = "s3cr3t-Api-Key-4711"


@pytest.mark.faults
@pytest.mark.slow
def test_header_values_never_logged(tmp_path: Path) -> None:
    """An API key stays out of every line, also at debug level, on failures and in the config output.

    The receiver echoes the key in its error details, as some gateways do
    with rejected credentials; the SDK logs those details.
    """
    headers = {"OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={SECRET},x-tenant=team-a"}
    with OtlpReceiver() as receiver:
        receiver.respond_with(grpc.StatusCode.UNAUTHENTICATED, count=3,
                              details=f"invalid API key {SECRET}")
        with _start(tmp_path, receiver, {
            **headers, "OTEL_LOG_LEVEL": "debug", "GRPC_VERBOSITY": "debug", "GRPC_TRACE": "http",
        }) as agent:
            receiver.wait_for_requests(1, timeout=15)
            receiver.respond_with(grpc.StatusCode.UNAVAILABLE)
            receiver.wait_for(lambda r: r.rejected >= 5, timeout=15, description="5 rejections")
            assert agent.stop() == 0

    assert receiver.requests[0].header("x-api-key") == SECRET
    lines = agent.lines()
    assert library_messages(lines, "invalid API key <redacted>"), "the rejection was not logged"
    assert library_messages(lines, "UNAVAILABLE")
    assert SECRET not in agent.stdout()
    assert SECRET not in agent.stderr()
    [started] = [line for line in lines if line["event"] == "agent_started"]
    assert started["config"]["headers"] == {"x-api-key": "<redacted>", "x-tenant": "<redacted>"}

    shown = run_cli(["config"], env=headers)
    assert shown.returncode == 0
    assert SECRET not in shown.stdout + shown.stderr
    # An invalid setting's message shows no header value either.
    invalid = run_cli(["config"], env={"OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={SECRET},no-equals"})
    assert invalid.returncode == 2
    assert SECRET not in invalid.stdout + invalid.stderr
    flag = run_cli(["config", "--otlp-headers", f"bad key={SECRET}"])
    assert flag.returncode == 2
    assert SECRET not in flag.stdout + flag.stderr


@pytest.mark.faults
def test_binary_header_key_rejected_quietly() -> None:
    """A header key ending in -bin, which gRPC would fail every export on, stops the start.

    gRPC raises TypeError for such a key with the request's frames, headers
    included, on the stack. The setting is now rejected before anything
    starts, and the message leaves the value out.
    """
    result = run_cli(["run"], env={"OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key-bin={SECRET}",
                                   "HOST_AGENT_HEALTH_PORT": "0"})
    assert result.returncode == 2
    assert "OTEL_EXPORTER_OTLP_HEADERS" in result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.faults
@pytest.mark.slow
def test_health_port_flood(tmp_path: Path) -> None:
    """Rounds of 200 connections with Watch streams and of connect/close leave Check fast and RSS flat."""
    connections = 200
    streams_per_connection = 2
    # RSS climbs over the first rounds while glibc's per-thread arenas fill, and
    # then levels off: in a run of 14 rounds by hand it rose 20 MiB over the first
    # 2 rounds and 8 MiB over the next 9. The warm-up rounds are not compared.
    warmup_rounds = 2
    compared_rounds = 3
    rounds = warmup_rounds + 2 * compared_rounds
    with OtlpReceiver() as receiver, _start(tmp_path, receiver, {}) as agent:
        port = agent.health_port
        wait_for_health(port, "", SERVING, timeout=10)
        baseline = rss_kib(agent.process.pid)
        rss_samples = []
        check_seconds: list[float] = []
        for _round in range(rounds):
            channels, streams = _open_watch_flood(port, connections, streams_per_connection)
            try:
                for _ in range(5):
                    started = time.monotonic()
                    assert check_health(port, "readiness", timeout=1.0) == SERVING
                    check_seconds.append(time.monotonic() - started)
            finally:
                for stream in streams:
                    stream.cancel()
                for channel in channels:
                    channel.close()
            _connect_and_close(port, 300)
            rss_samples.append(rss_kib(agent.process.pid))
        started = time.monotonic()
        assert check_health(port, "", timeout=1.0) == SERVING
        check_seconds.append(time.monotonic() - started)
        assert agent.stop() == 0

    assert max(check_seconds) < 1.0, check_seconds
    # The allocator keeps some memory after the first floods, and RSS moves by
    # several MiB from round to round. A leak would add up round after round.
    early = rss_samples[warmup_rounds : warmup_rounds + compared_rounds]
    late = rss_samples[-compared_rounds:]
    growth = sum(late) / compared_rounds - sum(early) / compared_rounds
    assert growth < 8 * 1024, (baseline, rss_samples)
    assert max(rss_samples) - baseline < 64 * 1024, (baseline, rss_samples)


def _open_watch_flood(
    port: int, connections: int, streams_per_connection: int
) -> tuple[list[grpc.Channel], list[grpc.Future]]:
    """Open Watch streams on separate TCP connections and read the first status of each."""
    channels = []
    streams = []
    for number in range(connections):
        # A local subchannel pool gives each channel its own TCP connection.
        channel = grpc.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.use_local_subchannel_pool", 1), ("grpc.channel_number", number)],
        )
        channels.append(channel)
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(streams_per_connection):
            stream = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
            streams.append(stream)
    for stream in streams:
        first = next(stream)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
    return channels, streams


def _connect_and_close(port: int, count: int) -> None:
    """Open and close TCP connections, half of them after sending bytes that are not HTTP/2."""
    for number in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            if number % 2:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


# -- settings fuzzed ---------------------------------------------------------------

# The maximum timeout that Python's threading accepts (threading.TIMEOUT_MAX). A
# longer one raises OverflowError in whichever thread waits on it.
MAX_WAIT_MS = int(threading.TIMEOUT_MAX * 1000)
# gRPC metadata: lowercase keys of these characters, and values of printable ASCII.
# Keys ending in -bin carry binary values, which a text setting cannot hold.
GRPC_HEADER_KEY = re.compile(r"[0-9a-z_.-]+")
DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def _int_in(text: str, low: int, high: float = float("inf")) -> bool:
    try:
        number = int(text)
    except ValueError:
        return False
    return low <= number <= high


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return DNS_NAME.fullmatch(host) is not None
    return True


def _valid_endpoint(text: str) -> bool:
    text = text.strip()
    if any(not char.isprintable() or char.isspace() for char in text):
        return False
    parsed = urllib.parse.urlsplit(text)
    try:
        port = parsed.port
    except ValueError:
        return False
    return (
        parsed.scheme in ("http", "https")
        and bool(parsed.hostname)
        and _valid_host(parsed.hostname or "")
        and parsed.username is None
        and parsed.password is None
        and (port is None or 1 <= port <= 65535)
        and parsed.path in ("", "/")
        and not parsed.query
        and not parsed.fragment
    )


def _valid_headers(text: str) -> bool:
    for member in text.split(","):
        if not member.strip():
            continue
        key, separator, value = member.partition("=")
        key = key.strip().lower()
        if not separator or not GRPC_HEADER_KEY.fullmatch(key) or key.endswith("-bin"):
            return False
        if any(not 0x20 <= ord(char) <= 0x7E for char in urllib.parse.unquote(value.strip())):
            return False
    return True


def _valid_pem_file(text: str) -> bool:
    if not text:
        return True
    try:
        with open(text, "rb") as file:
            return b"-----BEGIN " in file.read(1 << 20)
    except OSError:
        return False


def _valid_patterns(text: str) -> bool:
    try:
        for part in text.split(","):
            re.compile(part.strip())
    except re.error:
        return False
    return True


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return True


def _valid_attributes(text: str) -> bool:
    members = [member for member in text.split(",") if member.strip()]
    return all("=" in member and member.partition("=")[0].strip() for member in members)


def _valid_scrapers(text: str) -> bool:
    names = [name.strip() for name in text.split(",") if name.strip()]
    return set(names) <= set(config.SCRAPERS) and len(set(names)) == len(names)


def _valid_metric_names(text: str) -> bool:
    return all(name.strip() in catalogue.BY_NAME for name in text.split(",") if name.strip())


def _valid_host_root(text: str) -> bool:
    return os.path.isabs(text) and os.path.isdir(os.path.join(text, "proc"))


# Validity of a value by the setting's accepted text, tried in order: each
# setting's contract as the README documents it. Booleans also take 1, 0,
# yes, no, on and off, which config.py accepts as synonyms.
_BY_ACCEPTED_TEXT: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("true or false", lambda text: text.strip().lower() in
        {"true", "false", "1", "0", "yes", "no", "on", "off", ""}),
    ("milliseconds", lambda text: _int_in(text, 1, MAX_WAIT_MS)),
    ("an integer from 0 to 65535", lambda text: _int_in(text, 0, 65535)),
    ("a positive integer", lambda text: _int_in(text, 1)),
    ("an integer of 0 or more", lambda text: _int_in(text, 0)),
    ("a URL", _valid_endpoint),
    ("PEM file", _valid_pem_file),
    ("a non-empty name", lambda text: bool(text.strip())),
    ("contains proc/", _valid_host_root),
    ("distinct names among", _valid_scrapers),
    ("metric names from the catalogue", _valid_metric_names),
    ("regular expressions", _valid_patterns),
    ("an IP address", _valid_ip),
)
_BY_FIELD: dict[str, Callable[[str], bool]] = {
    "headers": _valid_headers,
    "resource_attributes": _valid_attributes,
}


def _choices(accepted: str) -> set[str] | None:
    """The words of an accepted text such as "auto, json or console", or None for another text."""
    if not re.fullmatch(r"[a-z]+(, [a-z]+)* or [a-z]+", accepted):
        return None
    words = set(re.split(r", | or ", accepted))
    if "warn" in words:
        words.add("warning")  # the spelling of Python's logging, which the agent also takes
    return words


def valid_value(setting: config.Setting, text: str) -> bool | None:
    """Whether ``text`` is valid for ``setting`` by its documented contract; None if unmodelled."""
    if setting.field in _BY_FIELD:
        return _BY_FIELD[setting.field](text)
    for fragment, check in _BY_ACCEPTED_TEXT:
        if fragment in setting.accepted:
            return check(text)
    choices = _choices(setting.accepted)
    if choices is not None:
        return text.strip().lower() in choices
    return None


def _fixture_files() -> dict[str, str]:
    """A PEM file, a file that is not PEM, and a directory, for the file settings."""
    directory = Path(tempfile.mkdtemp(prefix="fuzz-files-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    pem = directory / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    other = directory / "notes.txt"
    other.write_text("not a certificate\n")
    return {"pem": str(pem), "other": str(other), "directory": str(directory)}


FILES = _fixture_files()

CANDIDATES = [
    "", " ", "0", "-1", "1", "+5", " 7 ", "1.5", "1e3", "1_000", "\u0663", "0x10",
    str(2**31), str(MAX_WAIT_MS), str(MAX_WAIT_MS + 1), "9" * 30, "true", "FALSE", "yes", "maybe",
    "warn", "DEBUG", "gzip", "delta", "console", "cpu", "memory",
    "http://127.0.0.1:4317", "https://[::1]:4317", "http://gateway.local:4317/v1/metrics",
    "http://127.0.0.1:4317/", "http://127.0.0.1:4317/;x", "http://127.0.0.1:4317?a#b",
    "http://127.0.0.1:0", "http://127.0.0.1:65536", "http://user:pw@127.0.0.1:4317",
    "http://a b:4317", "ftp://127.0.0.1:4317", "127.0.0.1:4317", "http://", "https://:4317",
    "x-api-key=abc", "x-api-key=abc%3D123,tenant=a", "X-Key=v", "k=v\n", "bad key=1", "=v",
    "k", "x!key=v", "x-key=caf%C3%A9", "x-key=a%09b", "x-token-bin=abc", "k=%0A",
    "service.name=a,host.name=b", "(", "[a-", ".*", "sd[a-z]+,nvme.*", "a{1,3}", "(?P<x",
    "cpu,cpu", "cpu,nope", "cpu,memory,process", "system.cpu.time", "nope.metric",
    "system.cpu.time,system.uptime", "::", "127.0.0.1", "::1", "localhost", "0.0.0.0",
    "/", "/nonexistent", "relative/path", "/proc", "/etc/hostname",
    FILES["pem"], FILES["other"], FILES["directory"],
]


def setting_values() -> st.SearchStrategy[str]:
    tokens = st.sampled_from(CANDIDATES)
    return st.one_of(
        tokens,
        st.lists(tokens, min_size=2, max_size=4).map(",".join),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.text(max_size=30),
    )


def _resolve(setting: config.Setting, value: str, by_flag: bool, env_index: int) -> config.Config:
    if by_flag:
        return config.resolve({setting.field: value}, {})
    return config.resolve({}, {setting.env[env_index % len(setting.env)]: value})


@pytest.mark.faults
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    setting=st.sampled_from(config.SETTINGS),
    value=setting_values(),
    by_flag=st.booleans(),
    env_index=st.integers(min_value=0, max_value=1),
)
def test_settings_fuzzed_reject_in_one_line(
    setting: config.Setting, value: str, by_flag: bool, env_index: int
) -> None:
    """Any value of any setting is accepted or rejected with one line naming the setting; nothing else raises."""
    try:
        _resolve(setting, value, by_flag, env_index)
    except config.ConfigError as error:
        message = str(error)
        assert "\n" not in message
        assert message.startswith("invalid ")
        names = (setting.flag, *setting.env)
        assert any(name in message for name in names), message
        if setting.secret and len(value.strip()) >= 4:
            assert value not in message


@pytest.mark.faults
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    setting=st.sampled_from(config.SETTINGS),
    value=setting_values(),
    by_flag=st.booleans(),
    env_index=st.integers(min_value=0, max_value=1),
)
@example(setting=config.BY_FIELD["health_host"], value="localhost", by_flag=False, env_index=0)
@example(setting=config.BY_FIELD["headers"], value="x!key=v", by_flag=False, env_index=0)
@example(setting=config.BY_FIELD["headers"], value="x-key=caf%C3%A9", by_flag=False, env_index=0)
@example(setting=config.BY_FIELD["headers"], value="x-token-bin=abc", by_flag=False, env_index=0)
@example(setting=config.BY_FIELD["export_interval_ms"], value="9" * 30, by_flag=False, env_index=0)
@example(setting=config.BY_FIELD["shutdown_timeout_ms"], value="9" * 30, by_flag=False, env_index=0)
@example(setting=config.BY_FIELD["certificate"], value="/", by_flag=False, env_index=0)
@example(setting=config.BY_FIELD["certificate"], value=FILES["other"], by_flag=False, env_index=0)
@example(setting=config.BY_FIELD["endpoint"], value="http://user:pw@127.0.0.1:4317", by_flag=False,
         env_index=0)
@example(setting=config.BY_FIELD["endpoint"], value="http://127.0.0.1:0", by_flag=False, env_index=0)
def test_settings_fuzzed_accept_only_valid(
    setting: config.Setting, value: str, by_flag: bool, env_index: int
) -> None:
    """A value that resolves is valid by the setting's documented contract and usable by the agent."""
    try:
        _resolve(setting, value, by_flag, env_index)
    except config.ConfigError:
        return
    if value == "" and not by_flag:
        return  # an empty variable counts as unset, so the default applies
    assert valid_value(setting, value) is not False, f"{setting.env[0]}={value!r} was accepted"


def _encodable(text: str) -> bool:
    return "\x00" not in text and not any(0xD800 <= ord(char) <= 0xDFFF for char in text)


@pytest.mark.faults
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    setting=st.sampled_from(config.SETTINGS),
    value=setting_values().filter(_encodable),
    by_flag=st.booleans(),
)
def test_settings_fuzzed_through_cli(setting: config.Setting, value: str, by_flag: bool) -> None:
    """The real executable prints the settings or exits 2 with one line, and never a traceback."""
    if by_flag:
        result = run_cli(["config", f"{setting.flag}={value}"])
    else:
        result = run_cli(["config"], env={setting.env[0]: value})
    assert "Traceback" not in result.stdout + result.stderr
    if result.returncode == 0:
        assert setting.field in json.loads(result.stdout)
        return
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("otel-host-agent: invalid ")


@pytest.mark.faults
def test_invalid_setting_stops_run_before_start() -> None:
    """`run` with an invalid value or command line exits 2 with one line, before binding anything."""
    for args, env in (
        ([], {"OTEL_METRIC_EXPORT_INTERVAL": "soon"}),
        ([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "gateway:4317"}),
        (["--export-interval"], {}),
        (["--no-such-flag", "1"], {}),
    ):
        result = run_cli(["run", *args], env={"HOST_AGENT_HEALTH_PORT": "0", **env}, timeout=20)
        assert result.returncode == 2, (args, env, result.stderr)
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stdout == ""


@pytest.mark.faults
def test_resource_attributes_flag_applied(tmp_path: Path) -> None:
    """A setting given as a flag takes effect like the same setting given as a variable."""
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=500,
        args=["--resource-attributes", "deployment.environment.name=from-flag"],
    ):
        receiver.wait_for_requests(1, timeout=20)
    resource = receiver.points()[0].resource
    assert resource.get("deployment.environment.name") == "from-flag"
