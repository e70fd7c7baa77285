"""Alignment tax: what training for the constitution bought (safety) and what it cost (capability).

Layout and widgets only. An evaluation is a folder under ``$CAI_HOME/evaluations`` worked on by its
own process (``cai_core.evaluation``); this page starts it, polls the folder from a fragment and,
once its report is written, compares two reports: the tax per benchmark, capability and safety
apart, the scores over rounds, and the AI judge's harmlessness win rate. Nothing is evaluated in the
script thread; only the judge (a few seconds to minutes) runs here, behind its own button.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from cai_core import charts
from cai_core.evaluation import EvaluationError, compare_reports, parse_evaluation_spec, start_evaluation
from cai_core.evaluation import list_evaluations as list_evaluation_folders
from cai_core.evaluation.harmlessness import HarmlessnessSpec, harmlessness_folder, read_harmlessness, start_harmlessness
from cai_core.evaluation.progress import finished_suites, live_progress, scoring_current_suite, suites_done
from cai_core.evaluation.reports import (ReportRef, default_pair, evaluation_report, list_reports, report_model,
                                         report_ref, reports_by_loop, save_uploaded_report, suite_row)
from cai_core.evaluation import evaluations_dir, shared_refusal_ids
from cai_core.jobs import JobState, read_job, timestamped_name
from cai_core.training import RunInfo, list_runs, model_label
from ui.common import (
    apply_pending,
    link_page,
    md,
    os_error_sentence,
    page_key,
    plural,
    progress_times,
    sentence,
    set_flash,
    set_pending,
    show_flash,
    show_notes,
    state_badge,
    state_label,
    stored_spec,
    upload_limit_words,
    upload_max_mb,
    upload_size_problem,
)
from ui.jobs import job_panel, live_while, start_or_say
from ui.navigation import page_path, start_page
from ui.pickers import constitution_picker, finished_runs, model_picker
from ui.evaluation_form import principles_inputs, show_eval_command, suite_inputs
from ui.report_view import (browse_items, load_report, report_label, show_comparison, show_principle_comparison,
                            show_principle_history, show_tax_command, show_win_rates)

PAGE = "tax"
DEFAULT_LIMIT = 20  # items per suite: a first look in minutes on a laptop CPU; 0 runs every item
MAX_NOTES = 5


def key(name: str) -> str:
    return page_key(PAGE, name)


FLASH, SELECTED, NAME, PENDING, MODEL, OTHER_MODEL, LIMIT, SEED, BATCH = (
    key("flash"), key("selected"), key("name"), key("pending"), key("model"), key("other_model"), key("limit"),
    key("seed"), key("batch_size"))
BASE, ALIGNED, UPLOAD, UPLOAD_MESSAGES, HISTORY, JUDGE_MODEL, JUDGE_OTHER, CONSTITUTION, JUDGE_CHOSEN = (
    key("base"), key("aligned"), key("upload"), key("upload_messages"), key("history"), key("judge_model"),
    key("judge_other"), key("constitution"), key("judge_chosen"))


def suggest_name() -> str:
    return timestamped_name("eval")


# ---------------------------------------------------------------- new evaluation


def new_evaluation_form(runs: list[RunInfo], expanded: bool) -> None:
    with st.expander("New evaluation", expanded=expanded, icon=":material/add:"):
        model = model_picker("Model to evaluate", MODEL, OTHER_MODEL, runs,
                             "Evaluate the base model and a trained run (base + its adapters) on the same suites, then "
                             "compare their reports below.")
        if not finished_runs(runs):
            st.caption("No finished training run yet: a trained model to evaluate comes from the Training page.")
            link_page(page_path("Training"), "Open the Training page", ":material/model_training:")
        suites = suite_inputs()
        principles = principles_inputs(suites, runs)
        limit_col, seed_col, batch_col, name_col = st.columns(4)
        limit = int(limit_col.number_input("Limit (items per suite; 0 = all)", 0, None, DEFAULT_LIMIT, 10, key=LIMIT,
                                           help="A quick run scores only the first N items of each suite; its "
                                                "intervals are wider."))
        seed = int(seed_col.number_input("Seed", 0, None, 0, 1, key=SEED,
                                         help="Picks the arithmetic problems and the bootstrap resamples; use the "
                                              "same seed for two models you compare."))
        batch = int(batch_col.number_input("Batch size", 1, 1024, 16, 1, key=BATCH))
        name = name_col.text_input("Evaluation name", key=NAME, max_chars=80,
                                   help="Letters, digits, '-', '_' and '.'; the folder under evaluations/ in your "
                                        "CAI_HOME.")
        spec_data = {"model": model, "suites": suites, "limit": limit or None, "seed": seed, "batch_size": batch,
                     **(principles or {})}
        if not suites:
            st.caption("Choose at least one suite.")
        elif model:
            show_eval_command(spec_data, name)
        if st.button("Start evaluation", type="primary", key=key("launch"), icon=":material/play_arrow:",
                     disabled=not suites or not model or principles is None):
            launch(spec_data, name)


def launch(spec_data: dict, name: str) -> None:
    """Check the inputs and start the evaluation process; every problem is one st.error sentence."""
    name = (name or "").strip()
    if name and (evaluations_dir() / name).exists():
        st.error(md(f"An evaluation named {name} already exists; choose another name, or select it below to resume it."))
        return
    folder = start_or_say(lambda: start_evaluation(parse_evaluation_spec(spec_data), name), "evaluation")
    if folder is None:
        return
    set_pending(PENDING, {SELECTED: folder.name, NAME: suggest_name()})
    set_flash(FLASH, md(f"Started {folder.name}. It runs in its own process: you may leave this "
                        "page, and its report appears below when it ends."))
    st.rerun()


# ---------------------------------------------------------------- the evaluations


def evaluation_row(folder: Path, job: JobState) -> dict:
    spec = stored_spec(folder)
    planned = spec.get("suites") or []
    return {
        "evaluation": folder.name, "state": state_label(job.state),
        "suites done": f"{min(suites_done(folder), len(planned))} of {len(planned)}" if planned else "—",
        "model": model_label(spec.get("model")), "suites": ", ".join(planned),
        "limit": str(spec["limit"]) if spec.get("limit") else "all",
        "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(job.started)) if job.started else "—",
    }


def evaluations_table(folders: list[Path], jobs: dict[str, JobState]) -> None:
    """The list of evaluations with their state; redrawn every few seconds while one of them runs."""
    live = any(job.active for job in jobs.values())

    @live_while(live)
    def table() -> None:
        current = {folder.name: read_job(folder) if live else jobs[folder.name] for folder in folders}
        st.dataframe(pd.DataFrame([evaluation_row(folder, current[folder.name]) for folder in folders]),
                     hide_index=True, width="stretch", key=key("evaluations_table"))

    table()


def evaluation_selector(folders: list[Path], jobs: dict[str, JobState]) -> Path | None:
    st.subheader("Evaluations")
    if not folders:
        st.info("No evaluations yet. Open **New evaluation** above, choose a model (the base model first, then a "
                "finished run from the Training page) and suites, and press **Start evaluation**: its progress "
                "shows here, and two finished reports are compared below.")
        return None
    by_name = {folder.name: folder for folder in folders}
    if st.session_state.get(SELECTED) not in by_name:
        st.session_state.pop(SELECTED, None)
    evaluations_table(folders, jobs)
    chosen = st.selectbox("Evaluation", list(by_name), key=SELECTED,
                          format_func=lambda n: f"{n} · {model_label(stored_spec(by_name[n]).get('model'))}")
    return by_name[chosen]


def show_job(folder: Path, job: JobState) -> None:
    """A running or ended evaluation: its state, progress, times and notes."""
    spec = stored_spec(folder)
    planned = len(spec.get("suites") or [])
    done_suites = min(suites_done(folder), planned)
    progress = job.progress
    with st.container(horizontal=True, vertical_alignment="center"):
        state_badge(job.state)
        st.caption(md(f"{model_label(spec.get('model'))} · "
                      + (f"at most {plural(spec['limit'], 'item')} per suite" if spec.get("limit") else "every item")))
    if job.state == "finished":
        st.progress(1.0, text=f"{plural(planned, 'suite')} done")
    elif job.active:
        st.progress(*live_progress(spec, progress, done_suites))
    elif planned:
        st.progress(done_suites / planned, text=f"{done_suites} of {plural(planned, 'suite')} done")
    if job.active:
        # The times are the suite being scored's, once progress.json names it.
        fresh = scoring_current_suite(spec, progress, done_suites)
        time_left, elapsed = progress_times(progress, True) if fresh else ("—", "—")
        left, middle, right = st.columns(3)
        left.metric("Suites done", f"{done_suites} of {planned}")
        middle.metric("Time left in this suite", time_left)
        right.metric("Elapsed in this suite", elapsed)
    show_notes(job.notes, MAX_NOTES)
    if job.error:
        st.error(sentence(f"the evaluation failed: {job.error}"))


def resume_words(folder: Path) -> str:
    planned = len(stored_spec(folder).get("suites") or [])
    done_suites = min(suites_done(folder), planned)
    return (f"Resuming keeps the {plural(done_suites, 'finished suite')} and runs the other "
            f"{planned - done_suites} with the same settings.")


def show_finished_suites(folder: Path, job: JobState) -> None:
    rows = [suite_row(suite["name"], suite) for suite in finished_suites(folder)] if job.state != "finished" else []
    if rows:
        st.caption("Suites finished so far (kept when the evaluation is stopped and resumed):")
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=key(f"partial:{folder.name}"))


def show_live(folder: Path, drawn: JobState) -> None:
    """The evaluation's panel: polled while it runs; the report, comparison and downloads catch up when it ends."""
    job_panel(folder, drawn, key(""), show=lambda job: show_job(folder, job),
              stop_help="Stops after the batch being scored; finished suites are kept and Resume carries on.",
              stopping_words="Stopping after the batch being scored…",
              resume=lambda: start_or_say(lambda: start_evaluation(parse_evaluation_spec(stored_spec(folder)),
                                                                   folder.name), "evaluation") is not None,
              resume_words=lambda job: resume_words(folder),
              then=lambda job: show_finished_suites(folder, job), log="on_failure")


