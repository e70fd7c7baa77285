"""One chain trace as the Playground shows it: each step's text as plain text, with the role and
model that wrote it (the policy writes the first answer; a critic, when one is set, every critique
and revision)."""

from __future__ import annotations

import streamlit as st

from cai_core.chain import ChainStep, Trace
from cai_core.preview import writer_role
from ui.common import md


def show_model_text(text: str) -> None:
    """Model output is data: plain text, never markdown."""
    if text.strip():
        st.text(text, width="stretch")
    else:
        st.caption("(empty)")


def heading(title: str, trace: Trace, model_id: str) -> None:
    """A step's title, and beside it the role and model that wrote it ("by the critic: MODEL");
    a trace written before steps recorded their model shows the title alone."""
    with st.container(horizontal=True, gap="small"):
        st.caption(title, width="content")
        if model_id:  # escaped: the id comes from a model spec the user typed
            st.caption(md(f"by the {writer_role(trace, model_id)}: {model_id}"), width="content")


def status_line(stage: str, round_number: int, rounds: int, elapsed: float) -> str:
    if stage in ("queued", "initial"):
        what = "writing the initial answer…"
    elif stage == "critique" and round_number < rounds:
        what = f"round {round_number + 1} of {rounds}: critiquing…"
    elif stage == "revision":
        what = f"round {round_number} of {rounds}: revising…"
    elif stage == "done":
        what = f"done: {rounds} round{'s' if rounds != 1 else ''}"
    elif stage == "failed":
        what = "stopped by an error"
    elif stage == "cancelled":
        what = "stopped at your request"
    else:
        what = "finishing…"
    return f"{what[0].upper()}{what[1:]} · {elapsed:.1f} s"


def show_initial(trace: Trace) -> None:
    with st.container(horizontal=True, gap="small", vertical_alignment="center"):
        st.markdown("**Initial answer**", width="content")
        if trace.models.get("initial"):
            st.caption(md(f"by the policy: {trace.models['initial']}"), width="content")
    show_model_text(trace.initial)


def show_step(trace: Trace, step: ChainStep, failed: bool, partial_text: str | None = None) -> None:
    with st.container(border=True):
        st.markdown(f"**Round {step.round} — principle** `{step.principle}`")
        heading("Critique", trace, step.critique_model)
        show_model_text(step.critique)
        if step.revised and not step.revision:
            heading("Revision", trace, trace.models.get("revision", ""))
            st.caption("no revision: the run stopped" if failed else "revising…")
            if partial_text and not failed:
                show_model_text(partial_text)
        elif step.skip_reason == "no_change":
            st.caption("Revision")
            st.caption("revision skipped: the critique found nothing to change")
        elif step.skip_reason == "empty_revision":
            st.caption("Revision")
            st.caption("the revision came back empty, so the previous answer was kept")
        else:
            heading("Revision", trace, step.revision_model)
            show_model_text(step.revision)
