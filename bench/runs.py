"""Side-by-side runs: every peer started at once, read over the same cycles.

`run_cycles` serves figures 1 and 7 (CPU, data points and bytes per cycle)
and `run_memory` figure 2 (resident memory over many short cycles).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.peers import (
    NODE_EXPORTER_MATCHED_COLLECTORS,
    AgentPeer,
    ContainerAgentPeer,
    Cycle,
    NodeExporterPeer,
    Peer,
    PythonPeer,
)

# Column keys of the result tables, in print order.
AGENT = "agent"
AGENT_CONTAINER = "agent_container"
NODE_EXPORTER = "node_exporter"
NODE_EXPORTER_MATCHED = "node_exporter_matched"
PYTHON = "python"
COLUMNS = (AGENT, AGENT_CONTAINER, NODE_EXPORTER, NODE_EXPORTER_MATCHED, PYTHON)

# Seconds allowed per cycle on top of the interval before a run counts as
# stuck: a loaded two-core machine can stretch a cycle of the Python peer.
_SLACK_PER_CYCLE_S = 1.0
_START_SLACK_S = 30.0


@dataclass(frozen=True)
class Window:
    """One peer's readings over cycles [first, last] of one run."""

    cycles: int
    cpu_per_cycle_s: float
    # The part of cpu_per_cycle_s used by gRPC's own threads. node_exporter has none.
    grpc_cpu_per_cycle_s: float
    data_points: float  # median per cycle
    serialized_bytes: float  # median per cycle
    wire_bytes_per_cycle: float
    gzip_bytes: float | None  # median gzip of the serialized request, push peers only
    metric_names: frozenset[str]
    resource_keys: frozenset[str] = frozenset()  # push peers only
    # Largest gap between a data point's timestamp and its arrival; push peers only.
    clock_skew_s: float | None = None


def window(peer: Peer, first: int, last: int) -> Window:
    """Reduce the cycles numbered first..last of `peer` (1-based, inclusive)."""
    start, end = peer.cycles[first - 1], peer.cycles[last - 1]
    inside = peer.cycles[first - 1 : last]
    count = last - first
    gzip_sizes = [cycle.gzip_bytes for cycle in inside if cycle.gzip_bytes is not None]
    return Window(
        cycles=count,
        cpu_per_cycle_s=(end.cpu_seconds - start.cpu_seconds) / count,
        grpc_cpu_per_cycle_s=(end.grpc_cpu_seconds - start.grpc_cpu_seconds) / count,
        data_points=statistics.median(cycle.data_points for cycle in inside),
        serialized_bytes=statistics.median(cycle.serialized_bytes for cycle in inside),
        wire_bytes_per_cycle=(end.wire_bytes_total - start.wire_bytes_total) / count,
        gzip_bytes=statistics.median(gzip_sizes) if gzip_sizes else None,
        metric_names=frozenset(peer.metric_names),
        resource_keys=frozenset(peer.resource_keys),
        clock_skew_s=max(peer.clock_skews, default=None),
    )


def single_cycle_windows(peers: dict[str, Peer], first: int, last: int) -> list[dict[str, Window]]:
    """Return one window per cycle first..last-1 of every peer, each ending at the next cycle."""
    return [
        {key: window(peer, cycle, cycle + 1) for key, peer in peers.items()}
        for cycle in range(first, last)
    ]


def _start_all(factories: dict[str, Callable[[], Peer]]) -> dict[str, Peer]:
    peers: dict[str, Peer] = {}
    try:
        for key, factory in factories.items():
            peers[key] = factory()
    except BaseException:
        stop_all(peers.values())
        raise
    return peers


def stop_all(peers: Iterable[Peer]) -> None:
    """Signal every peer first, so that they shut down in parallel, then wait for each."""
    stopping = list(peers)
    for peer in stopping:
        peer.terminate()
    for peer in stopping:
        peer.stop()


