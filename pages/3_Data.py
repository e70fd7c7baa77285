"""Data: turn a constitution and prompt sets into Phase 1 SFT rows and Phase 2 preference pairs.

SFT rows and pairs come from the critique → revision chain, from two samples ranked by an AI judge
(RLAIF), or, for models too small to critique or judge themselves, from N samples scored by the
refusal rule (best-of-N).

Layout and widgets only. A dataset is made by a worker process (``cai_core.jobs``) writing into its
own folder; this page starts it, polls the folder from a fragment and reads the rows written so
far. Nothing is generated in the script thread, so a rerun, a closed tab or a second browser
neither stops a run nor starts it twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from cai_core import charts
from cai_core.constitution import ConstitutionError
from cai_core.data import (
    BEST_OF_N_PAIRS_FILE,
    DONE_FILE,
    JUDGEMENTS_FILE,
    PROMPTS_FILE,
    REVISION_PAIRS_FILE,
    RLAIF_PAIRS_FILE,
    ROW_FILES,
    SAMPLES_FILE,
    SFT_FILE,
    TRACES_FILE,
    GenerationSpec,
    check_dataset_name,
    dataset_zip,
    datasets_dir,
    delete_dataset,
    list_datasets,
    parse_spec,
    read_checked_rows,
    start_generation,
)
from cai_core.jobs import JobError, JobState, cancel_job, read_job
from cai_core.models import (
    GenerationSettings,
    ModelLoadError,
    default_model_spec,
)
from cai_core.promptsets import (
    list_prompt_sets,
    load_prompt_sources,
    resolve_prompt_source,
    save_prompt_set,
)
from cai_core.store import list_constitutions, load_constitution
from ui.navigation import start_page
from ui.common import (
    md,
    os_error_sentence,
    page_key,
    plural,
    progress_times,
    sentence,
    set_flash,
    show_flash,
    show_notes,
    show_text,
    state_label,
    stored_spec,
    upload_limit_words,
    upload_max_mb,
)

PAGE = "data"
POLL_SECONDS = 1.0
PAGE_SIZE = 10
MAX_NOTES = 5  # the worker's warnings shown; the rest stay in status.json
PANELS_PER_LINE = 4  # initial answer, rounds and final answer: at most this many side by side
PREFERRED_CONSTITUTION = "general-hhh"
DEFAULT_LIMIT = 20  # enough to look at on a laptop CPU in a few minutes; 0 takes every prompt
_SETTINGS = GenerationSettings()
_SPEC = GenerationSpec.model_fields
RESUMABLE = ("new", "interrupted", "cancelled", "failed")
CARD_FILES = ("README.md", "card.json")


def key(name: str) -> str:
    return page_key(PAGE, name)


FLASH, SELECTED, NAME, SOURCES, UPLOAD, UPLOAD_MESSAGE, STARTED, REFUSE = (
    key("flash"), key("selected"), key("name"), key("sources"), key("upload"), key("upload_message"), key("started"),
    key("refuse_sources"))
SFT_SOURCES = {"revision": "critique → revision chain", "best_of_n": "best of N samples (refusal rule)"}


def suggest_name() -> str:
    return time.strftime("data-%Y%m%d-%H%M%S")


# ---------------------------------------------------------------- reading a dataset


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_rows(path: str, mtime_ns: int, size: int) -> tuple[list[dict], list[int]]:
    # Keyed by the file's mtime and size: a file the worker appended to is read again.
    return read_checked_rows(Path(path))


def rows_of(folder: Path, file_name: str) -> list[dict]:
    """The file's rows that have the expected shape; the lines of any others are reported once."""
    path = folder / file_name
    try:
        stat = path.stat()
    except FileNotFoundError:
        return []
    rows, bad_lines = _cached_rows(str(path), stat.st_mtime_ns, stat.st_size)
    if bad_lines:
        shown = ", ".join(str(n) for n in bad_lines[:5]) + (" …" if len(bad_lines) > 5 else "")
        verb = "is" if len(bad_lines) == 1 else "are"
        st.warning(md(f"{file_name}: {plural(len(bad_lines), 'row')} (line {shown}) {verb} not in the shape this "
                      "file's rows must have, so not shown; was the file edited by hand?"))
    return rows


# ---------------------------------------------------------------- new dataset


def apply_pending() -> None:
    """Changes to widgets made by the previous run (a widget's state can only be set before it is drawn)."""
    started = st.session_state.pop(STARTED, None)
    if started:
        st.session_state[SELECTED] = started
        st.session_state[NAME] = suggest_name()
    st.session_state.setdefault(NAME, suggest_name())


def save_upload() -> None:
    """on_change of the uploader: validate and keep the file, then add it to the chosen sets."""
    uploaded = st.session_state.get(UPLOAD)
    if uploaded is None:
        st.session_state.pop(UPLOAD_MESSAGE, None)
        return
    try:
        saved, prompt_set = save_prompt_set(uploaded.name, uploaded.getvalue())
    except ConstitutionError as error:  # PromptFileError: the file, the line and what is wrong
        st.session_state[UPLOAD_MESSAGE] = ("error", sentence(error))
        return
    except OSError as error:
        st.session_state[UPLOAD_MESSAGE] = ("error", os_error_sentence("the file could not be saved", error))
        return
    # First among the chosen sets, and no mixing, so a limit takes the user's own prompts before the shipped ones.
    st.session_state[SOURCES] = [saved] + [s for s in st.session_state.get(SOURCES) or [] if s != saved]
    st.session_state[key("shuffle")] = False
    extra = []
    if prompt_set.duplicates_removed:
        extra.append(plural(prompt_set.duplicates_removed, "duplicate") + " removed")
    if prompt_set.blank_lines:
        extra.append(plural(prompt_set.blank_lines, "blank line") + " skipped")
    st.session_state[UPLOAD_MESSAGE] = (
        "success", md(f"Saved {saved}: {plural(len(prompt_set.items), 'prompt')}"
                      + (f" ({', '.join(extra)})" if extra else "") + "; it is now the first of the chosen prompt sets, "
                      "and mixing is off so a limit takes your prompts first."))


