"""Plotly figures for the pages, built from plain rows or pandas frames (no Streamlit here).

Each builder takes the rows as they are read from a dataset's JSONL files (lists of dicts) and
returns a ``plotly.graph_objects.Figure``. Empty input gives a figure that says "no data yet"
instead of an empty axis, so a page can draw a chart before the first rows exist.
"""

from __future__ import annotations

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
