"""Playground: one prompt through the critique -> revision chain, live, alone or side by side; or, in
the "Test the constitution" mode (ui.constitution_test), every test example on two models.

Layout and widgets only. The chain runs in a background thread (``cai_core.preview``); this page
starts it once per click of Run, keeps the job in session state and polls it from a fragment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from cai_core.chain import MAX_PROMPT_CHARS, Trace, check_prompts
from cai_core.constitution import Constitution, ConstitutionError, preferred_constitution
from cai_core.examples import PlaygroundExample, examples_by_category, load_playground_examples
from cai_core.models import GenerationSettings, ModelLoadError, default_model_spec
from cai_core.preview import PreviewJob, start_preview
from cai_core.roles import check_models_fit
from cai_core.store import list_constitutions, load_constitution
from cai_core.textdiff import diff_stats, render_wdiff, word_diff
from cai_core.training import RunInfo
from cai_core.training.runs import run_for_spec, run_model_problem
from ui.common import get_model, md, page_key, sentence
from ui.constitution_test import show_constitution_test
from ui.navigation import start_page
from ui.trace_view import show_initial, show_model_text, show_step, status_line
from ui.pickers import APP_MODEL, choice_for_spec, critic_input, model_input, result_label, trained_runs

PAGE = "playground"
POLL_SECONDS = 0.5
LETTERS = "ABC"
MAX_ROUNDS = 4
# What the Training page leaves for this page: {"models": [before_spec, after_spec]}.
PRESET_KEY = "playground:preset"
PROMPT_MODE, TEST_MODE = "prompt", "test"
MODES = {PROMPT_MODE: "Run a prompt", TEST_MODE: "Test the constitution"}
_DEFAULTS = GenerationSettings()


def key(name: str) -> str:
    return page_key(PAGE, name)


@dataclass
class Configuration:
    """What one column of a comparison runs with (the prompt and settings are shared)."""

    letter: str
    constitution_name: str
    model_spec: str
    model_label: str = ""
    critic_spec: str | None = None  # None: the model critiques itself
    critic_label: str = ""
    constitution: Constitution | None = None
    principles: list[str] = field(default_factory=list)
    error: str | None = None
    model_error: str | None = None


# ---------------------------------------------------------------- inputs


def use_example(examples: dict[str, PlaygroundExample]) -> None:
    chosen = st.session_state.get(key("example"))
    if chosen in examples:
        st.session_state[key("prompt")] = examples[chosen].prompt


def prompt_input() -> str:
    try:
        examples = load_playground_examples()
    except ConstitutionError as error:
        st.warning(md(f"The example prompts could not be loaded: {error}"))
        examples = []
    by_id = {e.id: e for group in examples_by_category(examples).values() for e in group}
    if by_id:
        st.selectbox(
            "Start from an example",
            list(by_id),
            index=None,
            format_func=lambda example_id: by_id[example_id].label,
            placeholder="Pick an example prompt (grouped by category)…",
            key=key("example"),
            on_change=use_example,
            args=(by_id,),
        )
    return st.text_area(
        "Prompt",
        key=key("prompt"),
        height=110,
        max_chars=MAX_PROMPT_CHARS,
        placeholder="Ask the model something, or pick an example above.",
    )


def configuration_inputs(index: int, names: list[str], runs: list[RunInfo], compact: bool) -> Configuration:
    """Constitution, principle subset and model for configuration ``index``."""
    letter = LETTERS[index]
    constitution_key = key(f"constitution-{index}")
    # Widgets take their starting values from session state (never a default argument too), so a
    # preset from another page can set them before they are drawn.
    if st.session_state.get(constitution_key) not in names:
        st.session_state[constitution_key] = preferred_constitution(names)
    areas = [st.container(), st.container(), st.container()] if compact else st.columns([1, 2, 1])
    with areas[0]:
        name = st.selectbox("Constitution", names, key=constitution_key)
    with areas[2]:
        spec, label = model_input(index, runs)
        critic = critic_input(index, runs)
        critic = None if critic == spec else critic  # the model named as its own critic: self-critique
        config = Configuration(letter, name, spec, label, critic, critic and result_label(critic, runs),
                               model_error=run_model_problem(spec) or (critic and run_model_problem(critic)))
        if config.model_error:
            st.error(md(config.model_error))
    with areas[1]:
        try:
            config.constitution = load_constitution(name)
        except ConstitutionError as error:
            config.error = str(error)
            st.error(md(config.error))
            return config
        enabled = [p.name for p in config.constitution.enabled_principles]
        # The key carries the constitution's name so switching constitutions starts from "all".
        principles_key = key(f"principles-{index}-{name}")
        if principles_key not in st.session_state:
            st.session_state[principles_key] = enabled
        elif any(p not in enabled for p in st.session_state[principles_key]):  # the file changed since
            st.session_state[principles_key] = [p for p in st.session_state[principles_key] if p in enabled]
        chosen = st.multiselect(
            "Principles",
            enabled,
            key=principles_key,
            help="Each round applies one of these. Only the constitution's enabled principles are offered.",
        )
        # Keep the constitution's order whatever order they were clicked in: "sequential" walks it.
        config.principles = [name for name in enabled if name in chosen]
        if not enabled:
            st.caption("This constitution has no enabled principle; enable one on the Constitution page.")
    return config


def settings_inputs() -> tuple[int, str, int, GenerationSettings]:
    rounds_col, order_col, seed_col = st.columns(3)
    with rounds_col:
        rounds = st.slider("Rounds", 1, MAX_ROUNDS, 2, key=key("rounds"),
                           help="How many critique → revision rounds follow the initial answer.")
    with order_col:
        order = st.radio("Principle order", ["random", "sequential"], horizontal=True, key=key("order"),
                         help="random: each round draws a principle by its weight (repeatable with the seed). "
                              "sequential: rounds walk the chosen principles in order.")
    with seed_col:
        seed = st.number_input("Seed", min_value=0, value=0, step=1, key=key("seed"),
                               help="The same seed, settings and model give the same trace.")
    with st.expander("Sampling"):
        temp_col, top_p_col, penalty_col, tokens_col = st.columns(4)
        with temp_col:
            temperature = st.slider("Temperature", 0.0, 2.0, _DEFAULTS.temperature, 0.05, key=key("temperature"),
                                    help="0 means greedy decoding: deterministic, always the most likely token.")
        with top_p_col:
            top_p = st.slider("Top-p", 0.05, 1.0, _DEFAULTS.top_p, 0.05, key=key("top_p"),
                              help="Sample only from the most likely tokens that together reach this probability. Ignored when greedy.")
        with penalty_col:
            repetition_penalty = st.slider("Repetition penalty", 1.0, 2.0, _DEFAULTS.repetition_penalty, 0.05,
                                           key=key("repetition_penalty"),
                                           help="Makes tokens the answer already used less likely. 1.0 is off; small models loop without it.")
        with tokens_col:
            max_new_tokens = st.number_input("Max new tokens", 1, 2048, _DEFAULTS.max_new_tokens, 16,
                                             key=key("max_new_tokens"),
                                             help="The longest answer, critique or revision the model may write.")
    settings = GenerationSettings(temperature=float(temperature), top_p=float(top_p),
                                  repetition_penalty=float(repetition_penalty),
                                  max_new_tokens=int(max_new_tokens), seed=int(seed))
    return int(rounds), str(order), int(seed), settings


# ---------------------------------------------------------------- a before/after preset from the Training page


def apply_preset(names: list[str], runs: list[RunInfo]) -> None:
    """Turn a waiting preset into widget state: compare A = before, B = after, all else the same."""
    preset = st.session_state.pop(PRESET_KEY, None)
    models = preset.get("models") if isinstance(preset, dict) else None
    if not (isinstance(models, (list, tuple)) and len(models) == 2 and all(isinstance(m, str) for m in models)):
        return
    st.session_state[key("mode")] = PROMPT_MODE
    st.session_state[key("compare")] = True
    st.session_state[key("count")] = 2
    expected = []
    for index, spec in enumerate(models):
        choice, text = choice_for_spec(spec, runs)
        st.session_state[key(f"model-choice-{index}")] = choice
        if text is not None:
            st.session_state[key(f"model-{index}")] = text
        expected.append(default_model_spec() if choice == APP_MODEL else text or choice)
    # B runs under A's constitution and principles, so the model is the only difference.
    constitution = st.session_state.get(key("constitution-0"))
    if constitution not in names:
        constitution = preferred_constitution(names)
    st.session_state[key("constitution-0")] = st.session_state[key("constitution-1")] = constitution
    principles = st.session_state.get(key(f"principles-0-{constitution}"))
    if principles is None:
        st.session_state.pop(key(f"principles-1-{constitution}"), None)  # both start from all of them
    else:
        st.session_state[key(f"principles-1-{constitution}")] = list(principles)
    after = run_for_spec(models[1], runs)
    name = after.name if after else (Path(models[1]).name or models[1])
    st.session_state[key("comparing")] = {"note": f"Comparing {name} before and after training", "models": expected}


def show_preset_note(area, configs: list[Configuration]) -> None:
    """The preset's one-line note, for as long as A and B are still the models it set."""
    comparing = st.session_state.get(key("comparing"))
    if not comparing:
        return
    if [c.model_spec for c in configs] != comparing["models"]:
        del st.session_state[key("comparing")]
        return
    area.info(md(comparing["note"]), icon=":material/compare_arrows:")


