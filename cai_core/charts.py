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


# ---------------------------------------------------------------- evaluation: the alignment tax
#
# These take evaluation reports as ``cai_core.evaluation.read_report`` returns them (``suites``:
# name -> score, interval, kind, higher_is_better) and the comparison of ``compare_reports``.

NO_REPORTS = "no reports to compare yet"
BASE_COLOR, ALIGNED_COLOR = "#8d99ae", "#264653"
REPORT_COLORS = ("#8d99ae", "#264653", "#e9c46a", "#2a9d8f", "#f4a261", "#6d597a", "#e76f51", "#457b9d")
REGRESSION_COLOR, IMPROVEMENT_COLOR, NO_CHANGE_COLOR = "#d62828", "#2a9d8f", "#adb5bd"
LOWER_IS_BETTER = " (lower is better)"
WIN_RATE_BAND = 1.0  # percentage points around 50% drawn grey: no difference


def _report_suites(report: Mapping, kind: str | None = None) -> dict[str, Mapping]:
    suites = report.get("suites") or {}
    return {name: suite for name, suite in suites.items()
            if isinstance(suite, Mapping) and _is_number(suite.get("score"))
            and (kind is None or suite.get("kind") == kind)}


def suite_label(name: str, suite: Mapping | None) -> str:
    """A suite as an axis names it: a rate where lower is better says so, so no bar reads the wrong way."""
    return name + (LOWER_IS_BETTER if suite is not None and suite.get("higher_is_better") is False else "")


def report_average(report: Mapping, kind: str) -> float | None:
    """The mean score of a report's suites of ``kind`` ("capability" or "safety"), with each
    lower-is-better rate counted as 100 - rate, so that up always means better; None without such a suite."""
    values = [float(s["score"]) if s.get("higher_is_better", True) else 100.0 - float(s["score"])
              for s in _report_suites(report, kind).values()]
    return sum(values) / len(values) if values else None


def benchmark_bars(reports: Iterable[tuple[str, Mapping]], kind: str | None = None,
                   title: str = "Score per benchmark") -> go.Figure:
    """Each benchmark's score, one bar per report side by side (base then aligned), the 95%
    bootstrap interval as error bars; only suites of ``kind`` when given."""
    reports = [(str(label), _report_suites(report, kind)) for label, report in reports]
    names: list[str] = []
    for _, suites in reports:
        names += [name for name in suites if name not in names]
    if not names:
        return empty_figure(title, NO_REPORTS if not reports else NO_DATA)
    figure = go.Figure()
    for index, (label, suites) in enumerate(reports):
        present = [name for name in names if name in suites]
        if not present:
            continue
        scores = [float(suites[n]["score"]) for n in present]
        high = [max(0.0, float(suites[n].get("ci_high", s)) - s) for n, s in zip(present, scores)]
        low = [max(0.0, s - float(suites[n].get("ci_low", s))) for n, s in zip(present, scores)]
        figure.add_trace(go.Bar(
            x=present, y=scores, name=label, marker_color=REPORT_COLORS[index % len(REPORT_COLORS)],
            error_y={"type": "data", "array": high, "arrayminus": low, "visible": True, "thickness": 1.2},
            customdata=[[suites[n].get("ci_low", s), suites[n].get("ci_high", s), suites[n].get("n", "?"),
                         suites[n].get("metric", "score")] for n, s in zip(present, scores)],
            hovertemplate=(f"{label}<br>%{{x}}: %{{y:.1f}}% %{{customdata[3]}}<br>95% interval "
                           "%{customdata[0]:.1f}–%{customdata[1]:.1f} · n = %{customdata[2]}<extra></extra>")))
    every = {name: suite for _, suites in reports for name, suite in suites.items()}
    figure.update_layout(title=title, barmode="group", height=400, yaxis_title="score (%)", legend_title_text="",
                         legend={"orientation": "h", "y": -0.2})
    figure.update_xaxes(categoryorder="array", categoryarray=names, tickvals=names,
                        ticktext=[suite_label(n, every.get(n)).replace(" (", "<br>(") for n in names])
    figure.update_yaxes(range=[0, 105])
    return figure


def tax_direction(entry: Mapping) -> str:
    """The entry's direction (``alignment_tax`` decides it, by the change in points where the base is 0)."""
    return str(entry.get("direction", "no change"))


