"""The plan of one benchmark run, and the results it measured."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.container import ImageInfo
from bench.runs import MemoryTrace, Window
from bench.scaling import ScalePoint
from bench.startup import ProbeResults


@dataclass(frozen=True)
class Plan:
    """Repetitions, cycles and intervals of a run; `quick` is the smoke test's short run."""

    quick: bool
    image: str
    interval_ms: int = 1000
    repetitions: int = 5
    warmup: int = 3
    cycles: int = 30
    gzip_repetitions: int = 3
    gzip_cycles: int = 15
    # The agent's and the Python peer's default export interval. Each process
    # also spends CPU between cycles (idle threads, timers), and a cycle
    # carries 60 times more of it at 60 s than at 1 s.
    default_interval_ms: int = 60_000
    default_interval_cycles: int = 4
    memory_interval_ms: int = 100
    memory_first: int = 100
    memory_last: int = 1000
    memory_span: int = 10  # cycles in each window whose median RSS is compared
    memory_repetitions: int = 3
    start_repetitions: int = 10
    container_start_repetitions: int = 5
    probe_count: int = 20
    process_levels: tuple[int, ...] = (100, 1000, 5000)
    # The per-process scraper reads /proc/PID/stat of every process and the
    # top 50 processes in full. With top 0 it reads every process in full, which
    # took 0.35 to 1.1 s of CPU a cycle at 1,000 processes on the machines
    # measured, so that variant runs at 1,000 processes only, in fewer, longer cycles.
    per_process_levels: tuple[int, ...] = (1000, 5000)
    per_process_interval_ms: int = 2000
    every_process_levels: tuple[int, ...] = (1000,)
    every_process_interval_ms: int = 6000
    every_process_warmup: int = 1
    every_process_cycles: int = 3
    mount_levels: tuple[int, ...] = (0, 10, 50)
    scale_interval_ms: int = 1000
    scale_warmup: int = 2
    scale_cycles: int = 10

    @classmethod
    def quick_plan(cls, image: str) -> Plan:
        return cls(
            quick=True,
            image=image,
            interval_ms=400,
            repetitions=2,
            warmup=1,
            cycles=4,
            gzip_repetitions=1,
            gzip_cycles=3,
            default_interval_ms=2000,
            default_interval_cycles=2,
            memory_first=10,
            memory_last=30,
            memory_span=5,
            memory_repetitions=1,
            start_repetitions=3,
            container_start_repetitions=2,
            probe_count=2,
            process_levels=(1000,),
            per_process_levels=(1000,),
            per_process_interval_ms=1000,
            every_process_levels=(),
            mount_levels=(0, 50),
            scale_interval_ms=300,
            scale_warmup=1,
            scale_cycles=3,
        )


@dataclass
class Results:
    plan: Plan
    plain: list[dict[str, Window]] = field(default_factory=list)  # one dict per repetition
    gzip: list[dict[str, Window]] = field(default_factory=list)
    default_interval: list[dict[str, Window]] = field(default_factory=list)  # one dict per cycle
    unmatched_collectors: list[str] = field(default_factory=list)  # collectors with samples
    empty_collectors: list[str] = field(default_factory=list)  # collectors with no sample
    # collectors whose data the agent sends as resource attributes
    resource_collectors: list[str] = field(default_factory=list)
    memory: list[dict[str, MemoryTrace]] = field(default_factory=list)
    agent_start_s: list[float] = field(default_factory=list)
    node_exporter_start_s: list[float] = field(default_factory=list)
    container_start_s: list[float] = field(default_factory=list)
    container_note: str = ""
    probes: ProbeResults | None = None
    image: ImageInfo | None = None
    image_note: str = ""
    per_process_available: bool = False
    processes: list[ScalePoint] = field(default_factory=list)
    filesystems: list[ScalePoint] = field(default_factory=list)
    filesystems_note: str = ""
    node_exporter_binary_bytes: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # figure number -> error message
