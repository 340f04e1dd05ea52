"""Entry point: ``python -m bench [--quick] [--image REF] [--output PATH] [--json PATH]``.

Runs every figure in turn, prints the table, and in a full run writes
docs/benchmarks.md and the raw results as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from bench import container, environment, families, runs, scaling, startup
from bench.document import counted, render_page
from bench.peers import NODE_EXPORTER, PeerFailedError
from bench.report import build_rows, render_text, target_summary
from bench.results import Plan, Results
from bench.wire import ROOT

DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
RESULTS_DIR = ROOT / "bench" / "results"


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure otel-host-agent against node_exporter and the Python "
        "system-metrics instrumentation on this machine, and print the table of figures.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few repetitions and cycles (under a minute); writes no page unless --output is given",
    )
    parser.add_argument(
        "--image",
        default=container.DEFAULT_IMAGE,
        help="agent image for the container figures (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"Markdown page to write (default: {DEFAULT_OUTPUT.relative_to(ROOT)} "
        "in a full run, none with --quick)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="file for the raw results (default: bench/results/TIME.json in a "
        "full run, none with --quick)",
    )
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Leave through SystemExit so that every finally block stops its processes.
    raise SystemExit(128 + signum)


def _attempt(results: Results, figure: str, step: Callable[[], None]) -> None:
    """Run one figure's step; record a failure of a peer or a tool and go on with the next."""
    started = time.monotonic()
    try:
        step()
    except (PeerFailedError, RuntimeError, OSError) as error:
        results.failures[figure] = f"{type(error).__name__}: {error}"
        _progress(f"figure {figure} failed: {error}")
    _progress(f"figure {figure} took {time.monotonic() - started:.0f} s")


def _run_cycles(results: Results, log_dir: Path) -> None:
    plan = results.plan
    for index in range(plan.repetitions):
        _progress(f"figure 1: repetition {index + 1} of {plan.repetitions}")
        windows, peers = runs.run_cycles(
            log_dir,
            interval_ms=plan.interval_ms,
            warmup=plan.warmup,
            cycles=plan.cycles,
            gzip=False,
            image=results.image.reference if results.image is not None else None,
        )
        results.plain.append(windows)
        scrape_text = getattr(peers[runs.NODE_EXPORTER], "first_text", "")
        (
            results.unmatched_collectors,
            results.empty_collectors,
            results.resource_collectors,
        ) = families.unmatched_collectors(
            scrape_text, windows[runs.AGENT].resource_keys, windows[runs.AGENT].clock_skew_s
        )
    for index in range(plan.gzip_repetitions):
        _progress(f"figure 7: gzip repetition {index + 1} of {plan.gzip_repetitions}")
        windows, _ = runs.run_cycles(
            log_dir,
            interval_ms=plan.interval_ms,
            warmup=plan.warmup,
            cycles=plan.gzip_cycles,
            gzip=True,
            matched=False,
        )
        results.gzip.append(windows)


def _run_default_interval(results: Results, log_dir: Path) -> None:
    plan = results.plan
    _progress(
        f"figure 1: {counted(plan.default_interval_cycles, 'cycle')} at the default interval, "
        f"{plan.default_interval_ms} ms"
    )
    warmup = 1
    _, peers = runs.run_cycles(
        log_dir,
        interval_ms=plan.default_interval_ms,
        warmup=warmup,
        cycles=plan.default_interval_cycles,
        gzip=False,
        matched=False,
    )
    # One window per measured cycle, so that the figures are medians over cycles.
    first = warmup + 1
    results.default_interval = runs.single_cycle_windows(
        peers, first=first, last=first + plan.default_interval_cycles
    )


def _run_memory(results: Results, log_dir: Path) -> None:
    plan = results.plan
    for index in range(plan.memory_repetitions):
        _progress(
            f"figure 2: {plan.memory_last} cycles of {plan.memory_interval_ms} ms, "
            f"repetition {index + 1} of {plan.memory_repetitions}"
        )
        results.memory.append(
            runs.run_memory(
                log_dir,
                interval_ms=plan.memory_interval_ms,
                first=plan.memory_first,
                last=plan.memory_last,
                span=plan.memory_span,
                image=results.image.reference if results.image is not None else None,
            )
        )


def _run_start(results: Results, log_dir: Path) -> None:
    plan = results.plan
    _progress("figure 3: start to SERVING")
    results.agent_start_s = startup.agent_start_times(log_dir, plan.start_repetitions)
    results.node_exporter_start_s = startup.node_exporter_start_times(
        log_dir, plan.start_repetitions
    )
    if results.image is None:
        results.container_note = results.image_note
        return
    results.container_start_s = startup.container_start_times(
        results.image.reference, plan.container_start_repetitions
    )


def _run_probes(results: Results, log_dir: Path) -> None:
    _progress("figure 4: healthcheck probes")
    image = results.image.reference if results.image is not None else None
    results.probes = startup.ProbeResults([], [], [], {})
    startup.healthcheck_runs(
        results.probes, log_dir, results.plan.probe_count, image, results.image_note
    )


