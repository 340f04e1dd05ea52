"""Tests of the gRPC health service with real gRPC clients on loopback addresses."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from otel_collector import defaults
from otel_collector.health import (
    NOT_SERVING,
    SERVICES,
    SERVING,
    HealthBindError,
    HealthServer,
    status_name,
)

SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
LIVENESS = defaults.LIVENESS_SERVICE
READINESS = defaults.READINESS_SERVICE
# Long enough that liveness never expires during a test that does not wait for it.
LONG_INTERVAL_S = 30.0
# Maximum seconds that a test waits for a status the server is expected to publish.
PUBLISH_TIMEOUT_S = 3.0
# Seconds a test waits before it checks that a status did not change. An event
# that can change a status wakes the watchdog, which then publishes within
# milliseconds. Other changes wait for its deadline.
SETTLE_S = 0.2
# Maximum seconds between two watchdog evaluations in a test with a FakeClock,
# whose deadlines do not pass in real time.
FAKE_CLOCK_PERIOD_S = 0.02


class FakeClock:
    """Monotonic clock that moves only when a test advances it."""

    def __init__(self) -> None:
        self._now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class WatchRecorder:
    """Reads a Watch stream on a background thread and queues each status received."""

    def __init__(self, stub: health_pb2_grpc.HealthStub, service: str) -> None:
        self.call = stub.Watch(health_pb2.HealthCheckRequest(service=service))
        self._statuses: queue.Queue[int | grpc.RpcError] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self._statuses.put(response.status)
        except grpc.RpcError as error:
            self._statuses.put(error)

    def next_status(self, timeout_s: float = PUBLISH_TIMEOUT_S) -> int:
        item = self._statuses.get(timeout=timeout_s)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def assert_no_status(self, wait_s: float = SETTLE_S) -> None:
        try:
            item = self._statuses.get(timeout=wait_s)
        except queue.Empty:
            return
        pytest.fail(f"unexpected Watch message: {item!r}")

    def cancel(self) -> None:
        self.call.cancel()
        self._thread.join(timeout=PUBLISH_TIMEOUT_S)


ServerFactory = Callable[..., HealthServer]


@pytest.fixture
def start_server() -> Iterator[ServerFactory]:
    """Start HealthServers on 127.0.0.1 port 0 by default and stop them after the test."""
    servers: list[HealthServer] = []

    def start(**overrides: Any) -> HealthServer:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "cycle_interval_s": LONG_INTERVAL_S,
            "recovery_window_s": LONG_INTERVAL_S,
        }
        settings.update(overrides)
        server = HealthServer(
            settings.pop("host"),
            settings.pop("port"),
            **settings,
        )
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace_s=0)


@pytest.fixture
def open_channel() -> Iterator[Callable[..., grpc.Channel]]:
    """Open gRPC channels to loopback targets and close them after the test."""
    channels: list[grpc.Channel] = []

    def open_(target: str, *, own_connection: bool = False) -> grpc.Channel:
        # Channels with equal arguments share one connection unless each has a
        # local subchannel pool.
        options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
        channel = grpc.insecure_channel(target, options=options)
        channels.append(channel)
        return channel

    yield open_
    for channel in channels:
        channel.close()


@pytest.fixture
def recorders() -> Iterator[Callable[[health_pb2_grpc.HealthStub, str], WatchRecorder]]:
    opened: list[WatchRecorder] = []

    def open_(stub: health_pb2_grpc.HealthStub, service: str) -> WatchRecorder:
        recorder = WatchRecorder(stub, service)
        opened.append(recorder)
        return recorder

    yield open_
    for recorder in opened:
        recorder.cancel()


def stub_for(
    open_channel: Callable[..., grpc.Channel], server: HealthServer, host: str = "127.0.0.1"
) -> health_pb2_grpc.HealthStub:
    target = f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}"
    return health_pb2_grpc.HealthStub(open_channel(target))


def check(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return int(response.status)


def wait_for_status(
    stub: health_pb2_grpc.HealthStub,
    service: str,
    expected: int,
    timeout_s: float = PUBLISH_TIMEOUT_S,
) -> float:
    """Poll Check until service reports expected and return the seconds it took."""
    started = time.monotonic()
    while True:
        status = check(stub, service)
        elapsed = time.monotonic() - started
        if status == expected:
            return elapsed
        if elapsed > timeout_s:
            pytest.fail(
                f"service {service!r} is {status_name(status)} after {timeout_s} s, "
                f"expected {status_name(expected)}"
            )
        time.sleep(0.01)


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_not_serving_before_first_cycle(start_server, open_channel, recorders):
    server = start_server()
    stub = stub_for(open_channel, server)

    for service in SERVICES:
        assert status_name(check(stub, service)) == "NOT_SERVING"
        assert recorders(stub, service).next_status() == NOT_SERVING


def test_serving_after_first_cycle(start_server, open_channel, recorders):
    server = start_server()
    stub = stub_for(open_channel, server)
    watches = {service: recorders(stub, service) for service in SERVICES}
    for recorder in watches.values():
        assert recorder.next_status() == NOT_SERVING

    server.cycle_completed()

    for service, recorder in watches.items():
        assert recorder.next_status() == SERVING, service
        assert check(stub, service) == SERVING, service


def test_readiness_recovery_window_fake_clock(start_server, open_channel):
    # The injected clock makes the window exact: 10 fake seconds, while liveness
    # stays SERVING because a cycle is reported after each advance of the clock.
    clock = FakeClock()
    server = start_server(
        cycle_interval_s=10.0,
        recovery_window_s=10.0,
        clock=clock,
        watchdog_period_s=FAKE_CLOCK_PERIOD_S,
    )
    stub = stub_for(open_channel, server)
    server.cycle_completed()
    wait_for_status(stub, "", SERVING)

    server.export_failed()
    clock.advance(10.0)
    server.cycle_completed()
    server.export_failed()
    time.sleep(SETTLE_S)
    assert check(stub, READINESS) == SERVING, "failing for exactly the window"

    clock.advance(0.5)
    server.cycle_completed()
    wait_for_status(stub, READINESS, NOT_SERVING)
    assert check(stub, "") == NOT_SERVING
    assert check(stub, LIVENESS) == SERVING

    server.export_succeeded()
    wait_for_status(stub, READINESS, SERVING)
    wait_for_status(stub, "", SERVING)


def test_readiness_window_restarts_after_success(start_server, open_channel):
    clock = FakeClock()
    server = start_server(
        cycle_interval_s=10.0,
        recovery_window_s=10.0,
        clock=clock,
        watchdog_period_s=FAKE_CLOCK_PERIOD_S,
    )
    stub = stub_for(open_channel, server)
    server.cycle_completed()
    wait_for_status(stub, READINESS, SERVING)

    server.export_failed()
    clock.advance(8.0)
    server.export_succeeded()
    server.export_failed()
    clock.advance(8.0)
    server.cycle_completed()
    server.export_failed()
    time.sleep(SETTLE_S)
    assert check(stub, READINESS) == SERVING, "16 s of failures with a success after 8 s"

    clock.advance(2.5)
    server.cycle_completed()
    wait_for_status(stub, READINESS, NOT_SERVING)


def test_readiness_turns_without_further_events(start_server, open_channel, recorders):
    # Real clock, 0.5 s window: the watchdog alone must notice that the window ran out.
    window_s = 0.5
    server = start_server(recovery_window_s=window_s)
    stub = stub_for(open_channel, server)
    server.cycle_completed()
    wait_for_status(stub, READINESS, SERVING)
    watch = recorders(stub, READINESS)
    assert watch.next_status() == SERVING

    failed_at = time.monotonic()
    server.export_failed()
    assert watch.next_status() == NOT_SERVING
    elapsed = time.monotonic() - failed_at

    assert elapsed >= window_s
    assert elapsed < window_s + 0.5


def test_readiness_serving_before_any_export(start_server, open_channel):
    server = start_server(recovery_window_s=0.1)
    stub = stub_for(open_channel, server)

    server.cycle_completed()
    wait_for_status(stub, READINESS, SERVING)
    time.sleep(0.3)

    assert check(stub, READINESS) == SERVING


def test_liveness_expires_after_two_intervals(start_server, open_channel, recorders):
    interval_s = 0.2
    server = start_server(cycle_interval_s=interval_s)
    stub = stub_for(open_channel, server)
    server.cycle_completed()
    wait_for_status(stub, LIVENESS, SERVING)
    liveness = recorders(stub, LIVENESS)
    assert liveness.next_status() == SERVING

    # A cycle every half interval keeps liveness SERVING.
    for _ in range(8):
        time.sleep(interval_s / 2)
        server.cycle_completed()
    liveness.assert_no_status(wait_s=0.0)

    last_cycle_at = time.monotonic()
    assert liveness.next_status() == NOT_SERVING
    stalled_for = time.monotonic() - last_cycle_at

    assert stalled_for >= 2 * interval_s
    assert stalled_for < 2 * interval_s + 0.3
    assert check(stub, "") == NOT_SERVING
    assert check(stub, READINESS) == SERVING

    server.cycle_completed()
    assert liveness.next_status() == SERVING


def serving_server_with_evaluation_count(
    start_server: ServerFactory, open_channel: Callable[..., grpc.Channel], monkeypatch
) -> tuple[HealthServer, health_pb2_grpc.HealthStub, list[int]]:
    """Start a server that is SERVING, and count the watchdog's evaluations from then on.

    The wrapper around the evaluation appends to the returned list and changes no result.
    """
    server = start_server()
    stub = stub_for(open_channel, server)
    server.cycle_completed()
    wait_for_status(stub, LIVENESS, SERVING)
    evaluations: list[int] = []
    evaluate = server._signals.evaluate
    monkeypatch.setattr(
        server._signals, "evaluate", lambda: evaluations.append(1) or evaluate()
    )
    return server, stub, evaluations


def test_steady_events_do_not_wake_the_watchdog(start_server, open_channel, monkeypatch):
    # While every status stays SERVING, cycles and delivered exports change
    # nothing, so they must not cost a watchdog wake each.
    server, _, evaluations = serving_server_with_evaluation_count(
        start_server, open_channel, monkeypatch
    )

    for _ in range(200):
        server.cycle_completed()
        server.export_succeeded()
        time.sleep(0.001)

    # 400 events in about 0.3 s, and the next deadline is 60 s away.
    assert evaluations == [], f"{len(evaluations)} watchdog wakes for 400 steady events"

    # The first failed export starts the readiness window, so it wakes the watchdog.
    before = len(evaluations)
    server.export_failed()
    deadline = time.monotonic() + SETTLE_S
    while len(evaluations) == before and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(evaluations) > before, "the first failed export did not wake the watchdog"


def test_idle_watchdog_sleeps_until_deadline(start_server, open_channel, monkeypatch):
    # With no event and the liveness deadline 60 s away, the watchdog must not
    # wake at all.
    _, stub, evaluations = serving_server_with_evaluation_count(
        start_server, open_channel, monkeypatch
    )

    time.sleep(2.5)

    assert evaluations == [], f"{len(evaluations)} watchdog wakes in 2.5 s without an event"
    assert check(stub, LIVENESS) == SERVING


def test_begin_shutdown_sets_not_serving(start_server, open_channel, recorders):
    server = start_server()
    stub = stub_for(open_channel, server)
    server.cycle_completed()
    server.export_succeeded()
    watches = {service: recorders(stub, service) for service in SERVICES}
    for recorder in watches.values():
        assert recorder.next_status() == SERVING

    server.begin_shutdown()

    for service, recorder in watches.items():
        assert recorder.next_status() == NOT_SERVING, service
        assert check(stub, service) == NOT_SERVING, service

    server.cycle_completed()
    server.export_succeeded()
    time.sleep(SETTLE_S)
    for service, recorder in watches.items():
        recorder.assert_no_status(wait_s=0.0)
        assert check(stub, service) == NOT_SERVING, service


def test_stop_right_after_wake_is_prompt(start_server):
    """A cycle that wakes the watchdog just before stop() cancels it delays nothing."""
    for _ in range(10):
        server = start_server(cycle_interval_s=1.0, recovery_window_s=1.0)
        server.cycle_completed()
        server.begin_shutdown()
        server.cycle_completed()  # liveness is NOT_SERVING now, so this wakes the watchdog
        with structlog.testing.capture_logs() as logs:
            started = time.monotonic()
            server.stop(grace_s=0.5)
            seconds = time.monotonic() - started
        assert seconds < 0.5
        assert "health_server_stop_timed_out" not in [entry["event"] for entry in logs]


def test_stop_ends_open_watch_streams(start_server, open_channel, recorders):
    server = start_server()
    stub = stub_for(open_channel, server)
    watch = recorders(stub, "")
    assert watch.next_status() == NOT_SERVING
    server.cycle_completed()
    assert watch.next_status() == SERVING

    server.stop(grace_s=0.1)

    statuses = []
    with pytest.raises(grpc.RpcError) as raised:
        while True:
            statuses.append(watch.next_status())
    assert statuses[-1:] == [NOT_SERVING]
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_unknown_service_not_found(start_server, open_channel, recorders):
    server = start_server()
    stub = stub_for(open_channel, server)
    server.cycle_completed()

    with pytest.raises(grpc.RpcError) as raised:
        check(stub, "no-such-service")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    assert recorders(stub, "no-such-service").next_status() == SERVICE_UNKNOWN


def test_check_fast_with_500_watches(start_server, open_channel):
    server = start_server()
    # Ten connections with 50 streams each, below the 100 streams per connection
    # that the server allows.
    channels = [open_channel(f"127.0.0.1:{server.port}", own_connection=True) for _ in range(10)]
    streams = [
        health_pb2_grpc.HealthStub(channels[index % 10]).Watch(
            health_pb2.HealthCheckRequest(service="")
        )
        for index in range(500)
    ]
    try:
        first_statuses = [next(stream).status for stream in streams]
        assert first_statuses == [NOT_SERVING] * 500

        for stub in (
            stub_for(open_channel, server),
            health_pb2_grpc.HealthStub(channels[0]),
        ):
            started = time.monotonic()
            assert check(stub, "") == NOT_SERVING
            assert time.monotonic() - started < 1.0

        server.cycle_completed()
        assert [next(stream).status for stream in streams] == [SERVING] * 500
    finally:
        for stream in streams:
            stream.cancel()


def test_watch_beyond_limit_rejected(start_server, open_channel, recorders):
    server = start_server(max_watch_streams=3)
    stub = stub_for(open_channel, server)
    watches = [recorders(stub, "") for _ in range(3)]
    for recorder in watches:
        assert recorder.next_status() == NOT_SERVING

    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as raised:
                recorders(stub, "").next_status()
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "3 open Watch streams" in raised.value.details()
    limit_events = [log for log in logs if log["event"] == "health_watch_limit_reached"]
    assert len(limit_events) == 1
    assert limit_events[0]["max_watch_streams"] == 3
    assert check(stub, "") == NOT_SERVING

    watches[0].cancel()
    deadline = time.monotonic() + PUBLISH_TIMEOUT_S
    while True:
        try:
            assert recorders(stub, "").next_status() == NOT_SERVING
            break
        except grpc.RpcError:
            assert time.monotonic() < deadline, "slot of the cancelled stream not released"
            time.sleep(0.05)


def test_non_reading_watch_client_delays_only_itself(start_server, open_channel, recorders):
    clock = FakeClock()
    server = start_server(cycle_interval_s=1.0, clock=clock, watchdog_period_s=FAKE_CLOCK_PERIOD_S)
    stub = stub_for(open_channel, server)
    # With no lookahead, the client grants no HTTP/2 flow-control window until the
    # application reads, so the first message to this stream stays unsent.
    silent_channel = grpc.insecure_channel(
        f"127.0.0.1:{server.port}",
        options=[("grpc.http2.lookahead_bytes", 0), ("grpc.http2.bdp_probe", 0)],
    )
    silent = health_pb2_grpc.HealthStub(silent_channel).Watch(
        health_pb2.HealthCheckRequest(service=LIVENESS), timeout=10 * PUBLISH_TIMEOUT_S
    )
    reader = recorders(stub, LIVENESS)
    try:
        assert reader.next_status() == NOT_SERVING
        # The silent client cannot tell when the server has opened its stream, and
        # a stream opened after the rounds below would see only the last status.
        deadline = time.monotonic() + PUBLISH_TIMEOUT_S
        while server.open_watch_streams < 2:
            assert time.monotonic() < deadline, "the server never opened the silent stream"
            time.sleep(0.01)
        for _ in range(5):
            server.cycle_completed()
            assert reader.next_status() == SERVING
            assert check(stub, LIVENESS) == SERVING
            clock.advance(5.0)
            assert reader.next_status() == NOT_SERVING
            assert check(stub, LIVENESS) == NOT_SERVING

        # Once the client reads, it gets the status of its first message and then
        # the newest one, not every change it missed.
        server.cycle_completed()
        assert reader.next_status() == SERVING
        statuses = [next(silent).status, next(silent).status]
        assert statuses == [NOT_SERVING, SERVING]
    finally:
        silent.cancel()
        silent_channel.close()


def test_watch_close_during_status_change(start_server, open_channel):
    # grpcio-health-checking 1.85's own HealthServicer deadlocks here: its set()
    # waits for the completion-queue thread while holding the lock that the same
    # thread needs to remove a closed stream. The rounds run on a daemon thread so
    # that a deadlock fails the test instead of hanging it.
    clock = FakeClock()
    server = start_server(cycle_interval_s=1.0, clock=clock, watchdog_period_s=FAKE_CLOCK_PERIOD_S)
    stub = stub_for(open_channel, server)

    def toggle_liveness() -> None:
        for _ in range(20):
            server.cycle_completed()
            time.sleep(0.001)
            clock.advance(5.0)
            server.export_succeeded()

    def open_and_close_streams() -> None:
        for _ in range(5):
            request = health_pb2.HealthCheckRequest(service=LIVENESS)
            streams = [stub.Watch(request) for _ in range(50)]
            for stream in streams:
                next(stream)
            toggler = threading.Thread(target=toggle_liveness)
            toggler.start()
            for stream in streams:
                stream.cancel()
            toggler.join()
        server.cycle_completed()
        wait_for_status(stub, LIVENESS, SERVING)

    rounds = threading.Thread(target=open_and_close_streams, daemon=True)
    rounds.start()
    rounds.join(timeout=30)

    assert not rounds.is_alive(), "the health server stopped answering (deadlock)"
    started = time.monotonic()
    server.stop(grace_s=1.0)
    assert time.monotonic() - started < 3.0


def test_status_changes_logged_once(start_server, open_channel):
    with structlog.testing.capture_logs() as logs:
        server = start_server()
        stub = stub_for(open_channel, server)
        for _ in range(5):
            server.cycle_completed()
            server.export_succeeded()
        wait_for_status(stub, "", SERVING)
        time.sleep(SETTLE_S)
        server.begin_shutdown()

    changes = [
        (log["service"], log["status"]) for log in logs if log["event"] == "health_status_changed"
    ]
    assert sorted(changes) == sorted(
        [(service, "SERVING") for service in SERVICES]
        + [(service, "NOT_SERVING") for service in SERVICES]
    )


def test_second_server_on_same_port_raises(start_server):
    first = start_server()
    second = HealthServer("127.0.0.1", first.port, cycle_interval_s=1.0, recovery_window_s=1.0)

    with pytest.raises(HealthBindError) as raised:
        second.start()

    message = str(raised.value)
    assert f"127.0.0.1:{first.port}" in message
    assert "address already in use" in message
    assert "HOST_AGENT_HEALTH_PORT" in message


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("localhost", 0, "'localhost'"),
        ("256.0.0.1", 0, "'256.0.0.1'"),
        ("127.0.0.1", 65536, "65536"),
        ("127.0.0.1", -1, "-1"),
    ],
)
def test_invalid_address_raises(host, port, expected):
    server = HealthServer(host, port, cycle_interval_s=1.0, recovery_window_s=1.0)

    with pytest.raises(HealthBindError, match="invalid health service") as raised:
        server.start()

    assert expected in str(raised.value)


@pytest.mark.parametrize(
    "settings",
    [
        {"cycle_interval_s": 0.0, "recovery_window_s": 1.0},
        {"cycle_interval_s": 1.0, "recovery_window_s": -1.0},
        {"cycle_interval_s": 1.0, "recovery_window_s": 1.0, "max_watch_streams": 0},
    ],
)
def test_invalid_settings_raise(settings):
    with pytest.raises(ValueError, match="must be"):
        HealthServer("127.0.0.1", 0, **settings)


def test_port_before_start_raises():
    server = HealthServer("127.0.0.1", 0, cycle_interval_s=1.0, recovery_window_s=1.0)

    with pytest.raises(RuntimeError, match="not been started"):
        _ = server.port


def test_ipv4_bind_exact_address(start_server, open_channel):
    server = start_server(host="127.0.0.1")
    server.cycle_completed()

    wait_for_status(stub_for(open_channel, server), "", SERVING)
    if ipv6_loopback_available():
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as client:
            client.settimeout(2)
            with pytest.raises(ConnectionRefusedError):
                client.connect(("::1", server.port))


@pytest.mark.skipif(not ipv6_loopback_available(), reason="this host has no IPv6 loopback")
def test_ipv6_loopback_bind(start_server, open_channel):
    server = start_server(host="::1")
    server.cycle_completed()

    wait_for_status(stub_for(open_channel, server, host="::1"), "", SERVING)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            client.connect(("127.0.0.1", server.port))


def test_wildcard_host_serves_ipv4_and_ipv6(start_server, open_channel):
    # The default host "::" listens on every interface, but the test connects only
    # through the loopback addresses.
    server = start_server(host=defaults.HEALTH_HOST)
    server.cycle_completed()

    wait_for_status(stub_for(open_channel, server, host="127.0.0.1"), "", SERVING)
    if ipv6_loopback_available():
        wait_for_status(stub_for(open_channel, server, host="::1"), "", SERVING)
