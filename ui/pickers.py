"""The choices several pages share: a model, and a constitution.

A model choice keeps one of these values in the page's state: ``APP_MODEL`` (the app's own model,
from CAI_MODEL), ``DEFAULT_MODEL`` (the bundled one), a finished run's folder, or ``OTHER_MODEL``
(a folder or hub id typed beside it). A page may add entries of its own (Training's "the recipe's
base_model"); they stand for no model of their own, so the choice returns None for them.
"""

from __future__ import annotations

import streamlit as st

from cai_core.constitution import preferred_constitution
from cai_core.models import DEFAULT_MODEL, default_model_spec
from cai_core.store import list_constitutions
from cai_core.training import RunInfo, model_label

APP_MODEL, OTHER_MODEL = ":app", ":other"
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
                 default: str | None = None, columns=None) -> str | None:
    """A model: the app's, the bundled one, a finished run (base + adapters), or a typed one.

    ``runs`` are offered in the order given; ``extra`` maps a page's own entries to their labels;
    ``default`` is the entry chosen first (else the first fixed one). Returns the model's spec, or None for
    an ``extra`` entry or an empty typed one.
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
            return "another model: a folder or hub id…"
        if option in (extra or {}):
            return extra[option]
        return run_choice_label(by_folder[option])

    left, right = columns or st.columns(2)
    choice = left.selectbox(label, options, key=state_key, format_func=name, help=help)
    if choice == OTHER_MODEL:
        typed = right.text_input("Model", key=other_key, placeholder="/path/to/model-folder, a run folder, org/model-id",
                                 help=OTHER_HELP)
        return typed.strip() or None
    if choice in (extra or {}):
        return None
    return app if choice == APP_MODEL else choice


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
