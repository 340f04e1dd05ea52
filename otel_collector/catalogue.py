"""The metric catalogue: every metric the agent can export, declared once.

Instruments, the README's metric table and the golden test are all built from
``METRICS``. Names, units, kinds and attributes follow the OpenTelemetry
semantic conventions v1.44.0 (model/system/metrics.yaml and
model/process/metrics.yaml at that tag). Load average, the connection
tracking table and pressure stall information are not in the conventions;
their names and units follow the Collector's hostmetrics receiver. Neither
names the kernel's protocol counters, file handles, entropy, clock state or
SELinux mode. Those go under system.AREA.linux.* where the conventions have
the area (network) and under system.linux.AREA.* where they do not: the
conventions' design notes for system metrics put the operating system's name
in a sub-namespace, never the root (docs/non-normative/groups/system/
design-philosophy.md, "Operating System in names").
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

SEMCONV_VERSION = "1.44.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"


class Kind(enum.Enum):
    """Instrument kind, named as in the semantic conventions."""

    COUNTER = "counter"
    UPDOWNCOUNTER = "updowncounter"
    GAUGE = "gauge"


@dataclass(frozen=True)
class Attribute:
    """An attribute key and, where the conventions fix them, its allowed values."""

    key: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric."""

    name: str
    kind: Kind
    unit: str
    description: str
    scraper: str
    attributes: tuple[Attribute, ...] = ()
    # Off by default where the conventions mark the metric opt-in.
    enabled: bool = True
    # Attributes exported only when their setting turns them on (per-CPU detail).
    opt_in_attributes: tuple[Attribute, ...] = field(default=())
    # Attributes of the thing measured, such as a process's pid. Scrapers record
    # them on the points, and the exporter moves them to a resource per thing
    # (encoding.py). The opt-in ones follow a setting, as above.
    resource_attributes: tuple[Attribute, ...] = field(default=())
    opt_in_resource_attributes: tuple[Attribute, ...] = field(default=())

    @property
    def attribute_keys(self) -> tuple[str, ...]:
        return tuple(a.key for a in self.attributes + self.opt_in_attributes)

    @property
    def resource_attribute_keys(self) -> tuple[str, ...]:
        return tuple(a.key for a in self.resource_attributes + self.opt_in_resource_attributes)


CPU_MODE = Attribute(
    "cpu.mode", ("user", "system", "nice", "idle", "iowait", "interrupt", "steal")
)
CPU_LOGICAL_NUMBER = Attribute("cpu.logical_number")
MEMORY_STATE = Attribute("system.memory.state", ("used", "free", "buffers", "cached"))
SLAB_STATE = Attribute("system.memory.linux.slab.state", ("reclaimable", "unreclaimable"))
PAGING_STATE = Attribute("system.paging.state", ("used", "free"))
PAGING_FAULT_TYPE = Attribute("system.paging.fault.type", ("major", "minor"))
PAGING_DIRECTION = Attribute("system.paging.direction", ("in", "out"))
DEVICE = Attribute("system.device")
DISK_DIRECTION = Attribute("disk.io.direction", ("read", "write"))
FS_STATE = Attribute("system.filesystem.state", ("used", "free", "reserved"))
FS_TYPE = Attribute("system.filesystem.type")
FS_MODE = Attribute("system.filesystem.mode", ("rw", "ro"))
FS_MOUNTPOINT = Attribute("system.filesystem.mountpoint")
INTERFACE = Attribute("network.interface.name")
NETWORK_DIRECTION = Attribute("network.io.direction", ("transmit", "receive"))
CONNECTION_STATE = Attribute(
    "network.connection.state",
    (
        "close_wait",
        "closed",
        "closing",
        "established",
        "fin_wait_1",
        "fin_wait_2",
        "last_ack",
        "listen",
        "syn_received",
        "syn_sent",
        "time_wait",
    ),
)
TRANSPORT = Attribute("network.transport", ("tcp", "udp"))
STALL_TYPE = Attribute("system.pressure.stall_type", ("some", "full"))
TCP_OPEN_TYPE = Attribute("system.network.linux.tcp.open_type", ("active", "passive"))
UDP_ERROR_TYPE = Attribute(
    "error.type", ("no_port", "receive_buffer", "receive_other", "send_buffer")
)
PROCESS_STATE = Attribute("process.state", ("running", "sleeping", "stopped", "defunct"))
CONTEXT_SWITCH_TYPE = Attribute("process.context_switch.type", ("voluntary", "involuntary"))
# Identity of a process: the resource of its process.* metrics.
PROCESS_IDENTITY = (
    Attribute("process.pid"),
    Attribute("process.parent_pid"),
    Attribute("process.executable.name"),
    Attribute("process.executable.path"),
    Attribute("process.owner"),
)
PROCESS_COMMAND_LINE = Attribute("process.command_line")
SCRAPER = Attribute("scraper")
OUTCOME = Attribute("outcome", ("success", "failure"))