@st.cache_data(show_spinner=False, max_entries=32)
def _prompt_selection(sources: tuple[str, ...], limit: int | None, shuffle_seed: int | None, training_only: bool,
                      stamps: tuple) -> dict:
    loaded = load_prompt_sources(list(sources), shuffle_seed=shuffle_seed, training_only=training_only)
    available = len(loaded.items)
    loaded.items = loaded.items[:limit] if limit else loaded.items
    return {"prompts": len(loaded.items), "available": available, "categories": loaded.categories(),
            "blank_lines": loaded.blank_lines, "duplicates_removed": loaded.duplicates_removed}


def prompt_selection(sources: list[str], limit: int | None, shuffle_seed: int | None, training_only: bool) -> dict:
    """Counts of what the chosen sets give (cached until one of their files changes)."""
    stamps = []
    for source in sources:
        path = resolve_prompt_source(source)
        stat = path.stat()
        stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
    return _prompt_selection(tuple(sources), limit, shuffle_seed, training_only, tuple(stamps))


def prompt_set_inputs(limit: int | None, shuffle_seed: int | None, training_only: bool) -> list[str]:
    options = list_prompt_sets()
    if SOURCES in st.session_state:
        st.session_state[SOURCES] = [s for s in st.session_state[SOURCES] if s in options]
    else:
        st.session_state[SOURCES] = [s for s in ("red_team", "benign") if s in options] or options[:1]
    sources = st.multiselect("Prompt sets", options, key=SOURCES,
                             help="The shipped sets (red_team: requests a model should refuse or handle with care; "
                                  "benign: harmless requests, some with alarming words) and the files you uploaded. "
                                  "Duplicates across sets are removed.")
    st.file_uploader("Add your own prompts (.txt: one a line; .jsonl or .csv with a 'prompt' field, "
                     "optional 'id' and 'category')", type=["txt", "jsonl", "csv"], key=UPLOAD, on_change=save_upload,
                     help=upload_limit_words("prompts"), max_upload_size=upload_max_mb("prompts"))
    message = st.session_state.get(UPLOAD_MESSAGE)
    if message:
        (st.success if message[0] == "success" else st.error)(message[1])
    if not sources:
        st.caption("Choose at least one prompt set.")
        return sources
    try:
        selection = prompt_selection(sources, limit, shuffle_seed, training_only)
    except ConstitutionError as error:
        st.error(sentence(error))
        return sources
    notes = []
    if selection["duplicates_removed"]:
        notes.append(plural(selection["duplicates_removed"], "duplicate") + " removed")
    if selection["blank_lines"]:
        notes.append(plural(selection["blank_lines"], "blank line") + " skipped")
    used, available = selection["prompts"], selection["available"]
    if training_only:
        notes.append("the shipped sets' evaluation half left out")
    st.caption((f"The first {used} of {plural(available, 'prompt')}" if used < available else plural(used, "prompt"))
               + " will be used" + (f" ({', '.join(notes)})" if notes else "") + ". By category:")
    categories = selection["categories"]
    st.dataframe(pd.DataFrame({"category": list(categories), "prompts": list(categories.values())}),
                 hide_index=True, width="content", key=key("categories"))
    return sources


def principle_inputs(constitution_name: str) -> list[str] | None:
    """The principle subset (None: every enabled principle)."""
    try:
        constitution = load_constitution(constitution_name)
    except ConstitutionError as error:
        st.error(sentence(error))
        return None
    enabled = [p.name for p in constitution.enabled_principles]
    chosen = st.multiselect("Principles", enabled, default=enabled, key=key(f"principles:{constitution_name}"),
                            help="Each critique round and each judge question uses one of these.")
    return None if set(chosen) == set(enabled) else [name for name in enabled if name in chosen]


