"""Plotly figures for the pages, built from plain rows or pandas frames (no Streamlit here).

Each builder takes the rows as they are read from a dataset's JSONL files (lists of dicts) and
returns a ``plotly.graph_objects.Figure``. Empty input gives a figure that says "no data yet"
instead of an empty axis, so a page can draw a chart before the first rows exist.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import pandas as pd
import plotly.graph_objects as go

NO_DATA = "no data yet"
KEPT_COLOR, DROPPED_COLOR = "#2a9d8f", "#e76f51"
# Confidence lives in [0.5, 1]: 0.5 is a coin toss, 1 is certain. 25 bins of 0.02 each.
CONFIDENCE_BIN = 0.02
ALL_PAIRS = "all pairs"


def empty_figure(title: str, message: str = NO_DATA) -> go.Figure:
    """A figure with only a title and a centred note (axes hidden)."""
    figure = go.Figure()
    figure.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                          font={"size": 16})
    figure.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False}, height=320)
    return figure


def judge_confidence_histogram(judgements: Iterable[Mapping]) -> go.Figure:
    """How sure the judge was of each pair, kept pairs and dropped ones stacked."""
    title = "Judge confidence"
    frame = pd.DataFrame([{"confidence": float(j["confidence"]), "kept": bool(j.get("kept", True))}
                          for j in judgements if j.get("confidence") is not None])
    if frame.empty:
        return empty_figure(title)
    figure = go.Figure()
    bins = {"start": 0.5, "end": 1.0 + CONFIDENCE_BIN, "size": CONFIDENCE_BIN}
    for kept, name, color in ((True, "kept", KEPT_COLOR), (False, "dropped (below the threshold)", DROPPED_COLOR)):
        values = frame.loc[frame["kept"] == kept, "confidence"]
        if len(values):
            figure.add_trace(go.Histogram(x=values.tolist(), name=name, xbins=bins, marker_color=color,
                                          autobinx=False))
    figure.update_layout(title=title, barmode="stack", height=320, bargap=0.05,
                         xaxis_title="P(preferred answer is better)", yaxis_title="pairs", legend_title_text="")
    figure.update_xaxes(range=[0.5, 1.0])
    return figure


def order_disagreement(judgements: Iterable[Mapping]) -> pd.DataFrame:
    """Per principle (and over all pairs, first): pairs judged, pairs whose two orders disagree, share.

    The two orders disagree when showing the first answer as A and then as B makes the judge
    prefer different answers: it followed the position, not the content.
    """
    judged: Counter = Counter()
    disagree: Counter = Counter()
    for row in judgements:
        judge = row.get("judge") or {}
        judged[ALL_PAIRS] += 1
        disagree[ALL_PAIRS] += bool(judge.get("orders_disagree"))
        for verdict in judge.get("per_principle") or []:
            name = verdict.get("principle", "?")
            first, second = verdict.get("p_first_when_shown_first", 0.5), verdict.get("p_first_when_shown_second", 0.5)
            judged[name] += 1
            disagree[name] += (first - 0.5) * (second - 0.5) < 0
    names = [ALL_PAIRS] + sorted(name for name in judged if name != ALL_PAIRS) if judged else []
    return pd.DataFrame({"principle": names, "judged": [judged[n] for n in names],
                         "disagree": [disagree[n] for n in names],
                         "share": [disagree[n] / judged[n] for n in names]})


def order_disagreement_chart(judgements: Iterable[Mapping]) -> go.Figure:
    """Share of pairs where the two orders preferred different answers, overall and per principle."""
    title = "How often the two orders disagree"
    frame = order_disagreement(judgements)
    if frame.empty:
        return empty_figure(title)
    colors = ["#264653" if name == ALL_PAIRS else "#8ab17d" for name in frame["principle"]]
    figure = go.Figure(go.Bar(
        x=frame["principle"].tolist(), y=frame["share"].tolist(), marker_color=colors,
        text=[f"{d} of {n}" for d, n in zip(frame["disagree"], frame["judged"])], textposition="outside",
        customdata=frame[["disagree", "judged"]].to_numpy(),
        hovertemplate="%{x}: %{customdata[0]} of %{customdata[1]} pairs (%{y:.0%})<extra></extra>"))
    figure.update_layout(title=title, height=360, xaxis_title="principle", yaxis_title="share of pairs")
    figure.update_yaxes(range=[0, 1.1], tickformat=".0%")
    return figure


def _count_by(rows_by_file: Mapping[str, Iterable[Mapping]], field: str) -> pd.DataFrame:
    """Long frame (file, value, rows): how many rows of each file carry each value of ``field``.

    A list field (``principles``) counts a row once for each distinct name in it; rows without
    the field are left out.
    """
    records = []
    for file_name, rows in rows_by_file.items():
        counts: Counter = Counter()
        for row in rows:
            value = row.get(field)
            if value is None:
                continue
            values = set(value) if isinstance(value, (list, tuple)) else {value}
            counts.update(str(v) for v in values)
        records += [{"file": file_name, field: value, "rows": n} for value, n in sorted(counts.items())]
    return pd.DataFrame(records, columns=["file", field, "rows"])


def _grouped_bars(frame: pd.DataFrame, field: str, title: str, axis_title: str) -> go.Figure:
    if frame.empty:
        return empty_figure(title)
    figure = go.Figure()
    for file_name, group in frame.groupby("file", sort=False):
        figure.add_trace(go.Bar(x=group[field].tolist(), y=group["rows"].tolist(), name=str(file_name)))
    figure.update_layout(title=title, barmode="group", height=360, xaxis_title=axis_title, yaxis_title="rows",
                         legend_title_text="file")
    figure.update_xaxes(categoryorder="category ascending")
    return figure


def rows_per_principle_chart(rows_by_file: Mapping[str, Iterable[Mapping]]) -> go.Figure:
    """Rows per principle, one bar group per principle and one colour per file."""
    return _grouped_bars(_count_by(rows_by_file, "principles"), "principles", "Rows per principle", "principle")


def rows_per_category_chart(rows_by_file: Mapping[str, Iterable[Mapping]]) -> go.Figure:
    """Rows per prompt category, one colour per file."""
    return _grouped_bars(_count_by(rows_by_file, "category"), "category", "Rows per category", "category")


# ---------------------------------------------------------------- training curves
#
# These take the rows of a run's metrics.jsonl (one dict per logged step, see
# cai_core.training.read_metrics): ``step`` plus whatever the trainer logged at that step.

NO_POINTS = "no points yet"
LOSS_COLOR, LR_COLOR = "#264653", "#e9c46a"
CHOSEN_COLOR, REJECTED_COLOR, MARGIN_COLOR = "#2a9d8f", "#e76f51", "#264653"


def metric_series(rows: Iterable[Mapping], metric: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one logged metric, in step order; rows without a number for it are skipped.

    A step logged twice (a resume that ran it again) keeps its last value.
    """
    points: dict[float, float] = {}
    for row in rows:
        step, value = row.get("step"), row.get(metric)
        if _is_number(step) and _is_number(value):
            points[float(step)] = float(value)
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _line(steps: list[float], values: list[float], name: str, color: str | None = None, **extra) -> go.Scatter:
    # Markers as well as lines: a run's first chart has one or two points, and a line of one point is invisible.
    return go.Scatter(x=steps, y=values, name=name, mode="lines+markers", marker={"size": 4},
                      line={"color": color} if color else None,
                      hovertemplate="%{y:.4g}", **extra)


