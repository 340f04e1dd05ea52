"""The table of figures: built from a run's results, printed, and written as Markdown."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bench import families
from bench.procfs import KIB, MIB
from bench.results import Results
from bench.runs import (
    AGENT,
    AGENT_CONTAINER,
    COLUMNS,
    NODE_EXPORTER,
    NODE_EXPORTER_MATCHED,
    PYTHON,
    MemoryTrace,
    Window,
    middle_cycle,
)
from bench.scaling import ScalePoint
from bench.startup import ProbeRun

COLUMN_TITLES = {
    AGENT: "Agent",
    AGENT_CONTAINER: "Agent in container",
    NODE_EXPORTER: "node_exporter",
    NODE_EXPORTER_MATCHED: "node_exporter, matched collectors",
    PYTHON: "Python peer",
}
DASH = "-"
MET, MISSED = "met", "missed"

# Targets of the agent, as the project set them.
CPU_RATIO_TARGET = 1.0  # CPU per cycle over node_exporter's CPU per scrape
POINT_RATIO_TARGET = 0.5  # CPU per data point over the Python peer's
RSS_TARGET_MIB = 45
START_TARGET_S = 1.0
CONTAINER_START_TARGET_S = 2.0
PROBE_WALL_TARGET_S = 0.150
PROBE_RSS_TARGET_MIB = 35
IMAGE_TARGET_MB = 40
# Marginal costs per unit of work that differ by less than this factor
# between consecutive levels count as linear growth.
LINEAR_TOLERANCE = 1.5


@dataclass
class Row:
    figure: str
    measure: str
    values: dict[str, str] = field(default_factory=dict)
    ratio: str = DASH
    target: str = DASH
    result: str = DASH


# -- number formatting -------------------------------------------------------


def ms(seconds: float | None) -> str:
    return DASH if seconds is None else f"{seconds * 1000:.1f}"


def us(seconds: float | None) -> str:
    return DASH if seconds is None else f"{seconds * 1e6:.1f}"


def mib(size: float | None) -> str:
    return DASH if size is None else f"{size / MIB:.1f}"


def count(value: float | None) -> str:
    return DASH if value is None else f"{value:,.0f}"


def times(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}x"


def verdict(ok: bool) -> str:
    return MET if ok else MISSED


def median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


# -- reductions over repetitions ---------------------------------------------


Getter = Callable[[Window], float | None]


def per_column(repetitions: Sequence[dict[str, Window]], getter: Getter) -> dict[str, float | None]:
    return {
        column: median(getter(rep[column]) for rep in repetitions if column in rep)
        for column in COLUMNS
    }


def paired_ratio(
    repetitions: Sequence[dict[str, Window]], getter: Getter, peer: str
) -> float | None:
    """Median over repetitions of agent/peer, each pair measured side by side in one run."""
    ratios = []
    for rep in repetitions:
        if AGENT in rep and peer in rep:
            mine, theirs = getter(rep[AGENT]), getter(rep[peer])
            if mine is not None and theirs:
                ratios.append(mine / theirs)
    return median(ratios)


GRPC_COLUMNS = (AGENT, AGENT_CONTAINER, PYTHON)


def grpc_row(repetitions: Sequence[dict[str, Window]], measure: str) -> Row:
    """Build the row of the CPU that gRPC's own threads used, for the peers that run gRPC."""
    values = per_column(repetitions, lambda w: w.grpc_cpu_per_cycle_s)
    shares = per_column(repetitions, grpc_share)
    return Row(
        "1",
        f"{measure}: in gRPC's own threads (event_engine, lifeguard, timer), ms (share)",
        {
            column: f"{ms(values[column])} ({shares[column]:.0%})"
            if column in GRPC_COLUMNS and values[column] is not None and shares[column] is not None
            else DASH
            for column in COLUMNS
        },
    )


def grpc_share(window: Window) -> float | None:
    return window.grpc_cpu_per_cycle_s / window.cpu_per_cycle_s if window.cpu_per_cycle_s else None


