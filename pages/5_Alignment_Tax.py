"""Alignment tax: what training for the constitution bought (safety) and what it cost (capability).

Layout and widgets only. An evaluation is a folder under ``$CAI_HOME/evaluations`` worked on by its
own process (``cai_core.evaluation``); this page starts it, polls the folder from a fragment and,
once its report is written, compares two reports: the tax per benchmark, capability and safety
apart, the scores over rounds, and the AI judge's harmlessness win rate. Nothing is evaluated in the
script thread; only the judge (a few seconds to minutes) runs here, behind its own button.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from cai_core import charts
from cai_core.errors import CaiError
from cai_core.evaluation import (
    SUITES,
    EvaluationError,
    compare_reports,
    evaluations_dir,
    parse_evaluation_spec,
    read_report,
    start_evaluation,
)
from cai_core.evaluation import list_evaluations as list_evaluation_folders
from cai_core.evaluation.harmlessness import HarmlessnessSpec, harmlessness_folder, read_harmlessness, start_harmlessness
from cai_core.evaluation.loop import (SMALL_MODEL_SETTINGS, LoopError, list_loops, loops_dir, parse_loop_settings,
                                      parse_loop_spec, read_state, resume_loop, start_loop)
from cai_core.evaluation.run import REPORT_FILE, keep_uploaded_report, shared_refusal_ids
from cai_core.jobs import JobError, JobState, cancel_job, log_tail, read_job, read_json
from cai_core.models import DEFAULT_MODEL, default_model_spec
from cai_core.store import list_constitutions
from cai_core.training import RecipeError, RunInfo, list_runs
from ui.common import (
    file_stamp,
    link_page,
    md,
    model_label,
    os_error_sentence,
    page_key,
    plural,
    progress_times,
    sentence,
    set_flash,
    show_flash,
    show_notes,
    show_text,
    state_badge,
    state_label,
    stored_spec,
    upload_limit_words,
    upload_max_mb,
    upload_size_problem,
)

PAGE = "tax"
POLL_SECONDS = 1.0
DEFAULT_LIMIT = 20  # items per suite: a first look in minutes on a laptop CPU; 0 runs every item
ITEMS_PER_PAGE = 5
LOG_LINES = 40
MAX_NOTES = 5
PREFERRED_CONSTITUTION = "general-hhh"
TRAINING_PAGE = "pages/4_Training.py"
KINDS = ("capability", "safety")
RESUMABLE = ("new", "cancelled", "interrupted", "failed")
# The model choice's fixed entries; every other value is a finished run's folder.
MODEL_APP, MODEL_OTHER = ":app", ":other"
# A report is "eval:NAME" (an evaluation's report.json), "loop:NAME/K" (round K of an iterative loop,
# round 0 being its starting model) or "file:NAME" (an uploaded report).
EVAL_PREFIX, LOOP_PREFIX, FILE_PREFIX = "eval:", "loop:", "file:"
# Where a loop keeps each round's evaluation (cai_core.evaluation.loop: LOOP/round-K/evaluate/report.json).
LOOP_ROUND_DIR = re.compile(r"^round-(\d+)$")


def key(name: str) -> str:
    return page_key(PAGE, name)


FLASH, SELECTED, NAME, STARTED, MODEL, OTHER_MODEL, SUITE_CHOICE, LIMIT, SEED, BATCH, LM_EVAL = (
    key("flash"), key("selected"), key("name"), key("started"), key("model"), key("other_model"), key("suites"),
    key("limit"), key("seed"), key("batch_size"), key("lm_eval"))
BASE, ALIGNED, UPLOAD, UPLOAD_MESSAGES, HISTORY, JUDGE_MODEL, JUDGE_OTHER, CONSTITUTION, JUDGE_CHOSEN = (
    key("base"), key("aligned"), key("upload"), key("upload_messages"), key("history"), key("judge_model"),
    key("judge_other"), key("constitution"), key("judge_chosen"))


LOOP_MODEL, LOOP_OTHER, LOOP_CONSTITUTION, LOOP_ROUNDS, LOOP_NAME, LOOP_SETTINGS, LOOP_SELECTED = (
    key("loop_model"), key("loop_other"), key("loop_constitution"), key("loop_rounds"), key("loop_name"),
    key("loop_settings"), key("loop_selected"))


def suggest_name() -> str:
    return time.strftime("eval-%Y%m%d-%H%M%S")


def uploaded_reports_dir() -> Path:
    """Uploaded reports (say from ``cai eval --out``) are kept here; no spec.json, so not an evaluation."""
    return evaluations_dir() / ".uploaded"


def apply_pending() -> None:
    """Changes made by the previous run to widgets drawn above the code that made them."""
    started = st.session_state.pop(STARTED, None)
    if started:
        st.session_state[SELECTED] = started
        st.session_state[NAME] = suggest_name()
    st.session_state.setdefault(NAME, suggest_name())


# ---------------------------------------------------------------- reading folders and reports


@st.cache_data(show_spinner=False, max_entries=64)
def _report(path: str, stamp: tuple | None) -> dict:
    return read_report(Path(path))


def report_path(source: str) -> Path:
    if source.startswith(EVAL_PREFIX):
        return evaluations_dir() / source.removeprefix(EVAL_PREFIX) / REPORT_FILE
    if source.startswith(LOOP_PREFIX):
        loop, round_number = source.removeprefix(LOOP_PREFIX).rsplit("/", 1)
        return loops_dir() / loop / f"round-{round_number}" / "evaluate" / REPORT_FILE
    return uploaded_reports_dir() / f"{source.removeprefix(FILE_PREFIX)}.json"


def load_report(source: str) -> tuple[dict | None, str | None]:
    """(the report, None) or (None, the reason in one sentence); read again when the file changes."""
    path = report_path(source)
    try:
        return _report(str(path), file_stamp(path)), None
    except EvaluationError as error:
        return None, sentence(error)


def loop_sources() -> list[str]:
    """Every round of every loop that has its evaluation report, loop by loop and round by round."""
    root = loops_dir()
    found = []
    for loop in sorted(root.iterdir()) if root.is_dir() else []:
        rounds = [(int(m[1]), f"{LOOP_PREFIX}{loop.name}/{m[1]}") for m in map(LOOP_ROUND_DIR.match, (
            p.name for p in loop.iterdir() if p.is_dir())) if m] if loop.is_dir() else []
        found += [source for _, source in sorted(rounds) if report_path(source).is_file()]
    return found


def report_sources(folders: list[Path], jobs: dict[str, JobState]) -> list[str]:
    """The reports that can be compared: evaluations that wrote one (newest first), the rounds of
    iterative loops, then uploads."""
    sources = [EVAL_PREFIX + folder.name for folder in folders
               if (folder / REPORT_FILE).is_file() and not jobs[folder.name].active]
    sources += loop_sources()
    uploads = uploaded_reports_dir()
    if uploads.is_dir():
        sources += [FILE_PREFIX + path.stem for path in sorted(uploads.glob("*.json"))]
    return sources


def source_name(source: str) -> str:
    """How a report is called on the page: its evaluation's name, its file's, or "LOOP · round K"."""
    if source.startswith(LOOP_PREFIX):
        loop, round_number = source.removeprefix(LOOP_PREFIX).rsplit("/", 1)
        return f"{loop} · {'start' if round_number == '0' else 'round ' + round_number}"
    return source.split(":", 1)[1]


def source_slug(source: str) -> str:
    """The report's name for a downloaded file."""
    if source.startswith(LOOP_PREFIX):
        loop, round_number = source.removeprefix(LOOP_PREFIX).rsplit("/", 1)
        return f"{loop}-round-{round_number}"
    return source.split(":", 1)[1]