def advanced_inputs() -> dict:
    with st.expander("Advanced", key=key("advanced")):
        one, two, three, four = st.columns(4)
        max_new_tokens = one.number_input("Max new tokens", 1, 8192, _SETTINGS.max_new_tokens, 16, key=key("max_new_tokens"),
                                          help="The longest answer, critique or revision the model may write.")
        temperature = two.number_input("Temperature", 0.0, 2.0, _SETTINGS.temperature, 0.05, key=key("temperature"),
                                       help="For the chain's answers, critiques and revisions. 0 is greedy.")
        top_p = three.number_input("Top-p", 0.05, 1.0, _SETTINGS.top_p, 0.05, key=key("top_p"))
        repetition_penalty = four.number_input("Repetition penalty", 1.0, 2.0, _SETTINGS.repetition_penalty, 0.05,
                                               key=key("repetition_penalty"),
                                               help="1.0 is off; small models loop without it.")
        one, two, three, four = st.columns(4)
        sample_temperature = one.number_input("Sample temperature (RLAIF, best-of-N)", 0.05, 2.0,
                                              _SPEC["sample_temperature"].default, 0.05, key=key("sample_temperature"),
                                              help="The two answers of an RLAIF pair and the N best-of-N samples are "
                                                   "drawn at this temperature; higher gives more different answers.")
        judge_ensemble = two.number_input("Judge ensemble size", 1, 8, _SPEC["judge_ensemble"].default, 1,
                                          key=key("judge_ensemble"),
                                          help="Each pair is judged under this many principles, drawn by weight, and averaged.")
        min_confidence = three.slider("Min judge confidence", 0.5, 1.0, _SPEC["min_confidence"].default, 0.01,
                                      key=key("min_confidence"),
                                      help="RLAIF pairs the judge prefers with less than this probability are dropped "
                                           "(they stay in judgements.jsonl). 0.5 keeps every pair.")
        with four:
            use_band = st.checkbox("Clamp the soft label", key=key("use_band"),
                                   help="Store each kept pair's label clamped into this band, so no pair counts as certain.")
            band = st.slider("Label band", 0.5, 1.0, (0.5, 0.9), 0.01, key=key("label_band"), disabled=not use_band)
        one, two, three, _ = st.columns(4)
        seed = one.number_input("Seed", 0, None, 0, 1, key=key("seed"),
                                help="The same seed, settings and model give the same rows.")
        batch_size = two.number_input("Batch size", 1, 1024, _SETTINGS.batch_size, 1, key=key("batch_size"),
                                      help="Prompts generated together: bigger is faster until memory runs out.")
        chunk_size = three.number_input("Chunk size", 1, 4096, _SPEC["chunk_size"].default, 1, key=key("chunk_size"),
                                        help="Prompts written per checkpoint: a stopped or killed run loses at most this much work.")
        system_prompt = (st.text_area("System prompt (optional)", key=key("system_prompt"), height=68) or "").strip()
        distil = system_prompt and st.checkbox(
            "Train without the system prompt (context distillation)", value=False, key=key("distil"),
            help="The answers are written under the system prompt, but the SFT rows and pairs leave it out, so a "
                 "model trained on them learns to behave as if it were still there.")
    return {
        "settings": {"max_new_tokens": int(max_new_tokens), "temperature": float(temperature), "top_p": float(top_p),
                     "repetition_penalty": float(repetition_penalty), "seed": int(seed), "batch_size": int(batch_size)},
        "sample_temperature": float(sample_temperature), "judge_ensemble": int(judge_ensemble),
        "min_confidence": float(min_confidence), "label_band": list(band) if use_band else None,
        "seed": int(seed), "chunk_size": int(chunk_size), "system_prompt": system_prompt or None,
        "system_prompt_in_data": not distil,
    }


def best_of_n_inputs(sources: list[str], split: bool) -> dict:
    """N and the sets whose prompts should be declined (drawn only when best-of-N is used)."""
    if REFUSE in st.session_state:
        st.session_state[REFUSE] = [s for s in st.session_state[REFUSE] if s in sources]
    else:
        st.session_state[REFUSE] = [s for s in ("red_team",) if s in sources]
    n_col, refuse_col = st.columns([1, 3])
    n = n_col.number_input("N (samples per prompt)", 2, 16,
                           _SPEC["best_of_n"].default, 1, key=key("best_of_n"),
                           help="Answers sampled per prompt, at the sample temperature (under Advanced).")
    refuse = refuse_col.multiselect("Prompt sets whose prompts should be declined", sources, key=REFUSE,
                                    help="Every prompt from the other chosen sets should be answered.")
    st.caption("Best-of-N is for models too small to critique or judge themselves: each sample is scored by the "
               "refusal rule (a sample passes when it declines a prompt from a set above, or answers any other "
               "prompt). "
               + ("It is the refusal suites' own rule, and the split above keeps their prompts out of this data, so "
                  "they then measure the trained model on prompts it never saw."
                  if split else
                  "It is the refusal suites' own rule, and without the split above this data holds the very prompts "
                  "they score, so they would measure the trained model on prompts it trained on."))
    return {"best_of_n": int(n), "refuse_sources": list(refuse)}