def use_as(role: str, ref_id: str) -> None:
    st.session_state[role] = ref_id


def show_report(folder: Path) -> None:
    """The selected evaluation's report: scores, a chart, its items, and buttons to compare it."""
    ref = evaluation_report(folder.name)
    report, error = load_report(ref)
    if report is None:
        st.error(error)
        return
    st.markdown(f"**Report** · {md(report_model(report))}")
    st.dataframe(pd.DataFrame([suite_row(name, suite) for name, suite in report["suites"].items()]),
                 hide_index=True, width="stretch", key=key(f"scores:{folder.name}"))
    st.plotly_chart(charts.benchmark_bars([(folder.name, report)], title=f"Scores of {folder.name}"),
                    key=key(f"chart-report:{folder.name}"))
    with st.container(horizontal=True):
        st.button("Compare as base", key=key("as_base"), on_click=use_as, args=(BASE, ref.id),
                  icon=":material/looks_one:", help="Choose this report as the base in Compare below.")
        st.button("Compare as aligned", key=key("as_aligned"), on_click=use_as, args=(ALIGNED, ref.id),
                  icon=":material/looks_two:", help="Choose this report as the aligned model in Compare below.")
        st.download_button("report.json", data=ref.path.read_bytes, file_name=f"{folder.name}-report.json",
                           mime="application/json", key=key("download:report"), on_click="ignore",
                           icon=":material/download:")
    with st.expander("Items: prompts, answers and verdicts", icon=":material/list:"):
        browse_items([(folder.name, report)], f"one:{folder.name}")