def cpu_per_point(window: Window) -> float | None:
    return window.cpu_per_cycle_s / window.data_points if window.data_points else None


def ratio_verdict(ratio: float | None, limit: float) -> str:
    """Return whether `ratio` is at most `limit`, or a dash when it was not measured."""
    return DASH if ratio is None else verdict(ratio <= limit)


def _formatted(
    values: dict[str, float | None], formatter: Callable[[float | None], str]
) -> dict[str, str]:
    return {column: formatter(value) for column, value in values.items()}


# -- rows, figure by figure ----------------------------------------------------


def cycle_rows(results: Results) -> list[Row]:
    reps = results.plain
    if not reps:
        return [Row("1", "CPU per cycle", result="not run")]
    cpu = per_column(reps, lambda w: w.cpu_per_cycle_s)
    cpu_vs_node = paired_ratio(reps, lambda w: w.cpu_per_cycle_s, NODE_EXPORTER)
    cpu_vs_matched = paired_ratio(reps, lambda w: w.cpu_per_cycle_s, NODE_EXPORTER_MATCHED)
    cpu_vs_python = paired_ratio(reps, lambda w: w.cpu_per_cycle_s, PYTHON)
    point_vs_python = paired_ratio(reps, cpu_per_point, PYTHON)
    point_vs_node = paired_ratio(reps, cpu_per_point, NODE_EXPORTER)

    last = reps[-1]
    areas = {column: families.covered(last[column].metric_names, column) for column in last}
    agent_areas = set(areas.get(AGENT, []))
    node_areas = set(areas.get(NODE_EXPORTER, []))
    lacking = sorted(node_areas - agent_areas)
    families_ok = not lacking and not results.unmatched_collectors

    return [
        Row(
            "1",
            "CPU per cycle, ms",
            _formatted(cpu, ms),
            ratio=f"{times(cpu_vs_node)} node_exporter, {times(cpu_vs_matched)} matched, "
            f"{times(cpu_vs_python)} Python",
            target=f"≤ {CPU_RATIO_TARGET:.1f}x node_exporter",
            result=ratio_verdict(cpu_vs_node, CPU_RATIO_TARGET),
        ),
        grpc_row(reps, "CPU per cycle"),
        Row(
            "1",
            "Data points per cycle",
            _formatted(per_column(reps, lambda w: w.data_points), count),
        ),
        Row(
            "1",
            "CPU per data point, µs",
            _formatted(per_column(reps, cpu_per_point), us),
            ratio=f"{times(point_vs_python)} Python, {times(point_vs_node)} node_exporter",
            target=f"≤ {POINT_RATIO_TARGET:.1f}x Python",
            result=ratio_verdict(point_vs_python, POINT_RATIO_TARGET),
        ),
        Row(
            "1",
            "Metric names (families) exported",
            {column: count(len(window.metric_names)) for column, window in last.items()},
        ),
        Row(
            "1",
            f"Host areas covered, of {len(families.AREAS)}",
            {column: str(len(found)) for column, found in areas.items()},
            ratio=f"agent lacks: {', '.join(lacking) or 'none'}; node_exporter collectors "
            f"without a counterpart: {len(results.unmatched_collectors)}",
            target="the agent exports every family node_exporter does",
            result=verdict(families_ok),
        ),
    ]


