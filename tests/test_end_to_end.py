"""The agent as a real process on this host, exporting to real OTLP/gRPC receivers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from agent_process import AgentProcess, free_port
from otlp_receiver import OtlpReceiver, Point
from rotel_peer import RotelPeer

from otel_collector import catalogue, config
from otel_collector.scrapers import pressure

KIND = {catalogue.Kind.GAUGE: "gauge", catalogue.Kind.COUNTER: "sum",
        catalogue.Kind.UPDOWNCOUNTER: "sum"}


def cycle(points: list[Point], request_index: int) -> list[Point]:
    return [p for p in points if p.request_index == request_index]


def test_exported_metrics_match_catalogue(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, AgentProcess(tmp_path, endpoint=receiver.endpoint) as agent:
        receiver.wait_for_requests(2, timeout=20)
        agent.stop()
    points = receiver.points()
    names = {p.name for p in points}
    enabled = config.enabled_metrics(config.resolve({}, {}))
    # Some default metrics depend on the host. Swap needs swap, conntrack needs
    # nf_conntrack, and each pressure metric needs its /proc/pressure file. Link
    # speed needs a driver that reports it, the ARP count a non-empty ARP table,
    # and the SELinux mode an enabled SELinux. The rest always arrive.
    may_be_absent = {"system.paging.usage", "system.paging.utilization"}
    if not Path("/sys/fs/selinux/enforce").exists():
        may_be_absent.add("system.linux.selinux.enforcing")
    if all(link.speed <= 0 for link in psutil.net_if_stats().values()):
        may_be_absent.add("system.network.linux.interface.speed")
    if len(Path("/proc/net/arp").read_text().splitlines()) < 2:
        may_be_absent.add("system.network.linux.arp.count")
    if not Path("/proc/sys/net/netfilter/nf_conntrack_count").exists():
        may_be_absent |= {"system.network.conntrack.count", "system.network.conntrack.max"}
    for resource in pressure.RESOURCES:
        if not Path(f"/proc/pressure/{resource}").exists():
            may_be_absent.add(pressure.metric_name(resource))
    assert enabled - names <= may_be_absent
    for point in points:
        spec = catalogue.BY_NAME[point.name]
        assert point.unit == spec.unit, point.name
        assert point.kind == KIND[spec.kind], point.name
        if spec.kind is not catalogue.Kind.GAUGE:
            assert point.is_monotonic == (spec.kind is catalogue.Kind.COUNTER), point.name
            assert point.temporality == "cumulative"
        allowed = {a.key: a.values for a in spec.attributes + spec.opt_in_attributes}
        assert set(point.attributes) <= set(allowed), point.name
        for key, value in point.attributes.items():
            if allowed[key]:
                assert value in allowed[key], (point.name, key, value)
        assert point.scope_schema_url == catalogue.SCHEMA_URL


def test_resource_describes_host(tmp_path: Path) -> None:
    import platform
    import socket

    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint,
        env={"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test,host.name=override"},
    ):
        receiver.wait_for_requests(1, timeout=20)
    resource = receiver.points()[0].resource
    assert resource["service.name"] == "otel-host-agent"
    assert resource["host.name"] == "override"  # the environment wins over detection
    assert resource["deployment.environment.name"] == "test"
    assert resource["os.type"] == "linux"
    assert resource["os.name"] == platform.freedesktop_os_release()["NAME"]
    assert resource["host.arch"] in ("amd64", "arm64", platform.machine())
    with open("/etc/machine-id") as file:
        assert resource["host.id"] == file.read().strip()
    assert socket.gethostname()
    assert "service.instance.id" in resource


def test_values_against_proc(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, AgentProcess(tmp_path, endpoint=receiver.endpoint):
        receiver.wait_for_requests(1, timeout=20)
    points = receiver.points()
    with open("/proc/meminfo") as file:
        meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in file}
    available = next(p.value for p in points if p.name == "system.memory.linux.available")
    assert abs(available - meminfo["MemAvailable"]) < 256 * 1024 * 1024
    uptime = next(p.value for p in points if p.name == "system.uptime")
    with open("/proc/uptime") as file:
        assert 0 < float(file.read().split()[0]) - uptime < 30


def test_counters_monotonic_with_stable_start(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, AgentProcess(tmp_path, endpoint=receiver.endpoint):
        requests = receiver.wait_for_requests(3, timeout=20)
    first, last = (cycle(receiver.points(), r.index) for r in (requests[0], requests[-1]))
    key = lambda p: (p.name, tuple(sorted(p.attributes.items())))  # noqa: E731
    earlier = {key(p): p for p in first if p.is_monotonic}
    assert earlier
    for point in last:
        if key(point) in earlier:
            before = earlier[key(point)]
            assert point.start_time_unix_nano == before.start_time_unix_nano, point.name
            assert point.value >= before.value, point.name
            assert point.time_unix_nano > before.time_unix_nano


def test_first_utilization_is_real(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint,
        env={"HOST_AGENT_METRICS_ENABLE": "system.cpu.utilization"},
    ):
        requests = receiver.wait_for_requests(1, timeout=20)
    shares = [p.value for p in cycle(receiver.points(), requests[0].index)
              if p.name == "system.cpu.utilization"]
    assert sum(shares) == pytest.approx(1.0)
    assert max(shares) < 1.0  # at least two modes had time: not psutil's first-call 0.0 or 100


def test_requests_split_under_size_limit(tmp_path: Path) -> None:
    limit = 8_000
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=1000,
        env={"HOST_AGENT_EXPORT_MAX_REQUEST_BYTES": str(limit)},
    ):
        requests = receiver.wait_for_requests(6, timeout=20)
    assert all(r.size_bytes <= limit for r in requests), [r.size_bytes for r in requests]
    assert len({p.name for p in receiver.points()}) >= 25  # every metric arrived, in parts


def test_sigterm_delivers_last_points_and_exits_0(tmp_path: Path) -> None:
    """With a one-hour interval, the only export is the final flush on SIGTERM."""
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=3_600_000
    ) as agent:
        agent.wait_for_event("agent_started")
        assert receiver.requests == []
        status, seconds = agent.stop()
    assert status == 0
    assert seconds < 5
    assert len(receiver.requests) == 1
    assert "system.cpu.time" in receiver.metric_names()
    assert agent.events("agent_stopped")


def _blocked_signals(pid: int, tid: int) -> set[int]:
    """Return the signals that one thread of a process blocks (SigBlk in its status file)."""
    mask = 0
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            mask = int(line.split()[1], 16)
    return {number for number in range(1, 65) if mask >> (number - 1) & 1}


@pytest.mark.faults
def test_stop_signals_reach_main_thread(tmp_path: Path) -> None:
    """Every thread but the main one blocks SIGTERM and SIGINT, so the main thread gets them.

    The kernel hands a signal sent to the process to any thread that does
    not block it. A Python handler runs only when the main thread executes
    bytecode, so a SIGTERM that a gRPC thread received would wait for the
    main thread's next wake-up.
    """
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=3_600_000
    ) as agent:
        agent.wait_for_event("agent_started")
        names = {int(tid): Path(f"/proc/{agent.pid}/task/{tid}/comm").read_text().strip()
                 for tid in os.listdir(f"/proc/{agent.pid}/task")}
        others = [tid for tid in names if tid != agent.pid]
        assert "event_engine" in {names[tid] for tid in others}
        for tid in others:
            blocked = _blocked_signals(agent.pid, tid)
            assert {signal.SIGTERM, signal.SIGINT} <= blocked, names[tid]
        status, seconds = agent.stop()
    assert status == 0
    assert seconds < 5
    assert agent.events("stop_requested")[0]["signal"] == "SIGTERM"
    assert len(receiver.requests) == 1


def test_start_log_shows_effective_export_timeout(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, interval_ms=2000
    ) as agent:
        started = agent.wait_for_event("agent_started")

    # OTEL_METRIC_EXPORT_TIMEOUT defaults to 30 s, but no export may run into the next cycle.
    assert started["config"]["export_timeout_ms"] == 30_000
    assert started["export_timeout_effective_ms"] == 2000


def test_receiver_appearing_late_gets_exports(tmp_path: Path) -> None:
    port = free_port()
    receiver = OtlpReceiver(port)
    with AgentProcess(tmp_path, endpoint=f"http://127.0.0.1:{port}", interval_ms=1000) as agent:
        agent.wait_for_event("agent_started")
        time.sleep(10)
        receiver.start()
        appeared = time.monotonic()
        try:
            receiver.wait_for_requests(1, timeout=10)
            delay = time.monotonic() - appeared
        finally:
            receiver.stop()
        assert delay <= 2 * 1.0 + 0.5, f"first export {delay:.1f} s after the receiver appeared"
        status, _ = agent.stop()
    assert status == 0


def test_gzip_compression_delivers(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, env={"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}
    ):
        receiver.wait_for_requests(1, timeout=20)
    assert receiver.requests[0].header("grpc-encoding") in ("gzip", None)
    assert "system.memory.usage" in receiver.metric_names()


def test_headers_sent_to_receiver(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint,
        env={"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=abc%3D123"},
    ) as agent:
        receiver.wait_for_requests(1, timeout=20)
        agent.stop()
    assert receiver.requests[0].header("x-api-key") == "abc=123"
    assert "abc=123" not in agent.output()
    assert "abc%3D123" not in agent.output()


def test_every_stdout_line_is_json(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, AgentProcess(tmp_path, endpoint=receiver.endpoint) as agent:
        receiver.wait_for_requests(1, timeout=20)
        agent.stop()
    lines = agent.lines()  # fails on a line that is not JSON
    assert lines
    for line in lines:
        assert "timestamp" in line
        assert "level" in line
        assert "event" in line


def test_running_agent_maps_no_openssl(tmp_path: Path) -> None:
    """The agent leaves Python's OpenSSL modules out (cli.py) and still exports."""
    with OtlpReceiver() as receiver, AgentProcess(tmp_path, endpoint=receiver.endpoint) as agent:
        receiver.wait_for_requests(1, timeout=20)
        maps = Path(f"/proc/{agent.pid}/maps").read_text()
    mapped = {line.split()[-1] for line in maps.splitlines() if "/" in line}
    assert not [path for path in mapped if "libssl" in path or "libcrypto" in path]


def test_rotel_receives_agent_metrics(tmp_path: Path) -> None:
    """rotel, a third-party collector, decodes what the agent sends."""
    with RotelPeer() as rotel, AgentProcess(tmp_path, endpoint=rotel.endpoint, interval_ms=1000):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "system.filesystem.usage" not in rotel.metric_names():
            time.sleep(0.5)
        names = rotel.metric_names()
    assert {"system.cpu.time", "system.memory.usage", "system.filesystem.usage",
            "system.network.io", "system.uptime"} <= names


def test_enabled_metric_without_its_scraper_warns(tmp_path: Path) -> None:
    """A metric turned on whose scraper is not listed exports nothing, so the agent logs a warning."""
    env = {"HOST_AGENT_METRICS_ENABLE": "process.cpu.utilization"}
    with OtlpReceiver() as receiver, AgentProcess(
        tmp_path, endpoint=receiver.endpoint, env=env
    ) as agent:
        agent.wait_for_event("agent_started")
        [warning] = agent.events("metrics_without_scraper")
        agent.stop()

    assert warning["metrics"] == ["process.cpu.utilization"]
    assert warning["scrapers"] == ["process"]
    assert "HOST_AGENT_SCRAPERS" in warning["hint"]