# ---------------------------------------------------------------- starting a run


def start_run(prompt: str, configs: list[Configuration], rounds: int, order: str, seed: int,
              settings: GenerationSettings) -> dict | None:
    """Check everything, load the models, start one preview job per configuration; None on error."""
    if not (prompt or "").strip():
        st.error("Write a prompt or pick an example before pressing Run.")
        return None
    try:
        text = check_prompts([prompt])[0]
    except ConstitutionError as error:
        st.error(md(str(error)))
        return None
    several = len(configs) > 1
    for config in configs:
        where = f" for configuration {config.letter}" if several else ""
        if config.error:
            st.error(f"The constitution{where} could not be loaded; fix it on the Constitution page or choose another.")
            return None
        if not config.principles:
            st.error(f"Choose at least one principle{where}.")
            return None
        if config.model_error:
            st.error(f"Choose another model{where}: the one chosen cannot be loaded.")
            return None
    problem = models_fit_problem(configs)
    if problem:
        st.error(problem)
        return None
    models = {}
    for spec in [s for config in configs for s in (config.model_spec, config.critic_spec) if s]:
        if spec not in models:
            model = get_model(spec)
            if model is None:  # get_model has already shown why, in one sentence
                return None
            models[spec] = model
    jobs = [
        start_preview(
            f"playground {config.letter}: {config.constitution_name} on {config.model_label or config.model_spec}",
            model=models[config.model_spec],
            constitution=config.constitution,
            prompts=[text],
            rounds=rounds,
            seed=seed,
            principles=config.principles,
            order=order,
            settings=settings,
            critic=models[config.critic_spec] if config.critic_spec else None,
        )
        for config in configs
    ]
    return {
        "prompt": text,
        "rounds": rounds,
        "order": order,
        "seed": seed,
        "settings": settings,
        "configs": [
            {"letter": c.letter, "constitution": c.constitution_name, "model": c.model_spec,
             "model_label": c.model_label or c.model_spec, "principles": c.principles,
             "critic": c.critic_label or None}
            for c in configs
        ],
        "jobs": jobs,
    }


