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
