"""A principle's examples and checks on the Constitution page: the YAML box, checked as typed, with
the train/test split beside it, and "Test this principle", which answers and checks every example
on a chosen model and shows each answer as text with its verdicts.

The test runs in a thread of the app process (cai_core.evaluation.principle_test) on the model the
app already holds; this module starts it, polls it from a fragment and offers Stop.
"""

from __future__ import annotations

from typing import Callable

import streamlit as st

from cai_core.constitution import ConstitutionError, example_half
from cai_core.editing import form_to_principle, parse_tests, tests_source
from cai_core.evaluation.principle_test import PrincipleTest, start_principle_test
from cai_core.threads import CANCELLED, FAILED
from cai_core.training import list_runs
from ui.common import get_model, md, plural, sentence, show_text
from ui.jobs import live_while
from ui.pickers import finished_runs, model_picker

TESTS_HELP = (
    "checks: assertions every answer under this principle must meet. examples: prompts, each with what a "
    "good answer does (expect). Assertions: refuses, answers, or a one-key mapping such as "
    "{not-icontains: \"guaranteed refund\"}, {regex: ...}, {starts-with: ...}, {llm-rubric: \"a yes/no question\"}."
)
SPLIT_WORDS = "Examples alternate test, train, test, …: scores use the test half, training learns from the train half only."


def tests_editor(text_key: str, position: int) -> None:
    """The YAML box of principle ``position`` (from 1); an error is one sentence with the line it names."""
    left, right = st.columns([3, 2])
    left.text_area("Examples and checks (YAML)", key=text_key, height=240, help=TESTS_HELP,
                   placeholder="examples:\n  - prompt: A question this principle governs\n    expect: [answers]")
    text = str(st.session_state.get(text_key) or "")
    try:
        tests = parse_tests(text, tests_source(position))
    except ConstitutionError as error:
        left.error(md(str(error)))
        lines = text.splitlines()
        if error.line and 0 < error.line <= len(lines):
            left.code(f"{error.line}: {lines[error.line - 1]}", language=None)
        right.caption("The train/test split shows once the examples are valid.")
        return
    show_split(right, tests["examples"])


def show_split(where, examples: list[dict]) -> None:
    """Which examples are test and which train, beside the box."""
    if not examples:
        where.caption("No examples yet: Test this principle and the principles suite need some.")
        return
    halves = [example_half(index) for index in range(len(examples))]
    where.markdown(f"**Split**: {halves.count('test')} test, {halves.count('train')} train")
    for index, (example, half) in enumerate(zip(examples, halves), start=1):
        prompt = " ".join(str(example.get("prompt", "")).split())
        where.caption(md(f"{index}. {half}: {prompt[:90]}{'…' if len(prompt) > 90 else ''}"))
    where.caption(SPLIT_WORDS)


def principle_test_model(key: Callable[[str], str]) -> tuple[str | None, bool]:
    """(model spec, judge llm-rubric with it) for every Test this principle on the page."""
    left, right = st.columns(2)
    spec = model_picker("Model for Test this principle", key("test_model"), key("test_model_other"),
                        finished_runs(list_runs()), "The model that answers a principle's examples when you test it.",
                        columns=(left, right), endpoints=True)
    judge = left.toggle("Judge llm-rubric checks with the same model", value=True, key=key("test_judge"),
                        help="Off: llm-rubric checks are reported as not judged and count neither way.")
    return spec, judge


def principle_test_panel(form: dict, position: int, run_key: str, button_key: str, model_spec: str | None,
                        judge: bool) -> None:
    """The button, then the newest test of this principle: progress and Stop while it runs, then each example."""
    run: PrincipleTest | None = st.session_state.get(run_key)
    running = run is not None and not run.state().finished
    if st.button("Test this principle", key=button_key, icon=":material/science:", disabled=running,
                 help="Answers every example of this principle as it is in the editor, unsaved edits included."):
        started = start_test(form, position, model_spec, judge)
        if started is not None:
            st.session_state[run_key] = started
            st.rerun()  # the button is drawn again, disabled while the test runs
    if run is not None:
        show_test(run, button_key)


def start_test(form: dict, position: int, model_spec: str | None, judge: bool) -> PrincipleTest | None:
    principle, problem = form_to_principle(form, position)
    if problem:
        st.error(sentence(f"Fix this principle before testing it: {problem}"))
        return None
    if not principle.examples:
        st.error(md(f"{principle.name} has no examples to test; add some in the box above."))
        return None
    if model_spec is None:
        st.error("Type a model folder, hub id or endpoint URL to test on.")
        return None
    model = get_model(model_spec)  # on failure it has shown the one-sentence reason
    if model is None:
        return None
    return start_principle_test(model, principle, judge=model if judge else None, model_label=model_spec)


def show_test(run: PrincipleTest, key_prefix: str) -> None:
    drawn = run.state()

    @live_while(not drawn.finished)
    def live() -> None:
        state = run.state()
        if not state.finished:
            st.progress(state.done / max(1, state.total),
                        text=f"Answered {state.done} of {plural(state.total, 'example')} on {run.model_label}…")
            if st.button("Stop", key=f"{key_prefix}_stop", icon=":material/stop:", disabled=run.stopping):
                run.cancel()
            if run.stopping:
                st.caption("Stopping once the answers being written are done.")
        elif state.stage == FAILED:
            st.error(sentence(f"The test stopped: {state.error}"))
        elif state.stage == CANCELLED:
            st.info("Stopped before every example was answered; nothing was checked.")
        else:
            show_results(run, state.results, state.elapsed)
        if not drawn.finished and state.finished:
            st.rerun()  # the whole page: the button comes back

    live()


def show_results(run: PrincipleTest, results: list[dict], elapsed: float) -> None:
    passed = sum(item["passed"] for item in results)
    by_half = {half: [item for item in results if item["half"] == half] for half in ("test", "train")}
    halves = ", ".join(f"{half} half {sum(i['passed'] for i in items)} of {len(items)}"
                       for half, items in by_half.items() if items)
    st.markdown(md(f"{passed} of {plural(len(results), 'example')} passed ({halves}) on {run.model_label}, "
                   f"in {elapsed:.1f} s."))
    st.caption("These are the examples and checks as they stood when you pressed Test; after an edit, test again.")
    for item in results:
        with st.container(border=True):
            verdict = ":green[passed]" if item["passed"] else ":red[failed]"
            st.markdown(f"**Example {item['example']}** · {item['half']} · {verdict}")
            st.caption("Prompt")
            show_text(item["prompt"])
            st.caption("Answer")
            show_text(item["answer"])
            for line in verdict_lines(item["verdicts"]):
                st.markdown(line)


def verdict_lines(verdicts: list[dict]) -> list[str]:
    """One markdown line per assertion: held, failed (red) or not judged, with its reason as given."""
    lines = []
    for v in verdicts:
        judged = f" (judged, confidence {v['confidence']:.2f})" if v.get("judged") and v.get("confidence") is not None else ""
        text = md(f"{v['assertion']}: {v['reason']}{judged}")
        if v.get("skipped"):
            lines.append(f":gray[not judged · {text}]")
        elif v["passed"]:
            lines.append(f":green[held] · {text}")
        else:
            lines.append(f":red[failed · {text}]")
    return lines