# ---------------------------------------------------------------- comparing two reports


def save_uploaded_reports() -> None:
    """on_change of the uploader: keep each file that reads as a report; say why the others do not."""
    messages = []
    for uploaded in st.session_state.get(UPLOAD) or []:
        file_name = Path(uploaded.name).name
        too_large = upload_size_problem("reports", file_name, uploaded.size)
        if too_large:  # the browser checks first; a client that skips it is refused here
            messages.append(("error", too_large))
            continue
        try:
            kept, report = save_uploaded_report(file_name, uploaded.getvalue())
        except OSError as error:
            messages.append(("error", os_error_sentence(f"{file_name} could not be saved", error)))
            continue
        except EvaluationError as error:
            messages.append(("error", sentence(error)))
            continue
        messages.append(("success", md(f"Added {file_name} as {kept.label}: {plural(len(report['suites']), 'suite')}; "
                                       "choose it as base or aligned below.")))
    st.session_state[UPLOAD_MESSAGES] = messages


def compare_section(refs: list[ReportRef], runs: list[RunInfo]) -> tuple[str, str] | None:
    st.subheader("Compare: the alignment tax")
    st.caption("The tax of a benchmark is (base − aligned) / base × 100 (turned round where lower is better): above "
               "0 the aligned model got worse, below 0 it got better.")
    st.file_uploader("Add reports (report.json from an evaluation or `cai eval --out`)", type=["json"],
                     accept_multiple_files=True, key=UPLOAD, on_change=save_uploaded_reports,
                     help=upload_limit_words("reports"), max_upload_size=upload_max_mb("reports"))
    for kind, text in st.session_state.get(UPLOAD_MESSAGES) or []:
        (st.success if kind == "success" else st.error)(text)
    ids = [ref.id for ref in refs]
    if len(ids) < 2:
        st.info("Comparing needs two reports: evaluate the base model and a trained run (from the Training page) on "
                "the same suites with **New evaluation** above, or add report files here."
                + (f" There is {plural(len(ids), 'report')} so far." if ids else ""))
        return None
    if st.session_state.get(BASE) not in ids or st.session_state.get(ALIGNED) not in ids:
        base, aligned = default_pair(refs, lambda ref: load_report(ref)[0])
        if st.session_state.get(BASE) not in ids:
            st.session_state[BASE] = base.id
        if st.session_state.get(ALIGNED) not in ids:
            st.session_state[ALIGNED] = aligned.id
    left, right = st.columns(2)
    base_id = left.selectbox("Base (before training)", ids, key=BASE, format_func=report_label)
    aligned_id = right.selectbox("Aligned (after training)", ids, key=ALIGNED, format_func=report_label)
    if base_id == aligned_id:
        st.warning("Choose two different reports: base and aligned are the same.")
        return None
    base_ref, aligned_ref = report_ref(base_id), report_ref(aligned_id)
    base, base_error = load_report(base_ref)
    aligned, aligned_error = load_report(aligned_ref)
    if base is None or aligned is None:
        st.error(base_error or aligned_error)
        return None
    comparison = compare_reports(base, aligned)
    show_comparison(comparison, base, aligned, base_ref, aligned_ref)
    per_principle = show_principle_comparison(base, aligned, base_ref, aligned_ref)
    if per_principle is not None:  # downloaded as `cai tax --json` writes it
        comparison = {**comparison, "principles": per_principle}
    show_tax_command(base_ref, aligned_ref)
    harmlessness_section(base_ref, aligned_ref, base, aligned, runs)
    show_comparison_downloads(comparison, base_ref, aligned_ref)
    return base_id, aligned_id