def _process_variants(results: Results) -> list[scaling.Variant]:
    plan = results.plan
    common = {"warmup": plan.scale_warmup, "cycles": plan.scale_cycles}
    variants = [
        scaling.Variant(
            "processes scraper",
            {"HOST_AGENT_SCRAPERS": "processes"},
            plan.process_levels,
            plan.scale_interval_ms,
            **common,
        ),
    ]
    if results.per_process_available:
        variants.append(
            scaling.Variant(
                "process scraper (top 50, the default)",
                {"HOST_AGENT_SCRAPERS": "process"},
                plan.per_process_levels,
                plan.per_process_interval_ms,
                **common,
            )
        )
        if plan.every_process_levels:
            variants.append(
                scaling.Variant(
                    "process scraper with top 0 (every process)",
                    {"HOST_AGENT_SCRAPERS": "process", "HOST_AGENT_PROCESS_TOP": "0"},
                    plan.every_process_levels,
                    plan.every_process_interval_ms,
                    warmup=plan.every_process_warmup,
                    cycles=plan.every_process_cycles,
                )
            )
    return variants


def _run_scaling(results: Results, log_dir: Path) -> None:
    variants = _process_variants(results)
    _progress("figure 6: " + "; ".join(f"{v.label} at {v.levels}" for v in variants))
    results.processes = scaling.process_scaling(log_dir, variants)


def _run_filesystems(results: Results, log_dir: Path) -> None:
    plan = results.plan
    _progress(f"figure 6: tmpfs mounts {plan.mount_levels}")
    results.filesystems, results.filesystems_note = scaling.filesystem_scaling(
        log_dir,
        levels=plan.mount_levels,
        interval_ms=plan.scale_interval_ms,
        warmup=plan.scale_warmup,
        cycles=plan.scale_cycles,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _prepare(results: Results) -> None:
    from otel_collector import config

    results.per_process_available = "process" in config.SCRAPERS
    executable = shutil.which(NODE_EXPORTER)
    if executable is not None:
        results.node_exporter_binary_bytes = os.path.getsize(executable)
    results.image, results.image_note = container.inspect_image(results.plan.image)


def _warm_bytecode(cache_dir: Path) -> None:
    """Give every Python process of the run a bytecode cache, and fill it once.

    An installed package has its .pyc files. Without them (a virtualenv made
    without bytecode, or PYTHONDONTWRITEBYTECODE set), every start of the
    agent or the Python peer compiles each module it imports, and compiling
    took more than half of the agent's start in a profile on this machine.
    The cache lives in the run's temporary folder (PYTHONPYCACHEPREFIX), so
    the virtualenv is left as it is.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    modules = (
        "otel_collector.agent, otel_collector.probe, otel_collector.cli, bench.python_peer, "
        "opentelemetry.instrumentation.system_metrics"
    )
    subprocess.run([sys.executable, "-c", f"import {modules}"], cwd=ROOT, check=True)
    subprocess.run(
        [sys.executable, "-m", "otel_collector", "config"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    plan = Plan.quick_plan(args.image) if args.quick else Plan(quick=False, image=args.image)
    output = args.output if args.output is not None or args.quick else DEFAULT_OUTPUT
    stamp = datetime.datetime.now(datetime.UTC)
    json_path = args.json
    if json_path is None and not args.quick:
        json_path = RESULTS_DIR / f"{stamp:%Y%m%dT%H%M%SZ}.json"
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    results = Results(plan)
    started = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="otel-host-agent-bench-"))
    machine, versions = environment.machine(), environment.versions()
    _prepare(results)
    _warm_bytecode(log_dir / "pycache")

    _attempt(results, "1", lambda: _run_cycles(results, log_dir))
    _attempt(results, "1 (default interval)", lambda: _run_default_interval(results, log_dir))
    _attempt(results, "2", lambda: _run_memory(results, log_dir))
    _attempt(results, "3", lambda: _run_start(results, log_dir))
    _attempt(results, "4", lambda: _run_probes(results, log_dir))
    _attempt(results, "6 (processes)", lambda: _run_scaling(results, log_dir))
    _attempt(results, "6 (file systems)", lambda: _run_filesystems(results, log_dir))
    seconds = time.monotonic() - started

    rows = build_rows(results)
    print(render_text(rows))
    met, missed = target_summary(rows)
    print(
        f"\nTargets met: {len(met)}; missed or failed: {len(missed)}. "
        f"Took {seconds / 60:.1f} minutes."
    )

    if output is not None:
        page = render_page(
            results,
            rows,
            command=command,
            started=f"{stamp:%Y-%m-%d %H:%M} UTC",
            seconds=seconds,
            machine=machine,
            versions=versions,
            load_at_end="{:.2f}, {:.2f}".format(*os.getloadavg()[:2]),
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(page, encoding="utf-8")
        _progress(f"wrote {output}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "command": command,
            "machine": machine,
            "versions": versions,
            "results": dataclasses.asdict(results),
        }
        json_path.write_text(json.dumps(payload, indent=1, default=_json_default), encoding="utf-8")
        _progress(f"wrote {json_path}")

    if results.failures:
        _progress(f"logs of the failed runs are in {log_dir}")
        return 1
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
