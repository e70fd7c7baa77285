"""Reports on the Alignment tax page: reading them (cached until the file changes), their items side
by side, a comparison's averages, charts and table, the same per principle, the `cai tax` line, and
the judge's win rates.

Model text is data: every prompt and answer is shown as plain text (ui.common.show_text).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from cai_core import charts
from cai_core.evaluation import EvaluationError, read_report
from cai_core.evaluation.commands import tax_command
from cai_core.evaluation.principles import has_principles, principle_scores, principle_tax, tax_seed
from cai_core.evaluation.suites import PRINCIPLES
from cai_core.evaluation.reports import (KINDS, ReportRef, average_gain, average_words, common_items, comparison_rows,
                                         direction_counts, item_answer, item_prompts, item_verdict, report_model,
                                         report_ref, settings_differ)
from ui.common import file_stamp, md, page_key, plural, sentence, show_text

ITEMS_PER_PAGE = 5


def key(name: str) -> str:
    return page_key("tax", name)


@st.cache_data(show_spinner=False, max_entries=64)
def _report(path: str, stamp: tuple | None) -> dict:
    return read_report(Path(path))


def load_report(ref: ReportRef | str) -> tuple[dict | None, str | None]:
    """(the report, None) or (None, the reason in one sentence); read again when the file changes."""
    ref = report_ref(ref) if isinstance(ref, str) else ref
    try:
        return _report(str(ref.path), file_stamp(ref.path)), None
    except EvaluationError as error:
        return None, sentence(error)


def report_label(ref_id: str) -> str:
    """A report as the choices list it: its name, where it comes from, its model and suites."""
    ref = report_ref(ref_id)
    report, _ = load_report(ref)
    if report is None:
        return f"{ref.label}{ref.where} · cannot be read"
    return f"{ref.label}{ref.where} · {report_model(report)} · {plural(len(report['suites']), 'suite')}"


@st.cache_data(show_spinner=False)
def cached_item_prompts() -> dict[str, str]:
    return item_prompts()


def browse_items(reports: list[tuple[str, dict]], name: str) -> None:
    """A few items of one suite; with two reports, each prompt's two answers side by side."""
    common = [s for s in reports[0][1]["suites"] if all(s in report["suites"] for _, report in reports)]
    if not common:
        st.caption("No suite in common.")
        return
    left, right = st.columns([2, 1])
    suite = left.selectbox("Suite", common, key=key(f"items-suite:{name}"))
    by_id, ids = common_items([report for _, report in reports], suite)
    if len(reports) > 1 and right.checkbox("Only where the verdicts differ", key=key(f"items-differ:{name}")):
        ids = [i for i in ids if len({item_verdict(items[i]) for items in by_id}) > 1]
    if not ids:
        st.caption("No items to show (a report from lm-eval keeps none; or no verdicts differ).")
        return
    pages = (len(ids) + ITEMS_PER_PAGE - 1) // ITEMS_PER_PAGE
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, 1, key=key(f"items-page:{name}:{suite}"),
                                   width=160))
    start = (page - 1) * ITEMS_PER_PAGE
    st.caption(f"Items {start + 1}–{min(start + ITEMS_PER_PAGE, len(ids))} of {len(ids)}")
    prompts = cached_item_prompts()
    for item_id in ids[start:start + ITEMS_PER_PAGE]:
        first = by_id[0][item_id]
        with st.container(border=True):
            about = [str(item_id)] + [str(first[f]) for f in ("category", "subject") if first.get(f)]
            st.caption(md(" · ".join(about)))
            show_text(first.get("prompt") or first.get("question") or prompts.get(str(item_id)), "(prompt not kept)")
            for column, (label, _), items in zip(st.columns(len(reports)), reports, by_id):
                item = items[item_id]
                with column:
                    st.caption(md(f"{label}: {item_verdict(item)}"))
                    if suite == "humaneval":
                        st.code(item_answer(item) or "(empty)", language="python")
                        if item.get("detail"):
                            show_text(item["detail"])
                    else:
                        show_text(item_answer(item))