def run_cycles(
    log_dir: Path,
    *,
    interval_ms: int,
    warmup: int,
    cycles: int,
    gzip: bool,
    matched: bool = True,
    image: str | None = None,
) -> tuple[dict[str, Window], dict[str, Peer]]:
    """Run every peer side by side and measure cycles warmup+1 .. warmup+1+cycles.

    With `gzip`, the push peers compress their requests and the node_exporter
    scrape asks for gzip. `matched` adds node_exporter with only the
    collectors that match the agent's scrapers, and `image` the agent's container.
    """
    tag = "gzip" if gzip else "plain"
    compression = "gzip" if gzip else "none"
    agent_env = {"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"} if gzip else {}
    factories: dict[str, Callable[[], Peer]] = {
        AGENT: lambda: AgentPeer(log_dir, f"agent-{tag}", interval_ms=interval_ms, env=agent_env),
        NODE_EXPORTER: lambda: NodeExporterPeer(
            log_dir, f"node_exporter-{tag}", interval_ms=interval_ms, gzip_encoding=gzip
        ),
        PYTHON: lambda: PythonPeer(
            log_dir, f"python-{tag}", interval_ms=interval_ms, compression=compression
        ),
    }
    if matched:
        factories[NODE_EXPORTER_MATCHED] = lambda: NodeExporterPeer(
            log_dir,
            f"node_exporter_matched-{tag}",
            interval_ms=interval_ms,
            collectors=NODE_EXPORTER_MATCHED_COLLECTORS,
            gzip_encoding=gzip,
        )
    if image is not None:
        factories[AGENT_CONTAINER] = lambda: ContainerAgentPeer(
            log_dir, f"agent-container-{tag}", image=image, interval_ms=interval_ms
        )
    first, last = warmup + 1, warmup + 1 + cycles
    timeout = _START_SLACK_S + last * (interval_ms / 1000 + _SLACK_PER_CYCLE_S)
    peers = _start_all(factories)
    try:
        for peer in peers.values():
            peer.wait_for_cycles(last, timeout)
        return {key: window(peer, first, last) for key, peer in peers.items()}, peers
    finally:
        stop_all(peers.values())


@dataclass(frozen=True)
class MemoryTrace:
    """Resident memory of one peer over a long run of short cycles."""

    rss_at_first: float  # median VmRSS over the window that starts at cycle `first`
    anonymous_at_first: float  # median RssAnon over the same window
    rss_at_middle: float  # median VmRSS over the window that starts at middle_cycle()
    rss_at_last: float  # median VmRSS over the window that ends at cycle `last`
    noise: float  # the larger max-min range of VmRSS inside those two windows
    hwm_at_last: int  # VmHWM at cycle `last`
    seconds: float  # wall time from cycle `first` to cycle `last`

    @property
    def growth(self) -> float:
        return self.rss_at_last - self.rss_at_first

    @property
    def growth_by_half(self) -> tuple[float, float]:
        """Growth in the first and in the second half of the run.

        A leak grows alike in both halves. Caches that fill as the process
        warms up, such as the allocator's, grow mostly in the first.
        """
        return self.rss_at_middle - self.rss_at_first, self.rss_at_last - self.rss_at_middle


def middle_cycle(first: int, last: int, span: int) -> int:
    """Return the cycle that starts the middle window, halfway between the other two starts."""
    return first + (last - span + 1 - first) // 2


def memory_trace(cycles: Sequence[Cycle], first: int, last: int, span: int) -> MemoryTrace:
    early = [cycle.rss_bytes for cycle in cycles[first - 1 : first - 1 + span]]
    late = [cycle.rss_bytes for cycle in cycles[last - span : last]]
    middle = middle_cycle(first, last, span)
    return MemoryTrace(
        rss_at_first=statistics.median(early),
        anonymous_at_first=statistics.median(
            cycle.anonymous_bytes for cycle in cycles[first - 1 : first - 1 + span]
        ),
        rss_at_middle=statistics.median(
            cycle.rss_bytes for cycle in cycles[middle - 1 : middle - 1 + span]
        ),
        rss_at_last=statistics.median(late),
        noise=max(max(early) - min(early), max(late) - min(late)),
        hwm_at_last=cycles[last - 1].hwm_bytes,
        seconds=cycles[last - 1].at - cycles[first - 1].at,
    )


def run_memory(
    log_dir: Path, *, interval_ms: int, first: int, last: int, span: int, image: str | None
) -> dict[str, MemoryTrace]:
    """Run the agent, node_exporter and the Python peer side by side for `last` cycles.

    With `image`, the agent's container runs alongside them.
    """
    factories: dict[str, Callable[[], Peer]] = {
        AGENT: lambda: AgentPeer(log_dir, "agent-memory", interval_ms=interval_ms),
        NODE_EXPORTER: lambda: NodeExporterPeer(
            log_dir, "node_exporter-memory", interval_ms=interval_ms
        ),
        PYTHON: lambda: PythonPeer(log_dir, "python-memory", interval_ms=interval_ms),
    }
    if image is not None:
        factories[AGENT_CONTAINER] = lambda: ContainerAgentPeer(
            log_dir, "agent-container-memory", image=image, interval_ms=interval_ms
        )
    timeout = _START_SLACK_S + last * (interval_ms / 1000 + _SLACK_PER_CYCLE_S / 4)
    peers = _start_all(factories)
    try:
        for peer in peers.values():
            peer.wait_for_cycles(last, timeout)
        return {key: memory_trace(peer.cycles, first, last, span) for key, peer in peers.items()}
    finally:
        stop_all(peers.values())