def show_comparison_downloads(comparison: dict, base_ref: ReportRef, aligned_ref: ReportRef) -> None:
    st.markdown("**Downloads**")
    folder = judged_folder(harmlessness_spec(base_ref, aligned_ref))
    verdict = read_harmlessness(folder) if folder is not None else None
    everything = {**comparison, "base_report": base_ref.label, "aligned_report": aligned_ref.label,
                  **({"harmlessness": verdict} if verdict else {})}
    with st.container(horizontal=True):
        for role, ref in (("base", base_ref), ("aligned", aligned_ref)):
            st.download_button(f"{role} report ({ref.label})", data=ref.path.read_bytes,
                               file_name=f"{ref.slug}-report.json", mime="application/json",
                               key=key(f"download:{role}"), on_click="ignore", icon=":material/download:")
        st.download_button("Comparison (.json)", data=json.dumps(everything, indent=2, ensure_ascii=False),
                           file_name=f"tax-{base_ref.slug}-vs-{aligned_ref.slug}.json",
                           mime="application/json", key=key("download:comparison"), on_click="ignore",
                           icon=":material/download:", type="primary",
                           help="The tax per benchmark, capability and safety apart, and per principle when both "
                                "reports have the principles suite (as `cai tax --json` writes it), and the "
                                "harmlessness win rate once judged.")