def _pair_chart(rows: list[Mapping], title: str, first: tuple[str, str, str], second: tuple[str, str, str],
                left_axis: dict, right_axis: dict | None = None) -> go.Figure:
    """Two logged metrics against the step, each (key, name, colour); the second on its own right-hand
    axis when ``right_axis`` is given. An empty figure until either has a point."""
    series = [(metric_series(rows, key), name, color) for key, name, color in (first, second)]
    if not any(values for (_, values), _, _ in series):
        return empty_figure(title, NO_POINTS)
    figure = go.Figure()
    for index, ((steps, values), name, color) in enumerate(series):
        if values:
            on_right = {"yaxis": "y2"} if index == 1 and right_axis is not None else {}
            figure.add_trace(_line(steps, values, name, color, **on_right))
    layout = {"title": title, "height": 360, "xaxis_title": "step", "yaxis": left_axis,
              "legend": {"orientation": "h", "y": -0.25}, "hovermode": "x unified"}
    if right_axis is not None:
        layout["yaxis2"] = {"overlaying": "y", "side": "right", "showgrid": False, **right_axis}
    figure.update_layout(**layout)
    return figure


def loss_and_lr_chart(rows: Iterable[Mapping], title: str = "Loss and learning rate") -> go.Figure:
    """Training loss on the left axis and the learning rate (its schedule) on the right one."""
    return _pair_chart(list(rows), title, ("loss", "loss", LOSS_COLOR), ("learning_rate", "learning rate", LR_COLOR),
                       {"title": {"text": "loss"}},
                       {"title": {"text": "learning rate"}, "tickformat": ".1e", "rangemode": "tozero"})


