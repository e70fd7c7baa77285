"""The Alignment tax page's evaluation form: the suites, the principles suite's constitution and
judge, and the `cai eval` line that starts the same evaluation from a terminal."""

from __future__ import annotations

import importlib.util

import streamlit as st
from pydantic import ValidationError

from cai_core.errors import CaiError
from cai_core.evaluation import SUITES, EvaluationSpec
from cai_core.evaluation.commands import eval_command
from cai_core.evaluation.principles import scored_examples
from cai_core.evaluation.suites import PRINCIPLES, PRINCIPLES_DESCRIPTION
from cai_core.training import RunInfo
from ui.common import md, page_key, plural
from ui.pickers import constitution_picker, model_picker

# The judge's own entry: it stands for no model, so llm-rubric checks go unjudged.
NO_JUDGE = ":no-judge"


def key(name: str) -> str:
    return page_key("tax", name)


SUITE_CHOICE, LM_EVAL, CONSTITUTION, JUDGE, JUDGE_OTHER = (
    key("suites"), key("lm_eval"), key("eval_constitution"), key("eval_judge"), key("eval_judge_other"))


def suite_kind(name: str) -> str:
    return "your constitution" if name == PRINCIPLES else SUITES[name].kind


def suite_description(name: str) -> str:
    return PRINCIPLES_DESCRIPTION if name == PRINCIPLES else SUITES[name].description


def suite_inputs() -> list[str]:
    # The principles suite is offered but not chosen by default: it needs a constitution with examples.
    st.session_state.setdefault(SUITE_CHOICE, list(SUITES))
    chosen = st.multiselect("Suites", [*SUITES, PRINCIPLES], key=SUITE_CHOICE,
                            format_func=lambda name: f"{name} ({suite_kind(name)})",
                            help="Capability suites measure what alignment may cost; safety suites what it should "
                                 "buy; the principles suite how well each principle of a constitution is followed.")
    for name in chosen:
        st.caption(md(f"{name}: {suite_description(name)}."))
    try:
        lm_eval = importlib.util.find_spec("lm_eval") is not None
    except (ImportError, ValueError):
        lm_eval = False
    if lm_eval:
        extra = st.text_input("Standard benchmarks (lm-evaluation-harness tasks, comma-separated)", key=LM_EVAL,
                              placeholder="gsm8k, mmlu", help="Run through lm-eval; each counts as a capability suite.")
        chosen = chosen + [f"lm-eval:{task.strip()}" for task in extra.split(",") if task.strip()]
    return chosen


def principles_inputs(suites: list[str], runs: list[RunInfo]) -> dict | None:
    """The constitution and judge of the principles suite when it is chosen ({} when it is not);
    None when no constitution can be loaded, so there is nothing to score."""
    if PRINCIPLES not in suites:
        return {}
    left, right = st.columns(2)
    constitution = constitution_picker(CONSTITUTION, "The principles suite scores each enabled principle on the test "
                                       "half of its examples.", where=left)
    if constitution is None:
        return None
    right.caption(test_examples_words(constitution))
    judge = model_picker("Judge model for llm-rubric checks", JUDGE, JUDGE_OTHER, runs,
                         "Answers each llm-rubric check's yes/no question about an answer. Without one, those "
                         "checks are reported as not judged and count neither way.",
                         extra={NO_JUDGE: "none: llm-rubric checks are not judged"}, default=NO_JUDGE, endpoints=True)
    return {"constitution": constitution, **({"judge_model": judge} if judge else {})}


def test_examples_words(name: str) -> str:
    from cai_core.store import load_constitution

    try:
        constitution = load_constitution(name)
    except (CaiError, OSError):
        return ""
    cases = scored_examples(constitution)
    principles = len({principle for principle, _, _ in cases})
    if not cases:
        return f"{name} has no test examples yet: add examples to its principles on the Constitution page."
    return f"{plural(len(cases), 'test example')} over {plural(principles, 'principle')} of {name}."


def show_eval_command(spec_data: dict, name: str) -> None:
    """The `cai eval` line for the form's choices, once they make a spec."""
    try:
        spec = EvaluationSpec.model_validate(spec_data)
    except ValidationError:
        return
    st.markdown("**Command**")
    st.caption("The same evaluation from a terminal:")
    st.code(eval_command(spec, name), language="bash", wrap_lines=True)
