"""Loops: rounds of generate, SFT then DPO, and evaluate, each round from the last round's model.

Layout and widgets only. A loop is a folder under ``$CAI_HOME/loops`` worked on by its own process
(``cai_core.evaluation.loop``); this page starts it and shows its stage while it runs. Each round's
report joins the charts of the Alignment tax page as it is evaluated.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cai_core.constitution import DEFAULT_CONSTITUTION
from cai_core.evaluation.loop import (SMALL_MODEL_SETTINGS, constitution_change_note, list_loops, loops_dir,
                                      parse_loop_settings, parse_loop_spec, read_state, resume_loop, start_loop)
from cai_core.jobs import JobState, read_job, read_json
from cai_core.training import list_runs
from ui.common import link_page, md, page_key, plural, sentence, set_flash, show_flash, state_badge, state_label
from ui.jobs import job_panel, start_or_say
from ui.navigation import page_path, start_page
from ui.pickers import constitution_picker, model_picker

PAGE = "loops"


def key(name: str) -> str:
    return page_key(PAGE, name)


FLASH, MODEL, OTHER_MODEL, CONSTITUTION, ROUNDS, NAME, SETTINGS, SELECTED = (
    key("flash"), key("model"), key("other_model"), key("constitution"), key("rounds"), key("name"), key("settings"),
    key("selected"))


def new_loop_form(expanded: bool) -> None:
    with st.expander("New loop", expanded=expanded, icon=":material/autorenew:"):
        st.caption("Rounds of generate (the Data page's work), SFT then DPO (the Training page's) and evaluate, each "
                   "round from the last round's model, in one process of its own. It stops early when capability "
                   "falls below 0.95 x the previous round's. With the small-model settings a round takes about 40 "
                   "minutes on a 2-core CPU.")
        model = model_picker("Starting model", MODEL, OTHER_MODEL, list_runs(),
                             "Round 1 makes its data with this model and trains on it; later rounds start from the "
                             "last round's model.")
        left, middle, right = st.columns(3)
        constitution = constitution_picker(CONSTITUTION, "Its principles steer the data each round makes.", left)
        if constitution is None:
            return
        rounds = int(middle.number_input("Rounds", 1, 50, 1, 1, key=ROUNDS,
                                         help="A finished loop takes more rounds later: start it again under the "
                                              "same name with a larger number."))
        name = right.text_input("Loop name", key=NAME, max_chars=80, placeholder=f"loop-{constitution}",
                                help="The folder under loops/ in your CAI_HOME. The same name again resumes it.")
        st.session_state.setdefault(SETTINGS, SMALL_MODEL_SETTINGS.read_text(encoding="utf-8"))
        text = st.text_area("Settings (YAML)", key=SETTINGS, height=260,
                            help="Any cai loop setting: eval_suites, eval_limit, prompts_per_round, generation, "
                                 "sft_overrides, dpo_overrides, recipe, stop_ratio, seed.")
        st.caption("Filled in with recipes/loops/small-model.yaml: best-of-N data scored by the constitution's checks "
                   "and training examples (verifier: constitution; verifier: rule for the refusal rule alone), for a "
                   "model too small to critique and judge its own answers (docs/results.md says why). Empty it for the "
                   "paper's pipeline: critique -> revision for SFT, AI-judged pairs for DPO; or give the rounds an "
                   "external critic, a stronger model that critiques, revises and judges for the small one: "
                   "generation: {critic_model: http://host:port/v1}.")
        if st.button("Start loop", type="primary", key=key("start"), icon=":material/play_arrow:",
                     disabled=not model):
            launch(text, {"constitution": constitution, "rounds": rounds, "base_model": model},
                   (name or "").strip() or f"loop-{constitution}")


def launch(text: str, chosen: dict, name: str) -> None:
    folder = start_or_say(lambda: start_loop(parse_loop_spec({**parse_loop_settings(text, "the settings"), **chosen}),
                                             name), "loop")
    if folder is None:
        return
    st.session_state[SELECTED] = folder.name
    set_flash(FLASH, md(f"Started the loop {folder.name} in its own process: you may leave this page; each round's "
                        "report joins the Alignment tax page's charts as it is evaluated."))
    st.rerun()


def show_loop_state(folder: Path, job: JobState) -> None:
    spec = (read_json(folder / "spec.json") or {}).get("spec", {})
    state = read_state(folder)
    finished_rounds = sum("evaluate" in stages for number, stages in state["rounds"].items() if number != "0")
    state_badge(job.state)
    st.caption(f"{finished_rounds} of {plural(spec.get('rounds', 0), 'round')} done")
    if note := constitution_change_note(folder):
        st.info(md(note))
    if job.active:
        progress = job.progress
        done, total = progress.get("done", 0), progress.get("total", 0)
        st.progress(job.fraction if total else 0.0,
                    text=f"{progress.get('stage') or 'starting the loop process…'}" + (f" · {done} of {total}" if total else ""))
        return
    stopped = state.get("stopped_early")
    if stopped:
        st.info(f"Stopped early after round {stopped['round']}: {stopped['why']}.")
    if job.error:
        st.error(sentence(f"the loop {state_label(job.state).lower()}: {job.error}"))


def show_loop(folder: Path) -> None:
    job_panel(folder, read_job(folder), key(""), show=lambda job: show_loop_state(folder, job),
              stop_label="Stop the loop",
              stopping_words="Stopping at the current stage's next safe point; Resume carries on from there.",
              resume=lambda: start_or_say(lambda: resume_loop(folder) or folder, "loop") is not None,
              resume_label="Resume the loop",
              resume_words="Resuming keeps every finished stage and carries on from the one that was interrupted.")


# ---------------------------------------------------------------- the page


start_page("Loops")
st.title("Loops")
st.caption("Iterative constitutional training: each round makes data with the last round's model, trains it with SFT "
           "then DPO, and evaluates it; the Alignment tax page charts the rounds one after another.")
show_flash(FLASH)
folders = list_loops()
new_loop_form(expanded=not folders)
st.subheader("Loops")
if not folders:
    st.caption(f"No loop yet. Start one above, or from the command line: cai loop --constitution "
               f"{DEFAULT_CONSTITUTION} --settings recipes/loops/small-model.yaml.")
else:
    names = [folder.name for folder in folders]
    if st.session_state.get(SELECTED) not in names:
        active = [folder.name for folder in folders if read_job(folder).active]
        st.session_state[SELECTED] = (active or names)[0]
    # The state is not in the option labels: a label that changes as the loop runs would lose the choice.
    chosen = st.selectbox("Loop", names, key=SELECTED)
    show_loop(loops_dir() / chosen)
    link_page(page_path("Alignment_Tax"), "Its rounds over time on the Alignment tax page", ":material/balance:")