def default_interval_rows(results: Results) -> list[Row]:
    """Build the CPU rows of the run in which every peer used the agent's default interval.

    Each measured cycle counts as a repetition: values are medians over the
    cycles, and ratios medians of the per-cycle ratios.
    """
    reps = results.default_interval
    if not reps:
        return []
    seconds = results.plan.default_interval_ms / 1000
    cpu_vs_node = paired_ratio(reps, lambda w: w.cpu_per_cycle_s, NODE_EXPORTER)
    cpu_vs_python = paired_ratio(reps, lambda w: w.cpu_per_cycle_s, PYTHON)
    point_vs_python = paired_ratio(reps, cpu_per_point, PYTHON)
    return [
        Row(
            "1",
            f"CPU per cycle at a {seconds:g} s interval, ms",
            _formatted(per_column(reps, lambda w: w.cpu_per_cycle_s), ms),
            ratio=f"{times(cpu_vs_node)} node_exporter, {times(cpu_vs_python)} Python",
            target=f"≤ {CPU_RATIO_TARGET:.1f}x node_exporter",
            result=ratio_verdict(cpu_vs_node, CPU_RATIO_TARGET),
        ),
        grpc_row(reps, f"CPU per cycle at a {seconds:g} s interval"),
        Row(
            "1",
            f"CPU per data point at a {seconds:g} s interval, µs",
            _formatted(per_column(reps, cpu_per_point), us),
            ratio=f"{times(point_vs_python)} Python",
            target=f"≤ {POINT_RATIO_TARGET:.1f}x Python",
            result=ratio_verdict(point_vs_python, POINT_RATIO_TARGET),
        ),
    ]


MEMORY_COLUMNS = (AGENT, AGENT_CONTAINER, NODE_EXPORTER, PYTHON)


def _with_container(
    values: dict[str, float | None],
    judge: Callable[[float], str],
    judge_container: Callable[[float], str] | None = None,
) -> str:
    """Return the verdict for the agent process, and for its container where it ran."""
    agent, in_container = values.get(AGENT), values.get(AGENT_CONTAINER)
    result = DASH if agent is None else judge(agent)
    if in_container is not None:
        result += f"; container: {(judge_container or judge)(in_container)}"
    return result


def memory_noise(repetitions: Sequence[dict[str, MemoryTrace]], column: str) -> float | None:
    """Return the largest RSS range inside the windows and across repetitions.

    Inside a window of a few cycles, RSS moves with garbage collection and
    allocator arenas. Across repetitions, the same process starts at a
    slightly different RSS. Growth below both cannot be told apart from noise.
    """
    traces = [rep[column] for rep in repetitions if column in rep]
    if not traces:
        return None
    starts = [trace.rss_at_first for trace in traces]
    return max(*(trace.noise for trace in traces), max(starts) - min(starts))


def memory_rows(results: Results) -> list[Row]:
    plan = results.plan
    reps = results.memory
    if not reps:
        return [Row("2", "Resident memory", result="not run")]

    def column_median(getter: Callable[[MemoryTrace], float]) -> dict[str, float | None]:
        return {
            column: median(getter(rep[column]) for rep in reps if column in rep)
            for column in MEMORY_COLUMNS
        }

    rss = column_median(lambda trace: trace.rss_at_first)
    growth = column_median(lambda trace: trace.growth)
    hwm = column_median(lambda trace: float(trace.hwm_at_last))
    anonymous = column_median(lambda trace: trace.anonymous_at_first)
    first_half = column_median(lambda trace: trace.growth_by_half[0])
    second_half = column_median(lambda trace: trace.growth_by_half[1])
    noise = {column: memory_noise(reps, column) for column in MEMORY_COLUMNS}
    agent_rss = rss[AGENT]
    rss_ratio_node = agent_rss / rss[NODE_EXPORTER] if agent_rss and rss[NODE_EXPORTER] else None
    rss_ratio_python = agent_rss / rss[PYTHON] if agent_rss and rss[PYTHON] else None
    at = f"{plan.memory_interval_ms} ms interval"
    middle = middle_cycle(plan.memory_first, plan.memory_last, plan.memory_span)
    return [
        Row(
            "2",
            f"RSS after {plan.memory_first} cycles ({at}), MiB",
            _formatted(rss, mib),
            ratio=f"{times(rss_ratio_node)} node_exporter, {times(rss_ratio_python)} Python",
            target=f"≤ {RSS_TARGET_MIB} MiB",
            result=_with_container(rss, lambda value: verdict(value <= RSS_TARGET_MIB * MIB)),
        ),
        Row(
            "2",
            f"Anonymous RSS (RssAnon: RSS without mapped files) after {plan.memory_first} "
            "cycles, MiB",
            _formatted(anonymous, mib),
        ),
        Row(
            "2",
            f"RSS growth, cycle {plan.memory_first} → {plan.memory_last}, MiB (noise)",
            {
                column: DASH
                if growth[column] is None
                else f"{growth[column] / MIB:+.2f} ({mib(noise[column])})"
                for column in growth
            },
            target="within noise",
            result=_with_container(
                {column: growth[column] for column in (AGENT, AGENT_CONTAINER)},
                lambda value, noise=noise: verdict(value <= (noise[AGENT] or 0)),
                lambda value, noise=noise: verdict(value <= (noise[AGENT_CONTAINER] or 0)),
            ),
        ),
        Row(
            "2",
            f"RSS growth in each half, cycle {plan.memory_first} → {middle} → "
            f"{plan.memory_last}, KiB",
            {
                column: _kib_pair(first_half[column], second_half[column])
                for column in MEMORY_COLUMNS
            },
        ),
        Row("2", f"Peak RSS (VmHWM) at cycle {plan.memory_last}, MiB", _formatted(hwm, mib)),
    ]