def new_dataset_form(names: list[str], expanded: bool) -> None:
    with st.expander("New dataset", expanded=expanded, icon=":material/add:", key=key("new")):
        name_col, constitution_col = st.columns(2)
        name = name_col.text_input("Dataset name", key=NAME, max_chars=64,
                                   help="Letters, digits, '-', '_' and '.'; the folder under datasets/ in your CAI_HOME.")
        default = names.index(PREFERRED_CONSTITUTION) if PREFERRED_CONSTITUTION in names else 0
        constitution = constitution_col.selectbox("Constitution", names, index=default, key=key("constitution"))
        principles = principle_inputs(constitution)
        limit_col, rounds_col, order_col = st.columns(3)
        limit = int(limit_col.number_input("Limit (prompts; 0 = all)", 0, None, DEFAULT_LIMIT, 10, key=key("limit"),
                                           help="Use only the first N prompts of the chosen sets."))
        rounds = rounds_col.number_input("Rounds", 1, 16, 1, 1, key=key("rounds"),
                                         help="Critique → revision rounds after each initial answer.")
        order = order_col.radio("Principle order", ["random", "sequential"], horizontal=True, key=key("order"),
                                help="random: each round draws a principle by weight (repeatable with the seed); "
                                     "sequential: rounds walk the principles in order.")
        shuffle_col, split_col = st.columns(2)
        shuffle = shuffle_col.checkbox("Mix the sets in a random order before the limit", value=True, key=key("shuffle"),
                                       help="Seeded, so the same seed picks the same prompts. Off: the sets' own order, "
                                            "so a small limit takes only the first set's first categories.")
        split = split_col.checkbox("Leave out the prompts the safety suites evaluate on", value=True, key=key("split"),
                                   help="The refusal suites score one half of the shipped red-team and benign sets; "
                                        "this keeps to the other half, so a model trained on this data is measured "
                                        "on prompts it never saw. Your own prompt sets are always used whole.")
        sources = prompt_set_inputs(limit or None, int(st.session_state.get(key("seed"), 0)) if shuffle else None, split)
        st.markdown("**What to make**")
        phase_col, pairs_col = st.columns(2)
        with phase_col:
            sft = st.checkbox("Phase 1: SFT data (prompt → answer)", value=True, key=key("phase_sft"))
            sft_source = st.radio("SFT rows from", list(SFT_SOURCES), format_func=SFT_SOURCES.get, horizontal=True,
                                  key=key("sft_source"), disabled=not sft,
                                  help="The chain's final revision (as in the paper), or the first of N samples "
                                       "that passes the refusal rule.")
            prefs = st.checkbox("Phase 2: preference pairs", value=True, key=key("phase_prefs"))
        with pairs_col:
            from_revisions = st.checkbox("Pairs from revisions (chosen = final revision, rejected = first answer)",
                                         value=True, key=key("pairs_revision"), disabled=not prefs)
            rlaif = st.checkbox("RLAIF pairs (two samples ranked by the AI judge)", value=True,
                                key=key("pairs_rlaif"), disabled=not prefs)
            best_pairs = st.checkbox("best-of-N pairs (refusal rule)", value=False, key=key("pairs_best_of_n"),
                                     disabled=not prefs,
                                     help="Chosen = a sample the refusal rule passes, rejected = one it fails.")
        best_of_n = {}
        if (sft and sft_source == "best_of_n") or (prefs and best_pairs):
            best_of_n = best_of_n_inputs(sources, split)
        policy_col, judge_col = st.columns(2)
        policy = policy_col.text_input("Policy model", value=default_model_spec(), key=key("policy_model"),
                                       help='"default" (the bundled model), a local model folder, a Hugging Face hub id, '
                                            "or an OpenAI-compatible endpoint.")
        judge = judge_col.text_input("Judge model (blank = the policy model)", key=key("judge_model"),
                                     help="Only the RLAIF pairs are judged. The same model keeps one model in memory, as in the paper.")
        advanced = advanced_inputs()
        if st.button("Start generating", type="primary", key=key("launch"), icon=":material/play_arrow:"):
            spec = {
                "constitution": constitution, "prompt_sources": sources, "limit": limit or None, "shuffle": shuffle,
                "prompt_split": "train" if split else "all",
                "phases": [p for p, on in (("sft", sft), ("prefs", prefs)) if on],
                "pair_sources": [p for p, on in (("revision", from_revisions), ("rlaif", rlaif),
                                                 ("best_of_n", best_pairs)) if on],
                "sft_source": sft_source, **best_of_n,
                "rounds": int(rounds), "principles": principles, "order": order,
                "policy_model": (policy or "").strip() or default_model_spec(),
                "judge_model": (judge or "").strip() or None, **advanced,
            }
            launch(name, spec)


def start_or_explain(folder: Path, spec_data: dict) -> bool:
    """Start (or resume) the worker; False after showing why it could not start, in one sentence."""
    try:
        start_generation(folder, parse_spec(spec_data))
    except (ConstitutionError, JobError, ModelLoadError) as error:
        st.error(sentence(error))
        return False
    except OSError as error:
        st.error(os_error_sentence("the dataset folder could not be written", error))
        return False
    return True


def launch(name: str, spec_data: dict) -> None:
    """Check the inputs and start the worker; every problem is one st.error sentence."""
    try:
        name = check_dataset_name(name)
    except ConstitutionError as error:
        st.error(sentence(error))
        return
    folder = datasets_dir() / name
    if folder.exists():
        st.error(md(f"A dataset named {name} already exists; choose another name, or select it below to resume it."))
        return
    if not spec_data["prompt_sources"]:
        st.error("Choose at least one prompt set.")
        return
    if spec_data["principles"] == []:
        st.error("Choose at least one principle.")
        return
    if not spec_data["phases"]:
        st.error("Choose at least one phase to make.")
        return
    if "prefs" in spec_data["phases"] and not spec_data["pair_sources"]:
        st.error("Phase 2 needs at least one pair source: pairs from revisions, RLAIF pairs or best-of-N pairs.")
        return
    if not start_or_explain(folder, spec_data):
        return
    st.session_state[STARTED] = name
    set_flash(FLASH, md(f"Started {name}. It runs in its own process: you may leave this page."))
    st.rerun()


# ---------------------------------------------------------------- choosing a dataset