def models_fit_problem(configs: list[Configuration]) -> str | None:
    """One sentence when the local models of the run would not fit in memory together, else None."""
    roles = {}
    for config in configs:
        where = f" of {config.letter}" if len(configs) > 1 else ""
        roles[f"policy{where}"] = config.model_spec
        roles[f"critic{where}"] = config.critic_spec
    try:
        check_models_fit(roles)
    except ModelLoadError as error:
        return sentence(error)
    return None


def run_finished(run: dict | None) -> bool:
    return run is None or all(job.finished for job in run["jobs"])


# ---------------------------------------------------------------- showing a run


def show_outcome(trace: Trace, job: PreviewJob) -> None:
    st.markdown("**Final answer**")
    show_model_text(trace.final)
    segments = word_diff(trace.initial, trace.final)
    stats = diff_stats(segments)
    st.markdown("**What the rounds changed** (initial → final, word by word)")
    st.caption("[-removed-] and {+added+} mark the changes; everything else was kept.")
    st.code(render_wdiff(segments) or " ", language=None, wrap_lines=True)
    with st.container(horizontal=True):
        st.metric("Words removed", stats["removed"])
        st.metric("Words added", stats["added"])
        st.metric("Words kept", stats["same"])
    st.caption(
        f"{trace.prompt_tokens} prompt tokens · {trace.completion_tokens} generated tokens · "
        f"{trace.seconds:.1f} s generating · {job.elapsed():.1f} s in all"
    )
    st.download_button(
        "Download trace (JSON)",
        data=json.dumps(trace.to_dict(), indent=2, ensure_ascii=False),
        file_name=f"playground-trace-{job.id}.json",
        mime="application/json",
        key=key(f"download-{job.id}"),
        on_click="ignore",
    )