def tax_words(entry: Mapping) -> str:
    """The tax of one benchmark in words, as ``alignment_tax`` says it."""
    return str(entry.get("words", ""))


def tax_headline(comparison: Mapping) -> str:
    """Capability's and safety's average tax, each in words and never blended: one large safety
    gain on a small base would otherwise read as an overall improvement while capability fell."""
    parts = []
    for kind in ("capability", "safety"):
        part = comparison.get(kind) or {}
        if part.get("per_benchmark"):
            parts.append(f"{kind}: {part.get('average_words') or 'no average'}")
    return " · ".join(parts)


def tax_bars(part: Mapping, title: str = "Alignment tax per benchmark", headline: str | None = None) -> go.Figure:
    """The tax of each benchmark in percent of its base score (``alignment_tax`` output): above 0
    a regression (red), below 0 an improvement (green), the average in the title, or ``headline``
    in its place (``tax_headline``: the averages of capability and safety apart). A benchmark
    whose base scored 0 has no percentage: it is a marker on the 0 line, in its direction's colour,
    with its change in points written beside it."""
    per = dict((part or {}).get("per_benchmark") or {})
    if not per:
        return empty_figure(title, NO_REPORTS)
    colors = {"regression": REGRESSION_COLOR, "improvement": IMPROVEMENT_COLOR, "no change": NO_CHANGE_COLOR}
    names = list(per)
    figure = go.Figure()
    for direction, color in colors.items():
        chosen = [n for n in names if tax_direction(per[n]) == direction]
        bars = [n for n in chosen if per[n].get("tax_percent") is not None]
        marks = [n for n in chosen if per[n].get("tax_percent") is None]
        hover = "%{x}: %{text}<br>base %{customdata[0]:.1f} → aligned %{customdata[1]:.1f}<extra></extra>"
        if bars:
            figure.add_trace(go.Bar(
                x=bars, y=[float(per[n]["tax_percent"]) for n in bars], name=direction, marker_color=color,
                text=[tax_words(per[n]) for n in bars], textposition="outside", cliponaxis=False,
                customdata=[[per[n].get("base"), per[n].get("aligned")] for n in bars], hovertemplate=hover))
        if marks:
            figure.add_trace(go.Scatter(
                x=marks, y=[0.0] * len(marks), name=direction, mode="markers+text", showlegend=not bars,
                marker={"color": color, "size": 14, "symbol": "diamond", "line": {"color": "#444", "width": 1}},
                text=[f"{float(per[n].get('change') or 0):+.1f} points<br>(base 0)" if tax_words(per[n]) != "no change"
                      else "no change<br>(both 0)" for n in marks],
                textposition="top center", cliponaxis=False,
                customdata=[[per[n].get("base"), per[n].get("aligned")] for n in marks], hovertemplate=hover))
    average = part.get("average_words") if part.get("average_tax_percent") is not None else None
    # The headline names two averages, too long for one line beside the title.
    suffix = f"<br><sup>{headline}</sup>" if headline else (f" · average: {average}" if average else "")
    figure.update_layout(title=title + suffix, barmode="relative", height=400,
                         yaxis_title="tax (% of the base score; > 0 is worse)", legend_title_text="",
                         legend={"orientation": "h", "y": -0.2})
    figure.add_hline(y=0, line_color="#444", line_width=1)
    # A little room at the sides: a marker's label at the first or last benchmark is wider than a bar.
    figure.update_xaxes(type="category", categoryorder="array", categoryarray=names, tickvals=names,
                        range=[-0.7, len(names) - 0.3],
                        ticktext=[(n + "<br>(lower is better)") if per[n].get("higher_is_better") is False else n
                                  for n in names])
    # Room above and below the bars for their labels, and 0 always in view.
    values = [abs(float(e["tax_percent"])) for e in per.values() if e.get("tax_percent") is not None] or [1.0]
    span = max(10.0, max(values) * 1.3)
    figure.update_yaxes(range=[-span, span], zeroline=True)
    return figure