def dataset_selector(folders: list[Path], jobs: dict[str, JobState]) -> Path | None:
    st.subheader("Datasets")
    if not folders:
        st.info("No datasets yet. Open **New dataset** above, choose a constitution and prompt sets, and press "
                "**Start generating**: the rows appear here while they are made.")
        return None
    by_name = {folder.name: folder for folder in folders}
    if st.session_state.get(SELECTED) not in by_name:
        st.session_state.pop(SELECTED, None)
    table = []
    for folder in folders:
        job, spec = jobs[folder.name], stored_spec(folder)
        progress = job.progress
        table.append({"dataset": folder.name, "state": state_label(job.state),
                      "prompts done": f"{progress.get('done', 0)} of {progress['total']}" if progress.get("total") else "—",
                      "constitution": spec.get("constitution", "?"),
                      "prompt sets": ", ".join(spec.get("prompt_sources", [])),
                      "created": time.strftime("%Y-%m-%d %H:%M", time.localtime((folder / "spec.json").stat().st_mtime))})
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", key=key("datasets_table"))
    chosen = st.selectbox("Dataset", list(by_name), key=SELECTED,
                          format_func=lambda n: f"{n} · {state_label(jobs[n].state)}")
    return by_name[chosen]


# ---------------------------------------------------------------- live progress


def resume(folder: Path) -> None:
    if start_or_explain(folder, stored_spec(folder)):
        st.rerun()  # the whole page: polling starts and the rows section follows the run


def show_job(folder: Path, job: JobState) -> None:
    progress = job.progress
    label = state_label(job.state)
    st.markdown(f"**State:** {label}")
    done, total = progress.get("done", 0), progress.get("total")
    if total:
        st.progress(job.fraction, text=f"{done} of {plural(total, 'prompt')} done")
    elif job.active:
        st.progress(0.0, text="starting the worker…")
    metrics = st.columns(4)
    rate = progress.get("rate_per_second")
    metrics[0].metric("Prompts per second", f"{rate:.2f}" if rate else "—")
    # progress.json is written at checkpoints: while the job runs, count on from its last write.
    left, elapsed = progress_times(progress, job.active)
    metrics[1].metric("Time left", left)
    metrics[2].metric("Elapsed", elapsed)
    metrics[3].metric("Stage", (progress.get("stage") or "—") if job.active else label)
    show_notes(job.notes, MAX_NOTES)
    if job.error:
        st.error(sentence(f"the run failed: {job.error}"))
    if job.active:
        stopping = (folder / "cancel").exists()
        if st.button("Stop", key=key("stop"), icon=":material/stop:", disabled=stopping,
                     help="Stops after the step now being generated; the finished prompts' rows are kept."):
            cancel_job(folder)
            stopping = True
        if stopping:
            st.caption("Stopping after the step now being generated…")
    elif job.state in RESUMABLE:
        st.caption("Resuming carries on with the prompts not yet done, with the same settings; no row is written twice.")
        if st.button("Resume", key=key("resume"), type="primary", icon=":material/play_arrow:"):
            resume(folder)


def show_progress(folder: Path, drawn: JobState) -> None:
    """``drawn``: the job as it was when the page was drawn; the fragment polls while it was active."""
    polling = drawn.active

    @st.fragment(run_every=POLL_SECONDS if polling else None)
    def live_progress() -> None:
        job = read_job(folder)
        show_job(folder, job)
        # Rerun the whole page when the run ends (rows and charts catch up, polling stops) and each
        # time a chunk's rows have been written (``done`` moves only then), so rows appear as made.
        if polling and (not job.active or job.progress.get("done", 0) != drawn.progress.get("done", 0)):
            st.rerun()

    live_progress()


# ---------------------------------------------------------------- browsing rows


def paginate(rows: list, name: str) -> list:
    if not rows:
        return rows
    pages = (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE
    page = 1
    if pages > 1:
        page_key_name = key(f"page:{name}")
        if st.session_state.get(page_key_name, 1) > pages:
            st.session_state[page_key_name] = pages
        page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, 1, key=page_key_name, width=160))
    start = (page - 1) * PAGE_SIZE
    st.caption(f"Rows {start + 1}–{min(start + PAGE_SIZE, len(rows))} of {len(rows)}")
    return rows[start:start + PAGE_SIZE]


def row_caption(row: dict, extra: str = "") -> None:
    principles = ", ".join(row.get("principles") or []) or "—"
    st.caption(md(f"{row.get('id', '?')} · category {row.get('category', '?')} · principles {principles}") + extra)


def prompt_of(row: dict, prompts: dict[str, str]) -> str:
    """The user turn of a pair's prompt (the prompt file's text for rows that carry only an id)."""
    turns = row.get("prompt")
    if isinstance(turns, list):
        users = [t.get("content", "") for t in turns if t.get("role") == "user"]
        if users:
            return users[-1]
    return prompts.get(row.get("id"), "")


def panels(panel_list: list[tuple[str, list[tuple[str, str | None]]]]) -> None:
    """Side-by-side panels, a line at a time: each is a title and (caption, text) parts."""
    for start in range(0, len(panel_list), PANELS_PER_LINE):
        line = panel_list[start:start + PANELS_PER_LINE]
        for column, (title, parts) in zip(st.columns(len(line) if len(panel_list) <= PANELS_PER_LINE else PANELS_PER_LINE), line):
            with column:
                st.markdown(f"**{md(title)}**")
                for caption, text in parts:
                    if caption:
                        st.caption(md(caption))
                    if text is not None:
                        show_text(text)


