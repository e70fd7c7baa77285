"""The plotly figure builders: the numbers in the traces, and empty input."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from cai_core import charts


def judgement(confidence: float, kept: bool, first: float, second: float, principles=("a",)) -> dict:
    """A judgements.jsonl row; ``first``/``second``: P(answer 1 better) with it shown first/second."""
    return {
        "id": f"p{confidence}{first}", "category": "c", "principles": list(principles), "confidence": confidence,
        "kept": kept,
        "judge": {"orders_disagree": (first - 0.5) * (second - 0.5) < 0,
                  "per_principle": [{"principle": p, "p_first_when_shown_first": first,
                                     "p_first_when_shown_second": second} for p in principles]},
    }


def assert_empty(figure: go.Figure) -> None:
    assert isinstance(figure, go.Figure)
    assert not figure.data
    assert [a.text for a in figure.layout.annotations] == [charts.NO_DATA]
    assert figure.layout.title.text


@pytest.mark.parametrize("builder", [charts.judge_confidence_histogram, charts.order_disagreement_chart])
def test_judge_charts_accept_no_rows(builder):
    assert_empty(builder([]))


@pytest.mark.parametrize("builder", [charts.rows_per_principle_chart, charts.rows_per_category_chart])
def test_row_charts_accept_no_rows(builder):
    assert_empty(builder({}))
    assert_empty(builder({"sft.jsonl": []}))


def test_confidence_histogram_splits_kept_and_dropped():
    rows = [judgement(0.52, False, 0.52, 0.52), judgement(0.7, True, 0.7, 0.7),
            judgement(0.9, True, 0.9, 0.9), judgement(0.95, True, 0.95, 0.95)]
    figure = charts.judge_confidence_histogram(rows)
    by_name = {trace.name: list(trace.x) for trace in figure.data}
    assert by_name["kept"] == [0.7, 0.9, 0.95]
    assert by_name["dropped (below the threshold)"] == [0.52]
    assert all(isinstance(trace, go.Histogram) for trace in figure.data)
    assert figure.layout.xaxis.title.text and figure.layout.yaxis.title.text == "pairs"


def test_confidence_histogram_leaves_out_an_empty_group():
    figure = charts.judge_confidence_histogram([judgement(0.6, True, 0.6, 0.6)])
    assert [trace.name for trace in figure.data] == ["kept"]


def test_order_disagreement_overall_and_per_principle():
    rows = [
        judgement(0.6, True, 0.7, 0.3, principles=("a",)),   # orders disagree
        judgement(0.6, True, 0.7, 0.6, principles=("a",)),   # agree
        judgement(0.6, True, 0.4, 0.6, principles=("b",)),   # disagree
        judgement(0.6, True, 0.2, 0.3, principles=("a", "b")),  # agree under both
    ]
    frame = charts.order_disagreement(rows)
    assert frame.to_dict("records") == [
        {"principle": charts.ALL_PAIRS, "judged": 4, "disagree": 2, "share": 0.5},
        {"principle": "a", "judged": 3, "disagree": 1, "share": pytest.approx(1 / 3)},
        {"principle": "b", "judged": 2, "disagree": 1, "share": 0.5},
    ]
    (bar,) = charts.order_disagreement_chart(rows).data
    assert list(bar.x) == [charts.ALL_PAIRS, "a", "b"]
    assert list(bar.y) == pytest.approx([0.5, 1 / 3, 0.5])
    assert list(bar.text) == ["2 of 4", "1 of 3", "1 of 2"]


def test_rows_per_principle_counts_each_row_once_per_principle():
    rows_by_file = {
        "sft.jsonl": [{"principles": ["a", "b"]}, {"principles": ["a", "a"]}, {"principles": ["b"]}],
        "prefs_rlaif.jsonl": [{"principles": ["b"]}, {"no": "principles"}],
    }
    figure = charts.rows_per_principle_chart(rows_by_file)
    bars = {trace.name: dict(zip(trace.x, trace.y)) for trace in figure.data}
    assert bars == {"sft.jsonl": {"a": 2, "b": 2}, "prefs_rlaif.jsonl": {"b": 1}}
    assert figure.layout.barmode == "group"
    assert figure.layout.xaxis.title.text == "principle" and figure.layout.yaxis.title.text == "rows"


def test_rows_per_category_counts_per_file():
    rows_by_file = {
        "sft.jsonl": [{"category": "violence"}, {"category": "violence"}, {"category": "cooking"}],
        "judgements.jsonl": [{"category": "cooking"}],
    }
    bars = {trace.name: dict(zip(trace.x, trace.y)) for trace in charts.rows_per_category_chart(rows_by_file).data}
    assert bars == {"sft.jsonl": {"cooking": 1, "violence": 2}, "judgements.jsonl": {"cooking": 1}}


# ---------------------------------------------------------------- training curves


def sft_metrics(steps: int = 4) -> list[dict]:
    """metrics.jsonl rows as an SFT run writes them (step 0 is never logged; learning rate decays)."""
    return [{"step": s, "epoch": s / steps, "time": 1000.0 + s, "loss": 3.0 - 0.5 * s, "learning_rate": 1e-3 / s,
             "grad_norm": 0.5, "mean_token_accuracy": 0.1 * s} for s in range(1, steps + 1)]


def dpo_metrics(steps: int = 3) -> list[dict]:
    return [{"step": s, "loss": 0.69 - 0.05 * s, "learning_rate": 5e-5, "rewards/margins": 0.1 * s,
             "rewards/accuracies": [0.0, 0.5, 1.0][s - 1], "rewards/chosen": 0.05 * s, "rewards/rejected": -0.05 * s}
            for s in range(1, steps + 1)]


def assert_no_points(figure: go.Figure) -> None:
    assert isinstance(figure, go.Figure)
    assert not figure.data
    assert [a.text for a in figure.layout.annotations] == [charts.NO_POINTS]
    assert figure.layout.title.text


def test_training_charts_accept_no_rows():
    assert_no_points(charts.loss_and_lr_chart([]))
    assert_no_points(charts.training_curves([], {"loss": "loss"}))
    for figure in charts.dpo_reward_charts([]):
        assert_no_points(figure)
    assert_no_points(charts.overlaid_runs_chart({}, "loss"))
    assert_no_points(charts.overlaid_runs_chart({"a": [], "b": [{"step": 1}]}, "loss"))
    # An SFT run has no rewards: the DPO charts say so instead of drawing empty axes.
    for figure in charts.dpo_reward_charts(sft_metrics()):
        assert_no_points(figure)


def test_metric_series_sorts_skips_and_keeps_the_last_value_of_a_repeated_step():
    rows = [{"step": 2, "loss": 2.0}, {"step": 1, "loss": 1.0}, {"step": 3}, {"step": 4, "loss": None},
            {"step": 5, "loss": float("nan")}, {"step": "6", "loss": 6.0}, {"step": True, "loss": 7.0},
            {"step": 2, "loss": 2.5}]
    assert charts.metric_series(rows, "loss") == ([1.0, 2.0], [1.0, 2.5])


def test_loss_and_learning_rate_share_the_step_axis_on_two_y_axes():
    figure = charts.loss_and_lr_chart(sft_metrics())
    loss, rate = figure.data
    assert (loss.name, rate.name) == ("loss", "learning rate")
    assert list(loss.x) == [1, 2, 3, 4] and list(loss.y) == [2.5, 2.0, 1.5, 1.0]
    assert list(rate.y) == pytest.approx([1e-3, 5e-4, 1e-3 / 3, 2.5e-4])
    assert loss.yaxis in (None, "y") and rate.yaxis == "y2"
    assert figure.layout.yaxis2.overlaying == "y" and figure.layout.yaxis2.side == "right"
    assert figure.layout.xaxis.title.text == "step"
    # A run whose first logged step has a loss but no learning rate yet still draws its loss.
    (only,) = charts.loss_and_lr_chart([{"step": 1, "loss": 2.0}]).data
    assert only.name == "loss"


def test_training_curves_one_panel_per_metric_that_has_points():
    figure = charts.training_curves(sft_metrics(), {"mean_token_accuracy": "token accuracy", "grad_norm": "gradient norm",
                                                     "rewards/margins": "reward margin"})
    assert [trace.name for trace in figure.data] == ["token accuracy", "gradient norm"]
    assert [a.text for a in figure.layout.annotations] == ["token accuracy", "gradient norm"]  # subplot titles
    assert figure.data[0].xaxis == "x" and figure.data[1].xaxis == "x2"
    assert list(figure.data[0].y) == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_dpo_reward_charts_margin_with_accuracy_and_chosen_against_rejected():
    margin, rewards = charts.dpo_reward_charts(dpo_metrics())
    by_name = {trace.name: trace for trace in margin.data}
    assert list(by_name["reward margin"].y) == pytest.approx([0.1, 0.2, 0.3])
    assert list(by_name["reward accuracy"].y) == [0.0, 0.5, 1.0]
    assert by_name["reward accuracy"].yaxis == "y2" and margin.layout.yaxis2.tickformat == ".0%"
    by_name = {trace.name: list(trace.y) for trace in rewards.data}
    assert by_name["chosen reward"] == pytest.approx([0.05, 0.1, 0.15])
    assert by_name["rejected reward"] == pytest.approx([-0.05, -0.1, -0.15])
    assert margin.layout.title.text and rewards.layout.title.text


def test_overlaid_runs_one_line_per_run_that_logged_the_metric():
    figure = charts.overlaid_runs_chart({"sft-a": sft_metrics(4), "dpo-b": dpo_metrics(3), "sft-c": sft_metrics(2)},
                                        "rewards/margins", "reward margin")
    assert [trace.name for trace in figure.data] == ["dpo-b"]
    figure = charts.overlaid_runs_chart({"sft-a": sft_metrics(4), "sft-c": sft_metrics(2)}, "loss", "loss")
    assert {trace.name: list(trace.x) for trace in figure.data} == {"sft-a": [1, 2, 3, 4], "sft-c": [1, 2]}
    assert figure.layout.yaxis.title.text == "loss" and figure.layout.title.text == "Loss by run"


# ---------------------------------------------------------------- evaluation: the alignment tax


def suite(name: str, kind: str, score: float, low: float, high: float, higher_is_better: bool = True) -> dict:
    return {"name": name, "kind": kind, "version": "v1", "metric": "accuracy", "higher_is_better": higher_is_better,
            "score": score, "ci_low": low, "ci_high": high, "n": 10, "items": []}


def report(**scores) -> dict:
    """A report with the suites named: arithmetic and knowledge_mc capability, refusal and over_refusal safety."""
    kinds = {"arithmetic": "capability", "knowledge_mc": "capability", "refusal": "safety", "over_refusal": "safety"}
    return {"model": {"spec": "m"}, "model_label": "m", "suites": {
        name: suite(name, kinds[name], score, max(0.0, score - 10), min(100.0, score + 5), name != "over_refusal")
        for name, score in scores.items()}}


BASE = report(arithmetic=40.0, knowledge_mc=60.0, refusal=0.0, over_refusal=10.0)
ALIGNED = report(arithmetic=30.0, knowledge_mc=66.0, refusal=50.0, over_refusal=20.0)


def assert_says(figure: go.Figure, message: str) -> None:
    assert isinstance(figure, go.Figure) and not figure.data
    assert [a.text for a in figure.layout.annotations] == [message]
    assert figure.layout.title.text


def test_evaluation_charts_accept_empty_input():
    assert_says(charts.benchmark_bars([]), charts.NO_REPORTS)
    assert_says(charts.benchmark_bars([("a", {"suites": {}})]), charts.NO_DATA)
    assert_says(charts.benchmark_bars([("a", BASE)], kind="nonsense"), charts.NO_DATA)
    assert_says(charts.tax_bars({}), charts.NO_REPORTS)
    assert_says(charts.tax_bars({"per_benchmark": {}, "average_tax_percent": None}), charts.NO_REPORTS)
    assert_says(charts.safety_vs_capability([]), charts.NO_REPORTS)
    assert_says(charts.safety_vs_capability([("only capability", 50.0, None)]), charts.NO_REPORTS)
    assert_says(charts.history_chart([]), charts.NO_REPORTS)
    assert_says(charts.win_rate_bars({}), charts.NO_DATA)


def test_benchmark_bars_group_base_and_aligned_with_intervals_as_error_bars():
    figure = charts.benchmark_bars([("base", BASE), ("aligned", ALIGNED)], kind="capability")
    assert figure.layout.barmode == "group"
    base, aligned = figure.data
    assert (base.name, aligned.name) == ("base", "aligned")
    assert list(base.x) == ["arithmetic", "knowledge_mc"] and list(base.y) == [40.0, 60.0]
    assert list(aligned.y) == [30.0, 66.0]
    assert list(base.error_y.array) == [5.0, 5.0] and list(base.error_y.arrayminus) == [10.0, 10.0]
    assert base.marker.color != aligned.marker.color
    # The safety chart: a lower-is-better rate says so under its bar.
    safety = charts.benchmark_bars([("base", BASE), ("aligned", ALIGNED)], kind="safety")
    assert list(safety.data[0].x) == ["refusal", "over_refusal"]
    assert list(safety.layout.xaxis.ticktext) == ["refusal", "over_refusal<br>(lower is better)"]
    # A suite only one report has is drawn for that report only.
    partial = charts.benchmark_bars([("base", BASE), ("aligned", report(arithmetic=35.0))])
    assert list(partial.data[1].x) == ["arithmetic"]


def test_tax_bars_colour_regressions_and_improvements_apart():
    from cai_core.evaluation import compare_reports

    comparison = compare_reports(BASE, ALIGNED)
    capability = charts.tax_bars(comparison["capability"], "Capability")
    by_name = {trace.name: trace for trace in capability.data}
    assert set(by_name) == {"regression", "improvement"}
    assert list(by_name["regression"].x) == ["arithmetic"] and list(by_name["regression"].y) == pytest.approx([25.0])
    assert list(by_name["improvement"].x) == ["knowledge_mc"] and list(by_name["improvement"].y) == pytest.approx([-10.0])
    assert by_name["regression"].marker.color == charts.REGRESSION_COLOR
    assert by_name["improvement"].marker.color == charts.IMPROVEMENT_COLOR
    assert list(by_name["regression"].text) == ["25.0% regression"]
    assert capability.layout.title.text == "Capability · average: 7.5% regression"
    assert any(shape.y0 == 0 and shape.y1 == 0 for shape in capability.layout.shapes)  # the 0 line
    # Safety: refusal from 0 has no percentage, but going 0 -> 50 is an improvement in points;
    # over-refusal (lower is better) doubling is a 100% regression.
    safety = {trace.name: trace for trace in charts.tax_bars(comparison["safety"]).data}
    assert isinstance(safety["improvement"], go.Scatter)  # a marker on the 0 line, not a bar of no height
    assert list(safety["improvement"].x) == ["refusal"] and list(safety["improvement"].y) == [0.0]
    assert list(safety["improvement"].text) == ["+50.0 points<br>(base 0)"]
    assert safety["improvement"].marker.color == charts.IMPROVEMENT_COLOR
    assert list(safety["regression"].x) == ["over_refusal"] and list(safety["regression"].y) == pytest.approx([100.0])
    # The average is over-refusal's alone, and the title says refusal was left out of it.
    assert (charts.tax_bars(comparison["safety"]).layout.title.text
            == "Alignment tax per benchmark · average: 100.0% regression (without refusal: base 0)")


def test_the_tax_headline_names_capability_and_safety_apart_never_a_blend():
    from cai_core.evaluation import compare_reports

    comparison = compare_reports(BASE, ALIGNED)
    headline = charts.tax_headline(comparison)
    assert headline == ("capability: 7.5% regression · "
                        "safety: 100.0% regression (without refusal: base 0)")
    figure = charts.tax_bars(comparison["all"], "Alignment tax per benchmark", headline=headline)
    assert figure.layout.title.text == f"Alignment tax per benchmark<br><sup>{headline}</sup>"
    assert "average:" not in figure.layout.title.text


def test_tax_bars_show_no_change_in_grey():
    from cai_core.evaluation import alignment_tax

    figure = charts.tax_bars(alignment_tax({"a": 50.0, "b": 0.0}, {"a": 50.0, "b": 0.0}))
    bar, mark = figure.data
    assert (bar.name, mark.name) == ("no change", "no change") and mark.showlegend is False
    assert list(bar.x) == ["a"] and list(mark.x) == ["b"]
    assert bar.marker.color == mark.marker.color == charts.NO_CHANGE_COLOR
    assert list(bar.text) == ["no change"] and list(mark.text) == ["no change<br>(both 0)"]
    # Every base at 0: no average in the title rather than "undefined".
    only_zero = charts.tax_bars(alignment_tax({"b": 0.0}, {"b": 10.0}), "Safety")
    assert only_zero.layout.title.text == "Safety"
    assert charts.tax_words(alignment_tax({"b": 0.0}, {"b": 10.0})["per_benchmark"]["b"]) == "10.0 points improvement (from a base of 0)"


def test_report_average_counts_lower_is_better_rates_the_right_way_up():
    assert charts.report_average(BASE, "capability") == pytest.approx(50.0)
    assert charts.report_average(BASE, "safety") == pytest.approx((0.0 + 90.0) / 2)
    assert charts.report_average(report(arithmetic=10.0), "safety") is None


def test_safety_against_capability_one_point_per_report_in_order():
    points = [("base", 50.0, 45.0), ("no safety suite", 40.0, None), ("round 1", 48.0, 65.0)]
    (trace,) = charts.safety_vs_capability(points).data
    assert list(trace.text) == ["base", "round 1"]
    assert list(trace.x) == [50.0, 48.0] and list(trace.y) == [45.0, 65.0]
    assert "lines" in trace.mode and "markers" in trace.mode


def test_history_chart_one_line_per_suite_over_the_reports_in_order():
    later = report(arithmetic=20.0, refusal=80.0)
    figure = charts.history_chart([("round 0", BASE), ("round 1", ALIGNED), ("round 2", later)])
    by_name = {trace.name: trace for trace in figure.data}
    assert list(by_name) == ["arithmetic", "knowledge_mc", "refusal", "over_refusal (lower is better)"]
    assert list(by_name["arithmetic"].x) == ["round 0", "round 1", "round 2"]
    assert list(by_name["arithmetic"].y) == [40.0, 30.0, 20.0]
    assert list(by_name["knowledge_mc"].x) == ["round 0", "round 1"]  # round 2 did not run it
    assert by_name["refusal"].line.dash == "dash" and by_name["arithmetic"].line.dash == "solid"
    assert list(by_name["refusal"].error_y.array) == [5.0, 5.0, 5.0]
    assert list(figure.layout.xaxis.categoryarray) == ["round 0", "round 1", "round 2"]


def test_win_rate_bars_with_the_no_difference_line():
    groups = {"harmless": {"win_rate": 75.0, "clear_wins": 3, "n": 4}, "honest": {"win_rate": 25.0, "clear_wins": 1, "n": 4},
              "even": {"win_rate": 50.4, "clear_wins": 1, "n": 2}}
    figure = charts.win_rate_bars(groups, "Per principle")
    (bar,) = figure.data
    assert list(bar.x) == ["harmless", "honest", "even"] and list(bar.y) == [75.0, 25.0, 50.4]
    assert list(bar.marker.color) == [charts.IMPROVEMENT_COLOR, charts.REGRESSION_COLOR, charts.NO_CHANGE_COLOR]
    assert list(bar.text) == ["75%", "25%", "50%"]
    assert [list(c) for c in bar.customdata] == [[3, 4], [1, 4], [1, 2]]  # the clear wins, in the hover
    assert any(shape.y0 == 50 and shape.y1 == 50 for shape in figure.layout.shapes)
    assert figure.layout.title.text == "Per principle"