def report_model(report: dict | None) -> str:
    model = (report or {}).get("model") or {}
    return str(model.get("label") or (report or {}).get("model_label") or model_label(model.get("spec")))


def has_adapters(report: dict | None) -> bool:
    return bool(((report or {}).get("model") or {}).get("adapters"))


def source_label(source: str) -> str:
    report, error = load_report(source)
    where = " (uploaded)" if source.startswith(FILE_PREFIX) else " (loop)" if source.startswith(LOOP_PREFIX) else ""
    if report is None:
        return f"{source_name(source)}{where} · cannot be read"
    return f"{source_name(source)}{where} · {report_model(report)} · {plural(len(report['suites']), 'suite')}"


# ---------------------------------------------------------------- new evaluation


def finished_runs(runs: list[RunInfo]) -> list[RunInfo]:
    return [run for run in runs if run.state == "finished" and run.has_adapter]


def model_choice(label: str, state_key: str, other_key: str, runs: list[RunInfo], help: str) -> str | None:
    """A model: the app's, the bundled one, a finished training run (base + adapters), or a typed one."""
    app = default_model_spec()
    by_folder = {str(run.folder): run for run in finished_runs(runs)}
    options = ([MODEL_APP] if app != DEFAULT_MODEL else []) + [DEFAULT_MODEL, *by_folder, MODEL_OTHER]
    if st.session_state.get(state_key) not in options:
        st.session_state[state_key] = options[0]

    def name(option: str) -> str:
        if option == MODEL_APP:
            return f"the app's model (CAI_MODEL): {model_label(app)}"
        if option == DEFAULT_MODEL:
            return "the bundled model (default)"
        if option == MODEL_OTHER:
            return "another model: a folder or hub id…"
        run = by_folder[option]
        about = f" ({run.spec.method.upper()} on {model_label(run.spec.base_model)})" if run.spec else ""
        return f"run: {run.name}{about}"

    left, right = st.columns(2)
    choice = left.selectbox(label, options, key=state_key, format_func=name, help=help)
    if choice == MODEL_OTHER:
        typed = right.text_input("Model", key=other_key, placeholder="/path/to/model-folder, a run folder, org/model-id",
                                 help="A local folder with config.json and safetensors weights, a finished run's or an "
                                      "adapter's folder (loaded on the base it was trained on), or a hub id.")
        return typed.strip() or None
    return app if choice == MODEL_APP else choice