def show_sft_row(row: dict, trace: dict | None) -> None:
    with st.container(border=True):
        row_caption(row)
        messages = row.get("messages") or []
        user = next((m.get("content", "") for m in reversed(messages[:-1]) if m.get("role") == "user"), "")
        st.caption("Prompt")
        show_text(user)
        final = messages[-1].get("content", "") if messages else ""
        if trace is None:
            from_samples = (row.get("lineage") or {}).get("feedback") == "refusal_rule"
            panels([("Best-of-N sample (the SFT target)" if from_samples else "Final answer (the SFT target)",
                     [("", final)])])
            if from_samples:
                st.caption("The first of the prompt's samples that passes the refusal rule; the Best-of-N samples "
                           "tab shows them all.")
            return
        parts = [("Initial answer", [("", trace.get("initial", ""))])]
        for step in trace.get("steps", []):
            revision: list[tuple[str, str | None]]
            if step.get("skip_reason") == "no_change":
                revision = [("Revision skipped: the critique found nothing to change.", None)]
            elif step.get("skip_reason") == "empty_revision":
                revision = [("The revision came back empty, so the previous answer was kept.", None)]
            else:
                revision = [("Revision", step.get("revision", ""))]
            parts.append((f"Round {step.get('round')} · {step.get('principle')}",
                          [("Critique", step.get("critique", "")), *revision]))
        parts.append(("Final answer (the SFT target)", [("", final)]))
        panels(parts)
        for warning in trace.get("warnings", []):
            st.caption(md(f"Warning: {warning}"))


def show_pair(row: dict, prompts: dict[str, str], details: str = "") -> None:
    with st.container(border=True):
        row_caption(row)
        st.caption("Prompt")
        show_text(prompt_of(row, prompts))
        chosen = (row.get("chosen") or [{}])[-1].get("content", "")
        rejected = (row.get("rejected") or [{}])[-1].get("content", "")
        panels([("Chosen", [("", chosen)]), ("Rejected", [("", rejected)])])
        if details:
            st.caption(details)


def judge_details(row: dict) -> str:
    judge = row.get("judge") or {}
    parts = [f"label {row['label']:.3f}" if row.get("label") is not None else "",
             f"P(chosen better) shown first {judge.get('p_chosen_shown_first', 0.5):.3f}",
             f"shown second {judge.get('p_chosen_shown_second', 0.5):.3f}",
             "the two orders disagree" if judge.get("orders_disagree") else "the two orders agree",
             f"judge {judge.get('model', '?')} ({judge.get('method', '?')})"]
    return md(" · ".join(p for p in parts if p))


def show_judgement(row: dict, prompts: dict[str, str], min_confidence: float | None) -> None:
    with st.container(border=True):
        kept = row.get("kept")
        verdict = "kept" if kept else "dropped" + (f": below the threshold {min_confidence:g}" if min_confidence else "")
        row_caption(row, md(f" · confidence {row.get('confidence', 0.5):.3f} · {verdict}"))
        st.caption("Prompt")
        show_text(prompts.get(row.get("id"), ""))
        first_preferred = row.get("chosen_is_answer_1")
        panels([(f"Answer 1{' (preferred)' if first_preferred else ''}", [("", row.get("answer_1", ""))]),
                (f"Answer 2{'' if first_preferred else ' (preferred)'}", [("", row.get("answer_2", ""))])])
        judge = row.get("judge") or {}
        lines = [f"P(answer 1 better) {row.get('p_answer_1', 0.5):.3f}"]
        for verdict_row in judge.get("per_principle", []):
            lines.append(f"{verdict_row.get('principle')}: P(answer 1 better) when shown first "
                         f"{verdict_row.get('p_first_when_shown_first', 0.5):.3f}, when shown second "
                         f"{verdict_row.get('p_first_when_shown_second', 0.5):.3f}")
        lines.append("the two orders disagree" if judge.get("orders_disagree") else "the two orders agree")
        st.caption(md(" · ".join(lines)))


def best_of_n_details(row: dict, samples: dict[str, dict]) -> str:
    """Why a best-of-N pair's chosen answer is the better one, under the refusal rule."""
    sampled = samples.get(row.get("id"))
    if sampled is None:
        return "chosen passes the refusal rule, rejected fails it"
    if sampled.get("should_refuse"):
        return "this prompt should be declined: the chosen answer declines, the rejected one does not"
    return "this prompt should be answered: the chosen answer does, the rejected one declines"


def show_samples(row: dict) -> None:
    """One prompt's best-of-N samples, each marked by the refusal rule's verdict."""
    with st.container(border=True):
        samples = row.get("samples") or []
        passing = sum(bool(s.get("passes")) for s in samples)
        should = "should be declined" if row.get("should_refuse") else "should be answered"
        row_caption(row, md(f" · {should} · {passing} of {plural(len(samples), 'sample')} pass"))
        st.caption("Prompt")
        show_text(row.get("prompt", ""))
        parts = []
        for number, sample in enumerate(samples, 1):
            verdict = "passes" if sample.get("passes") else "fails"
            declined = "declines" if sample.get("refused") else "answers"
            parts.append((f"Sample {number} · {verdict}", [(declined, sample.get("answer", ""))]))
        panels(parts)


def empty_rows_message(job: JobState, made: bool, what: str, chunk_size: int | None) -> None:
    if not made:
        st.info(f"This dataset makes no {what}: it was not chosen when the dataset was started.")
    elif job.active:
        st.info(f"No {what} yet: rows are written a chunk of {chunk_size or 'several'} prompts at a time.")
    else:
        st.info(f"No {what} match the filters." if job.state == "finished" else f"No {what} were written.")