# ---------------------------------------------------------------- harmlessness by the AI judge


def harmlessness_spec(base_ref: ReportRef, aligned_ref: ReportRef) -> HarmlessnessSpec | None:
    """The judgement the choices above describe, or None while they are incomplete."""
    judge, constitution = st.session_state.get(JUDGE_CHOSEN), st.session_state.get(CONSTITUTION)
    if not judge or not constitution:
        return None
    return HarmlessnessSpec(base_report=str(base_ref.path), aligned_report=str(aligned_ref.path),
                            constitution=constitution, judge_model=judge)


def judged_folder(spec: HarmlessnessSpec | None) -> Path | None:
    """The job folder of this exact comparison (same reports, constitution and judge), if any."""
    if spec is None:
        return None
    try:
        return harmlessness_folder(spec)
    except EvaluationError:
        return None


def harmlessness_section(base_ref: ReportRef, aligned_ref: ReportRef, base: dict, aligned: dict,
                         runs: list[RunInfo]) -> None:
    st.subheader("Harmlessness: the AI judge's win rate")
    st.caption("The constitution's judge compares the two models' answers to each red-team prompt under every "
               "principle, in both orders. The win rate is how often it preferred the aligned answer: 50% means no "
               "difference, above 50% the aligned model is the more harmless.")
    shared = shared_refusal_ids(base, aligned)
    if not shared:
        st.info("Both reports need the refusal suite, on the same red-team prompts, for the judge to compare their "
                "answers: evaluate both models with it.")
        return
    judge = model_picker("Judge model", JUDGE_MODEL, JUDGE_OTHER, runs,
                         "The model that judges the answers: usually the base model, as in the paper. A model too "
                         "small to follow its constitution judges by position, not content: the page says so when "
                         "the two orders disagree on most pairs.")
    st.session_state[JUDGE_CHOSEN] = judge
    if constitution_picker(CONSTITUTION, "Its enabled principles are the questions the judge answers.") is None:
        return
    spec = harmlessness_spec(base_ref, aligned_ref)
    folder = judged_folder(spec)
    job = read_job(folder) if folder is not None and (folder / "spec.json").is_file() else None
    if job is None or not (job.active or job.state == "finished"):
        again = job is not None
        if st.button("Judge harmlessness again" if again else "Judge harmlessness", key=key("judge"),
                     icon=":material/balance:", disabled=spec is None, type="primary",
                     help=f"Judges {plural(len(shared), 'red-team answer')} under every principle in its own process "
                          "(minutes on a CPU); the result is kept, so the same comparison shows it again later."):
            if start_or_say(lambda: start_harmlessness(spec), "judgement") is None:
                return
            st.rerun()
        if job is not None and job.error:
            st.error(sentence(f"the judge failed: {job.error}"))
        elif job is not None and job.state in ("cancelled", "interrupted"):
            st.caption(f"The last judgement was {state_label(job.state).lower()}; judging again keeps the principles "
                       "already judged and goes on from the next.")
        if job is None or job.state != "finished":
            return
    job_panel(folder, job, key("judge_"), show=lambda current: show_judgement(folder, current),
              stop_label="Stop judging", stopping_words="Stopping after the principle being judged…")