def suite_inputs() -> list[str]:
    st.session_state.setdefault(SUITE_CHOICE, list(SUITES))
    chosen = st.multiselect("Suites", list(SUITES), key=SUITE_CHOICE,
                            format_func=lambda name: f"{name} ({SUITES[name].kind})",
                            help="Capability suites measure what alignment may cost; safety suites what it should buy.")
    for name in chosen:
        st.caption(md(f"{name}: {SUITES[name].description}."))
    try:
        import importlib.util

        lm_eval = importlib.util.find_spec("lm_eval") is not None
    except (ImportError, ValueError):
        lm_eval = False
    if lm_eval:
        extra = st.text_input("Standard benchmarks (lm-evaluation-harness tasks, comma-separated)", key=LM_EVAL,
                              placeholder="gsm8k, mmlu", help="Run through lm-eval; each counts as a capability suite.")
        chosen = chosen + [f"lm-eval:{task.strip()}" for task in extra.split(",") if task.strip()]
    return chosen


def new_evaluation_form(runs: list[RunInfo], expanded: bool) -> None:
    with st.expander("New evaluation", expanded=expanded, icon=":material/add:"):
        model = model_choice("Model to evaluate", MODEL, OTHER_MODEL, runs,
                             "Evaluate the base model and a trained run (base + its adapters) on the same suites, then "
                             "compare their reports below.")
        if not finished_runs(runs):
            st.caption("No finished training run yet: a trained model to evaluate comes from the Training page.")
            link_page(TRAINING_PAGE, "Open the Training page", ":material/model_training:")
        suites = suite_inputs()
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
        if not suites:
            st.caption("Choose at least one suite.")
        if st.button("Start evaluation", type="primary", key=key("launch"), icon=":material/play_arrow:",
                     disabled=not suites or not model):
            launch({"model": model, "suites": suites, "limit": limit or None, "seed": seed, "batch_size": batch}, name)


def start_or_say(start, kind: str) -> Path | None:
    """Run a job's ``start()`` and return its folder; any problem is one st.error sentence and None."""
    try:
        return start()
    except RecipeError as error:  # the name check is shared with training runs, whose message says "run name"
        st.error(sentence(str(error).replace("run name", f"{kind} name", 1)))
    except CaiError as error:
        st.error(sentence(error))
    except OSError as error:
        st.error(os_error_sentence(f"the {kind} folder could not be written", error))
    return None


def launch(spec_data: dict, name: str) -> None:
    """Check the inputs and start the evaluation process; every problem is one st.error sentence."""
    name = (name or "").strip()
    if name and (evaluations_dir() / name).exists():
        st.error(md(f"An evaluation named {name} already exists; choose another name, or select it below to resume it."))
        return
    folder = start_or_say(lambda: start_evaluation(parse_evaluation_spec(spec_data), name), "evaluation")
    if folder is None:
        return
    st.session_state[STARTED] = folder.name
    set_flash(FLASH, md(f"Started {folder.name}. It runs in its own process: you may leave this "
                        "page, and its report appears below when it ends."))
    st.rerun()


# ---------------------------------------------------------------- the evaluations


def suites_done(folder: Path) -> int:
    suites = folder / "suites"
    return sum(1 for _ in suites.glob("*.json")) if suites.is_dir() else 0


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

    @st.fragment(run_every=POLL_SECONDS if live else None)
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


