"""Host areas that each peer covers, judged from the metric names it exported.

An area counts as covered when the peer exports any of the names listed for
it. The names are OpenTelemetry semantic-convention names for the agent, the
names of node_exporter 1.5's collectors, and those of
opentelemetry-instrumentation-system-metrics 0.66b2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bench.peers import NODE_EXPORTER_MATCHED_COLLECTORS


@dataclass(frozen=True)
class Area:
    name: str
    agent: tuple[str, ...]
    node_exporter: tuple[str, ...]
    python: tuple[str, ...]


AREAS = (
    Area("CPU time", ("system.cpu.time",), ("node_cpu_seconds_total",), ("system.cpu.time",)),
    Area(
        "CPU frequency",
        ("system.cpu.frequency",),
        ("node_cpu_scaling_frequency_hertz", "node_cpu_frequency_hertz"),
        (),
    ),
    Area(
        "memory",
        ("system.memory.usage",),
        ("node_memory_MemAvailable_bytes",),
        ("system.memory.usage",),
    ),
    Area(
        "swap and paging",
        ("system.paging.usage", "system.paging.faults"),
        ("node_memory_SwapFree_bytes", "node_vmstat_pgfault"),
        ("system.swap.usage",),
    ),
    Area("disk I/O", ("system.disk.io",), ("node_disk_read_bytes_total",), ("system.disk.io",)),
    Area("file system usage", ("system.filesystem.usage",), ("node_filesystem_avail_bytes",), ()),
    Area(
        "network interfaces",
        ("system.network.io",),
        ("node_network_receive_bytes_total",),
        ("system.network.io",),
    ),
    Area(
        "TCP connections",
        ("system.network.connection.count",),
        ("node_netstat_Tcp_CurrEstab", "node_sockstat_TCP_inuse"),
        ("system.network.connections",),
    ),
    Area("load average", ("system.cpu.load_average.1m",), ("node_load1",), ()),
    Area("process counts", ("system.process.count",), ("node_procs_running",), ()),
    Area("uptime or boot time", ("system.uptime",), ("node_boot_time_seconds",), ()),
)

_COLLECTOR_SUCCESS = re.compile(r'^node_scrape_collector_success\{collector="([^"]+)"\} 1\b', re.M)


def covered(names: Iterable[str], column: str) -> list[str]:
    """Return the areas that `names` cover, for a column of the table (agent, node_exporter...)."""
    exported = set(names)
    field = next(
        prefix for prefix in ("agent", "node_exporter", "python") if column.startswith(prefix)
    )
    return [area.name for area in AREAS if exported & set(getattr(area, field))]


def unmatched_collectors(scrape_text: str) -> list[str]:
    """Return node_exporter's collectors that succeeded but have no agent scraper to match."""
    succeeded = _COLLECTOR_SUCCESS.findall(scrape_text)
    return sorted(set(succeeded) - set(NODE_EXPORTER_MATCHED_COLLECTORS))