def _kib_pair(first: float | None, second: float | None) -> str:
    """Format two signed sizes in KiB as "first / second", or a dash when one is missing."""
    if first is None or second is None:
        return DASH
    return f"{first / KIB:+.0f} / {second / KIB:+.0f}"


def start_rows(results: Results) -> list[Row]:
    agent = median(results.agent_start_s)
    node = median(results.node_exporter_start_s)
    container = median(results.container_start_s)
    rows = [
        Row(
            "3",
            "Start → first response, process, ms (agent: SERVING; node_exporter: /metrics)",
            {AGENT: ms(agent), NODE_EXPORTER: ms(node)},
            ratio=f"{times(agent / node if agent and node else None)} node_exporter",
            target=f"< {START_TARGET_S * 1000:.0f} ms",
            result=DASH if agent is None else verdict(agent < START_TARGET_S),
        ),
    ]
    if results.container_start_s:
        rows.append(
            Row(
                "3",
                "Start → SERVING, container (docker run), ms",
                {AGENT: ms(container)},
                target=f"< {CONTAINER_START_TARGET_S * 1000:.0f} ms",
                result=DASH if container is None else verdict(container < CONTAINER_START_TARGET_S),
            )
        )
    else:
        rows.append(
            Row(
                "3",
                "Start → SERVING, container (docker run), ms",
                {AGENT: "skipped"},
                target=f"< {CONTAINER_START_TARGET_S * 1000:.0f} ms",
                result=f"skipped: {results.container_note}",
            )
        )
    return rows


def _probe_rows(
    label: str, runs: list[ProbeRun], skipped: str | None, *, rss: bool, targets: bool
) -> list[Row]:
    if not runs:
        return [Row("4", f"healthcheck, {label}", {AGENT: "skipped"}, result=f"skipped: {skipped}")]
    failures = [run for run in runs if run.exit_status != 0]
    wall = median(run.wall_s for run in runs)
    peak = median(run.peak_rss_bytes for run in runs)
    failed = ""
    if failures:
        first = failures[0]
        failed = f"failed: {len(failures)} of {len(runs)} exited {first.exit_status}: " + (
            first.output.strip().splitlines()[-1][:160] if first.output.strip() else "no output"
        )
    rows = [
        Row(
            "4",
            f"healthcheck wall time, {label}, ms",
            {AGENT: ms(wall)},
            target=f"< {PROBE_WALL_TARGET_S * 1000:.0f} ms" if targets else DASH,
            result=failed
            or (verdict(wall is not None and wall < PROBE_WALL_TARGET_S) if targets else DASH),
        )
    ]
    if rss:
        rows.append(
            Row(
                "4",
                f"healthcheck peak RSS, {label}, MiB",
                {AGENT: mib(peak)},
                target=f"< {PROBE_RSS_TARGET_MIB} MiB" if targets else DASH,
                result=failed
                or (
                    verdict(peak is not None and peak < PROBE_RSS_TARGET_MIB * MIB)
                    if targets
                    else DASH
                ),
            )
        )
    return rows


