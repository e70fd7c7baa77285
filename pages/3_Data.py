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

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from cai_core.constitution import ConstitutionError
from cai_core.errors import CaiError
from cai_core.data import (
    PROMPTS_FILE,
    ROW_FILES,
    GenerationSpec,
    check_dataset_name,
    datasets_dir,
    generation_command,
    list_datasets,
    parse_spec,
    start_generation,
)
from cai_core.jobs import JobState, read_job, timestamped_name
from cai_core.models import (
    GenerationSettings,
    default_model_spec,
)
from cai_core.data.promptsets import (
    list_prompt_sets,
    load_prompt_sources,
    resolve_prompt_source,
    save_prompt_set,
)
from cai_core.store import load_constitution
from cai_core.training import list_runs
from ui.common import (
    apply_pending,
    md,
    os_error_sentence,
    page_key,
    plural,
    progress_metrics,
    sentence,
    set_flash,
    set_pending,
    show_flash,
    show_notes,
    state_label,
    stored_spec,
    upload_limit_words,
    upload_max_mb,
)
from ui.dataset_view import browse, rows_of, show_charts, show_delete, show_downloads, show_summary
from ui.jobs import job_panel
from ui.navigation import start_page
from ui.pickers import constitution_picker, loadable_constitutions, role_model_pickers

PAGE = "data"
MAX_NOTES = 5  # the worker's warnings shown; the rest stay in status.json
DEFAULT_LIMIT = 20  # enough to look at on a laptop CPU in a few minutes; 0 takes every prompt
_SETTINGS = GenerationSettings()
_SPEC = GenerationSpec.model_fields
CARD_FILES = ("README.md", "card.json")


def key(name: str) -> str:
    return page_key(PAGE, name)


FLASH, SELECTED, NAME, SOURCES, UPLOAD, UPLOAD_MESSAGE, PENDING, REFUSE = (
    key("flash"), key("selected"), key("name"), key("sources"), key("upload"), key("upload_message"), key("pending"),
    key("refuse_sources"))
SFT_SOURCES = {"revision": "critique → revision chain", "best_of_n": "best of N samples (refusal rule)"}


def suggest_name() -> str:
    return timestamped_name("data")


# ---------------------------------------------------------------- new dataset


def save_upload() -> None:
    """on_change of the uploader: validate and keep the file, then add it to the chosen sets."""
    uploaded = st.session_state.get(UPLOAD)
    if uploaded is None:
        st.session_state.pop(UPLOAD_MESSAGE, None)
        return
    try:
        saved, prompt_set = save_prompt_set(uploaded.name, uploaded.getvalue())
    except CaiError as error:  # PromptFileError: the file, the line and what is wrong
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
    except CaiError as error:
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
    verifier = st.radio("Samples are scored by", ["rule", "constitution"], key=key("verifier"), horizontal=True,
                        format_func={"rule": "the refusal rule",
                                     "constitution": "the constitution's checks and examples"}.get,
                        help=_SPEC["verifier"].description)
    return {"best_of_n": int(n), "refuse_sources": list(refuse), "verifier": verifier}


def new_dataset_form(names: list[str], expanded: bool) -> None:
    with st.expander("New dataset", expanded=expanded, icon=":material/add:", key=key("new")):
        name_col, constitution_col = st.columns(2)
        name = name_col.text_input("Dataset name", key=NAME, max_chars=64,
                                   help="Letters, digits, '-', '_' and '.'; the folder under datasets/ in your CAI_HOME.")
        constitution = constitution_picker(key("constitution"), where=constitution_col, names=names)
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
        st.markdown("**Models**")
        models = role_model_pickers(key, list_runs())
        advanced = advanced_inputs()
        spec = {
            "constitution": constitution, "prompt_sources": sources, "limit": limit or None, "shuffle": shuffle,
            "prompt_split": "train" if split else "all",
            "phases": [p for p, on in (("sft", sft), ("prefs", prefs)) if on],
            "pair_sources": [p for p, on in (("revision", from_revisions), ("rlaif", rlaif),
                                             ("best_of_n", best_pairs)) if on],
            "sft_source": sft_source, **best_of_n,
            "rounds": int(rounds), "principles": principles, "order": order,
            "policy_model": models["policy"] or default_model_spec(), "critic_model": models["critic"],
            "judge_model": models["judge"], **advanced,
        }
        try:
            command = generation_command(parse_spec(spec), name.strip() or None)
        except CaiError:
            command = None  # Start generating says what is wrong, in one sentence
        if command:
            st.caption("The same dataset from a terminal:")
            st.code(command, language="bash", wrap_lines=True)
        if st.button("Start generating", type="primary", key=key("launch"), icon=":material/play_arrow:"):
            launch(name, spec)


def start_or_explain(folder: Path, spec_data: dict) -> bool:
    """Start (or resume) the worker; False after showing why it could not start, in one sentence."""
    try:
        start_generation(folder, parse_spec(spec_data))
    except CaiError as error:
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
    except CaiError as error:
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
    set_pending(PENDING, {SELECTED: name, NAME: suggest_name()})
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


def show_job(job: JobState) -> None:
    progress = job.progress
    label = state_label(job.state)
    st.markdown(f"**State:** {label}")
    done, total = progress.get("done", 0), progress.get("total")
    if total:
        st.progress(job.fraction, text=f"{done} of {plural(total, 'prompt')} done")
    elif job.active:
        st.progress(0.0, text="starting the worker…")
    progress_metrics(progress, job.active, "Prompts per second",
                     ("Stage", (progress.get("stage") or "—") if job.active else label))
    show_notes(job.notes, MAX_NOTES)
    if job.error:
        st.error(sentence(f"the run failed: {job.error}"))


def show_progress(folder: Path, drawn: JobState) -> None:
    """The dataset's panel, polled while it is made. The page reruns when the run ends (rows and
    charts catch up, polling stops) and each time a chunk's rows have been written (``done`` moves
    only then), so rows appear as they are made."""
    job_panel(folder, drawn, key(""), show=show_job,
              stop_help="Stops after the step now being generated; the finished prompts' rows are kept.",
              stopping_words="Stopping after the step now being generated…",
              resume=lambda: start_or_explain(folder, stored_spec(folder)),
              resume_words="Resuming carries on with the prompts not yet done, with the same settings; no row is "
                           "written twice.",
              rerun_when=lambda job: job.progress.get("done", 0) != drawn.progress.get("done", 0))


# ---------------------------------------------------------------- the page


start_page("Data")
st.title("Data")
st.caption("Turn a constitution into training data: Phase 1 SFT rows from critique → revision chains, and "
           "Phase 2 preference pairs, from the revisions and ranked by an AI judge (RLAIF); or, for a model too "
           "small to critique or judge itself, the best of N samples under the refusal rule.")
apply_pending(PENDING)
st.session_state.setdefault(NAME, suggest_name())
show_flash(FLASH)

names = loadable_constitutions()
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
