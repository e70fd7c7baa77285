"""Constitution page: pick, write, check, version, import and export constitutions.

Widgets only. What makes a constitution valid, how files are named, saved, versioned, imported and
exported lives in ``cai_core``; this page keeps an editable working copy (a "draft") per session.

State model: the draft (a plain dict in widget form) lives in session_state under a key that names
the page and the constitution. Widgets use stable keys and are seeded from the draft; every run
first copies widget values back into the draft. Structural edits (add, delete, move, restore,
discard) run in callbacks, change the draft, then re-seed every widget, because widget keys are
positional and a reorder would otherwise leave each text in the wrong box.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import streamlit as st
from pydantic import ValidationError

from cai_core.constitution import Constitution, ConstitutionError, first_error_message, preferred_constitution
from cai_core.editing import TESTS_TEXT, constitution_to_form, form_to_constitution, placeholder_principle, principle_to_form
from cai_core.lint import lint_constitution
from cai_core.paths import user_constitutions_dir
from cai_core.prompts import default_comparison_request
from cai_core.store import (
    TRASH_DIRNAME,
    create_constitution,
    delete_constitution,
    diff_texts,
    diff_versions,
    duplicate_constitution,
    export_constitution,
    import_constitution,
    list_constitutions,
    list_versions,
    load_constitution,
    read_version,
    restore_version,
    save_constitution,
)
from ui.common import md, page_key, plural, set_flash, upload_limit_words, upload_max_mb
from ui.common import show_flash as show_flash_once
from ui.navigation import start_page
from ui.principle_tests import principle_test_model, principle_test_panel, tests_editor

PAGE = "constitution"
WRITING_GUIDE = Path(__file__).resolve().parent.parent / "docs" / "writing-principles.md"


def key(name: str) -> str:
    return page_key(PAGE, name)


SELECT, DRAFT_FOR, DESCRIPTION = key("selected"), key("draft_for"), key("description")
# Principle field -> widget key stem. Draft values are kept in widget form (see cai_core.editing)
# so seeding a widget is a plain copy.
FIELDS = {
    "name": "name", "description": "pdescription", "tags": "tags", "enabled": "enabled", "weight": "weight",
    "critique_request": "critique", "revision_request": "revision", "comparison_request": "comparison",
    TESTS_TEXT: "tests",
}
_WIDGET_KEY = re.compile(rf"^{re.escape(key(''))}({'|'.join(FIELDS.values())})_(\d+)$")


def wkey(field: str, index: int) -> str:
    return key(f"{FIELDS[field]}_{index}")


def draft_key(name: str) -> str:
    return key(f"draft:{name}")


# ---------------------------------------------------------------- session state


def seed_widgets(draft: dict, overwrite: bool) -> None:
    state = st.session_state
    if overwrite or DESCRIPTION not in state:
        state[DESCRIPTION] = draft["description"]
    for index, principle in enumerate(draft["principles"]):
        for field in FIELDS:
            if overwrite or wkey(field, index) not in state:
                state[wkey(field, index)] = principle[field]
    if overwrite:  # boxes past the end would otherwise come back holding a deleted principle
        count = len(draft["principles"])
        for stale in [k for k in state if (m := _WIDGET_KEY.match(str(k))) and int(m.group(2)) >= count]:
            del state[stale]


def sync_from_widgets(draft: dict) -> None:
    state = st.session_state
    draft["description"] = state.get(DESCRIPTION, draft["description"])
    for index, principle in enumerate(draft["principles"]):
        for field in FIELDS:
            principle[field] = state.get(wkey(field, index), principle[field])


def reset_draft(name: str, constitution: Constitution) -> None:
    state = st.session_state
    for old in [k for k in state if str(k).startswith(key("draft:"))]:
        del state[old]
    draft = constitution_to_form(constitution)
    for principle in draft["principles"]:
        principle.update(uid=next_uid(), expanded=len(draft["principles"]) == 1)
    state[draft_key(name)] = draft
    state[DRAFT_FOR] = name
    state.pop(key("delete_confirm"), None)
    show_newest_versions()
    seed_widgets(state[draft_key(name)], overwrite=True)


def next_uid() -> int:
    """A session-unique id per principle in a draft. Its expander is keyed by it, not by position:
    Streamlit keeps a keyed expander's open state through label changes and moves, so the
    principle being renamed or moved stays open."""
    uid = st.session_state.get(key("uid"), 0)
    st.session_state[key("uid")] = uid + 1
    return uid


def show_newest_versions() -> None:
    # Streamlit keeps a select box's old choice when options change; after a save the user
    # wants to see the version just made, not the one picked before.
    for widget in ("version", "diff_old", "diff_new"):
        st.session_state.pop(key(widget), None)


def current_draft(name: str, saved: Constitution) -> dict:
    """The working copy for ``name``; a fresh one from disk when the user picked another."""
    state = st.session_state
    if state.get(DRAFT_FOR) != name or draft_key(name) not in state:
        reset_draft(name, saved)
    draft = state[draft_key(name)]
    seed_widgets(draft, overwrite=False)  # after another page, Streamlit has dropped the widgets
    sync_from_widgets(draft)
    return draft


def select(name: str) -> None:
    """Show ``name`` next run with a working copy fresh from disk (call from a callback)."""
    st.session_state[SELECT] = name
    st.session_state.pop(DRAFT_FOR, None)


def flash(where: str, kind: str, text: str) -> None:
    """A message for the next run to show once in its place (``where``: save, versions, import, manage)."""
    set_flash(key(f"flash:{where}"), md(text), kind)  # flashes carry file names and engine errors


def show_flash(where: str) -> bool:
    return show_flash_once(key(f"flash:{where}"))


def engine_call(where: str, action, *args, **kwargs):
    """Run a cai_core write; on failure flash its one-sentence reason and return None."""
    try:
        return action(*args, **kwargs)
    except ConstitutionError as error:
        flash(where, "error", str(error))
    except ValidationError as error:
        flash(where, "error", first_error_message(error)[0])
    except OSError as error:
        flash(where, "error", f"Could not write {error.filename or 'the file'}: {error.strerror or error}.")
    return None


# ---------------------------------------------------------------- callbacks


def edit_principles(name: str, change) -> None:
    draft = st.session_state[draft_key(name)]
    sync_from_widgets(draft)
    change(draft["principles"])
    seed_widgets(draft, overwrite=True)


def add_principle(name: str) -> None:
    draft = st.session_state[draft_key(name)]
    taken = {p["name"] for p in draft["principles"]}
    new = {**principle_to_form(placeholder_principle(taken)), "uid": next_uid(), "expanded": True}
    edit_principles(name, lambda principles: principles.append(new))


def move_principle(name: str, index: int, step: int) -> None:
    def swap(principles: list) -> None:
        principles[index], principles[index + step] = principles[index + step], principles[index]
    edit_principles(name, swap)


def delete_principle(name: str, index: int) -> None:
    edit_principles(name, lambda principles: principles.pop(index))


def save(name: str) -> None:
    draft = st.session_state[draft_key(name)]
    sync_from_widgets(draft)
    constitution, problem = form_to_constitution(name, draft)
    if problem:
        flash("save", "error", f"Not saved: {problem}.")
        return
    before = list_versions(name)
    path = engine_call("save", save_constitution, constitution)
    if path:
        after = list_versions(name)
        if len(after) == len(before):
            flash("save", "info", f"Nothing changed since version {after[-1].number}; the file is up to date.")
        else:
            show_newest_versions()
            flash("save", "success", f"Saved version {after[-1].number} of {name}.")


def discard(name: str) -> None:
    constitution = engine_call("save", load_constitution, name)
    if constitution:
        reset_draft(name, constitution)
        flash("save", "info", "Unsaved changes discarded.")


def restore(name: str, number: int) -> None:
    latest = list_versions(name)[-1].number
    restored = engine_call("versions", restore_version, name, number)
    if restored:
        reset_draft(name, restored)
        newest = list_versions(name)[-1].number
        if newest == latest:
            flash("versions", "info", f"Version {number} is already the saved content (version {latest}); your unsaved edits were discarded.")
        else:
            flash("versions", "success", f"Restored version {number} as version {newest}.")


def create_new() -> None:
    state = st.session_state
    path = engine_call("manage", create_constitution, state[key("new_name")], state[key("new_description")])
    if path:
        select(path.stem)
        state[key("new_name")], state[key("new_description")] = "", ""
        flash("manage", "success", f"Created {path.stem} with one placeholder principle; fill it in on the Edit tab and Save.")


def duplicate(source: str) -> None:
    new_name = st.session_state[key("dup_name")]
    path = engine_call("manage", duplicate_constitution, source, new_name)
    if path:
        select(path.stem)
        st.session_state[key("dup_name")] = ""
        flash("manage", "success", f"Copied the saved {source} to {path.stem}; you are now editing the copy.")


def delete(name: str) -> None:
    trash = engine_call("manage", delete_constitution, name)
    if trash and st.session_state.get(SELECT) == name:
        # A shipped starter of the same name shows again; otherwise fall back to the first one.
        remaining = [info.name for info in list_constitutions() if not info.error]
        if remaining:
            select(name if name in remaining else remaining[0])
    if trash:
        flash("manage", "success", f"Moved {name} and its versions to the trash folder {trash}.")


def import_upload() -> None:
    state = st.session_state
    upload = state.get(key("upload"))
    if upload is None:
        flash("import", "error", "Choose a file to import first.")
        return
    name = state.get(key("import_name"), "").strip() or None
    path = engine_call("import", import_constitution, upload.getvalue(), upload.name,
                       name=name, overwrite=state.get(key("import_overwrite"), False))
    if path:
        select(path.stem)
        flash("import", "success", f"Imported {upload.name} as {path.stem}; it is now selected.")


# ---------------------------------------------------------------- layout


def render_broken(broken: list) -> None:
    st.warning(f"{plural(len(broken), 'constitution file')} could not be loaded, so not listed:")
    for info in broken:
        st.text(info.error)
        if not info.shipped:
            st.button(md(f"Move {info.path.name} to the trash"), key=key(f"trash_{info.name}"),
                      on_click=delete, args=(info.name,))


def render_sidebar(name: str, info, saved: Constitution, dirty: bool, problem: str | None) -> None:
    st.caption(md(f"{'Shipped starter' if info.shipped else 'Yours'}, {plural(len(saved.principles), 'principle')}, from {info.path}"))
    st.button("Save", key=key("save"), type="primary", on_click=save, args=(name,), width="stretch")
    if not show_flash("save") and problem:
        st.caption("Fix the error shown on the Edit tab before saving.")
    if dirty:
        st.caption("You have unsaved changes.")
        st.button("Discard changes", key=key("discard"), on_click=discard, args=(name,), width="stretch")


def render_checks(edited: Constitution | None, problem: str | None, saved: Constitution) -> None:
    if problem:
        st.error(md(problem))
        return
    warnings = lint_constitution(edited)
    for warning in warnings:
        st.warning(md(str(warning)))
    if not warnings:
        st.caption("Valid, and no lint warnings.")
    changes = diff_texts(export_constitution(saved), export_constitution(edited), "saved", "edited")
    if changes:
        with st.expander("Unsaved changes"):
            st.code(changes, language="diff")


def render_principle(name: str, index: int, principle: dict, count: int, test_model: str | None, judge: bool) -> None:
    label = f"{index + 1}. {principle['name'] or '(unnamed)'}" + ("" if principle["enabled"] else " (disabled)")
    # Not stateful (no on_change): a stateful expander's identity includes its label and
    # `expanded`, so each rename or toggle would rebuild it and drop text being typed inside.
    with st.expander(md(label), expanded=principle["expanded"], key=key(f"principle_{principle['uid']}")):
        left, middle, right = st.columns([3, 1, 1], vertical_alignment="bottom")
        left.text_input("Name", key=wkey("name", index))
        middle.number_input("Weight", min_value=0.0, max_value=100.0, step=0.5, key=wkey("weight", index),
                            help="How often this principle is drawn, relative to the others, when principles are sampled at random.")
        right.toggle("Enabled", key=wkey("enabled", index))
        st.text_input("Description", key=wkey("description", index))
        st.text_input("Tags (comma-separated)", key=wkey("tags", index))
        st.text_area("Critique request", key=wkey("critique_request", index),
                     help="Asks the model what is wrong with its previous answer under this principle.")
        st.text_area("Revision request", key=wkey("revision_request", index),
                     help="Asks the model to rewrite its answer to fix what the critique found.")
        critique = str(st.session_state.get(wkey("critique_request", index)) or "")
        st.text_area("Comparison request (optional)", key=wkey("comparison_request", index),
                     placeholder=default_comparison_request(critique) if critique.strip() else None,
                     help="Phase 2's judge asks which of two answers follows this principle better; "
                          "left empty, the one shown greyed out is built from the critique request.")
        tests_editor(wkey(TESTS_TEXT, index), index + 1)
        principle_test_panel(principle, index + 1, key(f"test_run_{principle['uid']}"), key(f"test_{index}"),
                            test_model, judge)
        up, down, remove, _ = st.columns([1, 1, 1, 3])
        up.button("Move up", key=key(f"up_{index}"), disabled=index == 0, on_click=move_principle, args=(name, index, -1))
        down.button("Move down", key=key(f"down_{index}"), disabled=index == count - 1,
                    on_click=move_principle, args=(name, index, 1))
        remove.button("Delete principle", key=key(f"delete_{index}"), disabled=count == 1,
                      on_click=delete_principle, args=(name, index))


def render_edit(name: str, info, draft: dict, edited: Constitution | None, problem: str | None, saved: Constitution) -> None:
    if info.shipped:
        st.caption(md(f"{name} is a shipped starter and its file is never changed. Save writes your own copy "
                      f"of the same name to {user_constitutions_dir()}, which then takes its place in the list."))
    render_checks(edited, problem, saved)
    st.text_area("Constitution description", key=DESCRIPTION, height=80)
    test_model, judge = principle_test_model(key)
    count = len(draft["principles"])
    for index, principle in enumerate(draft["principles"]):
        render_principle(name, index, principle, count, test_model, judge)
    st.button("Add principle", key=key("add"), on_click=add_principle, args=(name,))
    st.caption("Edits are kept while you use the app; switching to another constitution discards unsaved edits.")


def _saved_at(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def render_versions(name: str) -> None:
    show_flash("versions")
    versions = list_versions(name)
    if not versions:
        st.info("No saved versions yet. Every Save keeps one, so you can view, compare and restore it here.")
        return
    saved_at = {v.number: _saved_at(v.saved_at) for v in versions}
    newest_first = [v.number for v in reversed(versions)]
    number = st.selectbox("Version", newest_first, key=key("version"),
                          format_func=lambda n: f"v{n} (saved {saved_at[n]})")
    st.code(read_version(name, number), language="yaml")
    st.button("Restore this version", key=key("restore"), on_click=restore, args=(name, number),
              help="Saves this version's content as a new version; no version is lost.")
    if len(versions) < 2:
        return
    st.subheader("Compare two versions")
    oldest_first = newest_first[::-1]
    left, right = st.columns(2)
    old = left.selectbox("From", oldest_first, index=len(oldest_first) - 2, key=key("diff_old"), format_func=lambda n: f"v{n}")
    new = right.selectbox("To", oldest_first, index=len(oldest_first) - 1, key=key("diff_new"), format_func=lambda n: f"v{n}")
    st.code(diff_versions(name, old, new) or "The two versions are identical.", language="diff")


def render_import_export(name: str, edited: Constitution | None) -> None:
    st.subheader("Import a file")
    st.file_uploader("Constitution file", type=["yaml", "yml", "json"], key=key("upload"),
                     help="Our YAML or JSON format, llm-swarm's critic/revision JSON list, or a list of "
                          "critique_request/revision_request pairs. " + upload_limit_words("constitution"),
                     max_upload_size=upload_max_mb("constitution"))
    st.text_input("Save as name (optional; default: the name in the file, else the file name)", key=key("import_name"))
    st.checkbox("Overwrite my constitution of the same name (it keeps its versions)", key=key("import_overwrite"))
    st.button("Import", key=key("import"), on_click=import_upload)
    show_flash("import")
    st.subheader("Download")
    if edited is None:
        st.caption("Fix the error shown on the Edit tab to download.")
    else:
        st.caption("Downloads hold what you see on the Edit tab, unsaved edits included. "
                   "llm-swarm's format keeps only the enabled principles' critique and revision requests.")
    formats = (("YAML", "yaml", "yaml", "application/x-yaml"), ("JSON", "json", "json", "application/json"),
               ("llm-swarm JSON", "llm-swarm", "llm-swarm.json", "application/json"))
    for column, (label, fmt, suffix, mime) in zip(st.columns(3), formats):
        data = export_constitution(edited, fmt) if edited else ""
        column.download_button(f"Download {label}", data, file_name=f"{name}.{suffix}", mime=mime,
                               key=key(f"download_{fmt}"), disabled=edited is None, on_click="ignore")


def render_manage(name: str | None, info) -> None:
    show_flash("manage")
    st.subheader("New constitution")
    st.text_input("Name", key=key("new_name"), help="Letters, digits, spaces, '-', '_' and '.'.")
    st.text_input("Description", key=key("new_description"))
    st.button("Create", key=key("create"), on_click=create_new)
    if name is None:
        return
    st.subheader(md(f"Duplicate {name}"))
    st.text_input("Name of the copy", key=key("dup_name"))
    st.caption("The copy is made from the saved file; unsaved edits are not included.")
    st.button("Duplicate", key=key("duplicate"), on_click=duplicate, args=(name,))
    st.subheader(md(f"Delete {name}"))
    if info.shipped:
        st.caption("Shipped starters cannot be deleted; duplicate one to make your own.")
        return
    st.caption(md(f"Delete moves the file and its versions into {user_constitutions_dir() / TRASH_DIRNAME}; "
                  "nothing is erased. If a shipped starter has the same name, it shows again."))
    confirmed = st.checkbox(md(f"Yes, move {name} to the trash"), key=key("delete_confirm"))
    st.button("Delete", key=key("delete"), disabled=not confirmed, on_click=delete, args=(name,))


def main() -> None:
    start_page("Constitution")
    st.title("Constitution")
    if WRITING_GUIDE.is_file():  # the project's own guide (docs/writing-principles.md), not user text
        with st.expander("How to write principles that do what you mean (docs/writing-principles.md)"):
            st.markdown(WRITING_GUIDE.read_text(encoding="utf-8"))
    infos = list_constitutions()
    usable = {info.name: info for info in infos if not info.error}
    broken = [info for info in infos if info.error]
    if broken:
        render_broken(broken)
    if not usable:
        st.info("There are no constitutions yet; create one below.")
        render_manage(None, None)
        return
    if st.session_state.get(SELECT) not in usable:  # first visit, or it was deleted elsewhere
        st.session_state[SELECT] = preferred_constitution(list(usable))
    with st.sidebar:
        # Plain names as labels: a label that changed on save ("(shipped)" dropped) would leave
        # the browser showing the old one.
        name = st.selectbox("Constitution", list(usable), key=SELECT)
    try:
        saved = load_constitution(name)
    except ConstitutionError as error:
        st.error(md(str(error)))
        return
    draft = current_draft(name, saved)
    edited, problem = form_to_constitution(name, draft)
    dirty = edited is None or export_constitution(edited) != export_constitution(saved)
    with st.sidebar:
        render_sidebar(name, usable[name], saved, dirty, problem)
    edit, versions, transfer, manage = st.tabs(["Edit", "Versions", "Import and export", "New, duplicate, delete"])
    with edit:
        render_edit(name, usable[name], draft, edited, problem, saved)
    with versions:
        render_versions(name)
    with transfer:
        render_import_export(name, edited)
    with manage:
        render_manage(name, usable[name])


main()