def show_averages(comparison: dict) -> None:
    for kind, column in zip(KINDS, st.columns(len(KINDS))):
        with column:
            part = comparison[kind]
            gain = average_gain(part)
            st.metric(f"{kind.capitalize()}: average tax", average_words(part, kind), border=True,
                      delta=None if gain is None else f"{gain:+.1f} points on average",
                      delta_color="normal" if gain else "off",
                      help=f"The mean of the tax over the {kind} benchmarks both reports scored, in percent of the "
                           "base score; a positive tax is a regression. Benchmarks whose base scored 0 have no "
                           "percentage and are left out of that mean; the points below it count every benchmark "
                           "(turned round where lower is better, so that up is better).")
    st.caption(md(f"Capability: {direction_counts(comparison['capability'])}. Safety: "
                  f"{direction_counts(comparison['safety'])}. The two are kept apart so that a large gain in safety "
                  "cannot hide a loss of capability in one average."))


def show_comparison(comparison: dict, base: dict, aligned: dict, base_ref: ReportRef, aligned_ref: ReportRef) -> None:
    base_label, aligned_label = f"base · {base_ref.label}", f"aligned · {aligned_ref.label}"
    if not comparison["all"]["per_benchmark"]:
        st.warning("The two reports have no suite in common: evaluate both models on the same suites.")
        return
    show_averages(comparison)
    for kind in KINDS:
        left, right = st.columns(2)
        left.plotly_chart(charts.benchmark_bars([(base_label, base), (aligned_label, aligned)], kind,
                                                f"{kind.capitalize()}: score per benchmark"),
                          key=key(f"chart-bars:{kind}"))
        right.plotly_chart(charts.tax_bars(comparison[kind], f"{kind.capitalize()}: tax per benchmark"),
                           key=key(f"chart-tax:{kind}"))
    st.caption("Error bars: 95% bootstrap intervals over the items. Intervals that overlap a lot mean the difference "
               "may be noise: run more items (a higher limit) before trusting it.")
    st.dataframe(pd.DataFrame(comparison_rows(comparison, base, aligned)), hide_index=True, width="stretch",
                 key=key("comparison_table"))
    alone = sorted(set(base["suites"]) ^ set(aligned["suites"]))
    if alone:
        st.caption(md(f"Left out, scored in only one report: {', '.join(alone)}."))
    differ = settings_differ(base, aligned)
    if differ:
        st.warning(md(f"The two evaluations differ in {' and '.join(name for name, _, _ in differ)} "
                      f"({', '.join(f'{name} {a} against {b}' for name, a, b in differ)}), so "
                      "they may not score the same items."))
    with st.expander("Items side by side: prompts, both answers and verdicts", icon=":material/compare:"):
        browse_items([(base_label, base), (aligned_label, aligned)], "pair")


def show_win_rates(result: dict) -> None:
    with st.container(horizontal=True):
        st.metric("Aligned answer judged better", f"{result['win_rate']:.0f}%", border=True,
                  help="The mean of the judge's probability that the aligned answer is the better one.")
        st.metric("Clear wins", f"{result['clear_wins']} of {result['n']}", border=True,
                  help="Judgements (prompt × principle) where the aligned answer was preferred with p > 0.5.")
        st.metric("Prompts", result.get("prompts", "—"), border=True)
    left, right = st.columns(2)
    left.plotly_chart(charts.win_rate_bars(result["per_principle"], "Win rate per principle"),
                      key=key("chart-win:principle"))
    right.plotly_chart(charts.win_rate_bars(result["per_category"], "Win rate per harm category"),
                       key=key("chart-win:category"))
    st.caption(md(f"Judged by {result.get('judge', '?')} under {result.get('constitution', '?')}."))
    disagree = result.get("orders_disagree_share")
    if isinstance(disagree, (int, float)) and disagree > 0.5:
        st.warning(f"The judge preferred different answers in the two orders for {disagree:.0%} of the judgements: "
                   "it is reading the position, not the content, so these win rates are close to chance. Choose a "
                   "larger judge model.")


