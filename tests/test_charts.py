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