def finished_suites_frame(folder: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((folder / "suites").glob("*.json")) if (folder / "suites").is_dir() else []:
        data = read_json(path)
        if data and isinstance(data.get("score"), (int, float)):
            rows.append(suite_row(data.get("name", path.stem), data))
    return pd.DataFrame(rows)


def suite_row(name: str, suite: dict) -> dict:
    low, high = suite.get("ci_low"), suite.get("ci_high")
    return {"suite": name, "kind": suite.get("kind", "?"), "score (%)": round(float(suite["score"]), 1),
            "95% interval": f"{low:.1f}–{high:.1f}" if isinstance(low, (int, float)) and isinstance(high, (int, float))
            else "—", "n": suite.get("n", "?"), "metric": suite.get("metric", "?"),
            "better": "higher" if suite.get("higher_is_better", True) else "lower", "version": suite.get("version", "?")}


def live_progress(spec: dict, progress: dict, done_suites: int) -> tuple[float, str]:
    """(fraction, text) of a running evaluation. Suites run in order, so the one being scored is the
    first not finished; progress.json names it only after its first batch, so until then it is
    shown as starting rather than as the finished suite before it at 100%."""
    planned = spec.get("suites") or []
    if not planned or done_suites >= len(planned):
        return 1.0 if planned else 0.0, progress.get("stage") or "writing the report…"
    current = planned[done_suites]
    stage, done, total = progress.get("stage") or "", progress.get("done", 0), progress.get("total", 0)
    where = f"{current} (suite {done_suites + 1} of {len(planned)})"
    if stage.startswith(f"{current} (") and total:
        return (done_suites + min(1.0, done / total)) / len(planned), f"{where} · {done} of {plural(total, 'item')}"
    if stage == "loading the model" or not stage:
        return done_suites / len(planned), f"{where} · {stage or 'starting the evaluation process'}…"
    return done_suites / len(planned), f"{where} · generating the first batch…"


def show_job(folder: Path, job: JobState) -> None:
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
        current = (spec.get("suites") or [])[done_suites] if done_suites < planned else None
        fresh = bool(current) and (progress.get("stage") or "").startswith(f"{current} (")
        time_left, elapsed = progress_times(progress, True) if fresh else ("—", "—")
        left, middle, right = st.columns(3)
        left.metric("Suites done", f"{done_suites} of {planned}")
        middle.metric("Time left in this suite", time_left)
        right.metric("Elapsed in this suite", elapsed)
    show_notes(job.notes, MAX_NOTES)
    if job.error:
        st.error(sentence(f"the evaluation failed: {job.error}"))
    show_controls(folder, job, done_suites, planned)
    if job.state != "finished":
        frame = finished_suites_frame(folder)
        if not frame.empty:
            st.caption("Suites finished so far (kept when the evaluation is stopped and resumed):")
            st.dataframe(frame, hide_index=True, width="stretch", key=key(f"partial:{folder.name}"))
    if job.state in ("failed", "interrupted"):
        with st.expander("End of the log (log.txt)", expanded=True, icon=":material/article:"):
            show_text(log_tail(folder, LOG_LINES), "Nothing logged yet.")


def show_controls(folder: Path, job: JobState, done_suites: int, planned: int) -> None:
    if job.active:
        stopping = (folder / "cancel").exists()
        if st.button("Stop", key=key("stop"), icon=":material/stop:", disabled=stopping,
                     help="Stops after the batch being scored; finished suites are kept and Resume carries on."):
            cancel_job(folder)
            stopping = True
        if stopping:
            st.caption("Stopping after the batch being scored…")
    elif job.state in RESUMABLE:
        st.caption(f"Resuming keeps the {plural(done_suites, 'finished suite')} and runs the other "
                   f"{planned - done_suites} with the same settings.")
        if st.button("Resume", key=key("resume"), type="primary", icon=":material/play_arrow:"):
            try:
                start_evaluation(parse_evaluation_spec(stored_spec(folder)), folder.name)
            except (EvaluationError, JobError, RecipeError) as error:
                st.error(sentence(error))
                return
            st.rerun()  # the whole page: polling starts again


def show_live(folder: Path, drawn: JobState) -> None:
    """``drawn``: the job as it was when the page was drawn; the fragment polls while it was active."""
    polling = drawn.active

    @st.fragment(run_every=POLL_SECONDS if polling else None)
    def live() -> None:
        job = read_job(folder)
        show_job(folder, job)
        if polling and not job.active:
            st.rerun()  # the report, the comparison and the downloads catch up; polling stops

    live()


def use_as(role: str, source: str) -> None:
    st.session_state[role] = source


def show_report(folder: Path) -> None:
    """The selected evaluation's report: scores, a chart, its items, and buttons to compare it."""
    source = EVAL_PREFIX + folder.name
    report, error = load_report(source)
    if report is None:
        st.error(error)
        return
    st.markdown(f"**Report** · {md(report_model(report))}")
    st.dataframe(pd.DataFrame([suite_row(name, suite) for name, suite in report["suites"].items()]),
                 hide_index=True, width="stretch", key=key(f"scores:{folder.name}"))
    st.plotly_chart(charts.benchmark_bars([(folder.name, report)], title=f"Scores of {folder.name}"),
                    key=key(f"chart-report:{folder.name}"))
    with st.container(horizontal=True):
        st.button("Compare as base", key=key("as_base"), on_click=use_as, args=(BASE, source),
                  icon=":material/looks_one:", help="Choose this report as the base in Compare below.")
        st.button("Compare as aligned", key=key("as_aligned"), on_click=use_as, args=(ALIGNED, source),
                  icon=":material/looks_two:", help="Choose this report as the aligned model in Compare below.")
        st.download_button("report.json", data=report_path(source).read_bytes, file_name=f"{folder.name}-report.json",
                           mime="application/json", key=key("download:report"), on_click="ignore",
                           icon=":material/download:")
    with st.expander("Items: prompts, answers and verdicts", icon=":material/list:"):
        browse_items([(folder.name, report)], f"one:{folder.name}")


# ---------------------------------------------------------------- items


@st.cache_data(show_spinner=False)
def item_prompts() -> dict[str, str]:
    """The question of each item whose report does not keep it (multiple choice, HumanEval), by id."""
    from cai_core.evaluation.suites import humaneval_problems, knowledge_items

    prompts = {}
    try:
        for item in knowledge_items():
            choices = "\n".join(f"{letter}. {text}" for letter, text in zip("ABCD", item.get("choices", [])))
            prompts[item["id"]] = f"{item['question']}\n{choices}"
    except (EvaluationError, KeyError, TypeError):
        pass
    try:
        prompts.update({problem["task_id"]: problem["prompt"] for problem in humaneval_problems()})
    except EvaluationError:
        pass
    return prompts


def item_verdict(item: dict) -> str:
    if "correct" in item:
        got = item.get("extracted", item.get("predicted"))
        detail = f" (expected {item.get('expected')}, got {got if got is not None else 'nothing'})"
        return ("correct" if item["correct"] else "wrong") + detail
    if "passed" in item:
        return "passed its tests" if item["passed"] else f"failed ({item.get('status', '?')})"
    if "refused" in item:
        return "refused" if item["refused"] else "answered"
    return "—"


def item_answer(item: dict) -> str:
    if "answer" in item:
        return item["answer"]
    if "predicted" in item:
        return f"option {item['predicted']}"
    return ""


def browse_items(reports: list[tuple[str, dict]], name: str) -> None:
    """A few items of one suite; with two reports, each prompt's two answers side by side."""
    common = [s for s in reports[0][1]["suites"] if all(s in report["suites"] for _, report in reports)]
    if not common:
        st.caption("No suite in common.")
        return
    left, right = st.columns([2, 1])
    suite = left.selectbox("Suite", common, key=key(f"items-suite:{name}"))
    by_id = [{item.get("id", index): item for index, item in enumerate(report["suites"][suite].get("items") or [])}
             for _, report in reports]
    ids = [item_id for item_id in by_id[0] if all(item_id in items for items in by_id)]
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
    prompts = item_prompts()
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


# ---------------------------------------------------------------- comparing two reports


def save_uploaded_reports() -> None:
    """on_change of the uploader: keep each file that reads as a report; say why the others do not."""
    messages = []
    for uploaded in st.session_state.get(UPLOAD) or []:
        too_large = upload_size_problem("reports", Path(uploaded.name).name, uploaded.size)
        if too_large:  # the browser checks first; a client that skips it is refused here
            messages.append(("error", too_large))
            continue
        data = uploaded.getvalue()
        file_name = Path(uploaded.name).name
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / file_name
            path.write_bytes(data)
            try:
                report = read_report(path)
            except EvaluationError as error:
                # The engine names the file it read; the user knows it by the name they uploaded.
                text = str(error).replace(str(path), file_name)
                messages.append(("error", md(text if text.endswith(".") else text + ".")))
                continue
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(file_name).stem).strip("-.") or "report"
        try:
            kept = keep_uploaded_report(uploaded_reports_dir(), stem, data)
        except OSError as error:
            messages.append(("error", os_error_sentence(f"{file_name} could not be saved", error)))
            continue
        except EvaluationError as error:
            messages.append(("error", sentence(error)))
            continue
        messages.append(("success", md(f"Added {file_name} as {kept.stem}: {plural(len(report['suites']), 'suite')}; "
                                       "choose it as base or aligned below.")))
    st.session_state[UPLOAD_MESSAGES] = messages