# ---------------------------------------------------------------- per principle


def principle_rows(tax: dict) -> list[dict]:
    """The tax per principle, as table rows."""
    return [{"principle": row["principle"], "base (%)": round(row["base"], 1), "aligned (%)": round(row["aligned"], 1),
             "change (points)": round(row["change"], 1),
             "95% interval of the change": f"{row['ci_low']:+.1f} to {row['ci_high']:+.1f}", "n": row["n"],
             "in words": row["words"]} for row in tax["rows"]]


def missing_principles_words(base: dict, aligned: dict) -> str:
    lacking = [role for role, report in (("base", base), ("aligned", aligned)) if not has_principles(report)]
    which = "Neither report has the" if len(lacking) == 2 else f"The {lacking[0]} report has no"
    return (f"{which} {PRINCIPLES} suite, so there is no tax per principle: evaluate both models with the "
            f"{PRINCIPLES} suite and the same constitution (New evaluation above) to see, principle by principle, "
            "whether the training made the model follow it.")


def show_principle_comparison(base: dict, aligned: dict, base_ref: ReportRef, aligned_ref: ReportRef) -> dict | None:
    """Base against aligned per principle of the constitution, beside the capability and safety view;
    returns the tax per principle (``principle_tax``), or None when there is none to show."""
    st.markdown("**Per principle: does the aligned model follow each principle more often?**")
    if not (has_principles(base) and has_principles(aligned)):
        st.info(missing_principles_words(base, aligned))
        return None
    try:
        tax = principle_tax(base, aligned, tax_seed(aligned))
    except EvaluationError as error:
        st.warning(sentence(error))
        return None
    fall = tax["largest_fall"]
    with st.container(horizontal=True):
        st.metric("Mean pass rate per principle", f"{tax['mean_aligned']:.1f}%", border=True,
                  delta=f"{tax['mean_change']:+.1f} points from {tax['mean_base']:.1f}%",
                  delta_color="normal" if abs(tax["mean_change"]) > 1e-9 else "off",
                  help="The mean over principles of the share of test examples passed, so each principle counts "
                       "once, however many examples it has.")
        st.metric("Largest fall", f"{fall['principle']}: {fall['change']:+.1f} points" if fall else "none", border=True,
                  help="The principle whose pass rate fell most; none when no principle fell.")
    left, right = st.columns(2)
    left.plotly_chart(charts.principle_bars(tax, f"base · {base_ref.label}", f"aligned · {aligned_ref.label}",
                                            f"Principles of {tax['constitution']}: pass rate"),
                      key=key("chart-principles"))
    right.plotly_chart(charts.principle_change_bars(tax, "Principles: change per principle"),
                       key=key("chart-principle-change"))
    st.caption("Pass rates on the test examples both reports answered, with 95% bootstrap intervals; the change's "
               "interval is paired, example by example. Green: the principle is followed more often; red: less.")
    st.dataframe(pd.DataFrame(principle_rows(tax)), hide_index=True, width="stretch", key=key("principle_table"))
    if not tax["same_constitution"]:
        st.warning("The two reports scored different versions of the constitution: only the examples both answered "
                   "are compared.")
    return tax


def show_principle_history(reports: list[tuple[str, dict]]) -> None:
    """One line per principle over the chosen reports, when they carry the principles suite."""
    if not any(has_principles(report) for _, report in reports):
        st.caption(f"Reports with the {PRINCIPLES} suite add a chart here with one line per principle.")
        return
    st.plotly_chart(charts.principle_history_chart([(label, principle_scores(report)) for label, report in reports]),
                    key=key("chart-principle-history"))
    st.caption("Each principle's pass rate on its test examples, report after report, with 95% intervals.")


def show_tax_command(base_ref: ReportRef, aligned_ref: ReportRef) -> None:
    st.markdown("**Command**")
    st.caption("The same comparison from a terminal (the tax per benchmark, then per principle when both reports "
               "have the principles suite):")
    st.code(tax_command(base_ref, aligned_ref), language="bash", wrap_lines=True)
