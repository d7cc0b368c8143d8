"""The benchmark suite's verdicts: a target is met when it held in every run, with
every statistic it is judged by (the figures themselves are never asserted here)."""

from __future__ import annotations

from benchmarks.__main__ import table, verdict
from benchmarks.common import Row


def ratio(per_round: float, of_medians: float) -> Row:
    return Row(
        "2. Overhead vs bare Gradio (ratio)",
        {"per-round median": per_round, "ratio of medians": of_medians},
        digits=3,
        limit=1.05,
    )


def test_a_target_is_met_only_when_both_statistics_meet_it():
    assert ratio(1.031, 1.049).met is True
    # One statistic under the line and the other over it: not met.
    assert ratio(1.031, 1.051).met is False
    assert ratio(1.051, 1.031).met is False


def test_met_means_every_run_borderline_means_some_and_no_means_none():
    assert verdict([ratio(1.03, 1.04)] * 3) == "met"
    assert verdict([ratio(1.03, 1.04), ratio(1.03, 1.06), ratio(1.02, 1.03)]) == "borderline"
    assert verdict([ratio(1.031, 1.051)] * 3) == "**no**"
    assert verdict([Row("demo", {"": 66.0}, unit=" ms")]) == "-"  # a figure without target


def test_the_table_shows_each_statistics_median_and_range_over_the_runs():
    runs = [ratio(1.031, 1.051), ratio(1.020, 1.040), ratio(1.025, 1.047)]
    [header, _, line] = table({runs[0].benchmark: runs}, len(runs)).splitlines()
    assert "median (range) of 3 runs" in header
    assert "per-round median: 1.025 (1.020–1.031)" in line
    assert "ratio of medians: 1.047 (1.040–1.051)" in line
    assert line.endswith("| ≤ 1.05 | borderline |")
