"""docs/benchmarks.md: the record of one full run, written by the benchmark itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bench import families
from bench.peers import NODE_EXPORTER_MATCHED_COLLECTORS
from bench.report import Row, render_markdown, target_summary
from bench.results import Plan, Results

# Published sizes of the peers' images. Each entry is (image, size, source).
# NOTE: neither node_exporter figure states the version it measured together
# with whether the size is compressed; no registry can be queried from here.
PUBLISHED_IMAGE_SIZES = (
    (
        "prom/node-exporter (node_exporter 0.15.2, 2018)",
        "about 8 MB",
        "a node_exporter maintainer in https://github.com/prometheus/node_exporter/issues/983",
    ),
    (
        "prom/node-exporter:latest (undated)",
        "21 MB",
        "the image comparison in "
        "https://how2.sh/posts/how-to-optimize-docker-images-for-monitoring-agents "
        "(it does not say whether the size is compressed)",
    ),
    (
        "opentelemetry-instrumentation-system-metrics",
        "no image published",
        "it is a library on PyPI; an application that uses it ships its own image",
    ),
)


def counted(count: int, noun: str) -> str:
    """Return the count with the noun, adding "s" to the noun unless the count is 1."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _table(facts: Mapping[str, str]) -> list[str]:
    lines = ["| Item | Value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in facts.items()]
    return lines


def _method(results: Results) -> list[str]:
    plan = results.plan
    return [
        "## Method",
        "",
        "- Each peer runs in a process of its own, at the same time as the others in the same "
        "run, on the same machine. CPU time is that of every thread of the process, in "
        "nanoseconds, from the process's CPU-time clock (`clock_getcpuclockid(3)`). "
        "`/proc/PID/stat` holds the same sum in clock ticks of 10 ms. Memory is VmRSS and "
        "VmHWM from `/proc/PID/status`. The benchmark reads both from outside the process.",
        "- A cycle is one export request reaching the benchmark's receiver (agent, Python "
        "peer) or one completed scrape (node_exporter). The processes are read when each cycle "
        "arrives, so CPU per cycle is the CPU time between the readings at the first and the "
        "last measured cycle, divided by the cycles between them. It includes the idle work "
        "between cycles (timers, health service, garbage collection).",
        "- The rows \"in gRPC's own threads\" take the part of that CPU time used by the "
        "threads of gRPC's C core in the agent and the Python peer. Those are the threads "
        "named event_engine, lifeguard and grpc_global_timer, read at the same moments from "
        "`/proc/PID/task/TID/schedstat`, which counts the same nanoseconds as the CPU-time clock.",
        f"- Figure 1: interval {plan.interval_ms} ms for every process; "
        f"{counted(plan.repetitions, 'repetition')} with fresh processes, each measuring "
        f"{counted(plan.cycles, 'cycle')} after {counted(plan.warmup, 'warm-up cycle')}. "
        "Values are medians over the repetitions; ratios are medians of the per-repetition "
        "ratios, so each ratio compares processes that ran at the same time. When the image "
        "exists, the agent's container runs in the same runs without compression (see "
        "figure 2 for how it runs).",
        f"- Figure 1 at the default interval: one run of the agent, node_exporter and the "
        f"Python peer side by side at {plan.default_interval_ms} ms, measuring "
        f"{counted(plan.default_interval_cycles, 'cycle')} after 1 warm-up cycle. Each cycle "
        "is measured on its own: values are medians over the cycles, and ratios medians of "
        "the per-cycle ratios. That is the default export interval of the agent and of the "
        "Python peer, and node_exporter is scraped at the same interval. At this interval the "
        "idle work between cycles weighs far more than at 1 s.",
        "- The agent runs as `python -m otel_collector` with its defaults except the interval, "
        "the endpoint and a loopback health port. The Python peer is `bench/python_peer.py`: "
        "a MeterProvider with a PeriodicExportingMetricReader and an OTLPMetricExporter (gRPC), "
        "and `SystemMetricsInstrumentor()` with its default metric set. node_exporter runs "
        "with `--web.listen-address=127.0.0.1:PORT` and its default collectors; the benchmark "
        "scrapes `/metrics` with urllib at the same interval and counts the sample lines as "
        "data points. The matched column runs node_exporter with only the collectors that "
        "read what the agent's default scrapers read: "
        f"{', '.join(NODE_EXPORTER_MATCHED_COLLECTORS)}.",
        "- Each push peer exports to its own instance of the tests' OTLP receiver "
        "(`tests/otlp_receiver.py`) in the benchmark process, through a TCP proxy on loopback "
        "that counts bytes; node_exporter is scraped through the same kind of proxy.",
        f"- Host areas: {', '.join(area.name for area in families.AREAS)}. An area counts as "
        "covered when the peer exports one of the metric names `bench/families.py` lists for "
        "it. node_exporter's default collectors that succeeded on this machine and have no "
        "matching agent scraper are listed in the notes. Of those, the ones that exported "
        "samples (by the metric name prefixes in `bench/families.py`) count against the "
        "target. One that exported nothing adds no family, and one whose data the agent's "
        "resource attributes carry counts as matched. So does time, whose clock reading "
        "every OTLP data point carries as its timestamp, when the agent's timestamps were at "
        f"most {families.MAX_CLOCK_SKEW_S:g} s from the benchmark's clock on arrival.",
        f"- Figure 2: interval {plan.memory_interval_ms} ms for every process, one run of "
        f"{plan.memory_last} cycles in each of {counted(plan.memory_repetitions, 'repetition')}. "
        f"RSS after {plan.memory_first} cycles is the median VmRSS over cycles "
        f"{plan.memory_first} to "
        f"{plan.memory_first + plan.memory_span - 1}; growth is the median over the last "
        f"{plan.memory_span} cycles minus that value. Noise is the largest of the max-min "
        "ranges inside those windows and the spread of the first value across repetitions; "
        "growth within noise meets the target. The row of each half compares the median "
        "over a middle window with the first and the last. A leak grows alike in both "
        "halves; caches that fill as a process warms up, such as the memory allocator's, "
        "grow mostly in the first. When the image exists, the agent's container "
        "runs alongside (`docker run --network host --pid host --volume /:/hostfs:ro`) and is "
        "read through the host PID of its main process; its bundle leaves out `ssl` and other "
        "modules (images/Dockerfile), so its RSS differs from the Python process's. "
        "RssAnon is RSS without the pages of mapped files such as shared libraries.",
        f"- Figure 3: {plan.start_repetitions} starts of the agent process, each polled every "
        "10 ms with a grpc.health.v1 Check on a new channel until SERVING; time counts from "
        "just before the process is spawned. node_exporter's column is the time to its first "
        "`/metrics` response, for reference. Every Python process of the run, the agent's "
        "included, uses a bytecode cache that the benchmark fills before the first figure "
        "(`PYTHONPYCACHEPREFIX` in its temporary folder). An installed package has its `.pyc` "
        "files, and without them each start compiles every imported module. The container "
        "runs with `--network host --pid host "
        f"--volume /:/hostfs:ro` ({plan.container_start_repetitions} starts), timed from just "
        "before `docker run`.",
        f"- Figure 4: {plan.probe_count} runs of each probe against one running agent; wall "
        "time from spawn to exit, and peak RSS from the child's own `wait4` rusage "
        "(`ru_maxrss`). The bundled executable is copied out of the image with `docker cp` and "
        "run on this host; `docker run --rm` adds creating and removing a container.",
        "- Figure 5: `docker image inspect` `.Size`, the uncompressed size of the image's "
        "layers. node_exporter's column is the size of its Debian binary on this machine; its "
        "official image adds that binary to a busybox base (`Dockerfile` of "
        "prometheus/node_exporter). Published sizes are below.",
        f"- Figure 6: the agent alone with one scraper (`HOST_AGENT_SCRAPERS`), interval "
        f"{plan.scale_interval_ms} ms, {counted(plan.scale_cycles, 'cycle')} after "
        f"{counted(plan.scale_warmup, 'warm-up cycle')}, one run per level. The per-process "
        "scraper runs at an interval of "
        f"{plan.per_process_interval_ms} ms{_every_process(plan)}. `sleep` processes started by "
        "the benchmark bring the host's process count to each level. The tmpfs mounts live in "
        "a mount namespace of their own (`unshare --mount --pid --fork --mount-proc`, the "
        "agent as its PID 1), so the host's mount table never changes; "
        "`HOST_AGENT_FILESYSTEM_TYPES_EXCLUDE` is the default without tmpfs.",
        "- Figure 7: bytes the exporter sent through the proxy per cycle (HTTP/2 or HTTP "
        "framing included, TCP/IP headers not), with no compression and with gzip "
        "(`OTEL_EXPORTER_OTLP_COMPRESSION=gzip`; node_exporter scraped with "
        "`Accept-Encoding: gzip`). The serialized size is the receiver's `ByteSize()` of the "
        "decoded request; the gzip row compresses that serialized request in the benchmark.",
        "",
    ]


def _every_process(plan: Plan) -> str:
    """Describe how the per-process variant with top 0 runs, or nothing when it does not."""
    if not plan.every_process_levels:
        return ""
    return (
        f"; with top 0 at {plan.every_process_interval_ms} ms, "
        f"{counted(plan.every_process_cycles, 'cycle')} after "
        f"{counted(plan.every_process_warmup, 'warm-up cycle')}, because one of its cycles "
        "can take longer than a second"
    )


def _notes(results: Results) -> list[str]:
    lines = ["## Notes", ""]
    if results.unmatched_collectors:
        lines.append(
            "- node_exporter default collectors that exported samples here and have no agent "
            "scraper: " + ", ".join(results.unmatched_collectors) + "."
        )
    if results.resource_collectors:
        lines.append(
            "- node_exporter default collectors that count as matched because every export "
            "request of the agent carries their data: as resource attributes, or for time "
            "as the timestamps of the data points. `bench/families.py` lists the keys and "
            "the largest clock gap. They are: " + ", ".join(results.resource_collectors) + "."
        )
    if results.empty_collectors:
        lines.append(
            "- node_exporter default collectors that succeeded here but exported no sample "
            "(their hardware or file system is absent), so they add no family: "
            + ", ".join(results.empty_collectors) + "."
        )
    lines.append(
        "- The Python peer's default set includes system.network.connections, which calls "
        "psutil.net_connections() and parses every socket of the host each cycle. In a py-spy "
        "profile on this machine that took about 40 % of the peer's cycle, so the peer's CPU "
        "per cycle moves with the sockets that other work on the machine keeps open."
    )
    if results.container_note:
        lines.append(f"- Container start: {results.container_note}.")
    if results.probes is not None:
        for variant, reason in results.probes.skipped.items():
            lines.append(f"- healthcheck ({variant}): {reason}.")
    if results.image_note:
        lines.append(f"- Image: {results.image_note}.")
    if results.filesystems_note:
        lines.append(f"- File systems: {results.filesystems_note}.")
    for figure, message in results.failures.items():
        lines.append(f"- Figure {figure} failed: {message.splitlines()[0]}")
    if results.image is not None:
        lines.append(
            f"- Image measured: {results.image.reference}, {results.image.image_id[:19]}, "
            f"created {results.image.created}."
        )
    return [*lines, ""]


def render_page(
    results: Results,
    rows: Sequence[Row],
    *,
    command: str,
    started: str,
    seconds: float,
    machine: Mapping[str, str],
    versions: Mapping[str, str],
    load_at_end: str,
) -> str:
    met, missed = target_summary(rows)
    lines = [
        "# Benchmarks",
        "",
        "otel-host-agent measured against Prometheus node_exporter and the OpenTelemetry "
        "Python system-metrics instrumentation, each in its own process, side by side in one "
        "run on one machine. This page is written by the benchmark; do not edit it by hand. "
        "Its last section is copied from bench/analysis.md, which is edited by hand.",
        "",
        "Run it with `make bench`, or `.venv/bin/python -m bench` from the repository root "
        "after `scripts/install-test-tools`. `python -m bench --quick` is a short run that "
        "writes no page. The machine is shared with other work, so compare the ratios, which "
        "come from processes that ran at the same time, more than the absolute times.",
        "",
        "## Run",
        "",
        f"- Command: `{command}`",
        f"- Started {started}, took {seconds / 60:.1f} minutes; load average at the end "
        f"(1 min, 5 min): {load_at_end}.",
        "",
        "### Machine",
        "",
        *_table(machine),
        "",
        "### Versions",
        "",
        *_table(versions),
        "",
        "## Figures",
        "",
        render_markdown(rows),
        "",
        "## Targets",
        "",
        f"Met ({len(met)}): "
        + ("; ".join(f"{row.measure} ({row.target})" for row in met) or "none")
        + ".",
        "",
        f"Missed or failed ({len(missed)}): "
        + ("; ".join(f"{row.measure} ({row.target})" for row in missed) or "none")
        + ".",
        "",
        *_method(results),
        "## Published image sizes of the peers",
        "",
        "| Image | Size | Source |",
        "|---|---|---|",
        *(f"| {image} | {size} | {source} |" for image, size, source in PUBLISHED_IMAGE_SIZES),
        "",
        *_notes(results),
        "",
        *_analysis(),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _analysis() -> list[str]:
    """Return the hand-written section on the misses, from bench/analysis.md."""
    path = Path(__file__).with_name("analysis.md")
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