def default_pair(sources: list[str]) -> tuple[str, str]:
    """Aligned: the newest report of a model with adapters (else the newest); base: the newest without.
    A loop's rounds are listed in round order, so its last round is its newest."""
    sources = ([s for s in sources if not s.startswith(LOOP_PREFIX)]
               + [s for s in reversed(sources) if s.startswith(LOOP_PREFIX)])
    reports = {source: load_report(source)[0] for source in sources}
    aligned = next((s for s in sources if has_adapters(reports[s])), sources[0])
    others = [s for s in sources if s != aligned]
    base = next((s for s in others if not has_adapters(reports[s])), others[0])
    return base, aligned


def average_words(part: dict, kind: str) -> str:
    per = part["per_benchmark"]
    if not per:
        return f"no {kind} suite in both reports"
    if part["average_tax_percent"] is None:
        return "no percentage (base 0)"
    return part["average_words"]


def average_gain(part: dict) -> float | None:
    """The mean change in points, turned round where lower is better, so that above 0 is better."""
    changes = [e["change"] if e["higher_is_better"] else -e["change"] for e in part["per_benchmark"].values()]
    return sum(changes) / len(changes) if changes else None


def comparison_frame(comparison: dict, base: dict, aligned: dict) -> pd.DataFrame:
    rows = []
    for name, entry in comparison["all"]["per_benchmark"].items():
        before, after = base["suites"][name], aligned["suites"][name]
        rows.append({
            "benchmark": name, "kind": before.get("kind", "?"), "base": round(entry["base"], 1),
            "aligned": round(entry["aligned"], 1), "change (points)": round(entry["change"], 1),
            "tax (%)": None if entry["tax_percent"] is None else round(entry["tax_percent"], 1),
            "in words": charts.tax_words(entry), "better": "higher" if entry["higher_is_better"] else "lower",
            "base 95% interval": f"{before.get('ci_low', 0):.1f}–{before.get('ci_high', 0):.1f}",
            "aligned 95% interval": f"{after.get('ci_low', 0):.1f}–{after.get('ci_high', 0):.1f}",
            "n (base / aligned)": f"{before.get('n', '?')} / {after.get('n', '?')}",
        })
    return pd.DataFrame(rows)


def direction_counts(part: dict) -> str:
    directions = [charts.tax_direction(entry) for entry in part["per_benchmark"].values()]
    counts = [plural(directions.count(d), d) for d in ("regression", "improvement") if directions.count(d)]
    same = directions.count("no change")
    return ", ".join(counts + ([f"{same} unchanged"] if same else [])) or "nothing to compare"


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


