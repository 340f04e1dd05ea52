"""The Method section of the benchmark's page, as written for a plan."""

from __future__ import annotations

from bench.document import _method
from bench.results import Plan, Results


def figure_six(plan: Plan) -> str:
    return next(line for line in _method(Results(plan=plan)) if line.startswith("- Figure 6"))


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