def safety_vs_capability(points: Iterable[tuple[str, float | None, float | None]],
                         title: str = "Safety against capability") -> go.Figure:
    """One point per model or round: (label, capability average, safety average), joined in the
    given order so the rounds of a loop draw their path. Points missing either average are left out."""
    kept = [(str(label), float(c), float(s)) for label, c, s in points if _is_number(c) and _is_number(s)]
    if not kept:
        return empty_figure(title, NO_REPORTS)
    labels, capability, safety = zip(*kept)
    figure = go.Figure(go.Scatter(
        x=list(capability), y=list(safety), text=list(labels), mode="lines+markers+text", textposition="top center",
        marker={"size": 12, "color": [REPORT_COLORS[i % len(REPORT_COLORS)] for i in range(len(kept))]},
        line={"color": "#bbb", "dash": "dot"}, name="",
        hovertemplate="%{text}<br>capability %{x:.1f} · safety %{y:.1f}<extra></extra>"))
    figure.update_layout(title=title, height=420, showlegend=False,
                         xaxis_title="capability (average score, %)", yaxis_title="safety (average, up is safer, %)")
    figure.update_xaxes(range=[-5, 105])
    figure.update_yaxes(range=[-5, 110])
    return figure


def history_chart(reports: Iterable[tuple[str, Mapping]], title: str = "Scores over rounds") -> go.Figure:
    """Each suite's score over the reports in the given order (x: the report, round after round),
    its interval as error bars; capability suites in solid lines, safety ones dashed."""
    reports = [(str(label), _report_suites(report)) for label, report in reports]
    labels = [label for label, _ in reports]
    names: list[str] = []
    for _, suites in reports:
        names += [name for name in suites if name not in names]
    if not names:
        return empty_figure(title, NO_REPORTS)
    figure = go.Figure()
    for index, name in enumerate(names):
        points = [(label, suites[name]) for label, suites in reports if name in suites]
        first = points[0][1]
        scores = [float(s["score"]) for _, s in points]
        figure.add_trace(go.Scatter(
            x=[label for label, _ in points], y=scores, name=suite_label(name, first), mode="lines+markers",
            line={"color": REPORT_COLORS[(index + 1) % len(REPORT_COLORS)],
                  "dash": "dash" if first.get("kind") == "safety" else "solid"},
            error_y={"type": "data", "visible": True, "thickness": 1,
                     "array": [max(0.0, float(s.get("ci_high", v)) - v) for (_, s), v in zip(points, scores)],
                     "arrayminus": [max(0.0, v - float(s.get("ci_low", v))) for (_, s), v in zip(points, scores)]},
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.1f}}%<extra></extra>"))
    figure.update_layout(title=title, height=420, xaxis_title="report (in the order chosen)", yaxis_title="score (%)",
                         legend_title_text="suite", hovermode="x unified")
    figure.update_xaxes(type="category", categoryorder="array", categoryarray=labels)
    figure.update_yaxes(range=[-5, 105])
    return figure


def win_rate_bars(groups: Mapping[str, Mapping], title: str = "Harmlessness win rate") -> go.Figure:
    """The aligned model's win rate over the base model per group (principle or harm category), from
    ``judge_harmlessness``: 50% means the judge saw no difference; above it the aligned answers won."""
    names = [name for name, entry in (groups or {}).items() if _is_number((entry or {}).get("win_rate"))]
    if not names:
        return empty_figure(title)
    rates = [float(groups[n]["win_rate"]) for n in names]

    def color(rate: float) -> str:  # within a point of 50% the judge saw no difference worth a colour
        return NO_CHANGE_COLOR if abs(rate - 50.0) < WIN_RATE_BAND else IMPROVEMENT_COLOR if rate > 50 else REGRESSION_COLOR

    figure = go.Figure(go.Bar(
        x=names, y=rates, marker_color=[color(r) for r in rates], text=[f"{r:.0f}%" for r in rates],
        textposition="inside", insidetextanchor="end",
        customdata=[[groups[n].get("clear_wins", "?"), groups[n].get("n", "?")] for n in names],
        hovertemplate="%{x}: %{y:.1f}%, %{customdata[0]} of %{customdata[1]} clear wins<extra></extra>"))
    figure.add_hline(y=50, line_dash="dash", line_color="#444", annotation_text="50% = no difference",
                     annotation_position="top right")
    figure.update_layout(title=title, height=400, yaxis_title="aligned answer judged better (%)", showlegend=False)
    figure.update_yaxes(range=[0, 110])
    return figure


