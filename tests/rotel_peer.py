"""Run rotel, a third-party OpenTelemetry collector from PyPI, as a second OTLP receiver.

rotel (package `rotel`, binary `rotel/rotel-agent`) accepts OTLP on gRPC and
HTTP. With `--debug-log metrics --debug-log-verbosity detailed` it prints
every metric it receives in the text format of the OpenTelemetry Collector's
debug exporter. For example, from rotel-agent 0.0.1-alpha10 (PyPI rotel
0.0.1a15):

    ResourceMetrics #0
    Resource SchemaURL:
    Resource attributes:
         -> service.name: Str(try)
    ScopeMetrics #0
    ScopeMetrics SchemaURL: https://opentelemetry.io/schemas/1.26.0
    InstrumentationScope try.scope 1.2
    Metric #0
    Descriptor:
         -> Name: test.counter
         -> Description: A counter
         -> Unit: By
         -> DataType: Sum
         -> IsMonotonic: true
         -> AggregationTemporality: AGGREGATION_TEMPORALITY_CUMULATIVE
    NumberDataPoints #0
    Data point attributes:
         -> device: Str(sda)
    StartTimestamp: 1796414692758647295
    Timestamp: 1796414692762024196
    Value: 5

Histograms print `Count`, `Sum`, `Min`, `Max`, `ExplicitBounds #i: b` and
`Buckets #i, Count: n` in place of `Value`. A point without attributes has no
"Data point attributes:" line. rotel's own log lines go to the same stdout
and start with an RFC 3339 timestamp. `parse_debug_output` reads this text.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otlp_receiver import HOST, free_port

logger = logging.getLogger(__name__)

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_ATTRIBUTE_LINE = re.compile(r"^\s+-> (?P<key>.*?): (?P<rest>.*)$")
_TYPED_VALUE = re.compile(r"^(?P<type>\w+)\((?P<value>.*)\)$", re.DOTALL)
_POINT_HEADER = re.compile(r"^(Number|Histogram|ExponentialHistogram|Summary)DataPoints #\d+$")
_SECTION_HEADER = re.compile(
    r"^(ResourceMetrics #\d+|ScopeMetrics #\d+|Metric #\d+|"
    r"(Number|Histogram|ExponentialHistogram|Summary)DataPoints #\d+)$"
)
_EXPLICIT_BOUND = re.compile(r"^ExplicitBounds #\d+: (?P<bound>\S+)$")
_BUCKET_COUNT = re.compile(r"^Buckets #\d+, Count: (?P<count>\d+)$")


def find_rotel_agent() -> Path:
    """Return the path of the rotel-agent binary shipped in the `rotel` package."""
    spec = importlib.util.find_spec("rotel")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the Python package 'rotel' is not installed: install the test extras "
            "with `pip install -e .[test]`"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "rotel-agent"
    if not binary.is_file():
        raise FileNotFoundError(f"rotel-agent not found at {binary}: reinstall the 'rotel' package")
    return binary


@dataclass
class RotelDataPoint:
    """One data point parsed from rotel's detailed debug output.

    `data_type` is rotel's name: "Sum", "Gauge", "Histogram",
    "ExponentialHistogram" or "Summary". Values are int when the printed
    number has no fraction or exponent and float otherwise.
    NOTE: rotel prints a double with an integral value, such as 12.0, as "12",
    so such a value comes back as int.
    Attribute values of type Str, Int, Double and Bool become str, int, float
    and bool; other types (Slice, Map, Bytes) stay as rotel's text.
    """

    metric: str
    description: str
    unit: str
    data_type: str
    is_monotonic: bool | None
    temporality: str | None
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    attributes: dict[str, Any] = field(default_factory=dict)
    start_time_unix_nano: int | None = None
    time_unix_nano: int | None = None
    value: int | float | None = None
    count: int | None = None
    sum: int | float | None = None
    min: int | float | None = None
    max: int | float | None = None
    explicit_bounds: list[int | float] = field(default_factory=list)
    bucket_counts: list[int] = field(default_factory=list)


@dataclass
class DebugOutput:
    """Everything parse_debug_output found: metric names (with or without points) and points."""

    metric_names: list[str] = field(default_factory=list)
    points: list[RotelDataPoint] = field(default_factory=list)


def _parse_number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _parse_typed_value(text: str) -> Any:
    """Convert `Str(x)`, `Int(3)`, `Double(1.5)` or `Bool(true)` to a Python value."""
    match = _TYPED_VALUE.match(text)
    if match is None:
        return text
    kind, value = match["type"], match["value"]
    converters: dict[str, Callable[[str], Any]] = {
        "Str": str,
        "Int": int,
        "Double": float,
        "Bool": lambda raw: raw == "true",
    }
    converter = converters.get(kind)
    if converter is None:
        return text
    try:
        return converter(value)
    except ValueError:
        return text


class _DebugOutputParser:
    """A line-by-line state machine over rotel's detailed metrics output.

    `state` is the block that the last header opened: "resource" and
    "attributes" collect `-> key: Type(value)` lines, "descriptor" collects the
    metric fields, and "point" reads the data point's fields.
    """

    def __init__(self) -> None:
        self.result = DebugOutput()
        self.state = "none"
        self.resource: dict[str, Any] = {}
        self.scope_name = ""
        self.scope_version = ""
        self.descriptor: dict[str, str] = {}
        self.point: RotelDataPoint | None = None
        # Key and text of the attribute being read; a Str value can span lines.
        self.pending_key: str | None = None
        self.pending_text = ""
        self.pending_target: dict[str, Any] | None = None

    def feed(self, line: str) -> None:
        if _LOG_LINE.match(line):
            return
        if self.pending_key is not None and self._continues_value(line):
            self.pending_text += "\n" + line
            return
        self._finish_attribute()
        if _SECTION_HEADER.match(line):
            self._open_section(line)
        elif line == "Resource attributes:":
            self.state = "resource"
        elif line == "Descriptor:":
            self.state = "descriptor"
        elif line == "Data point attributes:":
            self.state = "attributes"
        elif line.startswith("StartTimestamp: "):
            # The first field after a point's attributes, if it has any.
            self.state = "point"
            self._read_point_field(line)
        elif line.startswith("InstrumentationScope "):
            name, _, version = line.removeprefix("InstrumentationScope ").partition(" ")
            self.scope_name, self.scope_version = name, version.strip()
        elif self.state in ("resource", "attributes", "descriptor"):
            self._read_key_value(line)
        elif self.state == "point":
            self._read_point_field(line)

    def finish(self) -> DebugOutput:
        self._finish_attribute()
        self._finish_point()
        return self.result

    def _continues_value(self, line: str) -> bool:
        """Tell whether `line` is the next line of a multi-line attribute value."""
        return not (
            _ATTRIBUTE_LINE.match(line)
            or _SECTION_HEADER.match(line)
            or line.startswith(("StartTimestamp: ", "Data point attributes:", "ScopeMetrics "))
        )

    def _open_section(self, line: str) -> None:
        self._finish_point()
        if line.startswith("ResourceMetrics #"):
            self.resource = {}
            self.state = "none"
        elif line.startswith("ScopeMetrics #"):
            self.scope_name = self.scope_version = ""
            self.state = "none"
        elif line.startswith("Metric #"):
            self.descriptor = {}
            self.state = "none"
        elif _POINT_HEADER.match(line):
            self.point = self._new_point()
            self.state = "point"

    def _new_point(self) -> RotelDataPoint:
        monotonic = self.descriptor.get("IsMonotonic")
        return RotelDataPoint(
            metric=self.descriptor.get("Name", ""),
            description=self.descriptor.get("Description", ""),
            unit=self.descriptor.get("Unit", ""),
            data_type=self.descriptor.get("DataType", ""),
            is_monotonic=None if monotonic is None else monotonic == "true",
            temporality=self.descriptor.get("AggregationTemporality"),
            resource=self.resource,
            scope_name=self.scope_name,
            scope_version=self.scope_version,
        )

    def _read_key_value(self, line: str) -> None:
        match = _ATTRIBUTE_LINE.match(line)
        if match is None:
            # "Descriptor:" fields may be empty, which prints "-> Unit: " with
            # the trailing space kept or stripped.
            empty = re.match(r"^\s+-> (?P<key>[^:]+):$", line)
            if empty is not None and self.state == "descriptor":
                self._record_descriptor(empty["key"], "")
            return
        if self.state == "descriptor":
            self._record_descriptor(match["key"], match["rest"])
            return
        target = self.resource if self.state == "resource" else self._point_attributes()
        self.pending_key, self.pending_text, self.pending_target = (
            match["key"],
            match["rest"],
            target,
        )

    def _record_descriptor(self, key: str, value: str) -> None:
        self.descriptor[key] = value
        if key == "Name":
            self.result.metric_names.append(value)

    def _point_attributes(self) -> dict[str, Any]:
        if self.point is None:
            return {}
        return self.point.attributes

    def _finish_attribute(self) -> None:
        if self.pending_key is None or self.pending_target is None:
            return
        self.pending_target[self.pending_key] = _parse_typed_value(self.pending_text)
        self.pending_key, self.pending_text, self.pending_target = None, "", None

    def _read_point_field(self, line: str) -> None:
        point = self.point
        if point is None:
            return
        if bound := _EXPLICIT_BOUND.match(line):
            point.explicit_bounds.append(_parse_number(bound["bound"]))
            return
        if bucket := _BUCKET_COUNT.match(line):
            point.bucket_counts.append(int(bucket["count"]))
            return
        key, separator, text = line.partition(": ")
        if not separator:
            return
        number_fields = {
            "StartTimestamp": "start_time_unix_nano",
            "Timestamp": "time_unix_nano",
            "Value": "value",
            "Count": "count",
            "Sum": "sum",
            "Min": "min",
            "Max": "max",
        }
        attribute = number_fields.get(key)
        if attribute is None:
            return
        try:
            setattr(point, attribute, _parse_number(text.strip()))
        except ValueError:
            return

    def _finish_point(self) -> None:
        if self.point is not None:
            self.result.points.append(self.point)
            self.point = None


def parse_debug_output(text: str) -> DebugOutput:
    """Parse rotel's `--debug-log metrics --debug-log-verbosity detailed` output.

    Only complete lines are read, so text that rotel is still writing yields
    the points printed so far. The last of them may still lack fields.
    """
    text = _ANSI_ESCAPE.sub("", text)
    complete, _, _ = text.rpartition("\n")
    parser = _DebugOutputParser()
    for line in complete.split("\n"):
        parser.feed(line.rstrip("\r"))
    return parser.finish()


class RotelPeer:
    """A rotel-agent process on 127.0.0.1 that receives OTLP and prints what it gets.

    The process runs with the blackhole exporter, so it forwards nothing. Its
    stdout and stderr go to `output_path` in `workdir`. Without a workdir,
    each start() makes a temporary directory and stop() removes it after
    reading the output into memory, so output() works after stop() as well.
    """

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 10.0,
    ) -> None:
        self._binary = find_rotel_agent()
        self._given_workdir = workdir
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        # Both are set by start() when no workdir is given.
        self._workdir = workdir
        self.output_path = workdir / "rotel-output.txt" if workdir is not None else None
        self._extra_args = extra_args
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._final_output: str | None = None
        self._returncode: int | None = None
        self.grpc_port = 0
        self.http_port = 0

    def __enter__(self) -> RotelPeer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The OTLP/gRPC URL for an exporter."""
        return f"http://{HOST}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def returncode(self) -> int | None:
        """rotel's exit code, or None while it runs or before it first starts."""
        return self._returncode if self._process is None else self._process.poll()

    def command(self) -> list[str]:
        if self._workdir is None:
            raise RuntimeError("the rotel command needs a workdir: call start() first")
        return [
            str(self._binary),
            "start",
            "--otlp-grpc-endpoint",
            f"{HOST}:{self.grpc_port}",
            "--otlp-http-endpoint",
            f"{HOST}:{self.http_port}",
            "--exporter",
            "blackhole",
            "--debug-log",
            "metrics",
            "--debug-log-verbosity",
            "detailed",
            # rotel-agent 0.0.1-alpha10 writes these only with --daemon; they
            # are set anyway so that no run touches the shared /tmp defaults.
            "--pid-file",
            str(self._workdir / "rotel-agent.pid"),
            "--log-file",
            str(self._workdir / "rotel-agent.log"),
            *self._extra_args,
        ]

    def start(self) -> None:
        """Start rotel-agent on two free ports and wait until its gRPC port accepts connections."""
        if self._process is not None:
            raise RuntimeError(f"rotel is already running as pid {self._process.pid}")
        if self._given_workdir is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="rotel-peer-")
            self._workdir = Path(self._own_dir.name)
        assert self._workdir is not None
        self._workdir.mkdir(parents=True, exist_ok=True)
        self.output_path = self._workdir / "rotel-output.txt"
        self.grpc_port, self.http_port = free_port(), free_port()

        # ROTEL_* variables would override the flags' defaults, and NO_COLOR
        # keeps ANSI colour codes out of the log lines.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
        environment["NO_COLOR"] = "1"
        self._final_output = None

        with self.output_path.open("wb") as output:
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=self._workdir,
            )
        logger.info("started rotel pid %d, OTLP gRPC on %s", self._process.pid, self.endpoint)

        try:
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_until_listening(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"rotel exited with code {self._process.returncode} before listening on "
                    f"{HOST}:{self.grpc_port}; its output:\n{self.output()}"
                )
            try:
                with socket.create_connection((HOST, self.grpc_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(
            f"rotel did not listen on {HOST}:{self.grpc_port} within "
            f"{self._startup_timeout} s; its output:\n{self.output()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Send SIGTERM, then SIGKILL if rotel is still running after `timeout` seconds."""
        process = self._process
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.warning(
                        "rotel pid %d ignored SIGTERM for %s s; sending SIGKILL",
                        process.pid,
                        timeout,
                    )
                    process.kill()
                    process.wait()
            logger.info("rotel pid %d stopped with code %s", process.pid, process.returncode)
            self._process = None
            self._returncode = process.returncode
            self._final_output = self._read_output_file()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def _read_output_file(self) -> str:
        if self.output_path is None:
            return ""
        try:
            return self.output_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def output(self) -> str:
        """Return everything rotel printed so far, without ANSI colour codes."""
        text = self._final_output if self._final_output is not None else self._read_output_file()
        return _ANSI_ESCAPE.sub("", text)

    def parsed(self) -> DebugOutput:
        return parse_debug_output(self.output())

    def metric_names(self) -> set[str]:
        """Return the names of every metric rotel printed, with or without points."""
        return set(self.parsed().metric_names)

    def data_points(self, name: str) -> list[RotelDataPoint]:
        return [point for point in self.parsed().points if point.metric == name]

    def wait_for_metric(self, name: str, timeout: float = 10.0) -> list[RotelDataPoint]:
        """Wait until rotel printed at least one data point of `name`, and return them all."""
        deadline = time.monotonic() + timeout
        while True:
            points = self.data_points(name)
            if points:
                return points
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"timed out after {timeout} s waiting for rotel to print metric {name!r}; "
            f"metric names printed: {sorted(self.metric_names())}; "
            f"last output:\n{self.output()[-2000:]}"
        )
