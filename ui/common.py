"""Shared Streamlit helpers: the cached model, and small widgets every page uses."""

from __future__ import annotations

import re
import time
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

from cai_core.models.adapters import content_key
from cai_core.jobs import read_json
from cai_core.models import (
    GenerationBackend,
    ModelLoadError,
    default_model_spec,
    load_model,
)
from cai_core.data.promptsets import MAX_PROMPT_FILE_BYTES
from cai_core.store import MAX_FILE_BYTES

# How the pages that start background jobs (data, training, evaluation) name and colour a job's state.
STATE_LABELS = {
    "new": "not started", "queued": "queued", "running": "running", "finished": "finished",
    "failed": "failed", "cancelled": "stopped", "interrupted": "interrupted",
}
STATE_COLORS = {"new": "gray", "queued": "violet", "running": "blue", "finished": "green", "failed": "red",
                "cancelled": "orange", "interrupted": "orange"}


MB = 1024 * 1024  # as Streamlit counts an upload's megabytes
# What each uploader takes, in bytes. The browser refuses a larger file before sending it (the widget's
# max_upload_size), the widget's help says the limit, and the page checks it again on arrival.
UPLOAD_LIMITS = {
    "constitution": MAX_FILE_BYTES,  # the store reads no larger constitution file
    "prompts": MAX_PROMPT_FILE_BYTES,
    "training": 200 * MB,  # a training file is held in memory once while its rows are checked
    "reports": 50 * MB,
}
# server.maxUploadSize in .streamlit/config.toml: the server answers anything larger with a bare HTTP 413
# before a page can say why, so it is the largest limit above (a test keeps the two in step).
SERVER_MAX_UPLOAD_MB = 200


def _size_words(size: int) -> str:
    return f"{size / MB:.3g} MB" if size >= MB else f"{max(1, size // 1024)} KB"


def upload_max_mb(kind: str) -> int:
    """The uploader's max_upload_size: whole megabytes, the least that holds the limit."""
    return -(-UPLOAD_LIMITS[kind] // MB)


def upload_limit_words(kind: str) -> str:
    """The sentence an uploader's help ends with."""
    return f"Files up to {_size_words(UPLOAD_LIMITS[kind])}."


def upload_size_problem(kind: str, file_name: str, size: int) -> str | None:
    """One markdown-safe sentence when an uploaded file is over its uploader's limit, else None."""
    if size <= UPLOAD_LIMITS[kind]:
        return None
    return md(f"{file_name} is larger than {_size_words(UPLOAD_LIMITS[kind])}, the most this upload takes.")


@st.cache_resource(show_spinner=False, max_entries=3)
def _cached_model(spec: str, trust_remote_code: bool, weights_key: str) -> GenerationBackend:
    # Loaded once per server process and shared by every session; never mutated. weights_key is
    # part of the cache key only: a run retrained under its old name must not get its old weights.
    return load_model(spec, trust_remote_code=trust_remote_code)


def get_model(spec: str | None = None, trust_remote_code: bool = False) -> GenerationBackend | None:
    """The shared model for ``spec`` (default: $CAI_MODEL or the bundled one), or None after
    showing the load error as one sentence."""
    spec = (spec or default_model_spec()).strip()
    try:
        with st.spinner(md(f"Loading model {spec}…")):
            return _cached_model(spec, trust_remote_code, content_key(spec))
    except ModelLoadError as error:
        st.error(md(str(error)))
        return None


def page_key(page: str, name: str) -> str:
    """Session-state keys are prefixed by page so two pages never share a widget's state."""
    return f"{page}:{name}"


# Every character that markdown, Streamlit's own extensions (":red[...]", ":material/x:", "$math$") or
# inline HTML give a meaning: a backslash makes each one literal. "=" and "-" underline a heading,
# "&" starts an entity such as "&lt;".
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>:$=&])")


def md(text: str) -> str:
    """Escape text for the places Streamlit renders as markdown (captions, alerts, labels), so file
    names, error texts and anything else a user or a file supplied show literally."""
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


def os_error_sentence(what: str, error: OSError) -> str:
    """A file-system failure as one st.error sentence: ``what`` ("the file could not be saved"), then why."""
    return sentence(f"{what}: {error.strerror or error}")


def set_pending(pending_key: str, values: dict) -> None:
    """Widget values for the next run to set before the widgets are drawn (Streamlit refuses to change
    a drawn widget's value): say the job just started as the one selected."""
    st.session_state.setdefault(pending_key, {}).update(values)


def apply_pending(pending_key: str) -> None:
    """At the top of a page: the values set_pending left, set while no widget is drawn yet."""
    for name, value in (st.session_state.pop(pending_key, None) or {}).items():
        st.session_state[name] = value


def set_flash(flash_key: str, text: str, kind: str = "success") -> None:
    """A message (already markdown-safe) for the next run of the page to show once where the page
    calls show_flash. ``kind``: success, info, warning or error."""
    st.session_state[flash_key] = (kind, text)


FLASH_KINDS = {"success": st.success, "info": st.info, "warning": st.warning, "error": st.error}


def show_flash(flash_key: str) -> bool:
    """Show, once, the message set_flash left under ``flash_key``; True when there was one."""
    flash = st.session_state.pop(flash_key, None)
    if flash:
        kind, text = flash
        FLASH_KINDS.get(kind, st.error)(text)
    return bool(flash)


def show_text(text, empty: str = "(empty)") -> None:
    """Model, user and prompt text is data: plain text, never markdown or HTML."""
    text = "" if text is None else str(text)
    if text.strip():
        st.text(text, width="stretch")
    else:
        st.caption(empty)


def link_page(path: str, label: str, icon: str | None = None) -> None:
    """A link to another page; a caption where the page is not part of this app (a page run alone)."""
    try:
        st.page_link(path, label=label, icon=icon)
    except StreamlitAPIException:
        st.caption(md(f"({label}: {path})"))


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of a file, for cache keys that change when the file does; None where it is missing."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def stored_spec(folder: Path) -> dict:
    """The spec a job folder was started with (its spec.json), or {}."""
    return (read_json(folder / "spec.json") or {}).get("spec") or {}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_times(progress: dict, active: bool) -> tuple[str, str]:
    """(time left, elapsed) of a job's progress.json. It is written at checkpoints: while the job runs,
    both count on from its last write."""
    since = max(0.0, time.time() - progress.get("updated", time.time())) if active else 0.0
    eta, elapsed = progress.get("eta_seconds"), progress.get("elapsed_seconds")
    return (duration(max(0.0, eta - since)) if active and eta is not None else "—",
            duration(elapsed + since) if elapsed is not None else "—")


def progress_metrics(progress: dict, active: bool, rate_label: str, last: tuple[str, str]) -> None:
    """The four figures under a job's progress bar: its rate, time left, elapsed, and one of its own."""
    columns = st.columns(4)
    rate = progress.get("rate_per_second")
    columns[0].metric(rate_label, f"{rate:.2f}" if rate else "—")
    left, elapsed = progress_times(progress, active)
    columns[1].metric("Time left", left)
    columns[2].metric("Elapsed", elapsed)
    columns[3].metric(*last)


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state)


def state_badge(state: str) -> None:
    st.badge(state_label(state), color=STATE_COLORS.get(state, "gray"))


def show_notes(notes: list[str], most: int = 5) -> None:
    """A job's warnings, the first ``most`` of them; the rest stay in its status.json."""
    if notes:
        shown = notes[:most]
        more = len(notes) - len(shown)
        st.warning("\n\n".join(md(note) for note in shown)
                   + (f"\n\n…and {plural(more, 'more note')} in status.json." if more else ""))
