"""Training: LoRA adapters with SFT, then DPO, on the data made on the Data page.

Layout and widgets only. A run is a folder under ``$CAI_HOME/runs`` worked on by its own training
process (``cai_core.training``); this page starts it, polls the folder from a fragment and draws
its curves from metrics.jsonl as they are written. Nothing trains in the script thread, so a
rerun, a closed tab or a second browser neither stops a run nor starts it twice.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

from cai_core.data import SFT_FILE, dataset_summary, list_datasets
from cai_core.jobs import read_job, timestamped_name
from cai_core.training import (
    METHODS,
    PAIR_FILES,
    RecipeError,
    RunInfo,
    TrainingSpec,
    cli_command,
    last_checkpoint,
    list_recipes,
    list_runs,
    model_label,
    parse_recipe,
    planned_steps,
    process_command,
    read_recipe_text,
    read_run,
    read_training_file,
    recipe_argument,
    recipe_label,
    resume_run,
    runs_dir,
    save_recipe,
    save_upload,
    start_run,
    uploads_dir,
    usable_rows,
)
from ui.common import (
    duration,
    file_stamp,
    apply_pending,
    link_page,
    md,
    os_error_sentence,
    page_key,
    plural,
    sentence,
    set_flash,
    set_pending,
    show_flash,
    upload_limit_words,
    upload_max_mb,
    upload_size_problem,
)
from ui.jobs import POLL_SECONDS as JOB_POLL_SECONDS
from ui.jobs import job_panel, start_or_say
from ui.navigation import page_path, start_page
from ui.pickers import model_picker
from ui.run_view import compare_runs, runs_table, show_curves, show_delete, show_downloads, show_settings, show_state

PAGE = "training"
POLL_SECONDS = 2 * JOB_POLL_SECONDS  # the curves of a live run are redrawn this often
PREFERRED_RECIPE = "cpu-demo"
METHOD_LABELS = {"sft": "SFT (Phase 1: the revised answers)", "dpo": "DPO (Phase 2: the preference pairs)"}
PAIR_LABELS = {"rlaif": "AI-judged pairs (RLAIF)", "revision": "pairs from revisions",
               "best_of_n": "best-of-N pairs (refusal rule)"}
# The "start from" choice's own entry (ui.pickers has the others): the model the recipe names.
START_RECIPE = ":recipe"


def key(name: str) -> str:
    return page_key(PAGE, name)


FLASH, SELECTED, NAME, SUGGESTED, METHOD, RECIPE, UPLOAD, UPLOAD_MESSAGE, PENDING, FORM_OPEN = (
    key("flash"), key("selected"), key("name"), key("suggested"), key("method"), key("recipe"), key("upload"),
    key("upload_message"), key("pending"), key("form_open"))
OTHER_MODEL = key("other_model")


def start_key(method: str) -> str:
    return key(f"start:{method}")


def data_key(method: str) -> str:
    return key(f"data:{method}")


def recipe_text_key(path: Path | str) -> str:
    return key(f"recipe-text:{path}")


def pairs_key(path: Path | str) -> str:
    return key(f"pairs:{path}")


def suggest_name(method: str) -> str:
    return timestamped_name(method)


# ---------------------------------------------------------------- reading files (cached until they change)


@st.cache_data(show_spinner=False, max_entries=128)
def _dataset_rows(folder: str, stamps: tuple) -> dict[str, int]:
    return dataset_summary(Path(folder))["rows"]


def dataset_rows(folder: Path) -> dict[str, int]:
    """Rows per file of a dataset (read again when one of its row files changes)."""
    stamps = tuple(file_stamp(folder / name) for name in (SFT_FILE, *PAIR_FILES.values()))
    return _dataset_rows(str(folder), stamps)


@st.cache_data(show_spinner=False, max_entries=128)
def _upload_rows(path: str, method: str, stamp: tuple | None) -> int | None:
    try:
        return len(read_training_file(Path(path), method))
    except RecipeError:
        return None


def uploaded_files(method: str) -> dict[str, int]:
    """Uploaded JSONL files whose rows all suit ``method``: path -> rows."""
    folder = uploads_dir()
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    counts = {str(path): _upload_rows(str(path), method, file_stamp(path)) for path in files}
    return {path: rows for path, rows in counts.items() if rows}


# ---------------------------------------------------------------- new run: state carried between reruns


def method_changed() -> None:
    """A run name the user left as suggested follows the method."""
    if st.session_state.get(NAME) == st.session_state.get(SUGGESTED):
        st.session_state[SUGGESTED] = st.session_state[NAME] = suggest_name(st.session_state[METHOD])


def save_uploaded_file() -> None:
    """on_change of the uploader: check every row, keep the file and add it to the chosen data."""
    uploaded = st.session_state.get(UPLOAD)
    if uploaded is None:
        st.session_state.pop(UPLOAD_MESSAGE, None)
        return
    method = st.session_state.get(METHOD, "sft")
    too_large = upload_size_problem("training", uploaded.name, uploaded.size)
    if too_large:  # the browser checks first; a client that skips it is refused here
        st.session_state[UPLOAD_MESSAGE] = ("error", too_large)
        return
    try:
        saved = save_upload(uploaded.name, uploaded.getvalue(), method)
    except RecipeError as error:  # TrainingDataError: the file, the bad lines and the first reason
        st.session_state[UPLOAD_MESSAGE] = ("error", sentence(error))
        return
    except OSError as error:
        st.session_state[UPLOAD_MESSAGE] = ("error", os_error_sentence("the file could not be saved", error))
        return
    chosen = st.session_state.get(data_key(method)) or []
    st.session_state[data_key(method)] = [*[c for c in chosen if c != str(saved)], str(saved)]
    rows = _upload_rows(str(saved), method, file_stamp(saved)) or 0
    what = "SFT rows" if method == "sft" else "preference pairs"
    st.session_state[UPLOAD_MESSAGE] = ("success", md(f"Saved {saved.name}: {rows} {what}, all usable; it is now "
                                                      "among the chosen training data."))


def reset_recipe_text(path: str) -> None:
    st.session_state[recipe_text_key(path)] = read_recipe_text(Path(path))


# ---------------------------------------------------------------- new run: the inputs


def start_inputs(method: str, runs: list[RunInfo], recipe_base: str | None) -> str | None:
    """The starting model the page sets (None: the recipe's own base_model)."""
    finished = [run for run in runs if run.state == "finished" and run.has_adapter and run.spec is not None]
    if method == "dpo":
        finished.sort(key=lambda run: run.spec.method != "sft")  # SFT runs first, newest first within
    sft_runs = [str(run.folder) for run in finished if run.spec.method == "sft"]
    recipe = f"the recipe's base_model: {model_label(recipe_base) if recipe_base else '(the recipe does not read)'}"
    model = model_picker("Start from", start_key(method), OTHER_MODEL, finished,
                         "The model the LoRA adapter is trained on top of. A finished run's adapter is merged into its "
                         "base first: DPO after SFT starts from the SFT model, which is also DPO's reference model.",
                         bundled=False, extra={START_RECIPE: recipe}, runs_first=method == "dpo",
                         default=sft_runs[0] if method == "dpo" and sft_runs else None)
    if method == "dpo" and not sft_runs:
        st.info("No finished SFT run yet, so DPO would start from a plain model. The usual path is SFT first, then DPO "
                "starting from that run: choose SFT above.")
    return model


def dataset_label(name: str, rows: dict[str, int], method: str, pairs: list[str], active: bool) -> str:
    if method == "sft":
        text = f"{name} · {plural(rows.get(SFT_FILE, 0), 'SFT row')}"
    else:
        short = {"rlaif": "RLAIF", "revision": "revision", "best_of_n": "best-of-N"}
        text = f"{name} · " + " + ".join(f"{rows.get(PAIR_FILES[p], 0)} {short[p]}" for p in pairs) + " pairs"
    return text + (" (still being generated)" if active else "")


def data_inputs(method: str, datasets: list[Path], pairs: list[str]) -> tuple[list[str], int]:
    """The chosen datasets and files, and how many rows they give ``method``."""
    counts = {folder.name: dataset_rows(folder) for folder in datasets}
    active = {folder.name: read_job(folder).active for folder in datasets}
    uploads = uploaded_files(method)
    options = [folder.name for folder in datasets] + list(uploads)
    if data_key(method) in st.session_state:
        st.session_state[data_key(method)] = [o for o in st.session_state[data_key(method)] if o in options]
    else:
        usable = [name for name in counts if usable_rows(counts[name], method, pairs)]
        st.session_state[data_key(method)] = usable[:1]

    def label(option: str) -> str:
        if option in counts:
            return dataset_label(option, counts[option], method, pairs, active[option])
        return f"{Path(option).name} (uploaded) · {plural(uploads[option], 'row')}"

    what = "SFT rows (Phase 1)" if method == "sft" else "preference pairs (Phase 2)"
    chosen = st.multiselect("Training data", options, key=data_key(method), format_func=label,
                            help=f"Datasets made on the Data page (their {what}) and JSONL files you uploaded. "
                                 "The rows are checked and copied into the run folder at launch.")
    if not options:
        st.info("No datasets yet. Make one on the Data page (Phase 1 SFT rows and Phase 2 preference pairs from a "
                "constitution), or upload a JSONL file below.")
        link_page(page_path("Data"), "Open the Data page", ":material/dataset:")
    shape = ('{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}, or "prompt" and "completion"'
             if method == "sft" else '"prompt", "chosen" and "rejected" (text or lists of messages)')
    st.file_uploader(f"Add your own {what} (.jsonl, one row a line: {shape})", type=["jsonl"], key=UPLOAD,
                     on_change=save_uploaded_file, help=upload_limit_words("training"),
                     max_upload_size=upload_max_mb("training"))
    message = st.session_state.get(UPLOAD_MESSAGE)
    if message:
        (st.success if message[0] == "success" else st.error)(message[1])
    total = sum(usable_rows(counts[c], method, pairs) if c in counts else uploads[c] for c in chosen)
    return chosen, total


def show_summary(spec: TrainingSpec, rows: int) -> None:
    rows = min(rows, spec.limit) if spec.limit else rows
    with st.container(horizontal=True):
        st.metric("Rows", rows if rows else "—")
        st.metric("Steps", planned_steps(spec, rows),
                  help="max_steps when set, else the epochs over the rows (each step takes the effective batch).")
        st.metric("Effective batch", spec.effective_batch_size,
                  help=f"batch_size {spec.batch_size} × gradient_accumulation_steps {spec.gradient_accumulation_steps}"
                       f" × num_processes {spec.num_processes}: rows per optimiser step.")
        st.metric("Learning rate", f"{spec.learning_rate:.1e}", help=f"{spec.lr_scheduler} schedule, "
                                                                     f"warmup ratio {spec.warmup_ratio:g}")
        if spec.method == "dpo":
            st.metric("Beta", f"{spec.beta:g}", help="The pull towards the reference (starting) model; smaller lets "
                                                     "the policy move further.")
        st.metric("LoRA", f"r {spec.lora.r} · α {spec.lora.alpha}")
    st.caption(md(f"Starting model: {model_label(spec.base_model)} · precision {spec.precision} · "
                  f"max length {spec.max_length} tokens · a checkpoint every {plural(spec.save_steps, 'step')}."))


def recipe_editor(path: Path, method: str) -> str:
    """The editable recipe text (kept per recipe for the session) with reset and save-as."""
    file_text = read_recipe_text(path)
    text_key = recipe_text_key(path)
    st.session_state.setdefault(text_key, file_text)
    text = st.text_area("Recipe (YAML)", key=text_key, height=380,
                        help="Settings at the top level apply to both methods; the sft: and dpo: sections override "
                             "them. Edits are checked as you make them and kept for this session.")
    edited = text != file_text
    with st.container(horizontal=True):
        st.button("Undo my edits", key=key("reset_recipe"), on_click=reset_recipe_text, args=(str(path),),
                  disabled=not edited, icon=":material/undo:")
        with st.popover("Save as my recipe", icon=":material/save:"):
            save_name = st.text_input("Recipe name", value=f"{path.stem}-mine", key=key("save_name"), max_chars=80)
            if st.button("Save", key=key("save_recipe"), type="primary"):
                try:
                    saved = save_recipe(save_name, text, method)
                except RecipeError as error:
                    st.error(sentence(error))
                except OSError as error:
                    st.error(os_error_sentence("the recipe could not be saved", error))
                else:
                    set_pending(PENDING, {RECIPE: str(saved), recipe_text_key(saved): text})
                    st.session_state[FORM_OPEN] = True
                    set_flash(FLASH, md(f"Saved your recipe {saved.stem} ({saved})."))
                    st.rerun()
    if edited:
        st.caption("Edited: these settings are used by a launch from this page; save them as your recipe for the "
                   "command line below to use them too.")
    return text


def new_run_form(runs: list[RunInfo], datasets: list[Path]) -> None:
    expanded = not runs or bool(st.session_state.get(FORM_OPEN))
    with st.expander("New run", expanded=expanded, icon=":material/add:"):
        recipes = [str(path) for path in list_recipes()]
        if not recipes:
            st.error("No recipe found: the recipes/ folder of the installation is missing.")
            return
        if st.session_state.get(RECIPE) not in recipes:
            preferred = [r for r in recipes if Path(r).stem == PREFERRED_RECIPE]
            st.session_state[RECIPE] = (preferred or recipes)[0]
        method_col, recipe_col, name_col = st.columns(3)
        method = method_col.radio("Method", METHODS, key=METHOD, format_func=METHOD_LABELS.get, on_change=method_changed,
                                  help="SFT teaches the model the final revisions; DPO teaches it to prefer the chosen "
                                       "answer of each pair over the rejected one.")
        recipe = Path(recipe_col.selectbox("Recipe", recipes, key=RECIPE, format_func=lambda path: recipe_label(Path(path)),
                                           help="Shipped recipes (recipes/) and the ones you saved from here."))
        name = name_col.text_input("Run name", key=NAME, max_chars=80,
                                   help="Letters, digits, '-', '_' and '.'; the folder under runs/ in your CAI_HOME.")

        # The editor is drawn below; its text as it stands decides what "the recipe's base_model" is.
        text = st.session_state.get(recipe_text_key(recipe), read_recipe_text(recipe))
        try:
            recipe_base: str | None = parse_recipe(text, method, recipe.name).base_model
        except RecipeError:
            recipe_base = None
        base_override = start_inputs(method, runs, recipe_base)

        pairs_override = None
        pairs = list(PAIR_LABELS)
        if method == "dpo":
            if pairs_key(recipe) not in st.session_state:
                try:
                    st.session_state[pairs_key(recipe)] = parse_recipe(read_recipe_text(recipe), "dpo").pairs
                except RecipeError:
                    st.session_state[pairs_key(recipe)] = pairs
            pairs = pairs_override = st.multiselect(
                "Preference pairs", list(PAIR_LABELS), key=pairs_key(recipe), format_func=PAIR_LABELS.get,
                help="Which pairs of a dataset DPO trains on (the recipe's pairs setting, set here): the two samples "
                     "ranked by the AI judge, final revision (chosen) against first answer (rejected), and a "
                     "best-of-N sample the refusal rule passes against one it fails.")
            if not pairs:
                st.warning("Choose at least one kind of pair.")
        data, rows = data_inputs(method, datasets, pairs)

        st.markdown("**Recipe**")
        text = recipe_editor(recipe, method)
        overrides: dict = {}
        if data:
            overrides["data"] = data
        if base_override:
            overrides["base_model"] = base_override
        if pairs_override:
            overrides["pairs"] = pairs_override
        source = recipe.name + (" (edited)" if text != read_recipe_text(recipe) else "")
        spec = None
        try:
            spec = parse_recipe(text, method, source, overrides)
        except RecipeError as error:
            st.error(sentence(error))
        if spec is None or (method == "dpo" and not pairs):
            st.button("Launch", type="primary", key=key("launch"), icon=":material/rocket_launch:", disabled=True)
            return
        show_summary(spec, rows)

        st.markdown("**Command**")
        st.caption("The same run from a terminal:")
        st.code(cli_command(spec, recipe_argument(recipe), name.strip() or None), language="bash",
                wrap_lines=True)
        st.caption("What Launch starts: the training process, in its own session (its output goes to log.txt in the "
                   "run folder):")
        st.code(process_command(runs_dir() / (name.strip() or "NAME"), spec), language="bash", wrap_lines=True)
        if not spec.data:
            st.caption("Choose training data above to launch.")
        if st.button("Launch", type="primary", key=key("launch"), icon=":material/rocket_launch:",
                     disabled=not spec.data):
            launch(spec, name)


def launch(spec: TrainingSpec, name: str) -> None:
    """Check everything and start the training process; every problem is one st.error sentence."""
    with st.spinner("Checking the starting model and every row of the data…"):
        folder = start_or_say(lambda: start_run(spec, name.strip() or None), "run")
    if folder is None:
        return
    set_pending(PENDING, {SELECTED: folder.name, FORM_OPEN: False})
    st.session_state.pop(NAME, None)  # the next run suggests a new name
    set_flash(FLASH, md(f"Started {folder.name}. It trains in its own process: you may leave "
                        "this page, and its curves appear below as it goes."))
    st.rerun()


# ---------------------------------------------------------------- the runs


def run_selector(runs: list[RunInfo]) -> RunInfo | None:
    st.subheader("Runs")
    if not runs:
        st.info("No training runs yet. Open **New run** above, choose data and a recipe, and press **Launch**: the "
                "run's progress and live curves appear here while it trains.")
        return None
    by_name = {run.name: run for run in runs}
    if st.session_state.get(SELECTED) not in by_name:
        st.session_state.pop(SELECTED, None)
    runs_table(runs, POLL_SECONDS)

    # No state in the labels: a run's state changes while the list stands (the table and the badge show it).
    chosen = st.selectbox("Run", list(by_name), key=SELECTED,
                          format_func=lambda n: f"{n} · {by_name[n].spec.method.upper() if by_name[n].spec else '?'}")
    return by_name[chosen]


# ---------------------------------------------------------------- the selected run, live


def resume_words(folder: Path) -> str:
    checkpoint = last_checkpoint(folder)
    return (f"Resuming carries on from {checkpoint.name.replace('-', ' ')} with the same settings and data."
            if checkpoint else "No checkpoint was saved yet: resuming starts this run again from step 0.")


def show_live_run(drawn: RunInfo) -> None:
    """The run's panel: state, Stop or Resume, log and curves, polled while it trains; the page
    catches up (table, result, downloads) when it ends."""
    folder = drawn.folder
    job_panel(folder, drawn.job, key(""), show=lambda job: show_state(read_run(folder)),
              stop_help="Saves a checkpoint at the end of the step being trained, then stops; Resume carries on.",
              stopping_words="Stopping: a checkpoint is saved at the end of this step…",
              resume=(lambda: start_or_say(lambda: resume_run(folder) or folder, "run") is not None)
              if drawn.spec is not None else None,
              resume_words=lambda job: resume_words(folder), log="always",
              then=lambda job: show_curves(read_run(folder)), poll_seconds=POLL_SECONDS)


# ---------------------------------------------------------------- the selected run, once it has ended


def show_result(run: RunInfo) -> None:
    result = run.result or {}
    st.subheader("Result")
    with st.container(horizontal=True):
        st.metric("Steps", result.get("steps", "—"))
        loss = result.get("train_loss")
        st.metric("Mean training loss", f"{loss:.4f}" if isinstance(loss, (int, float)) else "—")
        st.metric("Training time", duration(result.get("seconds")))
        st.metric("Rows", result.get("rows", "—"))
        peak = result.get("peak_rss_mb")
        st.metric("Peak memory", f"{peak:,.0f} MB" if isinstance(peak, (int, float)) else "—",
                  help="The training process's peak resident memory.")
        if result.get("resumed_from_step"):
            st.metric("Resumed from step", result["resumed_from_step"])
    st.caption("This run's folder is a model: anywhere a model is asked for (the Playground, the Data page, "
               "CAI_MODEL, `cai`), it loads the starting model with this adapter merged in.")
    st.code(str(run.folder), language=None)
    with st.container(horizontal=True):
        if st.button("Compare before/after in the Playground", key=key("compare"), type="primary",
                     icon=":material/compare:",
                     help="Opens the Playground with the starting model and this run side by side."):
            st.session_state[page_key("playground", "preset")] = {"models": [run.spec.base_model, str(run.folder)]}
            try:
                st.switch_page(page_path("Playground"))
            except StreamlitAPIException:
                st.error("The Playground page is not part of this app.")
        if run.spec.method == "sft" and st.button("Start DPO from this run", key=key("dpo_from"),
                                                  icon=":material/arrow_forward:",
                                                  help="Fills in New run above: DPO, starting from this run."):
            set_pending(PENDING, {METHOD: "dpo", start_key("dpo"): str(run.folder)})
            st.session_state[FORM_OPEN] = True
            st.session_state.pop(NAME, None)
            st.rerun()


# ---------------------------------------------------------------- several runs on one chart


# ---------------------------------------------------------------- the page


start_page("Training")
st.title("Training")
st.caption("Train a LoRA adapter on the data from the Data page: SFT on the revised answers (Phase 1), then DPO on the "
           "preference pairs (Phase 2), starting from the SFT run. Each run trains in its own process.")
st.session_state.setdefault(METHOD, "sft")
apply_pending(PENDING)
if NAME not in st.session_state:
    st.session_state[SUGGESTED] = st.session_state[NAME] = suggest_name(st.session_state[METHOD])
show_flash(FLASH)

runs = list_runs()
new_run_form(runs, list_datasets())
selected = run_selector(runs)
if selected is not None:
    show_live_run(selected)
    if selected.state == "finished" and selected.has_adapter and selected.spec is not None:
        show_result(selected)
    show_settings(selected)
    show_downloads(selected)
    show_delete(selected)
    compare_runs(runs, selected, POLL_SECONDS)