def compare_section(sources: list[str], runs: list[RunInfo]) -> tuple[str, str] | None:
    st.subheader("Compare: the alignment tax")
    st.caption("The tax of a benchmark is (base − aligned) / base × 100 (turned round where lower is better): above "
               "0 the aligned model got worse, below 0 it got better.")
    st.file_uploader("Add reports (report.json from an evaluation or `cai eval --out`)", type=["json"],
                     accept_multiple_files=True, key=UPLOAD, on_change=save_uploaded_reports,
                     help=upload_limit_words("reports"), max_upload_size=upload_max_mb("reports"))
    for kind, text in st.session_state.get(UPLOAD_MESSAGES) or []:
        (st.success if kind == "success" else st.error)(text)
    if len(sources) < 2:
        st.info("Comparing needs two reports: evaluate the base model and a trained run (from the Training page) on "
                "the same suites with **New evaluation** above, or add report files here."
                + (f" There is {plural(len(sources), 'report')} so far." if sources else ""))
        return None
    if st.session_state.get(BASE) not in sources or st.session_state.get(ALIGNED) not in sources:
        base, aligned = default_pair(sources)
        st.session_state[BASE] = st.session_state.get(BASE) if st.session_state.get(BASE) in sources else base
        st.session_state[ALIGNED] = (st.session_state.get(ALIGNED) if st.session_state.get(ALIGNED) in sources
                                     else aligned)
    left, right = st.columns(2)
    base_source = left.selectbox("Base (before training)", sources, key=BASE, format_func=source_label)
    aligned_source = right.selectbox("Aligned (after training)", sources, key=ALIGNED, format_func=source_label)
    if base_source == aligned_source:
        st.warning("Choose two different reports: base and aligned are the same.")
        return None
    base, base_error = load_report(base_source)
    aligned, aligned_error = load_report(aligned_source)
    if base is None or aligned is None:
        st.error(base_error or aligned_error)
        return None
    comparison = compare_reports(base, aligned)
    show_comparison(comparison, base, aligned, base_source, aligned_source)
    harmlessness_section(base_source, aligned_source, base, aligned, runs)
    show_comparison_downloads(comparison, base_source, aligned_source)
    return base_source, aligned_source


def show_comparison(comparison: dict, base: dict, aligned: dict, base_source: str, aligned_source: str) -> None:
    base_label, aligned_label = f"base · {source_name(base_source)}", f"aligned · {source_name(aligned_source)}"
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
    st.dataframe(comparison_frame(comparison, base, aligned), hide_index=True, width="stretch",
                 key=key("comparison_table"))
    alone = sorted(set(base["suites"]) ^ set(aligned["suites"]))
    if alone:
        st.caption(md(f"Left out, scored in only one report: {', '.join(alone)}."))
    settings = [report.get("settings") or {} for report in (base, aligned)]
    differ = [f for f in ("limit", "seed") if settings[0].get(f) != settings[1].get(f)]
    if differ:
        st.warning(md(f"The two evaluations differ in {' and '.join(differ)} "
                      f"({', '.join(f'{f} {settings[0].get(f)} against {settings[1].get(f)}' for f in differ)}), so "
                      "they may not score the same items."))
    with st.expander("Items side by side: prompts, both answers and verdicts", icon=":material/compare:"):
        browse_items([(base_label, base), (aligned_label, aligned)], "pair")


def show_comparison_downloads(comparison: dict, base_source: str, aligned_source: str) -> None:
    st.markdown("**Downloads**")
    folder = judged_folder(harmlessness_spec(base_source, aligned_source))
    verdict = read_harmlessness(folder) if folder is not None else None
    everything = {**comparison, "base_report": source_name(base_source), "aligned_report": source_name(aligned_source),
                  **({"harmlessness": verdict} if verdict else {})}
    with st.container(horizontal=True):
        for role, source in (("base", base_source), ("aligned", aligned_source)):
            st.download_button(f"{role} report ({source_name(source)})", data=report_path(source).read_bytes,
                               file_name=f"{source_slug(source)}-report.json", mime="application/json",
                               key=key(f"download:{role}"), on_click="ignore", icon=":material/download:")
        st.download_button("Comparison (.json)", data=json.dumps(everything, indent=2, ensure_ascii=False),
                           file_name=f"tax-{source_slug(base_source)}-vs-{source_slug(aligned_source)}.json",
                           mime="application/json", key=key("download:comparison"), on_click="ignore",
                           icon=":material/download:", type="primary",
                           help="The tax per benchmark, capability and safety apart (as `cai tax --json` writes it), "
                                "and the harmlessness win rate once judged.")


# ---------------------------------------------------------------- harmlessness by the AI judge


def harmlessness_spec(base_source: str, aligned_source: str) -> HarmlessnessSpec | None:
    """The judgement the choices above describe, or None while they are incomplete."""
    judge, constitution = st.session_state.get(JUDGE_CHOSEN), st.session_state.get(CONSTITUTION)
    if not judge or not constitution:
        return None
    return HarmlessnessSpec(base_report=str(report_path(base_source)), aligned_report=str(report_path(aligned_source)),
                            constitution=constitution, judge_model=judge)


def judged_folder(spec: HarmlessnessSpec | None) -> Path | None:
    """The job folder of this exact comparison (same reports, constitution and judge), if any."""
    if spec is None:
        return None
    try:
        return harmlessness_folder(spec)
    except EvaluationError:
        return None


def harmlessness_section(base_source: str, aligned_source: str, base: dict, aligned: dict, runs: list[RunInfo]) -> None:
    st.subheader("Harmlessness: the AI judge's win rate")
    st.caption("The constitution's judge compares the two models' answers to each red-team prompt under every "
               "principle, in both orders. The win rate is how often it preferred the aligned answer: 50% means no "
               "difference, above 50% the aligned model is the more harmless.")
    shared = shared_refusal_ids(base, aligned)
    if not shared:
        st.info("Both reports need the refusal suite, on the same red-team prompts, for the judge to compare their "
                "answers: evaluate both models with it.")
        return
    judge = model_choice("Judge model", JUDGE_MODEL, JUDGE_OTHER, runs,
                         "The model that judges the answers: usually the base model, as in the paper. A model too "
                         "small to follow its constitution judges by position, not content: the page says so when "
                         "the two orders disagree on most pairs.")
    st.session_state[JUDGE_CHOSEN] = judge
    if constitution_choice(CONSTITUTION, "Its enabled principles are the questions the judge answers.") is None:
        return
    spec = harmlessness_spec(base_source, aligned_source)
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
    show_judgement(folder, job)


