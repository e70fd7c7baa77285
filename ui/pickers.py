"""The choices several pages share: a model, and a constitution.

A model choice keeps one of these values in the page's state: ``APP_MODEL`` (the app's own model,
from CAI_MODEL), ``DEFAULT_MODEL`` (the bundled one), a finished run's folder, or ``OTHER_MODEL``
(a folder or hub id typed beside it). A page may add entries of its own (Training's "the recipe's
base_model"); they stand for no model of their own, so the choice returns None for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import streamlit as st

from cai_core.constitution import preferred_constitution
from cai_core.models import DEFAULT_MODEL, default_model_spec, is_endpoint_spec
from cai_core.roles import ROLE_SENTENCES
from cai_core.store import list_constitutions
from cai_core.training import RunInfo, list_runs, model_label
from cai_core.training.runs import run_for_spec, same_path
from ui.common import page_key

APP_MODEL, OTHER_MODEL = ":app", ":other"
ENDPOINT_HELP = " Or an OpenAI-compatible endpoint URL such as http://localhost:8000/v1 (vLLM, TGI, transformers serve)."
OTHER_HELP = ("A local folder with config.json and safetensors weights, a finished run's or an adapter's folder "
              "(loaded on the base it was trained on), or a hub id.")


def finished_runs(runs: list[RunInfo]) -> list[RunInfo]:
    """The runs a model can be taken from: finished, with their adapter."""
    return [run for run in runs if run.state == "finished" and run.has_adapter]


def run_choice_label(run: RunInfo) -> str:
    about = f" ({run.spec.method.upper()} on {model_label(run.spec.base_model)})" if run.spec else ""
    return f"run: {run.name}{about}"


def model_picker(label: str, state_key: str, other_key: str, runs: list[RunInfo], help: str, *,
                 bundled: bool = True, extra: dict[str, str] | None = None, runs_first: bool = False,
                 default: str | None = None, columns=None, endpoints: bool = False) -> str | None:
    """A model: the app's, the bundled one, a finished run (base + adapters), or a typed one.

    ``runs`` are offered in the order given; ``extra`` maps a page's own entries to their labels;
    ``default`` is the entry chosen first (else the first fixed one); ``endpoints``: the typed model
    may be an OpenAI-compatible endpoint URL (where the model only generates, never trains). Returns
    the model's spec, or None for an ``extra`` entry or an empty typed one.
    """
    app = default_model_spec()
    by_folder = {str(run.folder): run for run in finished_runs(runs)}
    fixed = ([APP_MODEL] if app != DEFAULT_MODEL else []) + list(extra or {}) + ([DEFAULT_MODEL] if bundled else [])
    options = [*by_folder, *fixed, OTHER_MODEL] if runs_first else [*fixed, *by_folder, OTHER_MODEL]
    if st.session_state.get(state_key) not in options:
        st.session_state[state_key] = default if default in options else fixed[0]

    def name(option: str) -> str:
        if option == APP_MODEL:
            return f"the app's model (CAI_MODEL): {model_label(app)}"
        if option == DEFAULT_MODEL:
            return "the bundled model (default)"
        if option == OTHER_MODEL:
            return f"another model: a folder, hub id{' or endpoint URL' if endpoints else ''}…"
        if option in (extra or {}):
            return extra[option]
        return run_choice_label(by_folder[option])

    left, right = columns or st.columns(2)
    choice = left.selectbox(label, options, key=state_key, format_func=name, help=help)
    if choice == OTHER_MODEL:
        placeholder = "/path/to/model-folder, a run folder, org/model-id" + (", http://host:port/v1" if endpoints else "")
        typed = right.text_input(label if endpoints else "Model", key=other_key, placeholder=placeholder,
                                 help=OTHER_HELP + (ENDPOINT_HELP if endpoints else ""))
        return typed.strip() or None
    if choice in (extra or {}):
        return None
    return app if choice == APP_MODEL else choice


ROLE_PICKER_HELP = ("The app's model, the bundled one, a finished training run (its adapter on its base), or "
                    "another: a folder, a hub id or an endpoint URL. Local models must fit in memory together; "
                    "an endpoint takes none.")
# The critic's and the judge's own entries: they stand for no model of their own.
SELF_CRITIQUE, JUDGE_BY_DEFAULT = ":self-critique", ":judge-by-default"


def role_model_pickers(key: Callable[[str], str], runs: list[RunInfo]) -> dict[str, str | None]:
    """The policy, critic and judge, each picked beside one sentence on what it does.

    Returns {role: model spec}; None for the policy means the app's model was left empty, for the
    critic self-critique, for the judge the default (the critic, else the policy)."""
    choices = (("policy", "Policy model", None, None),
               ("critic", "Critic model", {SELF_CRITIQUE: "none: the policy critiques itself"}, SELF_CRITIQUE),
               ("judge", "Judge model", {JUDGE_BY_DEFAULT: "by default: the critic, else the policy"}, JUDGE_BY_DEFAULT))
    specs: dict[str, str | None] = {}
    for role, label, extra, default in choices:
        left, right = st.columns(2)
        specs[role] = model_picker(label, key(f"{role}_model"), key(f"{role}_model_other"), finished_runs(runs),
                                   ROLE_PICKER_HELP, extra=extra, default=default, columns=(left, right),
                                   endpoints=True)
        left.caption(ROLE_SENTENCES[role])
    return specs


def loadable_constitutions() -> list[str]:
    return [info.name for info in list_constitutions() if info.error is None]


def constitution_picker(state_key: str, help: str | None = None, where=st, names: list[str] | None = None,
                        label: str = "Constitution") -> str | None:
    """A constitution that loads (the default one first), or None after saying there is none."""
    names = loadable_constitutions() if names is None else names
    if not names:
        st.error("No constitution could be loaded; create one on the Constitution page first.")
        return None
    if st.session_state.get(state_key) not in names:
        st.session_state[state_key] = preferred_constitution(names)
    return where.selectbox(label, names, key=state_key, help=help)


# ---------------------------------------------------------------- the Playground's model choice
# Results name the model they came from, so this choice has labels of its own ("default (…)",
# "run: NAME (sft, from BASE)") and follows a preset from the Training page (choice_for_spec).


def trained_runs() -> list[RunInfo]:
    """Finished training runs with an adapter, newest first: each can be chosen as a model."""
    return [run for run in list_runs() if run.state == "finished" and run.has_adapter]


def _base_label(base: str) -> str:
    if base == DEFAULT_MODEL:
        return "bundled model"
    path = Path(base).expanduser()
    return path.name if path.exists() and path.name else base


def run_label(run: RunInfo, short: bool = False) -> str:
    if short or run.spec is None:
        return f"run: {run.name}"
    return f"run: {run.name} ({run.spec.method}, from {_base_label(run.spec.base_model)})"


def default_label() -> str:
    spec = default_model_spec()
    return "default (bundled model)" if spec == DEFAULT_MODEL else f"default ($CAI_MODEL: {_base_label(spec)})"


def choice_for_spec(spec: str, runs: list[RunInfo]) -> tuple[str, str | None]:
    """(model choice, free text or None) that shows ``spec``: a run as its run, else the text box."""
    spec = (spec or "").strip()
    default = default_model_spec()
    if not spec or spec == default or (not is_endpoint_spec(spec) and Path(spec).expanduser().exists()
                                       and same_path(spec, default)):
        return APP_MODEL, None
    run = run_for_spec(spec, runs)
    if run is not None:
        return str(run.folder), None
    return OTHER_MODEL, spec


def result_label(spec: str, runs: list[RunInfo]) -> str:
    """How results name a model: a run by its name, the default as the default, anything else as given."""
    run = run_for_spec(spec, runs)
    if run is not None:
        return run_label(run)
    if spec == default_model_spec():
        return default_label()
    return spec


def model_input(index: int, runs: list[RunInfo]) -> tuple[str, str]:
    """The Playground's model choice for configuration ``index``: (spec to load, label for the results)."""
    choice_key, text_key = page_key("playground", f"model-choice-{index}"), page_key("playground", f"model-{index}")
    labels = {APP_MODEL: default_label(), **{str(run.folder): run_label(run) for run in runs},
              OTHER_MODEL: "another model…"}
    current = st.session_state.get(choice_key, APP_MODEL)
    if current not in labels:  # a run deleted, or its adapter removed, since it was chosen
        st.session_state[text_key] = current
        current = OTHER_MODEL
    if st.session_state.get(choice_key) != current:
        st.session_state[choice_key] = current
    choice = st.selectbox(
        "Model",
        list(labels),
        format_func=lambda value: labels.get(value, value),
        key=choice_key,
        help="default: $CAI_MODEL, else the bundled model. run: a finished training run, its LoRA adapter "
             "merged into the model it was trained from. another model: a local folder, a hub id or an endpoint URL.",
    )
    if choice == APP_MODEL:
        return default_model_spec(), default_label()
    if choice != OTHER_MODEL:
        run = next(run for run in runs if str(run.folder) == choice)
        return choice, run_label(run)
    st.session_state.setdefault(text_key, default_model_spec())
    spec = st.text_input(
        "Model folder, hub id or endpoint URL",
        key=text_key,
        help='"default" (the bundled model), a local model folder or a finished run\'s folder, a Hugging Face '
             "hub id such as org/name, or an OpenAI-compatible endpoint URL such as http://localhost:8000/v1.",
    )
    spec = (spec or "").strip() or default_model_spec()
    return spec, result_label(spec, runs)


def critic_input(index: int, runs: list[RunInfo]) -> str | None:
    """The Playground's optional critic for configuration ``index``: a model spec, or None when the
    model critiques itself."""
    return model_picker(
        "Critic", page_key("playground", f"critic-choice-{index}"), page_key("playground", f"critic-{index}"), runs,
        "Another model that writes every critique and revision after this model's first answer, as an external "
        "critic does for a small model. None: the model critiques itself.",
        extra={SELF_CRITIQUE: "none: the model critiques itself"}, default=SELF_CRITIQUE, columns=(st, st),
        endpoints=True)