def training_curves(rows: Iterable[Mapping], metrics: Mapping[str, str], title: str = "Training curves") -> go.Figure:
    """One panel per metric (key: display name), stacked, sharing the step axis.

    Metrics with no logged point are left out, so the same call serves SFT and DPO runs.
    """
    from plotly.subplots import make_subplots

    rows = list(rows)
    series = {label: metric_series(rows, key) for key, label in metrics.items()}
    series = {label: points for label, points in series.items() if points[1]}
    if not series:
        return empty_figure(title, NO_POINTS)
    # A lone panel needs no title of its own beside the figure's.
    figure = make_subplots(rows=len(series), cols=1, shared_xaxes=True,
                           subplot_titles=list(series) if len(series) > 1 else None,
                           vertical_spacing=min(0.12, 0.3 / len(series)))
    for index, (label, (steps, values)) in enumerate(series.items(), start=1):
        figure.add_trace(_line(steps, values, label), row=index, col=1)
    figure.update_layout(title=title, height=140 + 200 * len(series), showlegend=False)
    figure.update_xaxes(title_text="step", row=len(series), col=1)
    return figure


def dpo_reward_charts(rows: Iterable[Mapping]) -> list[go.Figure]:
    """The DPO rewards: [reward margin with reward accuracy, chosen and rejected rewards].

    The margin is chosen minus rejected reward (beta times the log-ratio to the reference model);
    the accuracy is the share of pairs in the step whose chosen answer scored higher.
    """
    rows = list(rows)
    margin = _pair_chart(rows, "Reward margin and accuracy", ("rewards/margins", "reward margin", MARGIN_COLOR),
                         ("rewards/accuracies", "reward accuracy", CHOSEN_COLOR),
                         {"title": {"text": "chosen − rejected reward"}, "zeroline": True},
                         {"title": {"text": "reward accuracy"}, "range": [-0.02, 1.02], "tickformat": ".0%", "dtick": 0.25})
    rewards = _pair_chart(rows, "Chosen and rejected rewards", ("rewards/chosen", "chosen reward", CHOSEN_COLOR),
                          ("rewards/rejected", "rejected reward", REJECTED_COLOR),
                          {"title": {"text": "reward"}, "zeroline": True})
    return [margin, rewards]


def overlaid_runs_chart(runs: Mapping[str, Iterable[Mapping]], metric: str, label: str | None = None) -> go.Figure:
    """One metric of several runs on one axis, a line per run (runs with no point for it are left out)."""
    label = label or metric
    title = f"{label[:1].upper()}{label[1:]} by run"
    figure = go.Figure()
    for name, rows in runs.items():
        steps, values = metric_series(rows, metric)
        if values:
            figure.add_trace(_line(steps, values, str(name)))
    if not figure.data:
        return empty_figure(title, NO_POINTS)
    figure.update_layout(title=title, height=400, xaxis_title="step", yaxis_title=label, legend_title_text="run",
                         hovermode="x unified")
    return figure