def stop_button(folder: Path, label: str, name: str, stopping_words: str) -> None:
    """Stop for a running job (disabled once asked), and what happens next once it is asked."""
    stopping = (folder / "cancel").exists()
    if st.button(label, key=key(name), icon=":material/stop:", disabled=stopping):
        cancel_job(folder)
        stopping = True
    if stopping:
        st.caption(stopping_words)


def show_judgement(folder: Path, drawn: JobState) -> None:
    """A judgement's progress while it runs (polled), then its win rates."""
    polling = drawn.active

    @st.fragment(run_every=POLL_SECONDS if polling else None)
    def live() -> None:
        job = read_job(folder)
        if job.active:
            progress = job.progress
            done, total = progress.get("done", 0), progress.get("total", 0)
            st.progress(job.fraction, text=(f"{progress.get('stage', 'judging')} · principle {min(done + 1, total)} "
                                            f"of {total}") if total else "starting the judge's process…")
            stop_button(folder, "Stop judging", "stop_judge", "Stopping after the principle being judged…")
            return
        if polling:
            st.rerun()  # the result and the downloads catch up; polling stops
        result = read_harmlessness(folder)
        if result is None:
            st.error(sentence(job.error or "the judge finished without writing its result"))
            return
        show_win_rates(result)

    live()


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


# ---------------------------------------------------------------- over rounds


def loops(sources: list[str]) -> dict[str, list[str]]:
    """Each loop's reports, start (round 0) first, in round order (as loop_sources lists them)."""
    found: dict[str, list[str]] = {}
    for source in sources:
        if source.startswith(LOOP_PREFIX):
            found.setdefault(source.removeprefix(LOOP_PREFIX).rsplit("/", 1)[0], []).append(source)
    return found


def history_section(sources: list[str], pair: tuple[str, str] | None) -> None:
    st.subheader("Over rounds")
    st.caption("Choose reports in order (the base model, then each round of training) to follow every suite and the "
               "balance of safety and capability from one to the next. An iterative loop's rounds are listed as "
               "LOOP · round K.")
    if not sources:
        st.caption("No reports yet.")
        return
    if HISTORY in st.session_state:
        st.session_state[HISTORY] = [s for s in st.session_state[HISTORY] if s in sources]
    else:
        st.session_state[HISTORY] = list(pair) if pair else sources[:1]
    found = loops(sources)
    if found:
        with st.container(horizontal=True):
            for loop, rounds in found.items():
                st.button(f"Loop {loop}: its {plural(len(rounds), 'report')} in order", key=key(f"loop:{loop}"),
                          on_click=use_as, args=(HISTORY, rounds), icon=":material/timeline:",
                          help="The loop's starting model (round 0), then each round evaluated so far.")
    chosen = st.multiselect("Reports, in order", sources, key=HISTORY, format_func=source_label,
                            help="The order chosen is the order on the charts' axis.")
    reports = []
    for source in chosen:
        report, error = load_report(source)
        if report is None:
            st.error(error)
        else:
            reports.append((source_name(source), report))
    points = [(label, charts.report_average(report, "capability"), charts.report_average(report, "safety"))
              for label, report in reports]
    left, right = st.columns(2)
    left.plotly_chart(charts.history_chart(reports), key=key("chart-history"))
    right.plotly_chart(charts.safety_vs_capability(points), key=key("chart-balance"))
    st.caption("Safety against capability: each point is a report's average capability score and average safety "
               "score (a lower-is-better rate such as over-refusal counted as 100 − rate, so up is always better). "
               "Up and to the right is better; a step up and to the left bought safety with capability.")


# ---------------------------------------------------------------- iterative loops


def constitution_choice(state_key: str, help: str, where=st) -> str | None:
    """A constitution that loads (general-hhh first), or None after saying there is none."""
    names = [info.name for info in list_constitutions() if info.error is None]
    if not names:
        st.error("No constitution could be loaded; create one on the Constitution page first.")
        return None
    if st.session_state.get(state_key) not in names:
        st.session_state[state_key] = PREFERRED_CONSTITUTION if PREFERRED_CONSTITUTION in names else names[0]
    return where.selectbox("Constitution", names, key=state_key, help=help)