def browse(folder: Path, job: JobState, data: dict[str, list[dict]], spec: dict) -> None:
    st.subheader("Rows")
    name = folder.name
    prompts = {row["id"]: row.get("prompt", "") for row in data[PROMPTS_FILE] if "id" in row}
    categories = sorted({row.get("category", "?") for row in data[PROMPTS_FILE]})
    principles = sorted({p for file in (SFT_FILE, REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, JUDGEMENTS_FILE)
                         for row in data[file] for p in row.get("principles") or []})
    category_col, principle_col, confidence_col = st.columns(3)
    chosen_categories = category_col.multiselect("Categories (none = all)", categories, key=key(f"categories:{name}"))
    chosen_principles = principle_col.multiselect("Principles (none = all)", principles, key=key(f"principles-filter:{name}"))
    low, high = 0.5, 1.0
    if data[JUDGEMENTS_FILE]:
        low, high = confidence_col.slider("Judge confidence", 0.5, 1.0, (0.5, 1.0), 0.01, key=key(f"confidence:{name}"),
                                          help="Filters the RLAIF pairs and the judgements by the judge's confidence.")

    def keep(row: dict, confidence: float | None = None) -> bool:
        if chosen_categories and row.get("category") not in chosen_categories:
            return False
        if chosen_principles and not set(row.get("principles") or []) & set(chosen_principles):
            return False
        return confidence is None or low - 1e-9 <= confidence <= high + 1e-9

    phases, sources = spec.get("phases", []), spec.get("pair_sources", [])
    sft_from_samples = "sft" in phases and spec.get("sft_source") == "best_of_n"
    samples_made = sft_from_samples or ("prefs" in phases and "best_of_n" in sources)
    chunk = spec.get("chunk_size")
    traces = {row.get("id"): row for row in data[TRACES_FILE]}
    samples = {row.get("id"): row for row in data[SAMPLES_FILE]}
    sft_tab, revision_tab, rlaif_tab, judgements_tab, best_tab, samples_tab = st.tabs(
        ["Phase 1 (SFT)", "Pairs from revisions", "RLAIF pairs", "Judgements", "Best-of-N pairs", "Best-of-N samples"])
    with sft_tab:
        rows = [row for row in data[SFT_FILE] if keep(row)]
        if not rows:
            empty_rows_message(job, "sft" in phases, "SFT rows", chunk)
            if sft_from_samples and data[SAMPLES_FILE]:
                st.caption("An SFT row is made only when one of a prompt's samples passes the refusal rule; the "
                           "Best-of-N samples tab shows every sample.")
        for row in paginate(rows, f"{name}:sft"):
            show_sft_row(row, traces.get(row.get("id")))
    with revision_tab:
        rows = [row for row in data[REVISION_PAIRS_FILE] if keep(row)]
        if not rows:
            empty_rows_message(job, "prefs" in phases and "revision" in sources, "pairs from revisions", chunk)
            if data[TRACES_FILE] and "prefs" in phases and "revision" in sources:
                st.caption("A pair is made only when the final revision differs from the first answer.")
        for row in paginate(rows, f"{name}:revision"):
            show_pair(row, prompts)
    with rlaif_tab:
        rows = [row for row in data[RLAIF_PAIRS_FILE] if keep(row, row.get("label_raw", row.get("label")))]
        if not rows:
            empty_rows_message(job, "prefs" in phases and "rlaif" in sources, "RLAIF pairs", chunk)
            dropped = sum(not j.get("kept") for j in data[JUDGEMENTS_FILE])
            if dropped:
                st.caption(f"{plural(dropped, 'judged pair')} fell below the confidence threshold "
                           f"{spec.get('min_confidence')}; the Judgements tab shows them.")
        for row in paginate(rows, f"{name}:rlaif"):
            show_pair(row, prompts, judge_details(row))
    with judgements_tab:
        show = st.radio("Show", ["all", "kept", "dropped"], horizontal=True, key=key(f"judged:{name}"))
        rows = [row for row in data[JUDGEMENTS_FILE] if keep(row, row.get("confidence"))
                and (show == "all" or bool(row.get("kept")) == (show == "kept"))]
        if not rows:
            empty_rows_message(job, "prefs" in phases and "rlaif" in sources, "judged pairs", chunk)
        for row in paginate(rows, f"{name}:judgements"):
            show_judgement(row, prompts, spec.get("min_confidence"))
    with best_tab:
        rows = [row for row in data[BEST_OF_N_PAIRS_FILE] if keep(row)]
        if not rows:
            empty_rows_message(job, "prefs" in phases and "best_of_n" in sources, "best-of-N pairs", chunk)
            if data[SAMPLES_FILE] and "prefs" in phases and "best_of_n" in sources:
                st.caption("A pair is made only when a prompt has both a sample the refusal rule passes and one it "
                           "fails; the Best-of-N samples tab shows every sample.")
        for row in paginate(rows, f"{name}:best_of_n"):
            show_pair(row, prompts, md(best_of_n_details(row, samples)))
    with samples_tab:
        every = data[SAMPLES_FILE]
        if every:
            passed = sum(any(s.get("passes") for s in row.get("samples") or []) for row in every)
            st.caption(f"Prompts with a sample that passes the refusal rule: {passed} of {len(every)}. A sample "
                       "passes when it declines a prompt from a set to decline, or answers any other prompt.")
        show = st.radio("Show", ["all", "some sample passes", "no sample passes"], horizontal=True,
                        key=key(f"sampled:{name}"))

        def shown(row: dict) -> bool:
            passes = any(s.get("passes") for s in row.get("samples") or [])
            return show == "all" or passes == (show == "some sample passes")

        rows = [row for row in every if keep(row) and shown(row)]
        if not rows:
            empty_rows_message(job, samples_made, "best-of-N samples", chunk)
        for row in paginate(rows, f"{name}:samples"):
            show_samples(row)