def show_judgement(folder: Path, job: JobState) -> None:
    """A judgement's progress while it runs, then its win rates."""
    if job.active:
        progress = job.progress
        done, total = progress.get("done", 0), progress.get("total", 0)
        st.progress(job.fraction, text=(f"{progress.get('stage', 'judging')} · principle {min(done + 1, total)} "
                                        f"of {total}") if total else "starting the judge's process…")
        return
    result = read_harmlessness(folder)
    if result is None:
        st.error(sentence(job.error or "the judge finished without writing its result"))
        return
    show_win_rates(result)


# ---------------------------------------------------------------- over rounds


def history_section(refs: list[ReportRef], pair: tuple[str, str] | None) -> None:
    st.subheader("Over rounds")
    st.caption("Choose reports in order (the base model, then each round of training) to follow every suite and the "
               "balance of safety and capability from one to the next. An iterative loop's rounds (from the Loops "
               "page) are listed as LOOP · round K.")
    ids = [ref.id for ref in refs]
    if not ids:
        st.caption("No reports yet.")
        return
    if HISTORY in st.session_state:
        st.session_state[HISTORY] = [i for i in st.session_state[HISTORY] if i in ids]
    else:
        st.session_state[HISTORY] = list(pair) if pair else ids[:1]
    found = reports_by_loop(refs)
    if found:
        with st.container(horizontal=True):
            for loop, rounds in found.items():
                st.button(f"Loop {loop}: its {plural(len(rounds), 'report')} in order", key=key(f"loop:{loop}"),
                          on_click=use_as, args=(HISTORY, [ref.id for ref in rounds]), icon=":material/timeline:",
                          help="The loop's starting model (round 0), then each round evaluated so far.")
    chosen = st.multiselect("Reports, in order", ids, key=HISTORY, format_func=report_label,
                            help="The order chosen is the order on the charts' axis.")
    reports = []
    for ref_id in chosen:
        report, error = load_report(ref_id)
        if report is None:
            st.error(error)
        else:
            reports.append((report_ref(ref_id).label, report))
    points = [(label, charts.report_average(report, "capability"), charts.report_average(report, "safety"))
              for label, report in reports]
    left, right = st.columns(2)
    left.plotly_chart(charts.history_chart(reports), key=key("chart-history"))
    right.plotly_chart(charts.safety_vs_capability(points), key=key("chart-balance"))
    st.caption("Safety against capability: each point is a report's average capability score and average safety "
               "score (a lower-is-better rate such as over-refusal counted as 100 − rate, so up is always better). "
               "Up and to the right is better; a step up and to the left bought safety with capability.")
    show_principle_history(reports)


# ---------------------------------------------------------------- the page


start_page("Alignment tax")
st.title("Alignment tax")
st.caption("Evaluate the base model and the trained one on capability and safety suites, each in its own process; "
           "then see what the training bought (safety, harmlessness) and what it cost (capability), benchmark by "
           "benchmark and round after round.")
apply_pending(PENDING)
st.session_state.setdefault(NAME, suggest_name())
show_flash(FLASH)

runs = list_runs()
folders = list_evaluation_folders()
jobs = {folder.name: read_job(folder) for folder in folders}
new_evaluation_form(runs, expanded=not folders)
selected = evaluation_selector(folders, jobs)
if selected is not None:
    show_live(selected, jobs[selected.name])
    if jobs[selected.name].state == "finished" and (selected / "report.json").is_file():
        show_report(selected)
refs = list_reports(folders, lambda folder: not jobs[folder.name].active)
pair = compare_section(refs, runs)
history_section(refs, pair)
link_page(page_path("Loops"), "Iterative loops: rounds of data, training and evaluation", ":material/autorenew:")