def _pass_rate_bar(label: str, names: list[str], points: list[Mapping], rate: str, low: str, high: str, color,
                   hovertemplate: str, more: tuple[str, ...]) -> go.Bar:
    """One model's pass rate per principle as bars, its 95% interval as error bars. ``points`` (one a
    name) hold the rate and its interval under the keys given; the hover reads the interval as
    customdata[0] and [1] and the values of ``more`` ("?" where missing) after them."""
    values = [float(point[rate]) for point in points]
    lows = [point.get(low, v) for point, v in zip(points, values)]
    highs = [point.get(high, v) for point, v in zip(points, values)]
    return go.Bar(
        x=names, y=values, name=label, marker_color=color,
        error_y={"type": "data", "visible": True, "thickness": 1.2,
                 "array": [max(0.0, float(h) - v) for h, v in zip(highs, values)],
                 "arrayminus": [max(0.0, v - float(l)) for l, v in zip(lows, values)]},
        customdata=[[l, h, *(point.get(key, "?") for key in more)] for l, h, point in zip(lows, highs, points)],
        hovertemplate=hovertemplate)


def _grouped_pass_rates(bars: list[go.Bar], names: list[str], title: str, yaxis_title: str) -> go.Figure:
    """Pass-rate bars side by side per principle, the principles in the order given."""
    figure = go.Figure(bars)
    figure.update_layout(title=title, barmode="group", height=400, yaxis_title=yaxis_title,
                         legend_title_text="", legend={"orientation": "h", "y": -0.2})
    # A category axis, always: a principle may be named "2" or "2024", which would otherwise read as numbers.
    figure.update_xaxes(type="category", categoryorder="array", categoryarray=names)
    figure.update_yaxes(range=[0, 105])
    return figure


def principle_pass_rate_bars(models: Iterable[tuple[str, Mapping]], title: str = "Pass rate per principle") -> go.Figure:
    """Each principle's pass rate on its test examples, one bar per model side by side, the 95% bootstrap
    interval as error bars. ``models``: (label, per_principle) pairs, per_principle as the principles
    suite writes it: principle -> {"pass_rate", "ci_low", "ci_high", "passed", "n"} (percent)."""
    models = [(str(label), {name: row for name, row in (rates or {}).items()
                            if isinstance(row, Mapping) and _is_number(row.get("pass_rate"))})
              for label, rates in models]
    names = list(dict.fromkeys(name for _, rates in models for name in rates))
    if not names:
        return empty_figure(title)
    bars = []
    for index, (label, rates) in enumerate(models):
        present = [name for name in names if name in rates]
        if present:
            bars.append(_pass_rate_bar(
                label, present, [rates[n] for n in present], "pass_rate", "ci_low", "ci_high",
                REPORT_COLORS[index % len(REPORT_COLORS)],
                f"{label}<br>%{{x}}: %{{y:.0f}}% (%{{customdata[2]}} of %{{customdata[3]}} passed)<br>"
                "95% interval %{customdata[0]:.0f}–%{customdata[1]:.0f}<extra></extra>", ("passed", "n")))
    return _grouped_pass_rates(bars, names, title, "test examples passed (%)")


# ---------------------------------------------------------------- the principles suite, principle by principle


def principle_bars(tax: Mapping, base_label: str = "base", aligned_label: str = "aligned",
                   title: str = "Pass rate per principle") -> go.Figure:
    """Base against aligned per principle (``principle_tax`` output): grouped bars of the pass rates
    on the examples both answered, each with its 95% interval; the aligned bar is green where the
    principle improved, red where it regressed, grey where it did not move."""
    rows = [row for row in (tax or {}).get("rows") or [] if _is_number(row.get("base")) and _is_number(row.get("aligned"))]
    if not rows:
        return empty_figure(title, NO_REPORTS)
    names = [str(row["principle"]) for row in rows]
    colors = {"regression": REGRESSION_COLOR, "improvement": IMPROVEMENT_COLOR, "no change": NO_CHANGE_COLOR}

    def bar(side: str, label: str, color) -> go.Bar:
        return _pass_rate_bar(label, names, rows, side, f"{side}_ci_low", f"{side}_ci_high", color,
                              f"{label}<br>%{{x}}: %{{y:.1f}}% passed<br>95% interval %{{customdata[0]:.1f}}–"
                              "%{customdata[1]:.1f} · n = %{customdata[2]}<extra></extra>", ("n",))

    return _grouped_pass_rates([bar("base", str(base_label), REPORT_COLORS[0]),
                                bar("aligned", str(aligned_label),
                                    [colors.get(row.get("direction"), NO_CHANGE_COLOR) for row in rows])],
                               names, title, "examples passed (%)")


