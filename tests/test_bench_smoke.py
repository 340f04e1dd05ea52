"""Smoke test of the benchmark: `python -m bench --quick` prints a figure in every row.

The quick run starts the agent, node_exporter and the Python peer for real,
with few repetitions and cycles; the full run (`make bench`) takes minutes
and is not part of the suite.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICK_RUN_TIMEOUT_S = 240

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus-node-exporter") is None,
        reason="prometheus-node-exporter is not installed: run scripts/install-test-tools",
    ),
]

NUMBER = re.compile(r"^[+-]?[\d,]+(\.\d+)?")

# (measure prefix, columns that must hold a number). Columns are the table's
# headers; rows of the container variants may say "skipped" when no image exists.
EXPECTED = [
    ("CPU per cycle, ms", ("Agent", "node_exporter", "Python peer")),
    ("Data points per cycle", ("Agent", "node_exporter", "Python peer")),
    ("CPU per data point", ("Agent", "node_exporter", "Python peer")),
    ("CPU per cycle at a 2 s interval", ("Agent", "node_exporter", "Python peer")),
    ("CPU per cycle: in gRPC's own threads", ("Agent", "Python peer")),
    ("CPU per cycle at a 2 s interval: in gRPC's own threads", ("Agent", "Python peer")),
    ("Metric names (families) exported", ("Agent", "node_exporter", "Python peer")),
    ("RSS after", ("Agent", "node_exporter", "Python peer")),
    ("RSS growth", ("Agent", "node_exporter", "Python peer")),
    ("Start → first response, process", ("Agent", "node_exporter")),
    ("healthcheck wall time, python -m otel_collector", ("Agent",)),
    ("healthcheck peak RSS, python -m otel_collector", ("Agent",)),
    ("processes scraper at", ("Agent",)),
    ("filesystem scraper with 0 extra", ("Agent",)),
    ("filesystem scraper with 50 extra", ("Agent",)),
    ("Bytes sent per cycle, no compression", ("Agent", "node_exporter", "Python peer")),
    ("Bytes sent per cycle, gzip", ("Agent", "node_exporter", "Python peer")),
]
NUMBER_OR_SKIPPED = [
    "Start → SERVING, container",
    "healthcheck wall time, bundled executable",
    "Image size, uncompressed",
]


def parse_table(stdout: str) -> tuple[list[str], list[dict[str, str]]]:
    """Return the headers and the rows of the printed table, each row keyed by header."""
    lines = [line for line in stdout.splitlines() if " | " in line]
    headers = [cell.strip() for cell in lines[0].split(" | ")]
    rows = []
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.split(" | ")]
        rows.append(dict(zip(headers, cells + [""] * (len(headers) - len(cells)), strict=True)))
    return headers, rows


def find_row(rows: list[dict[str, str]], prefix: str) -> dict[str, str]:
    matches = [row for row in rows if row["Measure"].startswith(prefix)]
    assert matches, f"no row starts with {prefix!r}; measures: {[r['Measure'] for r in rows]}"
    return matches[0]


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    out = tmp_path_factory.mktemp("bench")
    page, raw = out / "benchmarks.md", out / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(page), "--json", str(raw)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=QUICK_RUN_TIMEOUT_S,
        check=False,
    )
    return result, page, raw


def test_quick_run_succeeds(quick_run: tuple[subprocess.CompletedProcess[str], Path, Path]) -> None:
    result, _, _ = quick_run
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"


def test_table_has_every_figure(
    quick_run: tuple[subprocess.CompletedProcess[str], Path, Path],
) -> None:
    result, _, _ = quick_run
    headers, rows = parse_table(result.stdout)
    assert headers[:2] == ["Fig.", "Measure"]
    figures = {row["Fig."] for row in rows}
    assert figures >= {"1", "2", "3", "4", "5", "6", "7"}, result.stdout


@pytest.mark.parametrize(("prefix", "columns"), EXPECTED, ids=[prefix for prefix, _ in EXPECTED])
def test_row_has_numbers(
    quick_run: tuple[subprocess.CompletedProcess[str], Path, Path],
    prefix: str,
    columns: tuple[str, ...],
) -> None:
    _, rows = parse_table(quick_run[0].stdout)
    row = find_row(rows, prefix)
    for column in columns:
        assert NUMBER.match(row[column]), f"{prefix}: {column} is {row[column]!r}"
    assert not row["Result"].startswith("failed"), row["Result"]


@pytest.mark.parametrize("prefix", NUMBER_OR_SKIPPED)
def test_container_row_has_number_or_reason(
    quick_run: tuple[subprocess.CompletedProcess[str], Path, Path], prefix: str
) -> None:
    _, rows = parse_table(quick_run[0].stdout)
    row = find_row(rows, prefix)
    if row["Agent"] == "skipped":
        assert row["Result"].startswith("skipped: "), row
    else:
        assert NUMBER.match(row["Agent"]), row


def test_page_and_raw_results_written(
    quick_run: tuple[subprocess.CompletedProcess[str], Path, Path],
) -> None:
    _, page, raw = quick_run
    text = page.read_text(encoding="utf-8")
    assert "python -m bench --quick" in text
    assert "### Machine" in text
    assert "### Versions" in text
    assert "| Fig. | Measure |" in text
    payload = json.loads(raw.read_text(encoding="utf-8"))
    assert payload["results"]["plan"]["quick"] is True
    assert payload["versions"]["node_exporter"].startswith("node_exporter")


def test_grpc_threads_part_of_process_cpu(
    quick_run: tuple[subprocess.CompletedProcess[str], Path, Path],
) -> None:
    """gRPC's threads use some CPU in the push peers, none in node_exporter, never above the total."""
    _, _, raw = quick_run
    repetitions = json.loads(raw.read_text(encoding="utf-8"))["results"]["plain"]
    assert repetitions
    for windows in repetitions:
        for column in ("agent", "python"):
            window = windows[column]
            assert 0 < window["grpc_cpu_per_cycle_s"] < window["cpu_per_cycle_s"], column
        assert windows["node_exporter"]["grpc_cpu_per_cycle_s"] == 0


def test_growth_by_half_row(
    quick_run: tuple[subprocess.CompletedProcess[str], Path, Path],
) -> None:
    """Each column of the row shows two signed figures in KiB, from a middle window."""
    result, _, raw = quick_run
    _, rows = parse_table(result.stdout)
    row = find_row(rows, "RSS growth in each half")
    for column in ("Agent", "node_exporter", "Python peer"):
        assert re.fullmatch(r"[+-]\d+ / [+-]\d+", row[column]), f"{column}: {row[column]!r}"
    repetitions = json.loads(raw.read_text(encoding="utf-8"))["results"]["memory"]
    assert repetitions
    for traces in repetitions:
        for column, trace in traces.items():
            assert trace["rss_at_middle"] > 0, column
