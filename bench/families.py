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
    Area(
        "TCP and UDP protocol counters",
        ("system.network.linux.tcp.segments", "system.network.linux.udp.datagrams"),
        ("node_netstat_Tcp_InSegs", "node_netstat_Udp_InDatagrams"),
        (),
    ),
    Area(
        "interface link state",
        ("system.network.linux.interface.up",),
        ("node_network_up",),
        (),
    ),
    Area("file handles", ("system.linux.file_handle.count",), ("node_filefd_allocated",), ()),
    Area("load average", ("system.cpu.load_average.1m",), ("node_load1",), ()),
    Area("process counts", ("system.process.count",), ("node_procs_running",), ()),
    Area("uptime or boot time", ("system.uptime",), ("node_boot_time_seconds",), ()),
)

_COLLECTOR_SUCCESS = re.compile(r'^node_scrape_collector_success\{collector="([^"]+)"\} 1\b', re.M)
_SAMPLE_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", re.M)

# Metric name prefixes of node_exporter 1.5's default collectors that the
# agent has no scraper for, from the names each collector registers. A
# collector succeeds without exporting anything when its hardware or file
# system is absent (no btrfs volume, no EDAC controller), and such a
# collector adds no family. A collector missing from this table counts as
# exporting. textfile is listed with no prefix: with no .prom files it
# exports only node_textfile_scrape_error, its own scrape status.
COLLECTOR_PREFIXES: dict[str, tuple[str, ...]] = {
    "arp": ("node_arp_",),
    "bcache": ("node_bcache_",),
    "bonding": ("node_bonding_",),
    "btrfs": ("node_btrfs_",),
    "conntrack": ("node_nf_conntrack_",),
    "dmi": ("node_dmi_",),
    "edac": ("node_edac_",),
    "entropy": ("node_entropy_",),
    "fibrechannel": ("node_fibrechannel_",),
    "filefd": ("node_filefd_",),
    "hwmon": ("node_hwmon_",),
    "infiniband": ("node_infiniband_",),
    "ipvs": ("node_ipvs_",),
    "mdadm": ("node_md_",),
    "netclass": ("node_network_info", "node_network_up", "node_network_mtu_bytes",
                 "node_network_carrier"),
    "netstat": ("node_netstat_",),
    "nfs": ("node_nfs_",),
    "nfsd": ("node_nfsd_",),
    "nvme": ("node_nvme_",),
    "os": ("node_os_",),
    "powersupplyclass": ("node_power_supply_",),
    "pressure": ("node_pressure_",),
    "rapl": ("node_rapl_",),
    "schedstat": ("node_schedstat_",),
    "selinux": ("node_selinux_",),
    "sockstat": ("node_sockstat_",),
    "softnet": ("node_softnet_",),
    "tapestats": ("node_tape_",),
    "textfile": (),
    "thermal_zone": ("node_thermal_zone_", "node_cooling_device_"),
    "time": ("node_time_",),
    "timex": ("node_timex_",),
    "udp_queues": ("node_udp_queues",),
    "uname": ("node_uname_",),
    "watchdog": ("node_watchdog_",),
    "xfs": ("node_xfs_",),
    "zfs": ("node_zfs_",),
}


# Collectors that export info metrics (value 1, the data in labels) about the
# host's identity, which OpenTelemetry carries as resource attributes on every
# export request instead. Such a collector counts as matched when the agent's
# resource has every key listed: os-release's NAME and VERSION_ID for
# node_os_info, and uname's nodename, machine, sysname and release for
# node_uname_info (the release is part of os.description).
RESOURCE_COUNTERPARTS: dict[str, tuple[str, ...]] = {
    "os": ("os.name", "os.version"),
    "uname": ("host.name", "host.arch", "os.type", "os.description"),
}


# node_exporter's time collector exports the host's clock (node_time_seconds),
# which OpenTelemetry carries as the timestamp of every data point instead.
# It counts as matched when the agent's timestamps were at most this many
# seconds from the benchmark's clock on arrival: the same host's clock, read
# at collection.
TIMESTAMP_COUNTERPART = "time"
MAX_CLOCK_SKEW_S = 5.0


def covered(names: Iterable[str], column: str) -> list[str]:
    """Return the areas that `names` cover, for a column of the table (agent, node_exporter...)."""
    exported = set(names)
    field = next(
        prefix for prefix in ("agent", "node_exporter", "python") if column.startswith(prefix)
    )
    return [area.name for area in AREAS if exported & set(getattr(area, field))]


def _exported_samples(collector: str, names: set[str]) -> bool:
    prefixes = COLLECTOR_PREFIXES.get(collector)
    if prefixes is None:
        return True
    # An empty tuple of prefixes matches no name.
    return any(name.startswith(prefixes) for name in names)


def _in_resource(collector: str, resource_keys: frozenset[str]) -> bool:
    keys = RESOURCE_COUNTERPARTS.get(collector)
    return keys is not None and resource_keys.issuperset(keys)


def unmatched_collectors(
    scrape_text: str,
    resource_keys: frozenset[str] = frozenset(),
    clock_skew_s: float | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """Return node_exporter's collectors that succeeded but have no agent scraper to match.

    The first list has those that exported samples, the second those that
    exported none on this host, and the third those whose data every export
    request of the agent carries: in its resource (`resource_keys`), or, for
    time, in data point timestamps at most MAX_CLOCK_SKEW_S from the
    benchmark's clock (`clock_skew_s`, the largest gap seen).
    """
    succeeded = set(_COLLECTOR_SUCCESS.findall(scrape_text))
    unmatched = sorted(succeeded - set(NODE_EXPORTER_MATCHED_COLLECTORS))
    names = {match for match in _SAMPLE_NAME.findall(scrape_text) if match.startswith("node_")}
    with_samples = [name for name in unmatched if _exported_samples(name, names)]
    empty = [name for name in unmatched if name not in with_samples]
    in_resource = [name for name in with_samples if _in_resource(name, resource_keys)]
    if (
        TIMESTAMP_COUNTERPART in with_samples
        and clock_skew_s is not None
        and clock_skew_s <= MAX_CLOCK_SKEW_S
    ):
        in_resource.append(TIMESTAMP_COUNTERPART)
    exporting = [name for name in with_samples if name not in in_resource]
    return exporting, empty, in_resource