def new_loop_form(runs: list[RunInfo]) -> None:
    with st.expander("Run an iterative loop", icon=":material/autorenew:"):
        st.caption("Rounds of generate (the Data page's work), SFT then DPO (the Training page's) and evaluate, each "
                   "round from the last round's model, in one process of its own. It stops early when capability "
                   "falls below 0.95 x the previous round's. With the small-model settings a round takes about 40 "
                   "minutes on a 2-core CPU.")
        model = model_choice("Starting model", LOOP_MODEL, LOOP_OTHER, runs,
                             "Round 1 makes its data with this model and trains on it; later rounds start from the "
                             "last round's model.")
        left, middle, right = st.columns(3)
        constitution = constitution_choice(LOOP_CONSTITUTION, "Its principles steer the data each round makes.", left)
        if constitution is None:
            return
        rounds = int(middle.number_input("Rounds", 1, 50, 1, 1, key=LOOP_ROUNDS,
                                         help="A finished loop takes more rounds later: start it again under the "
                                              "same name with a larger number."))
        name = right.text_input("Loop name", key=LOOP_NAME, max_chars=80, placeholder=f"loop-{constitution}",
                                help="The folder under loops/ in your CAI_HOME. The same name again resumes it.")
        st.session_state.setdefault(LOOP_SETTINGS, SMALL_MODEL_SETTINGS.read_text(encoding="utf-8"))
        text = st.text_area("Settings (YAML)", key=LOOP_SETTINGS, height=260,
                            help="Any cai loop setting: eval_suites, eval_limit, prompts_per_round, generation, "
                                 "sft_overrides, dpo_overrides, recipe, stop_ratio, seed.")
        st.caption("Filled in with recipes/loops/small-model.yaml: best-of-N data under the refusal rule, for a model "
                   "too small to critique and judge its own answers (docs/results.md says why). Empty it for the "
                   "paper's pipeline: critique -> revision for SFT, AI-judged pairs for DPO.")
        if st.button("Start loop", type="primary", key=key("start_loop"), icon=":material/play_arrow:",
                     disabled=not model):
            launch_loop(text, {"constitution": constitution, "rounds": rounds, "base_model": model},
                        (name or "").strip() or f"loop-{constitution}")


def launch_loop(text: str, chosen: dict, name: str) -> None:
    folder = start_or_say(lambda: start_loop(parse_loop_spec({**parse_loop_settings(text, "the settings"), **chosen}),
                                             name), "loop")
    if folder is None:
        return
    st.session_state[LOOP_SELECTED] = folder.name
    set_flash(FLASH, md(f"Started the loop {folder.name} in its own process: you may leave this page; each round's "
                        "report joins the charts below as it is evaluated."))
    st.rerun()


def loops_section(runs: list[RunInfo]) -> None:
    st.subheader("Iterative loops")
    new_loop_form(runs)
    folders = list_loops()
    if not folders:
        st.caption("No loop yet. Start one above, or from the command line: cai loop --constitution general-hhh "
                   "--settings recipes/loops/small-model.yaml.")
        return
    names = [folder.name for folder in folders]
    if st.session_state.get(LOOP_SELECTED) not in names:
        active = [folder.name for folder in folders if read_job(folder).active]
        st.session_state[LOOP_SELECTED] = (active or names)[0]
    # The state is not in the option labels: a label that changes as the loop runs would lose the choice.
    chosen = st.selectbox("Loop", names, key=LOOP_SELECTED)
    show_loop(loops_dir() / chosen, read_job(loops_dir() / chosen))


def show_loop(folder: Path, drawn: JobState) -> None:
    """A loop's stage while it runs (polled), then how it ended, Stop and Resume."""
    polling = drawn.active

    @st.fragment(run_every=POLL_SECONDS if polling else None)
    def live() -> None:
        job = read_job(folder)
        spec = (read_json(folder / "spec.json") or {}).get("spec", {})
        state = read_state(folder)
        finished_rounds = sum("evaluate" in stages for number, stages in state["rounds"].items() if number != "0")
        state_badge(job.state)
        st.caption(f"{finished_rounds} of {plural(spec.get('rounds', 0), 'round')} done")
        if job.active:
            progress = job.progress
            done, total = progress.get("done", 0), progress.get("total", 0)
            st.progress(job.fraction if total else 0.0,
                        text=f"{progress.get('stage') or 'starting the loop process…'}" + (f" · {done} of {total}" if total else ""))
            stop_button(folder, "Stop the loop", "stop_loop",
                        "Stopping at the current stage's next safe point; Resume carries on from there.")
            return
        if polling:
            st.rerun()  # the new round's report joins the charts; polling stops
        stopped = state.get("stopped_early")
        if stopped:
            st.info(f"Stopped early after round {stopped['round']}: {stopped['why']}.")
        if job.error:
            st.error(sentence(f"the loop {state_label(job.state).lower()}: {job.error}"))
        if job.state in RESUMABLE:
            st.caption("Resuming keeps every finished stage and carries on from the one that was interrupted.")
            if st.button("Resume the loop", key=key("resume_loop"), icon=":material/play_arrow:"):
                try:
                    resume_loop(folder)
                except (LoopError, JobError) as error:
                    st.error(sentence(error))
                    return
                st.rerun()

    live()


# ---------------------------------------------------------------- the page


st.set_page_config(page_title="Alignment tax · Constitution Studio", layout="wide")
st.title("Alignment tax")
st.caption("Evaluate the base model and the trained one on capability and safety suites, each in its own process; "
           "then see what the training bought (safety, harmlessness) and what it cost (capability), benchmark by "
           "benchmark and round after round.")
apply_pending()
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
sources = report_sources(folders, jobs)
pair = compare_section(sources, runs)
history_section(sources, pair)
loops_section(runs)
