"""Dataset folders: where they live, their names, listing, export, deletion, and starting a run.

A dataset is a folder (``$CAI_HOME/datasets/NAME`` or any ``--out``):

    spec.json            what was asked; written first, it marks the folder as this tool's
                         (``jobs.is_job_folder``): a non-empty folder without it is never written in
    constitution.yaml    the constitution as it was when the run began
    prompts.jsonl        the prompts, resolved once, so a resume never sees an edited file
    sft.jsonl            Phase 1: TRL conversational rows, {"messages": [user, final revision]}
    traces.jsonl         the whole critique -> revision trace of each SFT row, by id
    prefs_revision.jsonl Phase 2 from revisions: chosen = final revision, rejected = first answer
    prefs_rlaif.jsonl    Phase 2, RLAIF: two sampled answers, ranked by the AI judge (kept pairs)
    judgements.jsonl     every judged pair, kept or dropped, with the judge's probabilities
    prefs_best_of_n.jsonl pairs from N samples scored by the verifier (for models too small to judge):
                         the refusal rule, or the constitution's checks and examples
    samples.jsonl        every best-of-N sample with its verdict (and, under the constitution, each
                         assertion's verdict and where it comes from)
    done.jsonl           one line per finished prompt, written after its rows
    README.md, card.json the dataset card: counts, settings, the constitution
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..atomic import write_text_atomic
from ..chain import select_principles
from ..constitution import Constitution
from ..errors import DatasetError
from ..jobs import JobError, check_output_folder, clear_stop_request, prepare_job, read_job, run_job, start_job, write_json
from ..paths import cai_home
from ..store import constitution_to_yaml, load_constitution, parse_constitution
from .ledger import read_rows
from .promptsets import PromptItem, load_prompt_sources, prompt_key
from .rows import CONSTITUTION_FILE, PROMPTS_FILE, ROW_FILES
from .spec import GenerationSpec, check_model_specs
from .verifier import CONSTITUTION, check_verifier, held_out_example_keys, training_example_items

_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def datasets_dir() -> Path:
    return cai_home() / "datasets"


def check_dataset_name(name: str) -> str:
    name = (name or "").strip()
    if not _DATASET_NAME.match(name):
        raise DatasetError(f"dataset name {name!r} may use only letters, digits, '-', '_' and '.', "
                                "start with a letter or digit, and be at most 64 characters")
    return name


def list_datasets() -> list[Path]:
    folder = datasets_dir()
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if (p / "spec.json").is_file()]
    return sorted(found, key=lambda p: (p / "spec.json").stat().st_mtime, reverse=True)


def dataset_zip(folder: Path) -> bytes:
    """The dataset's rows, card, constitution, prompts and spec as one zip, made in memory."""
    import io
    import zipfile

    folder = Path(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in (*ROW_FILES, "README.md", "card.json", CONSTITUTION_FILE, PROMPTS_FILE, "spec.json"):
            if (folder / name).is_file():
                archive.write(folder / name, arcname=f"{folder.name}/{name}")
    return buffer.getvalue()


def delete_dataset(folder: Path) -> Path:
    """Move a dataset folder into ``.trash`` beside it (recoverable); refused while it runs."""
    import time

    folder = Path(folder)
    if read_job(folder).active:
        raise JobError(f"dataset {folder.name!r} is still being generated; stop it first")
    trash = folder.parent / ".trash"
    trash.mkdir(parents=True, exist_ok=True)
    target = trash / f"{folder.name}.{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(folder, target)
    return target


def prepare_dataset(folder: Path, spec: GenerationSpec) -> None:
    """Snapshot the constitution and the prompts into the folder (once: a resume keeps them).

    Runs in the caller, so a missing constitution or a malformed prompt file is reported before
    any process starts, and nothing is written when it fails.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DatasetError(f"{folder} is a file; give a folder for the dataset")
    check_output_folder(folder)  # a resume rewrites the row files it finds: never someone else's
    if (folder / "spec.json").is_file() and (folder / PROMPTS_FILE).is_file() and (folder / CONSTITUTION_FILE).is_file():
        return
    check_model_specs(spec)
    constitution = load_constitution(spec.constitution)
    select_principles(constitution, spec.principles)  # an unknown principle fails here
    check_verifier(constitution, spec)
    verified = spec.verifier == CONSTITUTION and spec.samples_best_of_n
    # The principles suite scores the test half of the examples: with the training split, those
    # prompts never become data, not even when a prompt set holds one of them too.
    leave_out = held_out_example_keys(constitution) if spec.prompt_split == "train" or verified else set()
    examples = training_example_items(constitution, spec) if verified else []
    prompt_set = load_prompt_sources(spec.prompt_sources, spec.limit, spec.seed if spec.shuffle else None,
                                     training_only=spec.prompt_split == "train",
                                     leave_out=leave_out | {prompt_key(item.prompt) for item in examples})
    # The examples come first: a run stopped early has the constitution's own prompts done. The
    # limit counts the prompt sets' prompts; every training example is always used.
    prompt_set.items = examples + prompt_set.items
    lines = [json.dumps({"id": i.id, "category": i.category, "prompt": i.prompt, "source": i.source,
                         **({"principle": i.principle} if i.principle else {})}, ensure_ascii=False)
             for i in prompt_set.items]
    folder.mkdir(parents=True, exist_ok=True)
    # spec.json first: it marks the folder as this tool's, so a run killed before its snapshot
    # is complete still finds a folder it may resume in.
    prepare_job(folder, "generate", spec.model_dump(mode="json"))
    write_text_atomic(folder / CONSTITUTION_FILE, constitution_to_yaml(constitution))
    write_json(folder / "prompt_stats.json", {"prompts": len(prompt_set.items), "blank_lines": prompt_set.blank_lines,
                                              "duplicates_removed": prompt_set.duplicates_removed,
                                              "categories": prompt_set.categories()})
    write_text_atomic(folder / PROMPTS_FILE, "\n".join(lines) + "\n")


def start_generation(folder: Path, spec: GenerationSpec) -> None:
    """Snapshot the inputs, then run the job in its own process (or resume it)."""
    start_job(folder, "generate", _prepare(folder, spec))


def run_generation(folder: Path, spec: GenerationSpec, on_progress=None):
    """Run (or resume) the job in this process, as the CLI does; returns the final JobState."""
    spec_data = _prepare(folder, spec)
    prepare_job(folder, "generate", spec_data)
    clear_stop_request(folder)
    return run_job(folder, on_progress=on_progress)


def _prepare(folder: Path, spec: GenerationSpec) -> dict:
    """Refuse a folder this tool did not make, or one that holds a run with other settings, then
    snapshot the inputs; nothing is written when any of it fails. Returns the spec as stored."""
    spec_data = spec.model_dump(mode="json")
    check_output_folder(folder)
    prepare_job(folder, "generate", spec_data, write=False)
    prepare_dataset(folder, spec)
    return spec_data


def load_snapshot(folder: Path) -> tuple[Constitution, list[PromptItem]]:
    constitution = parse_constitution((folder / CONSTITUTION_FILE).read_text(encoding="utf-8"), str(folder / CONSTITUTION_FILE))
    items = [PromptItem(**{k: row[k] for k in ("id", "prompt", "category", "source")}, principle=row.get("principle") or "")
             for row in read_rows(folder / PROMPTS_FILE)]
    return constitution, items
