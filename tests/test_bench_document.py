"""The Method section of the benchmark's page, as written for a plan."""

from __future__ import annotations

from bench.document import _method, counted
from bench.results import Plan, Results


def figure(plan: Plan, prefix: str) -> str:
    return next(line for line in _method(Results(plan=plan)) if line.startswith(prefix))


def figure_six(plan: Plan) -> str:
    return figure(plan, "- Figure 6")


def test_counted_singular_and_plural() -> None:
    assert counted(1, "warm-up cycle") == "1 warm-up cycle"
    assert counted(0, "cycle") == "0 cycles"
    assert counted(3, "repetition") == "3 repetitions"


def test_method_figure_six_full_plan() -> None:
    plan = Plan(quick=False, image="unused")
    text = figure_six(plan)
    assert f"interval {plan.scale_interval_ms} ms" in text
    assert f"an interval of {plan.per_process_interval_ms} ms" in text
    assert (
        f"with top 0 at {plan.every_process_interval_ms} ms, {plan.every_process_cycles} cycles "
        f"after {plan.every_process_warmup} warm-up" in text
    )


def test_method_figure_six_quick_plan() -> None:
    plan = Plan.quick_plan("unused")
    assert not plan.every_process_levels
    assert "top 0" not in figure_six(plan)


def test_method_counts_agree_with_plan() -> None:
    plan = Plan.quick_plan("unused")
    assert plan.warmup == 1
    assert plan.memory_repetitions == 1
    first = figure(plan, "- Figure 1: ")
    assert f"{plan.cycles} cycles after 1 warm-up cycle." in first
    assert f"{plan.repetitions} repetitions with fresh processes" in first
    assert "each of 1 repetition. RSS" in figure(plan, "- Figure 2")
    assert "(s)" not in "\n".join(_method(Results(plan=plan)))
