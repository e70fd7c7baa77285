"""The Playground's "Test the constitution" mode: every test example of one constitution, answered by
two models side by side, then a scorecard per principle.

Layout and widgets only. Each model is a ``principles`` evaluation in its own process
(cai_core.evaluation.constitution_test); this mode starts both, polls them with the shared job
panel and, once both reports are written, draws the scorecard from them. A test is two evaluation
folders, so a finished one is here again in a later session, and on the Alignment tax page.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from cai_core import charts
from cai_core.constitution import ConstitutionError
from cai_core.evaluation import EvaluationError, parse_evaluation_spec, start_evaluation
from cai_core.evaluation.constitution_test import (SIDES, ConstitutionTest, list_constitution_tests, read_test_reports,
                                                   scorecard, start_constitution_test, uses_rubric)
from cai_core.evaluation.principles import scored_examples
from cai_core.evaluation.progress import live_progress, suites_done
from cai_core.evaluation.reports import report_model
from cai_core.jobs import FINISHED, JobState, read_job
from cai_core.models import DEFAULT_MODEL, ModelLoadError, default_model_spec
from cai_core.roles import check_models_fit
from cai_core.store import load_constitution
from cai_core.training import RunInfo, list_runs, model_label
from cai_core.training.runs import run_model_problem
from ui.common import md, page_key, plural, sentence, set_flash, show_flash, state_badge, stored_spec
from ui.jobs import job_panel, start_or_say
from ui.pickers import OTHER_MODEL, constitution_picker, finished_runs, model_picker
from ui.trace_view import show_model_text


def key(name: str) -> str:
    return page_key("playground", f"test-{name}")


CONSTITUTION, SELECTED, FLASH, JUDGE, JUDGE_OTHER = (key("constitution"), key("selected"), key("flash"), key("judge"),
                                                     key("judge-other"))
NO_JUDGE = ":no-judge"
MODEL_HELP = ("The app's model, the bundled one, a finished training run (its adapter on the model it was trained "
              "from), or another: a folder, a hub id or an endpoint URL.")


def show_constitution_test(names: list[str]) -> None:
    st.caption("Every test example of a constitution, answered by two models (say the base model and a trained run), "
               "each in its own process; then each principle's pass rate for both, and every answer with its verdict.")
    show_flash(FLASH)
    new_test_form(names, list_runs())
    test = test_selector(list_constitution_tests())
    if test is not None:
        show_test(test)


# ---------------------------------------------------------------- starting a test


def new_test_form(names: list[str], runs: list[RunInfo]) -> None:
    name = constitution_picker(CONSTITUTION, "Its enabled principles' test examples are asked.", names=names)
    if name is None:
        return
    try:
        constitution = load_constitution(name)
    except ConstitutionError as error:
        st.error(sentence(error))
        return
    cases = scored_examples(constitution)
    if not cases:
        st.info(md(f"The constitution {name} has no test examples on its enabled principles yet. Add examples "
                   "to them on the Constitution page (each a prompt and what a good answer does, such as refuses, "
                   "answers or not-icontains), or choose a shipped constitution, which has them."))
        return
    tested = {principle for principle, _, _ in cases}
    st.caption(f"{plural(len(cases), 'test example')} across {plural(len(tested), 'principle')}: the 1st, 3rd, 5th… "
               "example of each principle. The others are the training half, which a loop may learn from, so they "
               "are never scored here.")
    untested = [p.name for p in constitution.enabled_principles if p.name not in tested]
    if untested:
        st.caption(md(f"Without a test example, so without a score: {', '.join(untested)}."))
    models = model_inputs(runs)
    judge = judge_input(runs) if uses_rubric(constitution) else None
    if st.button("Test both models", type="primary", key=key("start"), icon=":material/play_arrow:",
                 disabled=not all(models)):
        launch(name, models, judge)
    elif not all(models):
        st.caption("Type a model for both A and B.")


def model_inputs(runs: list[RunInfo]) -> tuple[str | None, str | None]:
    finished = finished_runs(runs)
    # B starts as the newest trained run: base against trained is the comparison most wanted.
    default_b = str(finished[0].folder) if finished else DEFAULT_MODEL if default_model_spec() != DEFAULT_MODEL \
        else OTHER_MODEL
    chosen = []
    for side, column, default in zip(SIDES, st.columns(2, border=True), (None, default_b)):
        with column:
            chosen.append(model_picker(f"Model {side.upper()}", key(f"model-{side}"), key(f"model-{side}-other"), runs,
                                       MODEL_HELP, default=default, columns=(st, st), endpoints=True))
    if not finished:
        st.caption("No finished training run yet: train one on the Training page to test the constitution before "
                   "and after training.")
    return chosen[0], chosen[1]


def judge_input(runs: list[RunInfo]) -> str | None:
    st.caption("Some test examples are llm-rubric questions: a judge model answers them, or they are reported as "
               "not judged and count neither way.")
    return model_picker("Judge for llm-rubric checks", JUDGE, JUDGE_OTHER, runs,
                        "The model that answers each llm-rubric question about an answer, in both framings.",
                        extra={NO_JUDGE: "none: llm-rubric checks are not judged"}, default=NO_JUDGE, endpoints=True)


def launch(constitution: str, models: tuple[str, str], judge: str | None) -> None:
    for side, model in zip(SIDES, models):
        problem = run_model_problem(model)
        if problem:
            st.error(md(f"Model {side.upper()}: {problem}"))
            return
    try:  # both evaluations run at once, each with its own copy of the judge
        check_models_fit({"A": models[0], "B": models[1], "judge": judge})
    except ModelLoadError as error:
        st.error(sentence(error))
        return
    test = start_or_say(lambda: start_constitution_test(constitution, *models, judge_model=judge), "evaluation")
    if test is None:
        return
    st.session_state[SELECTED] = test.name
    set_flash(FLASH, md(f"Started {test.name}: both models run in their own processes, so you may leave this page; "
                        "the scorecard appears below when both have finished."))
    st.rerun()


# ---------------------------------------------------------------- a test and its scorecard


def test_label(test: ConstitutionTest) -> str:
    models = " vs ".join(f"{side.upper()}: {model_label(stored_spec(folder).get('model'))}"
                         for side, folder in zip(SIDES, test.folders))
    return f"{test.constitution} · {time.strftime('%Y-%m-%d %H:%M', time.localtime(test.started))} · {models}"


def test_selector(tests: list[ConstitutionTest]) -> ConstitutionTest | None:
    st.subheader("Constitution tests")
    if not tests:
        st.info("No constitution test yet. Choose a constitution and two models above and press **Test both "
                "models**: the two evaluations show here as they run, then the scorecard. Finished tests are kept, "
                "here and on the Alignment tax page.")
        return None
    by_name = {test.name: test for test in tests}
    if st.session_state.get(SELECTED) not in by_name:
        st.session_state[SELECTED] = tests[0].name
    chosen = st.selectbox("Test", list(by_name), key=SELECTED, format_func=lambda name: test_label(by_name[name]),
                          help="Newest first. Each test is two evaluations, NAME-a and NAME-b, kept with the others.")
    return by_name[chosen]


def show_side(side: str, folder: Path, job: JobState) -> None:
    spec = stored_spec(folder)
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown(f"**Model {side.upper()}**")
        state_badge(job.state)
    st.text(model_label(spec.get("model")))
    if job.state == FINISHED:
        st.progress(1.0, text="every test example answered and checked")
    elif job.active:
        st.progress(*live_progress(spec, job.progress, suites_done(folder)))
    if job.error:
        st.error(sentence(f"the evaluation failed: {job.error}"))


def resume(folder: Path) -> bool:
    return start_or_say(lambda: start_evaluation(parse_evaluation_spec(stored_spec(folder)), folder.name),
                        "evaluation") is not None


def show_test(test: ConstitutionTest) -> None:
    jobs = [read_job(folder) for folder in test.folders]
    for side, folder, job, column in zip(SIDES, test.folders, jobs, st.columns(2, border=True)):
        with column:
            job_panel(folder, job, key(f"{test.name}-{side}-"),
                      show=lambda current, side=side, folder=folder: show_side(side, folder, current),
                      stopping_words="Stopping after the batch being answered…", resume=lambda folder=folder: resume(folder),
                      resume_words="Resuming answers the test examples again with the same settings.", log="on_failure")
    if not all(job.state == FINISHED for job in jobs):
        st.caption("The scorecard appears here once both models have finished"
                   + ("; you may leave this page meanwhile." if any(job.active for job in jobs) else
                      ": resume the one that stopped."))
        return
    reports = read_test_reports(test)
    if reports is None:
        st.error(md(f"The report of {test.name} is missing from its evaluation folders; run the test again."))
        return
    show_scorecard(test, *reports)


def percent(row: dict | None) -> str:
    return "—" if row is None else f"{row['pass_rate']:.0f}% ({row['passed']} of {row['n']})"


def interval(row: dict | None) -> str:
    return "—" if row is None else f"{row['ci_low']:.0f}–{row['ci_high']:.0f}%"


def show_scorecard(test: ConstitutionTest, report_a: dict, report_b: dict) -> None:
    try:
        card = scorecard(report_a, report_b)
    except EvaluationError as error:
        st.error(sentence(error))
        return
    labels = [f"{side.upper()}: {report_model(report)}" for side, report in zip(SIDES, (report_a, report_b))]
    st.subheader("Scorecard")
    if not card["same_constitution"]:
        st.warning("The constitution changed between the two evaluations: only the examples both answered are compared.")
    left, middle, right = st.columns(3)
    mean_a, mean_b = card["mean_a"], card["mean_b"]
    left.metric("Mean pass rate, A", "—" if mean_a is None else f"{mean_a:.0f}%", help=labels[0])
    middle.metric("Mean pass rate, B", "—" if mean_b is None else f"{mean_b:.0f}%", help=labels[1])
    right.metric("B − A", "—" if None in (mean_a, mean_b) else f"{mean_b - mean_a:+.0f} points",
                 help="The mean of the per-principle pass rates: each principle counts once, however many examples it has.")
    st.plotly_chart(charts.principle_pass_rate_bars([(label, {row["principle"]: row[side] for row in card["rows"]
                                                              if row[side]}) for label, side in zip(labels, SIDES)]),
                    key=key(f"chart-{test.name}"))
    st.dataframe(pd.DataFrame([{"principle": row["principle"], "A passed": percent(row["a"]),
                                "A 95% interval": interval(row["a"]), "B passed": percent(row["b"]),
                                "B 95% interval": interval(row["b"]),
                                "B − A (points)": "—" if row["change"] is None else f"{row['change']:+.0f}",
                                "B against A": row["words"]} for row in card["rows"]]),
                 hide_index=True, width="stretch", key=key(f"table-{test.name}"))
    st.caption(md(f"A is {report_model(report_a)}; B is {report_model(report_b)}. Intervals are 95% bootstrap "
                  "intervals over the test examples; B against A is paired, example by example."))
    if card["untested"]:
        st.caption(md(f"Not scored (no test example): {', '.join(card['untested'])}."))
    for row in card["rows"]:
        with st.expander(md(f"{row['principle']} · A {percent(row['a'])} · B {percent(row['b'])}")):
            for example in card["examples"][row["principle"]]:
                show_example(example)


def show_example(example: dict) -> None:
    st.markdown(f"**Example {example['example']}** (a test example) · prompt")
    st.text(example["prompt"], width="stretch")
    for side, column in zip(SIDES, st.columns(2)):
        with column:
            verdict = example[side]
            if verdict is None:
                st.caption(f"Model {side.upper()} did not answer this example.")
                continue
            st.badge(f"{side.upper()}: {'pass' if verdict['passed'] else 'fail'}",
                     color="green" if verdict["passed"] else "red",
                     icon=":material/check:" if verdict["passed"] else ":material/close:")
            show_model_text(verdict["answer"])
            st.caption(md(verdict["reason"]))
            for judged in (v for v in verdict["verdicts"] if isinstance(v, dict) and v.get("judged")):
                st.caption(md(f"{judged.get('assertion')}: judged {'yes' if judged.get('passed') else 'no'} with "
                              f"confidence {float(judged.get('confidence') or 0):.2f}"))