_FS_ATTRIBUTES = (DEVICE, FS_TYPE, FS_MODE, FS_MOUNTPOINT)

METRICS: tuple[MetricSpec, ...] = (
    # cpu
    MetricSpec(
        "system.cpu.time", Kind.COUNTER, "s",
        "Seconds each logical CPU spent in each mode.",
        "cpu", (CPU_MODE,), opt_in_attributes=(CPU_LOGICAL_NUMBER,),
    ),
    MetricSpec(
        "system.cpu.utilization", Kind.GAUGE, "1",
        "Share of CPU time spent in each mode since the previous cycle, from 0 to 1.",
        "cpu", (CPU_MODE,), opt_in_attributes=(CPU_LOGICAL_NUMBER,), enabled=False,
    ),
    MetricSpec(
        "system.cpu.logical.count", Kind.UPDOWNCOUNTER, "{cpu}",
        "Number of logical CPUs the kernel reports online.", "cpu",
    ),
    MetricSpec(
        "system.cpu.physical.count", Kind.UPDOWNCOUNTER, "{cpu}",
        "Number of physical CPU cores.", "cpu",
    ),
    MetricSpec(
        "system.cpu.frequency", Kind.GAUGE, "Hz",
        "Current frequency of each logical CPU.", "cpu", (CPU_LOGICAL_NUMBER,),
    ),
    # memory
    MetricSpec(
        "system.memory.usage", Kind.UPDOWNCOUNTER, "By",
        "Memory in use by state; used is MemTotal minus MemAvailable.",
        "memory", (MEMORY_STATE,),
    ),
    MetricSpec(
        "system.memory.utilization", Kind.GAUGE, "1",
        "Memory usage by state as a share of total memory.", "memory", (MEMORY_STATE,),
    ),
    MetricSpec(
        "system.memory.limit", Kind.UPDOWNCOUNTER, "By",
        "Total memory available to the system (MemTotal).", "memory", enabled=False,
    ),
    MetricSpec(
        "system.memory.linux.available", Kind.UPDOWNCOUNTER, "By",
        "Kernel estimate of memory available for new workloads without swapping (MemAvailable).",
        "memory",
    ),
    MetricSpec(
        "system.memory.linux.shared", Kind.UPDOWNCOUNTER, "By",
        "Shared memory, most of it tmpfs files (Shmem).", "memory", enabled=False,
    ),
    MetricSpec(
        "system.memory.linux.slab.usage", Kind.UPDOWNCOUNTER, "By",
        "Kernel slab memory by reclaimability.", "memory", (SLAB_STATE,),
    ),
    # paging
    MetricSpec(
        "system.paging.usage", Kind.UPDOWNCOUNTER, "By",
        "Swap space in use and free, per swap device.", "paging", (DEVICE, PAGING_STATE),
    ),
    MetricSpec(
        "system.paging.utilization", Kind.GAUGE, "1",
        "Swap usage by state as a share of the device's size.", "paging", (DEVICE, PAGING_STATE),
    ),
    MetricSpec(
        "system.paging.faults", Kind.COUNTER, "{fault}",
        "Page faults since boot, by type.", "paging", (PAGING_FAULT_TYPE,),
    ),
    MetricSpec(
        "system.paging.operations", Kind.COUNTER, "{operation}",
        "Pages moved in and out since boot: swap (major) and file-backed paging (minor).",
        "paging", (PAGING_FAULT_TYPE, PAGING_DIRECTION),
    ),
    # disk
    MetricSpec(
        "system.disk.io", Kind.COUNTER, "By",
        "Bytes read from and written to each block device.", "disk", (DEVICE, DISK_DIRECTION),
    ),
    MetricSpec(
        "system.disk.operations", Kind.COUNTER, "{operation}",
        "Completed read and write operations per block device.", "disk", (DEVICE, DISK_DIRECTION),
    ),
    MetricSpec(
        "system.disk.merged", Kind.COUNTER, "{operation}",
        "Adjacent operations the kernel merged into one, per block device.",
        "disk", (DEVICE, DISK_DIRECTION),
    ),
    MetricSpec(
        "system.disk.io_time", Kind.COUNTER, "s",
        "Time each block device had at least one operation in flight.", "disk", (DEVICE,),
    ),
    MetricSpec(
        "system.disk.operation_time", Kind.COUNTER, "s",
        "Sum of the time operations spent in flight, per block device and direction.",
        "disk", (DEVICE, DISK_DIRECTION),
    ),
    MetricSpec(
        "system.disk.limit", Kind.UPDOWNCOUNTER, "By",
        "Capacity of each block device (its size in /sys/class/block).", "disk", (DEVICE,),
        enabled=False,
    ),
    # filesystem
    MetricSpec(
        "system.filesystem.usage", Kind.UPDOWNCOUNTER, "By",
        "File system space used, free to unprivileged users, and reserved for root.",
        "filesystem", (*_FS_ATTRIBUTES, FS_STATE),
    ),
    MetricSpec(
        "system.filesystem.utilization", Kind.GAUGE, "1",
        "File system usage by state as a share of its size.",
        "filesystem", (*_FS_ATTRIBUTES, FS_STATE),
    ),
    MetricSpec(
        "system.filesystem.limit", Kind.UPDOWNCOUNTER, "By",
        "Size of the file system.", "filesystem", _FS_ATTRIBUTES, enabled=False,
    ),
    # network
    MetricSpec(
        "system.network.io", Kind.COUNTER, "By",
        "Bytes transmitted and received per interface.", "network", (INTERFACE, NETWORK_DIRECTION),
    ),
    MetricSpec(
        "system.network.packet.count", Kind.COUNTER, "{packet}",
        "Packets transmitted and received per interface.",
        "network", (DEVICE, NETWORK_DIRECTION),
    ),
    MetricSpec(
        "system.network.errors", Kind.COUNTER, "{error}",
        "Transmit and receive errors per interface.", "network", (INTERFACE, NETWORK_DIRECTION),
    ),
    MetricSpec(
        "system.network.packet.dropped", Kind.COUNTER, "{packet}",
        "Packets dropped per interface.", "network", (INTERFACE, NETWORK_DIRECTION),
    ),
    MetricSpec(
        "system.network.connection.count", Kind.UPDOWNCOUNTER, "{connection}",
        "TCP connections and bound UDP sockets in the agent's network namespace: totals "
        "from /proc/net/sockstat, with TCP by state under HOST_AGENT_CONNECTION_STATES.",
        "network", (TRANSPORT,), opt_in_attributes=(CONNECTION_STATE,),
    ),
    MetricSpec(
        "system.network.conntrack.count", Kind.UPDOWNCOUNTER, "{entries}",
        "Entries in the netfilter connection tracking table of the agent's network "
        "namespace (nf_conntrack_count). Absent while the nf_conntrack module is not loaded.",
        "network",
    ),
    MetricSpec(
        "system.network.conntrack.max", Kind.UPDOWNCOUNTER, "{entries}",
        "Maximum entries of the connection tracking table, one limit for every network "
        "namespace (nf_conntrack_max). Absent while the nf_conntrack module is not loaded.",
        "network",
    ),
    MetricSpec(
        "system.network.linux.interface.up", Kind.UPDOWNCOUNTER, "1",
        "1 while the interface is operational (IFF_RUNNING: operstate up or unknown), else 0. "
        "lo reads 1, unlike node_exporter's node_network_up, which requires operstate up.",
        "network", (INTERFACE,),
    ),
    MetricSpec(
        "system.network.linux.interface.speed", Kind.UPDOWNCOUNTER, "By/s",
        "Link speed that the interface's driver reports. Absent where it reports none "
        "(virtual devices, a link without carrier).",
        "network", (INTERFACE,),
    ),
    # netstat
    MetricSpec(
        "system.network.linux.tcp.segments", Kind.COUNTER, "{segment}",
        "TCP segments received and sent, IPv4 and IPv6 (Tcp InSegs, OutSegs).",
        "netstat", (NETWORK_DIRECTION,),
    ),
    MetricSpec(
        "system.network.linux.tcp.retransmits", Kind.COUNTER, "{segment}",
        "TCP segments retransmitted (Tcp RetransSegs).", "netstat",
    ),
    MetricSpec(
        "system.network.linux.tcp.errors", Kind.COUNTER, "{segment}",
        "TCP segments received in error, such as a bad checksum (Tcp InErrs).", "netstat",
    ),
    MetricSpec(
        "system.network.linux.tcp.resets", Kind.COUNTER, "{segment}",
        "TCP segments sent with the RST flag (Tcp OutRsts).", "netstat",
    ),
    MetricSpec(
        "system.network.linux.tcp.opens", Kind.COUNTER, "{connection}",
        "TCP connection attempts: active when connect() sends a SYN, whether or not the "
        "handshake completes, passive when a listener completes a handshake "
        "(Tcp ActiveOpens, PassiveOpens).",
        "netstat", (TCP_OPEN_TYPE,),
    ),
    MetricSpec(
        "system.network.linux.tcp.listen.overflows", Kind.COUNTER, "{segment}",
        "SYN and handshake-completing ACK segments that listeners dropped because the accept "
        "queue was full, retransmissions counted again (TcpExt ListenOverflows): the "
        "application accepts too slowly.",
        "netstat",
    ),
    MetricSpec(
        "system.network.linux.tcp.listen.drops", Kind.COUNTER, "{segment}",
        "Segments that listeners dropped for any reason, overflows included "
        "(TcpExt ListenDrops).",
        "netstat",
    ),
    MetricSpec(
        "system.network.linux.tcp.orphans", Kind.UPDOWNCOUNTER, "{socket}",
        "TCP sockets that no process holds any more, still closing (sockstat TCP orphan).",
        "network",
    ),
    MetricSpec(
        "system.network.linux.udp.datagrams", Kind.COUNTER, "{datagram}",
        "UDP datagrams read by applications and sent, IPv4 and IPv6 (Udp and Udp6 "
        "InDatagrams, OutDatagrams). A datagram counts as received when recvmsg() returns it, "
        "so those still queued are not counted.",
        "netstat", (NETWORK_DIRECTION,),
    ),
    MetricSpec(
        "system.network.linux.udp.errors", Kind.COUNTER, "{datagram}",
        "UDP datagrams lost, IPv4 and IPv6, by disjoint cause: no socket on the port "
        "(NoPorts), a full receive buffer (RcvbufErrors), other receive errors such as "
        "checksums (InErrors less RcvbufErrors), a send that failed for lack of send buffer "
        "or kernel memory (SndbufErrors).",
        "netstat", (UDP_ERROR_TYPE,),
    ),
    MetricSpec(
        "system.network.linux.udp.queue.usage", Kind.UPDOWNCOUNTER, "By",
        "Memory of the datagrams waiting in the send and receive queues of every UDP "
        "socket, IPv4 and IPv6 (/proc/net/udp and udp6, tx_queue and rx_queue).",
        "netstat", (NETWORK_DIRECTION,),
    ),
    MetricSpec(
        "system.network.linux.socket.count", Kind.UPDOWNCOUNTER, "{socket}",
        "Sockets of every family in use (sockstat sockets used).", "network",
    ),
    MetricSpec(
        "system.network.linux.socket.memory", Kind.UPDOWNCOUNTER, "By",
        "Memory of TCP and UDP socket buffers of the whole host, which net.ipv4.tcp_mem and "
        "udp_mem limit (sockstat mem, which the kernel counts in pages). Coarse: the kernel "
        "keeps up to net.core.mem_pcpu_rsv pages a CPU out of the count.",
        "network", (TRANSPORT,),
    ),
    MetricSpec(
        "system.network.linux.softnet.dropped", Kind.COUNTER, "{packet}",
        "Packets dropped because a CPU's receive backlog was full "
        "(net.core.netdev_max_backlog).",
        "netstat",
    ),
    MetricSpec(
        "system.network.linux.softnet.time_squeeze", Kind.COUNTER, "{event}",
        "Times that receive processing stopped with work left, its budget or time used up "
        "(net.core.netdev_budget).",
        "netstat",
    ),
    MetricSpec(
        "system.network.linux.arp.count", Kind.UPDOWNCOUNTER, "{entry}",
        "Entries of the ARP table (/proc/net/arp) by interface.", "netstat", (INTERFACE,),
    ),
    # pressure
    *(
        MetricSpec(
            f"system.{resource}.linux.pressure.total", Kind.COUNTER, "s",
            description, "pressure", (STALL_TYPE,),
        )
        for resource, description in (
            ("cpu", "Time during which some or all non-idle tasks were stalled waiting for a "
                    "CPU (/proc/pressure/cpu)."),
            ("memory", "Time during which some or all non-idle tasks were stalled on memory "
                       "(/proc/pressure/memory)."),
            ("io", "Time during which some or all non-idle tasks were stalled on I/O "
                   "(/proc/pressure/io)."),
            ("irq", "Time during which all non-idle tasks were stalled by interrupt handling "
                    "(/proc/pressure/irq, with CONFIG_IRQ_TIME_ACCOUNTING)."),
        )
    ),
    # load
    MetricSpec(
        "system.cpu.load_average.1m", Kind.GAUGE, "{thread}",
        "Load average over 1 minute.", "load",
    ),
    MetricSpec(
        "system.cpu.load_average.5m", Kind.GAUGE, "{thread}",
        "Load average over 5 minutes.", "load",
    ),
    MetricSpec(
        "system.cpu.load_average.15m", Kind.GAUGE, "{thread}",
        "Load average over 15 minutes.", "load",
    ),
    # processes
    MetricSpec(
        "system.process.count", Kind.UPDOWNCOUNTER, "{process}",
        "Processes by state.", "processes", (PROCESS_STATE,),
    ),
    MetricSpec(
        "system.process.created", Kind.COUNTER, "{process}",
        "Processes and threads created since boot.", "processes",
    ),
    # kernel
    MetricSpec(
        "system.linux.file_handle.count", Kind.UPDOWNCOUNTER, "{file_handle}",
        "Open file handles of the whole host (/proc/sys/fs/file-nr).", "kernel",
    ),
    MetricSpec(
        "system.linux.file_handle.limit", Kind.UPDOWNCOUNTER, "{file_handle}",
        "Maximum open file handles (fs.file-max). At the limit, open(), socket(), pipe() and "
        "accept() fail with ENFILE in processes without CAP_SYS_ADMIN.",
        "kernel",
    ),
    MetricSpec(
        "system.linux.clock.synchronized", Kind.GAUGE, "1",
        "0 while adjtimex(2) returns TIME_ERROR (STA_UNSYNC or a clock fault), else 1, as "
        "node_exporter's node_timex_sync_status. chrony clears STA_UNSYNC only with its "
        "rtcsync directive, so a host that chrony keeps in sync can read 0.",
        "kernel",
    ),
    MetricSpec(
        "system.linux.clock.offset", Kind.GAUGE, "s",
        "Offset that the kernel's phase-locked loop still has to correct, which it slews toward "
        "0 each second. It stays 0 under chrony, which steers the frequency instead.",
        "kernel",
    ),
    MetricSpec(
        "system.linux.clock.max_error", Kind.GAUGE, "s",
        "Upper bound of the clock's error (adjtimex maxerror), which grows while no NTP "
        "daemon corrects it, up to 16 s.",
        "kernel",
    ),
    MetricSpec(
        "system.linux.clock.estimated_error", Kind.GAUGE, "s",
        "Estimated error of the clock (adjtimex esterror), as last set by the NTP daemon.",
        "kernel",
    ),
    MetricSpec(
        "system.linux.selinux.enabled", Kind.GAUGE, "1",
        "1 while SELinux is enabled (selinuxfs at /sys/fs/selinux), else 0.", "kernel",
    ),
    MetricSpec(
        "system.linux.selinux.enforcing", Kind.GAUGE, "1",
        "1 while SELinux enforces its policy, 0 in permissive mode. Absent while SELinux is "
        "disabled.",
        "kernel",
    ),
    MetricSpec(
        "system.linux.entropy.available", Kind.GAUGE, "{bit}",
        "Entropy that the kernel estimates its random pool holds (always 256 since Linux 5.18).",
        "kernel",
    ),
    # system
    MetricSpec(
        "system.uptime", Kind.GAUGE, "s", "Seconds since the host booted.", "system",
    ),
    # process (opt-in scraper); a resource per process
    MetricSpec(
        "process.cpu.time", Kind.COUNTER, "s", "CPU seconds the process used, by mode.",
        "process", (CPU_MODE,), resource_attributes=PROCESS_IDENTITY,
        opt_in_resource_attributes=(PROCESS_COMMAND_LINE,),
    ),
    MetricSpec(
        "process.cpu.utilization", Kind.GAUGE, "1",
        "CPU time the process used, by mode, since the previous cycle (or since it started), "
        "as a share of the elapsed time on the CPUs of its affinity mask.",
        "process", (CPU_MODE,), resource_attributes=PROCESS_IDENTITY,
        opt_in_resource_attributes=(PROCESS_COMMAND_LINE,),
        enabled=False,
    ),
    MetricSpec(
        "process.memory.usage", Kind.UPDOWNCOUNTER, "By", "Resident memory of the process.",
        "process", resource_attributes=PROCESS_IDENTITY,
        opt_in_resource_attributes=(PROCESS_COMMAND_LINE,),
    ),
    MetricSpec(
        "process.memory.virtual", Kind.UPDOWNCOUNTER, "By", "Virtual memory of the process.",
        "process", resource_attributes=PROCESS_IDENTITY,
        opt_in_resource_attributes=(PROCESS_COMMAND_LINE,),
    ),
    MetricSpec(
        "process.disk.io", Kind.COUNTER, "By",
        "Bytes the process read from and wrote to storage.",
        "process", (DISK_DIRECTION,), resource_attributes=PROCESS_IDENTITY,
        opt_in_resource_attributes=(PROCESS_COMMAND_LINE,),
    ),
    MetricSpec(
        "process.thread.count", Kind.UPDOWNCOUNTER, "{thread}", "Threads of the process.",
        "process", resource_attributes=PROCESS_IDENTITY,
        opt_in_resource_attributes=(PROCESS_COMMAND_LINE,),
    ),
    MetricSpec(
        "process.unix.file_descriptor.count", Kind.UPDOWNCOUNTER, "{file_descriptor}",
        "Open file descriptors of the process.",
        "process", resource_attributes=PROCESS_IDENTITY,
        opt_in_resource_attributes=(PROCESS_COMMAND_LINE,),
    ),
    MetricSpec(
        "process.context_switches", Kind.COUNTER, "{context_switch}",
        "Voluntary and involuntary context switches of the process.",
        "process", (CONTEXT_SWITCH_TYPE,), resource_attributes=PROCESS_IDENTITY,
        opt_in_resource_attributes=(PROCESS_COMMAND_LINE,),
    ),
    MetricSpec(
        "process.paging.faults", Kind.COUNTER, "{fault}", "Page faults of the process, by type.",
        "process", (PAGING_FAULT_TYPE,), resource_attributes=PROCESS_IDENTITY,
        opt_in_resource_attributes=(PROCESS_COMMAND_LINE,),
    ),
    MetricSpec(
        "process.uptime", Kind.GAUGE, "s", "Seconds since the process started.",
        "process", resource_attributes=PROCESS_IDENTITY,
        opt_in_resource_attributes=(PROCESS_COMMAND_LINE,),
    ),
    # the agent's own telemetry
    MetricSpec(
        "otel_host_agent.scraper.duration", Kind.GAUGE, "s",
        "Wall time of each scraper's last reading.", "agent", (SCRAPER,),
    ),
    MetricSpec(
        "otel_host_agent.scraper.errors", Kind.COUNTER, "{error}",
        "Failed readings per scraper since start, partial ones included.", "agent", (SCRAPER,),
    ),
    MetricSpec(
        "otel_host_agent.export.requests", Kind.COUNTER, "{request}",
        "Export requests sent to the OTLP endpoint since start, by outcome.", "agent", (OUTCOME,),
    ),
    MetricSpec(
        "otel_host_agent.export.data_points", Kind.COUNTER, "{data_point}",
        "Data points in export requests since start, by outcome.", "agent", (OUTCOME,),
    ),
)

BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in METRICS}


def for_scraper(scraper: str) -> Iterator[MetricSpec]:
    """Yield the catalogue entries a scraper produces."""
    return (spec for spec in METRICS if spec.scraper == scraper)


def markdown_table() -> str:
    """Render the catalogue as the README's metric table."""
    rows = [
        "| Metric | Scraper | Kind | Unit | Attributes | Default | Description |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in METRICS:
        keys = [a.key for a in spec.attributes]
        keys += [f"{a.key} (opt-in)" for a in spec.opt_in_attributes]
        resource_keys = [a.key for a in spec.resource_attributes]
        resource_keys += [f"{a.key} (opt-in)" for a in spec.opt_in_resource_attributes]
        cell = ", ".join(keys)
        if resource_keys:
            cell += f"{'; ' if cell else ''}resource: {', '.join(resource_keys)}"
        rows.append(
            f"| `{spec.name}` | {spec.scraper} | {spec.kind.value} | `{spec.unit}` "
            f"| {cell or '-'} "
            f"| {'on' if spec.enabled else 'off'} | {spec.description} |"
        )
    return "\n".join(rows) + "\n"