# ---------------------------------------------------------------- summary, charts, downloads, delete


def show_summary(folder: Path, data: dict[str, list[dict]], spec: dict) -> None:
    judged = data[JUDGEMENTS_FILE]
    kept = sum(bool(j.get("kept")) for j in judged)
    with st.container(horizontal=True):
        st.metric("Prompts done", f"{len(rows_of(folder, DONE_FILE))} of {len(data[PROMPTS_FILE])}")
        st.metric("SFT rows", len(data[SFT_FILE]))
        st.metric("Pairs from revisions", len(data[REVISION_PAIRS_FILE]))
        st.metric("RLAIF pairs kept", f"{kept} of {len(judged)} judged" if judged else "0")
        if data[SAMPLES_FILE] or data[BEST_OF_N_PAIRS_FILE]:
            st.metric("Best-of-N pairs", len(data[BEST_OF_N_PAIRS_FILE]))
    with st.expander("Settings and dataset card"):
        st.caption("The settings this dataset was made with (spec.json)")
        st.code(json.dumps(spec, indent=2, ensure_ascii=False), language="json")
        readme = folder / "README.md"
        if readme.is_file():
            st.caption("The dataset card (README.md)")
            st.code(readme.read_text(encoding="utf-8", errors="replace"), language="markdown")
        else:
            st.caption("The dataset card (README.md) is written when the run ends.")


def show_charts(folder: Path, data: dict[str, list[dict]]) -> None:
    st.subheader("Charts")
    judged = data[JUDGEMENTS_FILE]
    left, right = st.columns(2)
    left.plotly_chart(charts.judge_confidence_histogram(judged), key=key(f"chart-confidence:{folder.name}"))
    right.plotly_chart(charts.order_disagreement_chart(judged), key=key(f"chart-orders:{folder.name}"))
    by_file = {name: data[name] for name in (SFT_FILE, REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, JUDGEMENTS_FILE,
                                             BEST_OF_N_PAIRS_FILE) if data[name]}
    left, right = st.columns(2)
    left.plotly_chart(charts.rows_per_principle_chart(by_file), key=key(f"chart-principles:{folder.name}"))
    right.plotly_chart(charts.rows_per_category_chart(by_file), key=key(f"chart-categories:{folder.name}"))
    st.caption("The judge charts cover every judged pair, kept or dropped; a pair whose two orders disagree was "
               "ranked by position, not content. The row charts count each row once per principle it used.")


def show_downloads(folder: Path, data: dict[str, list[dict]]) -> None:
    st.subheader("Downloads")
    present = [name for name in ROW_FILES if (folder / name).is_file()]
    if not present:
        st.caption("Nothing to download yet: the first rows are written when the first chunk of prompts is done.")
    with st.container(horizontal=True):
        for name in present:
            path = folder / name
            st.download_button(f"{name} ({plural(len(data[name]), 'row')})", data=path.read_bytes,
                               file_name=f"{folder.name}-{name}", mime="application/jsonl",
                               key=key(f"download:{name}"), on_click="ignore", icon=":material/download:")
        if (folder / "README.md").is_file():
            st.download_button("Dataset card (README.md)", data=(folder / "README.md").read_bytes,
                               file_name=f"{folder.name}-README.md", mime="text/markdown",
                               key=key("download:card"), on_click="ignore", icon=":material/download:")
        st.download_button("Whole dataset (.zip)", data=lambda: dataset_zip(folder), file_name=f"{folder.name}.zip",
                           mime="application/zip", key=key("download:zip"), on_click="ignore",
                           icon=":material/folder_zip:", type="primary")


def show_delete(folder: Path, job: JobState) -> None:
    with st.expander("Delete this dataset", icon=":material/delete:"):
        if job.active:
            st.caption("A dataset cannot be deleted while it is being generated; stop it first.")
        st.caption("The folder is moved into datasets/.trash, from where it can be recovered by hand.")
        confirm = st.checkbox(md(f"Yes, delete {folder.name}"), key=key(f"confirm-delete:{folder.name}"),
                              disabled=job.active)
        if st.button("Delete dataset", key=key("delete"), disabled=not confirm or job.active):
            try:
                target = delete_dataset(folder)
            except (JobError, OSError) as error:
                st.error(sentence(error))
                return
            set_flash(FLASH, md(f"Deleted {folder.name} (moved to {target})."))
            st.rerun()


# ---------------------------------------------------------------- the page


start_page("Data")
st.title("Data")
st.caption("Turn a constitution into training data: Phase 1 SFT rows from critique → revision chains, and "
           "Phase 2 preference pairs, from the revisions and ranked by an AI judge (RLAIF); or, for a model too "
           "small to critique or judge itself, the best of N samples under the refusal rule.")
apply_pending()
show_flash(FLASH)

infos = list_constitutions()
names = [info.name for info in infos if info.error is None]
folders = list_datasets()
jobs = {folder.name: read_job(folder) for folder in folders}
if names:
    new_dataset_form(names, expanded=not folders)
else:
    st.error("No constitution could be loaded; create one on the Constitution page first.")

selected = dataset_selector(folders, jobs)
if selected is not None:
    job = jobs[selected.name]
    show_progress(selected, job)
    data = {name: rows_of(selected, name) for name in (*ROW_FILES, PROMPTS_FILE)}
    spec = stored_spec(selected)
    show_summary(selected, data, spec)
    browse(selected, job, data, spec)
    show_charts(selected, data)
    show_downloads(selected, data)
    show_delete(selected, job)
