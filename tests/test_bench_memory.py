"""The benchmark's reading of resident memory over a long run of cycles."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.peers import Cycle
from bench.runs import memory_trace, middle_cycle

FIRST, LAST, SPAN = 100, 1000, 10


def cycles(rss: Callable[[int], int]) -> list[Cycle]:
    """Return cycles 1..LAST whose VmRSS is rss(number)."""
    return [
        Cycle(
            number=number,
            at=number / 10,
            cpu_seconds=0.0,
            grpc_cpu_seconds=0.0,
            rss_bytes=rss(number),
            hwm_bytes=rss(number),
            anonymous_bytes=rss(number),
            data_points=1,
            serialized_bytes=1,
            wire_bytes_total=0,
            gzip_bytes=None,
        )
        for number in range(1, LAST + 1)
    ]


@pytest.mark.parametrize(("first", "last", "span"), [(100, 1000, 10), (10, 30, 5), (1, 20, 1)])
def test_middle_cycle_halfway(
    first: int, last: int, span: int
) -> None:
    middle = middle_cycle(first, last, span)
    last_window_start = last - span + 1
    assert first < middle < last_window_start
    assert abs((middle - first) - (last_window_start - middle)) <= 1


def test_growth_by_half_leak() -> None:
    trace = memory_trace(cycles(lambda number: 40_000_000 + 100 * number), FIRST, LAST, SPAN)
    first_half, second_half = trace.growth_by_half
    assert first_half == pytest.approx(44_500, abs=100)
    assert second_half == pytest.approx(first_half, abs=100)
    assert first_half + second_half == trace.growth


def test_growth_by_half_warm_up() -> None:
    # RSS rises by 64 KiB up to cycle 300, then stays.
    trace = memory_trace(
        cycles(lambda number: 40_000_000 + 64 * 1024 * min(number, 300) // 300), FIRST, LAST, SPAN
    )
    first_half, second_half = trace.growth_by_half
    assert first_half > 40 * 1024
    assert second_half == 0
    assert trace.growth == first_half
