"""Settings: every setting accepts its valid values and rejects invalid ones by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from agent_process import ROOT, run_cli

from otel_collector import config

VALID = [
    ("OTEL_SDK_DISABLED", "true", "sdk_disabled", True),
    ("OTEL_LOG_LEVEL", "WARN", "log_level", "warning"),
    ("HOST_AGENT_LOG_FORMAT", "console", "log_format", "console"),
    ("OTEL_METRICS_EXPORTER", "none", "metrics_exporter", "none"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "15000", "export_interval_ms", 15000),
    ("OTEL_METRIC_EXPORT_TIMEOUT", "5000", "export_timeout_ms", 5000),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://gateway:4317", "endpoint", "https://gateway:4317"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://gateway:4317/", "endpoint", "http://gateway:4317/"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,x=1", "headers", (("api-key", "a b"), ("x", "1"))),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip", "compression", "gzip"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500", "otlp_timeout_ms", 2500),
    ("OTEL_EXPORTER_OTLP_INSECURE", "true", "insecure", True),
    ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta", "temporality", "delta"),
    ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod", "resource_attributes",
     "deployment.environment.name=prod"),
    ("OTEL_SERVICE_NAME", "node-agent", "service_name", "node-agent"),
    ("HOST_AGENT_HOST_ROOT", "/", "host_root", "/"),
    ("HOST_AGENT_SCRAPERS", "cpu, memory", "scrapers", ("cpu", "memory")),
    ("HOST_AGENT_METRICS_ENABLE", "system.cpu.utilization", "metrics_enable",
     ("system.cpu.utilization",)),
    ("HOST_AGENT_METRICS_DISABLE", "system.uptime", "metrics_disable", ("system.uptime",)),
    ("HOST_AGENT_PER_CPU", "TRUE", "per_cpu", True),
    ("HOST_AGENT_CONNECTION_STATES", "true", "connection_states", True),
    ("HOST_AGENT_FILESYSTEM_TIMEOUT", "500", "fs_timeout_ms", 500),
    ("HOST_AGENT_HEALTH_HOST", "127.0.0.1", "health_host", "127.0.0.1"),
    ("HOST_AGENT_HEALTH_PORT", "0", "health_port", 0),
    ("HOST_AGENT_HEALTH_RECOVERY_WINDOW", "1000", "health_recovery_window_ms", 1000),
    ("HOST_AGENT_SHUTDOWN_TIMEOUT", "3000", "shutdown_timeout_ms", 3000),
    ("HOST_AGENT_SCRAPERS", "process", "scrapers", ("process",)),
    ("HOST_AGENT_PROCESS_TOP", "0", "process_top", 0),
    ("HOST_AGENT_PROCESS_TOP_BY", "Memory", "process_top_by", "memory"),
    ("HOST_AGENT_PROCESS_COMMAND_LINE", "true", "process_command_line", True),
    ("HOST_AGENT_EXPORT_MAX_REQUEST_BYTES", "65536", "max_request_bytes", 65536),
    ("HOST_AGENT_CARDINALITY_LIMIT", "50", "cardinality_limit", 50),
]

INVALID = [
    ("OTEL_SDK_DISABLED", "maybe", "true or false"),
    ("OTEL_SDK_DISABLED", "yes", "true or false"),
    ("HOST_AGENT_PER_CPU", "1", "true or false"),
    ("OTEL_LOG_LEVEL", "verbose", "debug, info, warn (or warning) or error"),
    ("HOST_AGENT_LOG_FORMAT", "xml", "auto, json or console"),
    ("OTEL_METRICS_EXPORTER", "prometheus", "otlp, console or none"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "abc", "positive integer of milliseconds"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "0", "positive integer of milliseconds"),
    ("OTEL_METRIC_EXPORT_TIMEOUT", "-5", "positive integer of milliseconds"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317", "scheme http or https"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://host:99999", "a port from 1 to 65535"),
    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "ftp://host", "scheme http or https"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign", "key=value pairs"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "gzip or none"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "1.5", "positive integer of milliseconds"),
    ("OTEL_EXPORTER_OTLP_INSECURE", "sometimes", "true or false"),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "readable regular file with a PEM block"),
    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/", "readable regular file with a PEM block"),
    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/hostname", "readable regular file with a PEM block"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:pw@gateway:4317", "no user or password"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://gateway:0", "a port from 1 to 65535"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://gateway:4318/v1/metrics", "no path"),
    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://gateway:4317?tls=1", "no path"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://bad_host!:4317", "scheme http or https"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "key-bin=abc", "key=value pairs"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "key=a%0Ab", "key=value pairs"),
    ("HOST_AGENT_HEALTH_HOST", "localhost", "IPv4 or IPv6 address"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "999999999999", "at most 604800000"),
    ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes", "cumulative, delta"),
    ("OTEL_RESOURCE_ATTRIBUTES", "novalue", "key=value pairs"),
    ("OTEL_SERVICE_NAME", "  ", "non-empty name"),
    ("HOST_AGENT_HOST_ROOT", "relative/path", "absolute path"),
    ("HOST_AGENT_HOST_ROOT", "/nonexistent-root", "contains proc/"),
    ("HOST_AGENT_SCRAPERS", "cpu,gpu", "distinct names among"),
    ("HOST_AGENT_SCRAPERS", "cpu,cpu", "distinct names among"),
    ("HOST_AGENT_METRICS_ENABLE", "system.cpu.bogus", "unknown metric 'system.cpu.bogus'"),
    ("HOST_AGENT_METRICS_DISABLE", "cpu.time", "unknown metric 'cpu.time'"),
    ("HOST_AGENT_PER_CPU", "2", "true or false"),
    ("HOST_AGENT_CONNECTION_STATES", "by-state", "true or false"),
    ("HOST_AGENT_DISK_DEVICES_INCLUDE", "sd[a", "regular expressions"),
    ("HOST_AGENT_FILESYSTEM_MOUNTPOINTS_EXCLUDE", "(", "regular expressions"),
    ("HOST_AGENT_NETWORK_INTERFACES_EXCLUDE", "*eth", "regular expressions"),
    ("HOST_AGENT_FILESYSTEM_TIMEOUT", "never", "positive integer of milliseconds"),
    ("HOST_AGENT_PROCESS_NAMES_INCLUDE", "[", "regular expressions"),
    ("HOST_AGENT_PROCESS_NAMES_EXCLUDE", "a**", "regular expressions"),
    ("HOST_AGENT_PROCESS_COMMAND_LINES_INCLUDE", "(?P<x", "regular expressions"),
    ("HOST_AGENT_PROCESS_COMMAND_LINES_EXCLUDE", "+", "regular expressions"),
    ("HOST_AGENT_PROCESS_TOP", "-1", "an integer of 0 or more"),
    ("HOST_AGENT_PROCESS_TOP_BY", "io", "cpu or memory"),
    ("HOST_AGENT_PROCESS_COMMAND_LINE", "yes please", "true or false"),
    ("HOST_AGENT_HEALTH_PORT", "65536", "0 to 65535"),
    ("HOST_AGENT_HEALTH_PORT", "http", "0 to 65535"),
    ("HOST_AGENT_HEALTH_RECOVERY_WINDOW", "0", "positive integer of milliseconds"),
    ("HOST_AGENT_SHUTDOWN_TIMEOUT", "5s", "positive integer of milliseconds"),
    ("HOST_AGENT_EXPORT_MAX_REQUEST_BYTES", "4MiB", "positive integer of bytes"),
    ("HOST_AGENT_CARDINALITY_LIMIT", "0", "positive integer"),
]


@pytest.mark.parametrize(("env", "raw", "field", "expected"), VALID)
def test_valid_value_resolves(env: str, raw: str, field: str, expected: object) -> None:
    resolved = config.resolve({}, {env: raw})
    assert resolved.values[field] == expected


@pytest.mark.parametrize(("env", "raw", "accepted"), INVALID)
def test_invalid_value_names_setting(env: str, raw: str, accepted: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.resolve({}, {env: raw})
    message = str(caught.value)
    assert env in message
    assert accepted in message


def test_every_setting_has_invalid_case() -> None:
    """The table above covers every setting that can be invalid."""
    covered = {env for env, _, _ in INVALID}
    free_text = {"fs_devices_include", "fs_devices_exclude",
                 "fs_mountpoints_include", "fs_types_include", "fs_types_exclude",
                 "disk_devices_exclude", "net_interfaces_include"}
    for setting in config.SETTINGS:
        if setting.field in free_text:
            continue
        assert covered & set(setting.env), f"no invalid case for {setting.field}"


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("cpu,netstats", "(unknown scraper 'netstats')"),
        ("cpu,memory,cpu", "('cpu' is listed twice)"),
        ("", "(the list is empty)"),
        (" , ", "(the list is empty)"),
    ],
)
def test_scraper_list_error_names_the_item(raw: str, detail: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.resolve({"scrapers": raw}, {})

    assert str(caught.value).endswith(detail)


def test_empty_variable_counts_as_unset() -> None:
    empty = {name: "" for setting in config.SETTINGS for name in setting.env}
    resolved = config.resolve({}, empty)
    defaults = config.resolve({}, {})
    assert resolved.values == defaults.values
    assert all(source.is_default for source in resolved.sources.values())


def test_empty_signal_endpoint_falls_back() -> None:
    resolved = config.resolve({}, {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "",
                                   "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4999"})
    assert resolved.sources["endpoint"].name == "OTEL_EXPORTER_OTLP_ENDPOINT"
    assert resolved.values["endpoint"] == "http://127.0.0.1:4999"


def test_metrics_without_scraper_names_the_scraper() -> None:
    resolved = config.resolve(
        {},
        {"HOST_AGENT_METRICS_ENABLE": "process.cpu.utilization,system.cpu.utilization,"
         "otel_host_agent.scraper.errors"},
    )

    assert config.metrics_without_scraper(resolved) == {"process.cpu.utilization": "process"}


def test_flag_wins_over_environment() -> None:
    resolved = config.resolve({"export_interval_ms": "1000"}, {"OTEL_METRIC_EXPORT_INTERVAL": "9000"})
    assert resolved.export_interval_ms == 1000


def test_metrics_variable_wins_over_generic() -> None:
    resolved = config.resolve(
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4317",
         "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:4317"},
    )
    assert resolved.endpoint == "http://metrics:4317"


def test_invalid_flag_is_named_in_message() -> None:
    with pytest.raises(config.ConfigError, match="--export-interval='x'"):
        config.resolve({"export_interval_ms": "x"}, {})


def test_client_key_needs_certificate(tmp_path) -> None:
    key = tmp_path / "client.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(config.ConfigError, match="must be set together") as caught:
        config.resolve({}, {"OTEL_EXPORTER_OTLP_CLIENT_KEY": str(key)})
    assert "OTEL_EXPORTER_OTLP_CLIENT_KEY is set but OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE" in str(
        caught.value
    )
    with pytest.raises(config.ConfigError) as caught:
        config.resolve({"client_certificate": str(key)}, {})
    message = str(caught.value)
    assert "--otlp-client-certificate is set but OTEL_EXPORTER_OTLP_CLIENT_KEY is not" in message
    assert "--otlp-client-key" in message


def test_header_value_never_in_error() -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.resolve({}, {"OTEL_EXPORTER_OTLP_HEADERS": "Bearer-s3cr3t"})
    assert "s3cr3t" not in str(caught.value)
    assert config.REDACTED in str(caught.value)


def test_enabled_metrics_follow_switches() -> None:
    resolved = config.resolve(
        {},
        {"HOST_AGENT_METRICS_ENABLE": "system.cpu.utilization",
         "HOST_AGENT_METRICS_DISABLE": "system.uptime"},
    )
    enabled = config.enabled_metrics(resolved)
    assert "system.cpu.utilization" in enabled
    assert "system.uptime" not in enabled
    assert "system.memory.limit" not in enabled  # opt-in, and not switched on


def test_scraper_switch_removes_its_metrics() -> None:
    enabled = config.enabled_metrics(config.resolve({}, {"HOST_AGENT_SCRAPERS": "memory"}))
    assert "system.memory.usage" in enabled
    assert "system.cpu.time" not in enabled


def test_cli_invalid_value_exits_2_with_one_line() -> None:
    result = run_cli([], env={"OTEL_METRIC_EXPORT_INTERVAL": "abc"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "OTEL_METRIC_EXPORT_INTERVAL='abc'" in lines[0]
    assert "positive integer of milliseconds" in lines[0]
    assert result.stdout == ""


def test_cli_invalid_flag_exits_2() -> None:
    result = run_cli(["--health-port", "70000"])
    assert result.returncode == 2
    assert "--health-port='70000'" in result.stderr


def test_config_command_redacts_headers() -> None:
    secret = "s3cr3t-value-123"
    result = run_cli(["config"], env={"OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={secret}"})
    assert result.returncode == 0
    assert secret not in result.stdout + result.stderr
    printed = json.loads(result.stdout)
    assert printed["headers"] == {"x-api-key": config.REDACTED}


def test_command_after_flags_gets_hint() -> None:
    result = run_cli(["--export-interval", "1234", "config"])
    assert result.returncode == 2
    assert "unrecognized arguments: config" in result.stderr
    assert "the command comes before the flags" in result.stderr


def test_config_command_prints_every_setting() -> None:
    result = run_cli(["config", "--export-interval", "1234"])
    printed = json.loads(result.stdout)
    fields = {setting.field for setting in config.SETTINGS}
    assert set(printed) == fields | {"export_timeout_effective_ms"}
    assert printed["export_interval_ms"] == 1234


def test_config_command_into_closed_pipe() -> None:
    # Like `config | head -c 10`: the reader is gone before the output is written.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "otel_collector", "config"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 1


def test_config_command_prints_effective_export_timeout() -> None:
    """The export deadline is the smallest of the export timeout, OTLP timeout and interval."""
    cases = [
        ({}, 10000),  # the OTLP timeout's default caps the export timeout's
        ({"OTEL_METRIC_EXPORT_INTERVAL": "5000"}, 5000),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "40000", "OTEL_METRIC_EXPORT_TIMEOUT": "20000"}, 20000),
    ]
    for env, expected in cases:
        printed = json.loads(run_cli(["config"], env=env).stdout)
        assert printed["export_timeout_effective_ms"] == expected, env