def show_job(run: dict, index: int) -> None:
    job: PreviewJob = run["jobs"][index]
    config = run["configs"][index]
    rounds = run["rounds"]
    if len(run["jobs"]) > 1:
        st.markdown(f"##### Configuration {config['letter']}")
    # Which model wrote this column, first and in bold: in a before/after comparison it is the point.
    label = str(config.get("model_label") or config["model"]).replace("`", "'")
    st.markdown(f"**Model** `{label}`")
    if config.get("critic"):
        critic = str(config["critic"]).replace("`", "'")
        st.markdown(f"**External critic** `{critic}`: it writes every critique and revision")
    else:
        st.caption("Self-critique: the model critiques and revises its own answers")
    st.text(f"{config['constitution']} · {len(config['principles'])} principle(s) · {config['model']}")
    state = job.state()  # one consistent reading: stage, progress, error and traces together
    stage, error = state.stage, state.error
    trace = state.traces[0] if state.traces else None
    st.caption(status_line(stage, state.round, rounds, state.elapsed))
    st.progress(state.steps_done / state.steps_total, text=f"{state.steps_done} of {state.steps_total} steps")
    if error:
        st.error(md(f"The chain stopped: {error.strip().splitlines()[0] if error.strip() else 'unknown error'}"))
    # While a stage is being written, its text so far is shown where the finished text will go.
    partial = state.partial_text if not state.finished else None
    if trace is None:
        if partial:
            st.markdown("**Initial answer**")
            st.caption("being written…")
            show_model_text(partial)
        return
    show_initial(trace)
    revising = bool(trace.steps) and trace.steps[-1].revised and not trace.steps[-1].revision
    for number, step in enumerate(trace.steps, start=1):
        live = partial if revising and number == len(trace.steps) else None
        show_step(trace, step, failed=stage in ("failed", "cancelled"), partial_text=live)
    if not state.finished and not revising and len(trace.steps) < rounds:
        st.caption(f"Round {len(trace.steps) + 1}: critiquing…")
        if partial:
            show_model_text(partial)
    for warning in trace.warnings:
        st.warning(md(warning))
    if stage == "done":
        show_outcome(trace, job)


