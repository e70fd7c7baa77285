"""Shared Streamlit helpers: the cached model, and small widgets every page uses."""

from __future__ import annotations

import re

import streamlit as st

from cai_core.models import GenerationBackend, ModelLoadError, default_model_spec, load_model


@st.cache_resource(show_spinner=False, max_entries=3)
def _cached_model(spec: str, trust_remote_code: bool) -> GenerationBackend:
    # Loaded once per server process and shared by every session; never mutated.
    return load_model(spec, trust_remote_code=trust_remote_code)


def get_model(spec: str | None = None, trust_remote_code: bool = False) -> GenerationBackend | None:
    """The shared model for ``spec`` (default: $CAI_MODEL or the bundled one), or None after
    showing the load error as one sentence."""
    spec = (spec or default_model_spec()).strip()
    try:
        with st.spinner(f"Loading model {spec}…"):
            return _cached_model(spec, trust_remote_code)
    except ModelLoadError as error:
        st.error(str(error))
        return None


def page_key(page: str, name: str) -> str:
    """Session-state keys are prefixed by page so two pages never share a widget's state."""
    return f"{page}:{name}"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>:$])")


def md(text: str) -> str:
    """Escape text for the places Streamlit renders as markdown (captions, alerts, labels)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def sentence(error: Exception | str) -> str:
    """An engine error as a sentence for st.error: first letter up (unless it starts with a file
    name), a full stop at the end, markdown escaped."""
    text = str(error).strip() or type(error).__name__
    if not getattr(error, "path", None):
        text = text[:1].upper() + text[1:]
    if not text.endswith((".", "!", "?")):
        text += "."
    return md(text)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
