"""Home page: what Constitution Studio is, which model it will use, where files live, how to start.

The model is never loaded here unless asked: loading takes seconds (the first time, preparing the
bundled model takes about half a minute), and the home page should open instantly.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cai_core.models.bundled import BUNDLED_MODEL_ID, is_bundled_model_ready
from cai_core.models import DEFAULT_MODEL, default_model_spec, pick_device
from cai_core.paths import cai_home
from cai_core.store import list_constitutions
from ui.common import get_model, page_key
from ui.navigation import PAGES, app_navigation

REPO = Path(__file__).resolve().parent

st.set_page_config(page_title="Constitution Studio", layout="wide")


@st.cache_resource(show_spinner=False)
def _device() -> str:
    # pick_device imports torch (a second or two); once per server process is enough.
    return pick_device()[0]


def _page(url_path: str) -> tuple[str, str] | None:
    """(file, sidebar title) of the page at ``url_path``, or None while its file does not exist."""
    found = [(path, title) for path, title, _, url in PAGES if url == url_path and (REPO / path).is_file()]
    return found[0] if found else None


def _model_section() -> None:
    st.subheader("Model")
    spec = default_model_spec()
    if spec == DEFAULT_MODEL:
        state = "ready" if is_bundled_model_ready() else "prepared on first load, about 30 seconds, once"
        st.write(f"Default model: the bundled {BUNDLED_MODEL_ID} ({state}).")
    else:
        st.write("Default model (from the CAI_MODEL environment variable):")
        st.code(spec, language=None)
    device = _device()
    st.write("Runs on: " + ("the GPU (CUDA)." if device == "cuda" else "the CPU (no CUDA GPU found)."))
    if st.button("Load model now", key=page_key("home", "load_model")):
        model = get_model()
        if model is not None:
            st.success("Model loaded.")
            st.text(model.describe())


def _files_section() -> None:
    st.subheader("Your files")
    infos = list_constitutions()
    broken = sum(1 for info in infos if info.error)
    usable = len(infos) - broken
    line = f"{usable} constitution{'s' if usable != 1 else ''} available"
    st.write(line + (f" ({broken} could not be read; the Constitution page shows why)." if broken else "."))
    st.write("Everything you make is kept under this folder (set CAI_HOME to move it):")
    st.code(str(cai_home()), language=None)


def _quick_start() -> None:
    st.subheader("Quick start")
    steps = (
        ("Constitution", "1. Pick a starter constitution or write your own principles."),
        ("Playground", "2. Run a prompt and watch the model critique and revise its own answer."),
        ("Data", "3. Turn the constitution into SFT data and AI-judged preference pairs."),
        ("Training", "4. Train a LoRA adapter with SFT, then DPO, on that data."),
        ("Alignment_Tax", "5. Evaluate base against aligned models and chart the alignment tax."),
        ("Loops", "6. Repeat data, training and evaluation in rounds, each from the last round's model."),
    )
    for url_path, text in steps:
        st.write(text)
        page = _page(url_path)
        if page:
            st.page_link(page[0], label=f"Open the {page[1]} page")
        else:
            st.caption(f"The {url_path.replace('_', ' ')} page is not installed yet.")


def home() -> None:
    st.title("Constitution Studio")
    st.write(
        "Constitution Studio is a workbench for Constitutional AI. You write the rules a model should "
        "follow as a constitution of principles, watch a real model critique and revise its own answers "
        "under them, turn that into training data, train LoRA adapters, and measure what the training "
        "bought and what it cost. Everything runs offline on a laptop CPU with the bundled small model."
    )
    _quick_start()
    _model_section()
    _files_section()


# Explicit navigation (ui/navigation.py), so the sidebar says "Home" rather than the script's file name.
app_navigation(home).run()