def show_run(run: dict, polling: bool) -> None:
    """``polling``: whether the run was still going when the Run button was drawn."""

    @st.fragment(run_every=POLL_SECONDS if polling else None)
    def live_traces() -> None:
        count = len(run["jobs"])
        if count == 1:
            show_job(run, 0)
        else:
            for index, column in enumerate(st.columns(count, border=True)):
                with column:
                    show_job(run, index)
        # Once every job is done, rerun the page once: the fragment is then rebuilt without
        # run_every (polling stops) and the Run button is enabled again.
        if polling and run_finished(run):
            st.rerun()

    st.subheader("Trace")
    st.caption("Prompt")
    st.text(run["prompt"], width="stretch")
    settings = run["settings"]
    sampling = "greedy" if settings.greedy else f"temperature {settings.temperature:g}, top-p {settings.top_p:g}"
    st.caption(
        f"{run['rounds']} round(s) · {run['order']} order · seed {run['seed']} · {sampling} · "
        f"repetition penalty {settings.repetition_penalty:g} · at most {settings.max_new_tokens} new tokens per step"
    )
    live_traces()


def show_empty_state() -> None:
    st.info(
        "The playground runs one prompt through a constitution's critique → revision loop and shows "
        "every step as it happens: the model answers, critiques its own answer against one principle, "
        "and rewrites it, round after round. At the end you see the final answer, a word-level diff "
        "against the first one, and a JSON trace to download.\n\n"
        "Not sure where to start? Pick an example above — a *borderline* prompt such as killing a "
        "Python process shows over-refusal, a *harmful* one shows a refusal being shaped — and press Run. "
        "Turn on **Compare configurations** to run the same prompt under two or three constitutions or "
        "models side by side."
    )


# ---------------------------------------------------------------- the page


start_page("Playground")
st.title("Playground")
st.caption("Watch a model answer, critique and revise under your constitution, one round at a time.")

run = st.session_state.get(key("run"))
running = not run_finished(run)

infos = list_constitutions()
names = [info.name for info in infos if info.error is None]
broken = [info for info in infos if info.error]
if broken:
    st.caption(f"{len(broken)} constitution file(s) could not be read and are left out; the Constitution page says why.")
if not names:
    st.error("No constitution could be loaded; create one on the Constitution page first.")
    st.stop()

runs = trained_runs()
apply_preset(names, runs)
mode = st.radio("Mode", list(MODES), format_func=MODES.get, horizontal=True, key=key("mode"), label_visibility="collapsed")
if mode == TEST_MODE:
    show_constitution_test(names)
    st.stop()
prompt = prompt_input()
compare = st.toggle("Compare configurations", key=key("compare"),
                    help="Run the same prompt and settings under two or three constitutions, principle subsets or models, side by "
                          "side; give one configuration a critic to see self-critique beside an external critic.")
note_area = st.empty()
if compare:
    count = st.radio("Configurations", [2, 3], horizontal=True, key=key("count"))
    columns = st.columns(count, border=True)
    configs = []
    for index, column in enumerate(columns):
        with column:
            st.markdown(f"**Configuration {LETTERS[index]}**")
            configs.append(configuration_inputs(index, names, runs, compact=True))
else:
    configs = [configuration_inputs(0, names, runs, compact=False)]
show_preset_note(note_area, configs)
rounds, order, seed, settings = settings_inputs()

with st.container(horizontal=True):
    clicked = st.button("Run", type="primary", key=key("run-button"), disabled=running)
    if running and st.button("Stop", key=key("stop-button"), help="Stops after the step now being generated."):
        for job in run["jobs"]:
            job.cancel()
if running:
    st.caption("A run is in progress; Run is enabled again when it finishes.")
if clicked and not running:
    started = start_run(prompt, configs, rounds, order, seed, settings)
    if started is not None:
        st.session_state[key("run")] = started
        st.rerun()  # redraw with Run disabled while the new job works

if run is None:
    show_empty_state()
else:
    # Poll by what the Run button was drawn with, so a job that ends in between still gets the
    # one rerun that re-enables the button.
    show_run(run, polling=running)