def principle_change_bars(tax: Mapping, title: str = "Change per principle") -> go.Figure:
    """Each principle's change in points (aligned − base) with its paired 95% interval: improvements
    green, regressions red, no change grey; the change in words on hover."""
    rows = [row for row in (tax or {}).get("rows") or [] if _is_number(row.get("change"))]
    if not rows:
        return empty_figure(title, NO_REPORTS)
    names = [str(row["principle"]) for row in rows]
    figure = go.Figure()
    for direction, color in (("regression", REGRESSION_COLOR), ("improvement", IMPROVEMENT_COLOR),
                             ("no change", NO_CHANGE_COLOR)):
        chosen = [row for row in rows if row.get("direction") == direction]
        if not chosen:
            continue
        changes = [float(row["change"]) for row in chosen]
        figure.add_trace(go.Bar(
            x=[str(row["principle"]) for row in chosen], y=changes, name=direction, marker_color=color,
            text=[f"{c:+.1f}" for c in changes], textposition="outside", cliponaxis=False,
            error_y={"type": "data", "visible": True, "thickness": 1.2,
                     "array": [max(0.0, float(row.get("ci_high", c)) - c) for row, c in zip(chosen, changes)],
                     "arrayminus": [max(0.0, c - float(row.get("ci_low", c))) for row, c in zip(chosen, changes)]},
            customdata=[[str(row.get("words", ""))] for row in chosen],
            hovertemplate="%{x}: %{customdata[0]}<extra></extra>"))
    mean = (tax or {}).get("mean_change")
    suffix = f" · mean {float(mean):+.1f} points" if _is_number(mean) else ""
    figure.update_layout(title=title + suffix, barmode="relative", height=400,
                         yaxis_title="change in pass rate (points; > 0 is better)", legend_title_text="",
                         legend={"orientation": "h", "y": -0.2})
    figure.add_hline(y=0, line_color="#444", line_width=1)
    figure.update_xaxes(type="category", categoryorder="array", categoryarray=names)
    figure.update_yaxes(range=[-110, 110], zeroline=True)
    return figure


def principle_history_chart(rounds: Iterable[tuple[str, Mapping[str, Mapping]]],
                            title: str = "Principles over rounds") -> go.Figure:
    """One line per principle over the reports in the given order: (label, {principle: {"pass_rate",
    "ci_low", "ci_high"}}) each (``principle_scores``), the interval as error bars. A report without
    the principles suite keeps its place on the axis with no point."""
    rounds = [(str(label), dict(scores or {})) for label, scores in rounds]
    labels = [label for label, _ in rounds]
    names: list[str] = []
    for _, scores in rounds:
        names += [name for name in scores if name not in names]
    if not names:
        return empty_figure(title, NO_REPORTS)
    figure = go.Figure()
    for index, name in enumerate(names):
        points = [(label, scores[name]) for label, scores in rounds if name in scores]
        rates = [float(point["pass_rate"]) for _, point in points]
        figure.add_trace(go.Scatter(
            x=[label for label, _ in points], y=rates, name=name, mode="lines+markers",
            line={"color": REPORT_COLORS[(index + 1) % len(REPORT_COLORS)]},
            error_y={"type": "data", "visible": True, "thickness": 1,
                     "array": [max(0.0, float(p.get("ci_high", r)) - r) for (_, p), r in zip(points, rates)],
                     "arrayminus": [max(0.0, r - float(p.get("ci_low", r))) for (_, p), r in zip(points, rates)]},
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.1f}}% passed<extra></extra>"))
    figure.update_layout(title=title, height=420, xaxis_title="report (in the order chosen)",
                         yaxis_title="examples passed (%)", legend_title_text="principle", hovermode="x unified")
    figure.update_xaxes(type="category", categoryorder="array", categoryarray=labels)
    figure.update_yaxes(range=[-5, 105])
    return figure