def probe_rows(results: Results) -> list[Row]:
    probes = results.probes
    if probes is None:
        return [Row("4", "healthcheck", result="not run")]
    return [
        *_probe_rows("python -m otel_collector", probes.python, None, rss=True, targets=True),
        *_probe_rows(
            "bundled executable copied out of the image",
            probes.bundle,
            probes.skipped.get("bundle"),
            rss=True,
            targets=True,
        ),
        *_probe_rows(
            "docker run --rm (includes creating the container)",
            probes.docker_run,
            probes.skipped.get("docker_run"),
            rss=False,
            targets=False,
        ),
    ]


def image_rows(results: Results) -> list[Row]:
    binary = results.node_exporter_binary_bytes
    node = f"{binary / 1e6:.1f} (binary alone)" if binary else DASH
    if results.image is None:
        return [
            Row(
                "5",
                "Image size, uncompressed, MB",
                {AGENT: "skipped", NODE_EXPORTER: node},
                target=f"≤ {IMAGE_TARGET_MB} MB",
                result=f"skipped: {results.image_note}",
            )
        ]
    size = results.image.size_bytes
    return [
        Row(
            "5",
            "Image size, uncompressed, MB",
            {AGENT: f"{size / 1e6:.1f}", NODE_EXPORTER: node},
            ratio=f"{times(size / binary if binary else None)} node_exporter's binary",
            target=f"≤ {IMAGE_TARGET_MB} MB",
            result=verdict(size <= IMAGE_TARGET_MB * 1e6),
        )
    ]


def growth_statement(points: Sequence[ScalePoint], unit: int, unit_name: str) -> str:
    """Describe the marginal CPU per `unit` of work between consecutive levels, and its shape."""
    ordered = sorted(points, key=lambda point: point.work)
    slopes = []
    for low, high in itertools.pairwise(ordered):
        if high.work > low.work:
            slopes.append(
                (
                    low.work,
                    high.work,
                    (high.cpu_per_cycle_s - low.cpu_per_cycle_s) / (high.work - low.work) * unit,
                )
            )
    if not slopes:
        return "too few levels to tell"
    parts = [
        f"{ms(slope)} ms per {unit:,} {unit_name} ({low:,} → {high:,})"
        for low, high, slope in slopes
    ]
    values = [slope for _, _, slope in slopes]
    if len(values) < 2:
        shape = "two levels: the shape is not measured"
    elif min(values) > 0 and max(values) / min(values) <= LINEAR_TOLERANCE:
        shape = "linear"
    elif values[-1] > values[0]:
        shape = "faster than linear"
    else:
        shape = "slower than linear"
    return f"{'; '.join(parts)}: {shape}"


def scaling_rows(results: Results) -> list[Row]:
    rows: list[Row] = []
    by_scraper: dict[str, list[ScalePoint]] = {}
    for point in results.processes:
        by_scraper.setdefault(point.scraper, []).append(point)
    for scraper, points in by_scraper.items():
        for point in points:
            per_process = point.cpu_per_cycle_s / point.work if point.work else None
            rows.append(
                Row(
                    "6",
                    f"{scraper} at {point.work:,} processes: CPU per cycle, ms (per process, µs)",
                    {AGENT: f"{ms(point.cpu_per_cycle_s)} ({us(per_process)})"},
                )
            )
        if len(points) > 1:
            rows.append(
                Row("6", f"{scraper}: growth", {AGENT: growth_statement(points, 1000, "processes")})
            )
    if not results.per_process_available:
        rows.append(
            Row(
                "6",
                "process scraper",
                {AGENT: "skipped"},
                result="skipped: this version has no per-process scraper",
            )
        )
    for point in results.filesystems:
        rows.append(
            Row(
                "6",
                f"filesystem scraper with {point.work} extra tmpfs mounts: CPU per cycle, ms",
                {AGENT: ms(point.cpu_per_cycle_s)},
            )
        )
    if results.filesystems:
        rows.append(
            Row(
                "6",
                "filesystem scraper growth",
                {AGENT: growth_statement(results.filesystems, 1, "mount")},
            )
        )
    if results.filesystems_note:
        rows.append(
            Row("6", "filesystem scraper", {AGENT: "skipped"}, result=results.filesystems_note)
        )
    return rows


