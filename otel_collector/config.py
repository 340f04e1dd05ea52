"""Settings: one table of every setting, resolved from flags and environment.

Each setting has an environment variable and a command-line flag; the flag
wins. The OpenTelemetry variables follow the SDK environment specification,
where a signal-specific variable (OTEL_EXPORTER_OTLP_METRICS_*) wins over the
generic one. Everything is validated before the agent starts: the first
invalid value raises ConfigError, whose message names the setting, the value
and what is accepted.

This module imports only the standard library, so the health probe and
``config`` stay cheap.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_collector import defaults

REDACTED = "<redacted>"

DEFAULT_SCRAPERS = (
    "cpu", "memory", "paging", "disk", "filesystem", "network", "netstat", "pressure",
    "load", "processes", "kernel", "system",
)
# The per-process scraper is opt-in: its cost and cardinality grow with the host's processes.
SCRAPERS = (*DEFAULT_SCRAPERS, "process")

# Pseudo and container-internal file systems that hold no user data. tmpfs is
# here too: set the exclude list without it to report tmpfs mounts.
DEFAULT_FS_TYPES_EXCLUDE = (
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "proc", "pstore",
    "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tracefs", "tmpfs",
    "ramfs", "efivarfs", "fuse.lxcfs", "nfsd",
)
# Kernel interfaces, container runtimes' internal mounts, and the files a
# container runtime bind-mounts into every container.
DEFAULT_MOUNTPOINTS_EXCLUDE = (
    r"/(dev|proc|sys)(/.*)?",
    r"/run/credentials/.+",
    r"/var/lib/(docker|containers|kubelet)/.+",
    r"/run/(containerd|docker|netns)/.+",
    r"/etc/(hosts|hostname|resolv\.conf)",
)
# RAM disks, loop devices and floppies mirror other storage or none.
DEFAULT_DISK_DEVICES_EXCLUDE = (r"(ram|loop|fd)\d+",)


class ConfigError(ValueError):
    """An invalid setting; the message is the one line shown to the user."""


@dataclass(frozen=True)
class Source:
    """The origin of a raw value (flag, variable or default), so that a message can name it."""

    name: str
    value: str
    is_default: bool = False


@dataclass(frozen=True)
class Setting:
    """One setting: its field, variables, flag, default and parser."""

    field: str
    env: tuple[str, ...]  # most specific first
    flag: str
    default: str
    parse: Callable[[str], Any]
    accepted: str
    help: str
    secret: bool = False


# The largest time setting: a week. Far above any sensible interval or
# timeout, and far below the limit of the threading module's waits.
MAX_MS = 7 * 24 * 3600 * 1000


def _positive_ms(text: str) -> int:
    value = int(text)
    if not 0 < value <= MAX_MS:
        raise ValueError
    return value


def _bounded(maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not 0 < value <= maximum:
            raise ValueError
        return value

    return parse


def _ip_address(text: str) -> str:
    return str(ipaddress.ip_address(text.strip()))


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError
    return value


def _bool(text: str) -> bool:
    """Parse a boolean as the SDK environment specification writes it: true or false."""
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered in ("false", ""):
        return False
    raise ValueError


def _optional_bool(text: str) -> bool | None:
    return None if not text.strip() else _bool(text)


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in choices:
            raise ValueError
        return lowered

    return parse


def _log_level(text: str) -> str:
    level = _choice("debug", "info", "warn", "warning", "error")(text)
    return "warning" if level == "warn" else level


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _patterns(text: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(part) for part in _names(text))


_HOST_NAME = re.compile(r"(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.?)+")


def _endpoint(text: str) -> str:
    parsed = urllib.parse.urlparse(text.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError
    # A password in the URL would be repeated in every export error.
    if parsed.username is not None or parsed.password is not None:
        raise ValueError
    if parsed.port == 0:  # parsed.port also raises ValueError for a port out of range
        raise ValueError
    # gRPC puts each call's method in the path, so a path of the endpoint
    # (an OTLP/HTTP URL such as .../v1/metrics) would be dropped unseen.
    if parsed.path not in ("", "/") or parsed.params or parsed.query or parsed.fragment:
        raise ValueError
    try:
        ipaddress.ip_address(parsed.hostname)
    except ValueError:
        if not _HOST_NAME.fullmatch(parsed.hostname):
            raise
    return text.strip()


def _headers(text: str) -> tuple[tuple[str, str], ...]:
    """Parse W3C-baggage-style "key=value,key2=value2", values percent-encoded."""
    headers = []
    for member in text.split(","):
        if not member.strip():
            continue
        key, separator, value = member.partition("=")
        key = key.strip().lower()
        # gRPC metadata keys: lowercase letters, digits, "_", "." and "-"; a
        # "-bin" suffix would ask for binary values, which these are not.
        if not separator or not re.fullmatch(r"[0-9a-z_.-]+", key) or key.endswith("-bin"):
            raise ValueError
        decoded = urllib.parse.unquote(value.strip())
        if not all(" " <= char <= "~" for char in decoded):  # printable ASCII only
            raise ValueError
        headers.append((key, decoded))
    return tuple(headers)


def _resource_attributes(text: str) -> str:
    for member in text.split(","):
        if member.strip() and ("=" not in member or not member.partition("=")[0].strip()):
            raise ValueError
    return text


def _readable_file(text: str) -> str:
    """Accept an empty value or a readable regular file that contains a PEM block."""
    if not text:
        return text
    try:
        with open(text, "rb") as file:
            head = file.read(1 << 20)
    except OSError:
        raise ValueError from None
    if b"-----BEGIN " not in head:
        raise ValueError
    return text


def _host_root(text: str) -> str:
    if not os.path.isabs(text) or not os.path.isdir(os.path.join(text, "proc")):
        raise ValueError
    return text


class _InvalidItemError(ValueError):
    """A list setting with one invalid item. Its message names the item and ends the error."""


def _scrapers(text: str) -> tuple[str, ...]:
    names = _names(text)
    if not names:
        raise _InvalidItemError("the list is empty")
    seen: set[str] = set()
    for name in names:
        if name not in SCRAPERS:
            raise _InvalidItemError(f"unknown scraper {name!r}")
        if name in seen:
            raise _InvalidItemError(f"{name!r} is listed twice")
        seen.add(name)
    return names


_MS = f"a positive integer of milliseconds, at most {MAX_MS} (7 days)"
_REGEXES = "comma-separated regular expressions, matched against the whole name"

SETTINGS: tuple[Setting, ...] = (
    Setting("sdk_disabled", ("OTEL_SDK_DISABLED",), "--sdk-disabled", "false", _bool,
            "true or false", "Disable collection and export; the agent idles until stopped."),
    Setting("log_level", ("OTEL_LOG_LEVEL",), "--log-level", "info", _log_level,
            "debug, info, warn (or warning) or error", "Minimum level of log lines."),
    Setting("log_format", ("HOST_AGENT_LOG_FORMAT",), "--log-format", "auto",
            _choice("auto", "json", "console"), "auto, json or console",
            "Log format: JSON lines, a readable console format, or auto (console on a terminal)."),
    Setting("metrics_exporter", ("OTEL_METRICS_EXPORTER",), "--metrics-exporter", "otlp",
            _choice("otlp", "console", "none"), "otlp, console or none",
            "Where metrics go: OTLP/gRPC, one JSON line per export on stdout, or nowhere."),
    Setting("export_interval_ms", ("OTEL_METRIC_EXPORT_INTERVAL",), "--export-interval",
            "60000", _positive_ms, _MS, "Time between collection cycles, in milliseconds."),
    Setting("export_timeout_ms", ("OTEL_METRIC_EXPORT_TIMEOUT",), "--export-timeout",
            "30000", _positive_ms, _MS,
            "Maximum time of one export, retries included, in milliseconds; "
            "capped at the export interval and at the OTLP timeout."),
    Setting("endpoint", ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
            "--otlp-endpoint", "http://localhost:4317", _endpoint,
            "a URL with scheme http or https, a host, a port from 1 to 65535 if any, no path "
            "and no user or password, such as http://localhost:4317",
            "OTLP/gRPC endpoint of the gateway or backend."),
    Setting("headers", ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"),
            "--otlp-headers", "", _headers, "key=value pairs separated by commas",
            "Request headers such as API keys; values may be percent-encoded.", secret=True),
    Setting("compression",
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"),
            "--otlp-compression", "none", _choice("gzip", "none"), "gzip or none",
            "Compression of export requests."),
    Setting("otlp_timeout_ms", ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"),
            "--otlp-timeout", "10000", _positive_ms, _MS,
            "Deadline of one export request, in milliseconds."),
    Setting("insecure", ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE"),
            "--otlp-insecure", "", _optional_bool, "true or false",
            "Send without TLS; unset, the endpoint's scheme decides (http: plain, https: TLS)."),
    Setting("certificate",
            ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"),
            "--otlp-certificate", "", _readable_file, "a readable regular file with a PEM block",
            "CA certificates that verify the endpoint; the system's CAs when unset."),
    Setting("client_key",
            ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
            "--otlp-client-key", "", _readable_file, "a readable regular file with a PEM block",
            "Private key for mutual TLS."),
    Setting("client_certificate",
            ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
             "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
            "--otlp-client-certificate", "", _readable_file,
            "a readable regular file with a PEM block",
            "Client certificate chain for mutual TLS."),
    Setting("temporality", ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",),
            "--temporality", "cumulative", _choice("cumulative", "delta", "lowmemory"),
            "cumulative, delta or lowmemory", "Aggregation temporality of counters."),
    Setting("resource_attributes", ("OTEL_RESOURCE_ATTRIBUTES",), "--resource-attributes", "",
            _resource_attributes, "key=value pairs separated by commas",
            "Resource attributes that override the detected ones."),
    Setting("service_name", ("OTEL_SERVICE_NAME",), "--service-name", defaults.SERVICE_NAME,
            str.strip, "a non-empty name", "service.name of the exported resource."),
    Setting("host_root", ("HOST_AGENT_HOST_ROOT",), "--host-root", "/", _host_root,
            "an absolute path to a directory that contains proc/",
            "Where the host's / is mounted when the agent runs in a container."),
    Setting("scrapers", ("HOST_AGENT_SCRAPERS",), "--scrapers", ",".join(DEFAULT_SCRAPERS),
            _scrapers, f"one or more distinct names among {', '.join(SCRAPERS)}",
            "Scrapers to run, separated by commas; add process for per-process metrics."),
    Setting("metrics_enable", ("HOST_AGENT_METRICS_ENABLE",), "--metrics-enable", "", _names,
            "metric names from the catalogue, separated by commas",
            "Metrics to export on top of the defaults."),
    Setting("metrics_disable", ("HOST_AGENT_METRICS_DISABLE",), "--metrics-disable", "", _names,
            "metric names from the catalogue, separated by commas", "Metrics not to export."),
    Setting("per_cpu", ("HOST_AGENT_PER_CPU",), "--per-cpu", "false", _bool, "true or false",
            "Report CPU time and utilization per logical CPU (cpu.logical_number)."),
    Setting("disk_devices_include", ("HOST_AGENT_DISK_DEVICES_INCLUDE",),
            "--disk-devices-include", "", _patterns, _REGEXES,
            "Block devices to report; all when empty."),
    Setting("disk_devices_exclude", ("HOST_AGENT_DISK_DEVICES_EXCLUDE",),
            "--disk-devices-exclude", ",".join(DEFAULT_DISK_DEVICES_EXCLUDE), _patterns, _REGEXES,
            "Block devices not to report."),
    Setting("fs_devices_include", ("HOST_AGENT_FILESYSTEM_DEVICES_INCLUDE",),
            "--filesystem-devices-include", "", _patterns, _REGEXES,
            "File system devices to report; all when empty."),
    Setting("fs_devices_exclude", ("HOST_AGENT_FILESYSTEM_DEVICES_EXCLUDE",),
            "--filesystem-devices-exclude", "", _patterns, _REGEXES,
            "File system devices not to report."),
    Setting("fs_mountpoints_include", ("HOST_AGENT_FILESYSTEM_MOUNTPOINTS_INCLUDE",),
            "--filesystem-mountpoints-include", "", _patterns, _REGEXES,
            "Mountpoints to report; all when empty."),
    Setting("fs_mountpoints_exclude", ("HOST_AGENT_FILESYSTEM_MOUNTPOINTS_EXCLUDE",),
            "--filesystem-mountpoints-exclude", ",".join(DEFAULT_MOUNTPOINTS_EXCLUDE), _patterns,
            _REGEXES, "Mountpoints not to report."),
    Setting("fs_types_include", ("HOST_AGENT_FILESYSTEM_TYPES_INCLUDE",),
            "--filesystem-types-include", "", _patterns, _REGEXES,
            "File system types to report; all when empty."),
    Setting("fs_types_exclude", ("HOST_AGENT_FILESYSTEM_TYPES_EXCLUDE",),
            "--filesystem-types-exclude", ",".join(DEFAULT_FS_TYPES_EXCLUDE), _patterns,
            _REGEXES, "File system types not to report."),
    Setting("fs_timeout_ms", ("HOST_AGENT_FILESYSTEM_TIMEOUT",), "--filesystem-timeout", "2000",
            _positive_ms, _MS,
            "How long one statvfs call may take before its mount is skipped, in milliseconds."),
    Setting("connection_states", ("HOST_AGENT_CONNECTION_STATES",), "--connection-states",
            "false", _bool, "true or false",
            "Export the TCP points of system.network.connection.count by state "
            "(network.connection.state) instead of one total. The kernel then walks its "
            "whole TCP hash table each cycle: 1.8 ms of CPU on a host with 24 GiB of memory, "
            "against 0.03 ms for the total."),
    Setting("net_interfaces_include", ("HOST_AGENT_NETWORK_INTERFACES_INCLUDE",),
            "--network-interfaces-include", "", _patterns, _REGEXES,
            "Network interfaces to report; all when empty."),
    Setting("net_interfaces_exclude", ("HOST_AGENT_NETWORK_INTERFACES_EXCLUDE",),
            "--network-interfaces-exclude", "", _patterns, _REGEXES,
            "Network interfaces not to report."),
    Setting("process_names_include", ("HOST_AGENT_PROCESS_NAMES_INCLUDE",),
            "--process-names-include", "", _patterns, _REGEXES,
            "Process scraper: executable names (the kernel's 15-character name) to report; "
            "all when empty."),
    Setting("process_names_exclude", ("HOST_AGENT_PROCESS_NAMES_EXCLUDE",),
            "--process-names-exclude", "", _patterns, _REGEXES,
            "Process scraper: executable names not to report."),
    Setting("process_command_lines_include", ("HOST_AGENT_PROCESS_COMMAND_LINES_INCLUDE",),
            "--process-command-lines-include", "", _patterns,
            "comma-separated regular expressions, searched anywhere in the command line",
            "Process scraper: report processes whose command line matches; all when empty."),
    Setting("process_command_lines_exclude", ("HOST_AGENT_PROCESS_COMMAND_LINES_EXCLUDE",),
            "--process-command-lines-exclude", "", _patterns,
            "comma-separated regular expressions, searched anywhere in the command line",
            "Process scraper: skip processes whose command line matches."),
    Setting("process_top", ("HOST_AGENT_PROCESS_TOP",), "--process-top", "50", _count,
            "an integer of 0 or more (0 reports every selected process)",
            "Process scraper: report at most this many processes, the top ones by "
            "HOST_AGENT_PROCESS_TOP_BY."),
    Setting("process_top_by", ("HOST_AGENT_PROCESS_TOP_BY",), "--process-top-by", "cpu",
            _choice("cpu", "memory"), "cpu or memory",
            "Process scraper: rank by CPU used since the previous cycle, or by resident memory."),
    Setting("process_command_line", ("HOST_AGENT_PROCESS_COMMAND_LINE",),
            "--process-command-line", "false", _bool, "true or false",
            "Process scraper: add process.command_line; command lines can carry secrets."),
    Setting("health_host", ("HOST_AGENT_HEALTH_HOST",), "--health-host", defaults.HEALTH_HOST,
            _ip_address, "an IPv4 or IPv6 address, or :: for every interface",
            "Address of the gRPC health service."),
    Setting("health_port", ("HOST_AGENT_HEALTH_PORT",), "--health-port",
            str(defaults.HEALTH_PORT), _port, "an integer from 0 to 65535 (0 picks a free port)",
            "Port of the gRPC health service."),
    Setting("health_recovery_window_ms", ("HOST_AGENT_HEALTH_RECOVERY_WINDOW",),
            "--health-recovery-window", "180000", _positive_ms, _MS,
            "How long exports may fail before readiness turns NOT_SERVING, in milliseconds."),
    Setting("shutdown_timeout_ms", ("HOST_AGENT_SHUTDOWN_TIMEOUT",), "--shutdown-timeout",
            "4000", _positive_ms, _MS,
            "Maximum time of the final collection and export on SIGTERM, in milliseconds."),
    Setting("max_request_bytes", ("HOST_AGENT_EXPORT_MAX_REQUEST_BYTES",),
            "--export-max-request-bytes", str(4 * 1024 * 1024), _bounded(1 << 30),
            "a positive integer of bytes, at most 1073741824 (1 GiB)",
            "Largest export request; bigger exports are split. Gateways accept 4 MiB by default."),
    Setting("cardinality_limit", ("HOST_AGENT_CARDINALITY_LIMIT",), "--cardinality-limit",
            "100000", _bounded(10_000_000), "a positive integer, at most 10000000",
            "Most series per metric; further series are folded into one overflow series."),
)

BY_FIELD = {setting.field: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Config:
    """The resolved and validated configuration."""

    values: Mapping[str, Any]
    sources: Mapping[str, Source] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def effective_export_timeout_ms(self) -> int:
        """Return the export deadline in milliseconds: never past the next cycle's start."""
        return int(min(self.export_timeout_ms, self.otlp_timeout_ms, self.export_interval_ms))

    def redacted(self) -> dict[str, Any]:
        """Return the settings as plain data, with secret values replaced."""
        out: dict[str, Any] = {}
        for setting in SETTINGS:
            value = self.values[setting.field]
            if setting.field == "headers":
                value = {key: REDACTED for key, _ in value}
            elif isinstance(value, tuple) and value and isinstance(value[0], re.Pattern):
                value = [pattern.pattern for pattern in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[setting.field] = value
        return out


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; unset flags stay absent from the namespace."""
    for setting in SETTINGS:
        env_names = " or ".join(setting.env)
        parser.add_argument(
            setting.flag,
            dest=setting.field,
            default=argparse.SUPPRESS,
            metavar="VALUE",
            help=f"{setting.help} Env: {env_names}. Default: {setting.default or 'unset'}.",
        )


def _raw_value(setting: Setting, flags: Mapping[str, str], environ: Mapping[str, str]) -> Source:
    if setting.field in flags:
        return Source(setting.flag, flags[setting.field])
    # An empty variable counts as unset, as the OpenTelemetry SDK environment
    # specification requires for OTEL_*; HOST_AGENT_* follow the same rule.
    for name in setting.env:
        if environ.get(name):
            return Source(name, environ[name])
    return Source(setting.env[-1], setting.default, is_default=True)


def _describe(source: Source, secret: bool) -> str:
    return REDACTED if secret else repr(source.value)


def resolve(flags: Mapping[str, str], environ: Mapping[str, str]) -> Config:
    """Resolve and validate every setting; raise ConfigError on the first invalid one."""
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for setting in SETTINGS:
        source = _raw_value(setting, flags, environ)
        try:
            value = setting.parse(source.value)
        except (ValueError, re.error) as error:
            detail = f" ({error})" if isinstance(error, (re.error, _InvalidItemError)) else ""
            raise ConfigError(
                f"invalid {source.name}={_describe(source, setting.secret)}: "
                f"expected {setting.accepted}{detail}"
            ) from None
        values[setting.field] = value
        sources[setting.field] = source
    _check_combinations(values, sources)
    return Config(values, sources)


def _check_combinations(values: dict[str, Any], sources: dict[str, Source]) -> None:
    # Imported here: the catalogue is not needed by the health probe.
    from otel_collector import catalogue

    for field_name in ("metrics_enable", "metrics_disable"):
        for name in values[field_name]:
            if name not in catalogue.BY_NAME:
                raise ConfigError(
                    f"invalid {sources[field_name].name}: unknown metric {name!r}; "
                    "expected names from the catalogue, such as system.cpu.time"
                )
    if not values["service_name"]:
        raise ConfigError(f"invalid {sources['service_name'].name}: expected a non-empty name")
    if bool(values["client_key"]) != bool(values["client_certificate"]):
        set_field, missing_field = ("client_key", "client_certificate")
        if not values["client_key"]:
            set_field, missing_field = missing_field, set_field
        setting = next(candidate for candidate in SETTINGS if candidate.field == missing_field)
        raise ConfigError(
            f"invalid mutual TLS settings: {sources[set_field].name} is set but "
            f"{setting.env[-1]} is not; the client key and certificate must be set together, "
            f"so set {setting.env[-1]} or {setting.flag} too, or neither"
        )


def metrics_without_scraper(config: Config) -> dict[str, str]:
    """Return the metrics that HOST_AGENT_METRICS_ENABLE lists but no listed scraper reads.

    The values are the scrapers that would read them.
    """
    from otel_collector import catalogue

    return {
        name: catalogue.BY_NAME[name].scraper
        for name in config.metrics_enable
        if catalogue.BY_NAME[name].scraper not in (*config.scrapers, "agent")
    }


def enabled_metrics(config: Config) -> frozenset[str]:
    """Return the names of the metrics to export, from defaults and switches."""
    from otel_collector import catalogue

    names = {
        spec.name
        for spec in catalogue.METRICS
        if spec.enabled and (spec.scraper in config.scrapers or spec.scraper == "agent")
    }
    names |= {
        name for name in config.metrics_enable
        if catalogue.BY_NAME[name].scraper in config.scrapers
        or catalogue.BY_NAME[name].scraper == "agent"
    }
    return frozenset(names - set(config.metrics_disable))


def parse_args(
    argv: Sequence[str], environ: Mapping[str, str], parser: argparse.ArgumentParser
) -> Config:
    """Parse flags with ``parser`` and resolve them against ``environ``."""
    namespace = parser.parse_args(argv)
    flags = {k: v for k, v in vars(namespace).items() if k in BY_FIELD}
    return resolve(flags, environ)


def markdown_table() -> str:
    """Render every setting as the README's configuration table."""
    rows = [
        "| Variable | Flag | Default | Accepted | Meaning |",
        "|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        variables = "<br>".join(f"`{name}`" for name in setting.env)
        default = f"`{setting.default}`" if setting.default else "unset"
        default = default.replace("|", "\\|")
        rows.append(
            f"| {variables} | `{setting.flag}` | {default} | {setting.accepted} | {setting.help} |"
        )
    return "\n".join(rows) + "\n"