def wire_rows(results: Results) -> list[Row]:
    plain, gzipped = results.plain, results.gzip
    if not plain:
        return [Row("7", "Bytes on the wire", result="not run")]

    def wire(window: Window) -> float:
        return window.wire_bytes_per_cycle

    sent = per_column(plain, wire)
    rows = [
        Row(
            "7",
            "Bytes sent per cycle, no compression",
            _formatted(sent, count),
            ratio=f"{times(paired_ratio(plain, wire, NODE_EXPORTER))} node_exporter, "
            f"{times(paired_ratio(plain, wire, PYTHON))} Python",
        ),
        Row(
            "7",
            "Request size as serialized (receiver), bytes",
            _formatted(per_column(plain, lambda w: w.serialized_bytes), count),
        ),
        Row(
            "7",
            "gzip of the serialized request (computed by the benchmark), bytes",
            _formatted(per_column(plain, lambda w: w.gzip_bytes), count),
        ),
    ]
    if gzipped:
        sent_gzip = per_column(gzipped, wire)
        agent_plain, agent_gzip = sent.get(AGENT), sent_gzip.get(AGENT)
        rows += [
            Row(
                "7",
                "Bytes sent per cycle, gzip",
                _formatted(sent_gzip, count),
                ratio="agent gzip/none "
                f"{times(agent_gzip / agent_plain if agent_gzip and agent_plain else None)}",
            ),
            Row(
                "7",
                "CPU per cycle with gzip, ms",
                _formatted(per_column(gzipped, lambda w: w.cpu_per_cycle_s), ms),
            ),
        ]
    return rows


def build_rows(results: Results) -> list[Row]:
    failures = [
        Row(
            figure.split()[0], f"figure {figure}", result=f"failed: {message.splitlines()[0][:200]}"
        )
        for figure, message in results.failures.items()
    ]
    return [
        *cycle_rows(results),
        *default_interval_rows(results),
        *memory_rows(results),
        *start_rows(results),
        *probe_rows(results),
        *image_rows(results),
        *scaling_rows(results),
        *wire_rows(results),
        *failures,
    ]


# -- rendering -----------------------------------------------------------------


HEADERS = (
    "Fig.",
    "Measure",
    *(COLUMN_TITLES[column] for column in COLUMNS),
    "Ratio",
    "Target",
    "Result",
)


def _cells(row: Row) -> list[str]:
    return [
        row.figure,
        row.measure,
        *(row.values.get(column, DASH) for column in COLUMNS),
        row.ratio,
        row.target,
        row.result,
    ]


def render_text(rows: Sequence[Row]) -> str:
    """Render the rows as a plain-text table with aligned columns."""
    table = [list(HEADERS), *(_cells(row) for row in rows)]
    widths = [max(len(line[index]) for line in table) for index in range(len(HEADERS))]
    lines = []
    for number, line in enumerate(table):
        lines.append(
            " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
        if number == 0:
            lines.append("-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def render_markdown(rows: Sequence[Row]) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
    ]
    lines += ["| " + " | ".join(escape(cell) for cell in _cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def _verdicts(result: str) -> list[str]:
    """Return the verdict words of a result such as "missed; container: met"."""
    return [part.rsplit(": ", 1)[-1] for part in result.split("; ")]


def target_summary(rows: Sequence[Row]) -> tuple[list[Row], list[Row]]:
    """Return the rows whose targets were all met, and those with a target missed or failed."""
    met = [row for row in rows if set(_verdicts(row.result)) == {MET}]
    missed = [
        row for row in rows if MISSED in _verdicts(row.result) or row.result.startswith("failed")
    ]
    return met, missed
