"""Turning a constitution and a prompt set into training data: Phase 1 SFT rows and Phase 2 pairs.

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
    prefs_best_of_n.jsonl pairs from N samples scored by the refusal rule (for models too small to judge)
    samples.jsonl        every best-of-N sample with its verdict
    done.jsonl           one line per finished prompt, written after its rows
    README.md, card.json the dataset card: counts, settings, the constitution

Rows are appended a chunk of prompts at a time; a prompt counts as done only once its id is in
``done.jsonl``. A run killed at any moment is resumed by dropping whatever rows a half-written
chunk left (and a half-written last line) and carrying on with the prompts not yet done, so no
row is lost and none is written twice.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import prompts as templates
from .atomic import write_text_atomic
from .chain import ChainStep, run_chain, select_principles
from .constitution import Constitution, Principle, first_error_message
from .errors import DatasetError
from .jobs import Reporter, read_json, write_json
from .judge import judge_pairs
from .models import GenerationBackend, GenerationSettings, ModelLoadError, Seed
from .paths import cai_home
from .promptsets import PromptItem, load_prompt_sources
from .refusals import is_refusal
from .roles import check_models_fit, load_roles, role_specs
from .store import constitution_to_yaml, load_constitution, parse_constitution

SFT_FILE, TRACES_FILE = "sft.jsonl", "traces.jsonl"
REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, JUDGEMENTS_FILE = "prefs_revision.jsonl", "prefs_rlaif.jsonl", "judgements.jsonl"
BEST_OF_N_PAIRS_FILE, SAMPLES_FILE = "prefs_best_of_n.jsonl", "samples.jsonl"
DONE_FILE, PROMPTS_FILE, CONSTITUTION_FILE = "done.jsonl", "prompts.jsonl", "constitution.yaml"
ROW_FILES = (SFT_FILE, TRACES_FILE, REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, JUDGEMENTS_FILE, BEST_OF_N_PAIRS_FILE,
             SAMPLES_FILE)
TRAINING_FILES = (SFT_FILE, REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, BEST_OF_N_PAIRS_FILE)
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
# Seed offsets that give the two RLAIF samples of a prompt different random draws.
FIRST_SAMPLE_SEED, SECOND_SAMPLE_SEED = 101, 202
BEST_OF_N_SEED = 303


class GenerationSpec(BaseModel):
    """What a data-generation run makes, and how. Stored in the job's spec.json."""

    model_config = ConfigDict(extra="forbid")

    # --- inputs
    constitution: str = Field(description="a name from `cai constitutions` or a file path")
    prompt_sources: list[str] = Field(min_length=1, description=(
        "prompt sets from `cai prompt-sets` or .txt/.jsonl/.csv files"))
    limit: int | None = Field(default=None, ge=1, description="use only the first N prompts")
    shuffle: bool = Field(default=False, description="mix the chosen sets in a seeded random order before the limit")
    # "train" leaves out the half of the shipped red-team and benign sets that the safety suites
    # evaluate on (cai_core.promptsets), so a model trained on the data is scored on unseen prompts.
    prompt_split: Literal["all", "train"] = Field(default="train", description=(
        "train: leave out the half of the shipped red_team and benign sets that the safety suites score; "
        "all: every prompt"))
    # --- what to make: "sft" (Phase 1) and/or "prefs" (Phase 2, from "revision", "rlaif", "best_of_n")
    phases: list[Literal["sft", "prefs"]] = Field(default=["sft", "prefs"], min_length=1, description=(
        "what to make: sft (Phase 1 rows), prefs (Phase 2 pairs), or both"))
    pair_sources: list[Literal["revision", "rlaif", "best_of_n"]] = Field(default=["revision", "rlaif"], description=(
        "where Phase 2 pairs come from: revision, rlaif, best_of_n"))
    # Where the SFT rows come from: the chain's final revisions (Phase 1 as in the paper), or the
    # best of N samples under the refusal rule (below).
    sft_source: Literal["revision", "best_of_n"] = Field(default="revision", description=(
        "where SFT rows come from: the chain's final revision, or the best of N samples under the refusal rule"))
    # --- best-of-N, for a policy too small to critique or judge (its critiques and its judge are
    # at chance; see docs/results.md): N samples per prompt, each scored by the refusal rule
    # (cai_core.refusals): a prompt from a set in refuse_sources should be declined, any other
    # prompt answered. SFT keeps a passing sample; a pair puts a passing one over a failing one.
    best_of_n: int = Field(default=4, ge=2, le=16, description="samples per prompt for best_of_n")
    refuse_sources: list[str] = Field(default=["red_team"], description=(
        "prompt sets whose prompts should be declined (best_of_n); every other prompt should be answered"))
    # False trains on the answers without the system prompt they were written under: context
    # distillation (Askell et al., 2021), so the trained model behaves as if it were still there.
    system_prompt_in_data: bool = Field(default=True, description=(
        "keep the system prompt in the rows; false trains on the answers without it (context distillation)"))
    # --- the chain
    rounds: int = Field(default=1, ge=1, le=16, description="critique -> revision rounds per prompt")
    principles: list[str] | None = Field(default=None, description="use only these principles (default: every enabled one)")
    order: Literal["random", "sequential"] = Field(default="random", description=(
        "how each round's principle is picked: drawn by weight, or in the constitution's order"))
    system_prompt: str | None = Field(default=None, description="a system prompt the answers are written under")
    # --- models: without a critic the policy critiques itself, and the judge defaults to the critic,
    # else the policy (one model in memory, as in the paper)
    policy_model: str = Field(default="default", description=(
        'the policy: "default" (the bundled model), a local folder, a hub id, a finished run or an endpoint URL'))
    critic_model: str | None = Field(default=None, description=(
        "Model that writes every critique and revision (the text SFT learns) after the policy's first answer, "
        "and judges pairs unless a judge is named: the bundled 'default', a folder, a hub id, a finished run "
        "or an endpoint URL like http://host:port/v1; unset, the policy critiques itself"))
    judge_model: str | None = Field(default=None, description="the RLAIF judge, when not the policy itself")
    settings: GenerationSettings = Field(default_factory=GenerationSettings)
    # --- RLAIF: two samples per prompt at this temperature, judged under an ensemble of principles
    sample_temperature: float = Field(default=1.0, gt=0.0, le=2.0, description=(
        "temperature of the sampled answers (RLAIF pairs and best-of-N)"))
    judge_ensemble: int = Field(default=1, ge=1, le=8, description="principles the judge asks per pair")
    min_confidence: float = Field(default=0.55, ge=0.5, le=1.0, description=(
        "drop pairs whose preferred answer wins with less probability (0.5 keeps all)"))
    label_band: tuple[float, float] | None = Field(default=None, description=(
        "clamp the stored soft label into LOW,HIGH, e.g. 0.5,0.9, so no pair is taken as certain"))
    seed: Seed = Field(default=0, description="seed for principle draws, sampling and shuffling")
    chunk_size: int = Field(default=16, ge=1, le=4096, description="prompts per checkpoint: a kill loses at most this much work")

    @model_validator(mode="after")
    def _coherent(self) -> "GenerationSpec":
        if "prefs" in self.phases and not self.pair_sources:
            raise ValueError("Phase 2 needs at least one pair source: 'revision', 'rlaif' or 'best_of_n'")
        wanted = {_set_stem(source) for source in self.prompt_sources}
        strays = [source for source in self.refuse_sources if _set_stem(source) not in wanted]
        if strays and self.samples_best_of_n:
            raise ValueError(f"refuse_sources names {strays[0]!r}, which is not one of the prompt sets "
                             f"({', '.join(self.prompt_sources)})")
        if self.label_band is not None:
            low, high = self.label_band
            if not 0.5 <= low <= high <= 1.0:
                raise ValueError("label_band must be two numbers with 0.5 <= low <= high <= 1")
        return self

    @property
    def runs_chain(self) -> bool:
        return ("sft" in self.phases and self.sft_source == "revision") or (
            "prefs" in self.phases and "revision" in self.pair_sources)

    @property
    def makes_rlaif(self) -> bool:
        return "prefs" in self.phases and "rlaif" in self.pair_sources

    @property
    def samples_best_of_n(self) -> bool:
        return ("sft" in self.phases and self.sft_source == "best_of_n") or (
            "prefs" in self.phases and "best_of_n" in self.pair_sources)


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

    from .jobs import JobError, read_job

    folder = Path(folder)
    if read_job(folder).active:
        raise JobError(f"dataset {folder.name!r} is still being generated; stop it first")
    trash = folder.parent / ".trash"
    trash.mkdir(parents=True, exist_ok=True)
    target = trash / f"{folder.name}.{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(folder, target)
    return target


def parse_spec(data: dict) -> GenerationSpec:
    try:
        return GenerationSpec.model_validate(data)
    except ValidationError as error:
        raise DatasetError(f"generation settings: {first_error_message(error)[0]}") from None


def prepare_dataset(folder: Path, spec: GenerationSpec) -> None:
    """Snapshot the constitution and the prompts into the folder (once: a resume keeps them).

    Runs in the caller, so a missing constitution or a malformed prompt file is reported before
    any process starts, and nothing is written when it fails.
    """
    from .jobs import check_output_folder, prepare_job

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DatasetError(f"{folder} is a file; give a folder for the dataset")
    check_output_folder(folder)  # a resume rewrites the row files it finds: never someone else's
    if (folder / "spec.json").is_file() and (folder / PROMPTS_FILE).is_file() and (folder / CONSTITUTION_FILE).is_file():
        return
    check_model_specs(spec)
    constitution = load_constitution(spec.constitution)
    select_principles(constitution, spec.principles)  # an unknown principle fails here
    prompt_set = load_prompt_sources(spec.prompt_sources, spec.limit, spec.seed if spec.shuffle else None,
                                     training_only=spec.prompt_split == "train")
    lines = [json.dumps({"id": i.id, "category": i.category, "prompt": i.prompt, "source": i.source}, ensure_ascii=False)
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


def check_model_specs(spec: GenerationSpec) -> None:
    """Refuse a model folder or hub id that cannot exist before anything is written. Cheap: nothing
    is loaded (the bundled model and endpoints are checked by the worker, which loads them)."""
    from .models import DEFAULT_MODEL, is_endpoint_spec, resolve_model_path

    from .models.adapters import AdapterError, adapter_stack

    for model in (spec.policy_model, spec.critic_model, spec.judge_model):
        if model and model != DEFAULT_MODEL and not is_endpoint_spec(model):
            try:
                stack = adapter_stack(model)  # a finished training run is a model too
            except AdapterError as error:
                raise DatasetError(str(error)) from None
            resolve_model_path(stack.base_model if stack else model)
    try:  # two or three local models that cannot fit together are refused now, not after a swap storm
        check_models_fit(model_roles(spec))
    except ModelLoadError as error:
        raise DatasetError(str(error)) from None


def model_roles(spec: GenerationSpec) -> dict[str, str | None]:
    """{role: model spec} for the roles this run uses: no critic without a chain, no judge without RLAIF."""
    return role_specs(spec.policy_model, spec.critic_model, spec.judge_model,
                      need_critic=spec.runs_chain, need_judge=spec.makes_rlaif)


def start_generation(folder: Path, spec: GenerationSpec) -> None:
    """Snapshot the inputs, then run the job in its own process (or resume it)."""
    from .jobs import start_job

    start_job(folder, "generate", _prepare(folder, spec))


def run_generation(folder: Path, spec: GenerationSpec, on_progress=None):
    """Run (or resume) the job in this process, as the CLI does; returns the final JobState."""
    from .jobs import clear_stop_request, prepare_job, run_job

    spec_data = _prepare(folder, spec)
    prepare_job(folder, "generate", spec_data)
    clear_stop_request(folder)
    return run_job(folder, on_progress=on_progress)


def _prepare(folder: Path, spec: GenerationSpec) -> dict:
    """Refuse a folder this tool did not make, or one that holds a run with other settings, then
    snapshot the inputs; nothing is written when any of it fails. Returns the spec as stored."""
    from .jobs import check_output_folder, prepare_job

    spec_data = spec.model_dump(mode="json")
    check_output_folder(folder)
    prepare_job(folder, "generate", spec_data, write=False)
    prepare_dataset(folder, spec)
    return spec_data


def load_snapshot(folder: Path) -> tuple[Constitution, list[PromptItem]]:
    constitution = parse_constitution((folder / CONSTITUTION_FILE).read_text(encoding="utf-8"), str(folder / CONSTITUTION_FILE))
    items = [PromptItem(**{k: row[k] for k in ("id", "prompt", "category", "source")}) for row in read_rows(folder / PROMPTS_FILE)]
    return constitution, items


# --------------------------------------------------------------------------- the worker


def run_generation_job(folder: Path, spec_data: dict, reporter: Reporter) -> None:
    folder = Path(folder)
    spec = parse_spec(spec_data)
    constitution, items = load_snapshot(folder)
    done = recover(folder)
    todo = [item for item in items if item.id not in done]
    total = len(items)
    reporter.progress(len(done), total, stage="loading model", force=True)
    try:
        if todo:
            roles = model_roles(spec)
            models = load_roles(roles["policy"], roles["critic"], roles["judge"], need_critic=spec.runs_chain,
                                need_judge=spec.makes_rlaif)
            policy = models.policy
            judge = models.judge or policy
            for note in policy.setting_notes(spec.settings):
                reporter.note(note)
            finished = len(done)
            for start in range(0, len(todo), spec.chunk_size):
                reporter.check_stop()
                chunk = todo[start:start + spec.chunk_size]
                rows = make_rows(chunk, spec, constitution, policy, judge, reporter, finished, total,
                                 critic=models.critic)
                append_rows(folder, rows, [item.id for item in chunk])
                finished += len(chunk)
                reporter.progress(finished, total, stage="writing", force=True)
        reporter.progress(total, total, stage="done", force=True)
    finally:
        write_card(folder)


def make_rows(chunk: list[PromptItem], spec: GenerationSpec, constitution: Constitution, policy: GenerationBackend,
              judge: GenerationBackend, reporter: Reporter, done_before: int, total: int,
              critic: GenerationBackend | None = None) -> dict[str, list[dict]]:
    """Every row the chunk's prompts yield, by file name. ``critic`` writes the critiques and
    revisions (None: the policy critiques itself)."""
    rows: dict[str, list[dict]] = {name: [] for name in ROW_FILES}
    critic = critic or policy
    # Which model played which role in this run (None: the role had no part in it).
    roles = {"policy": policy.model_id, "critic": critic.model_id if spec.runs_chain else None,
             "judge": judge.model_id if spec.makes_rlaif else None}
    lineage = {"constitution": constitution.name, "constitution_hash": constitution.content_hash(),
               "policy_model": policy.model_id, "roles": roles, "seed": spec.seed, "rounds": spec.rounds,
               "order": spec.order, "settings": spec.settings.model_dump()}
    prompt_texts = [item.prompt for item in chunk]

    def on_stage(event) -> None:
        reporter.progress(done_before, total, stage=f"{event.stage} (round {event.round})" if event.round else event.stage)
        reporter.check_stop()

    if spec.runs_chain:
        traces = run_chain(policy, constitution, prompt_texts, spec.rounds, spec.seed, principles=spec.principles,
                           order=spec.order, settings=spec.settings, system_prompt=spec.system_prompt, on_event=on_stage,
                           critic=critic)
        for item, trace in zip(chunk, traces):
            used = [step.principle for step in trace.steps]
            row_lineage = {**lineage, "principles": used, "critic_model": critic.model_id}
            if trace.warnings:
                reporter.note("some inputs were longer than the model's context and were cut from the left; "
                              "each trace in traces.jsonl lists its own warnings")
            trace.lineage["roles"] = roles
            rows[TRACES_FILE].append({"id": item.id, "category": item.category, **trace.to_dict()})
            if "sft" in spec.phases:
                rows[SFT_FILE].append({"id": item.id, "category": item.category, "principles": used,
                                       "messages": _user_turns(item.prompt, spec) + [_assistant(trace.final)],
                                       "lineage": row_lineage})
            if "prefs" in spec.phases and "revision" in spec.pair_sources and _differ(trace.final, trace.initial):
                rows[REVISION_PAIRS_FILE].append({
                    "id": item.id, "category": item.category, "principles": used, "source": "revision",
                    "prompt": _user_turns(item.prompt, spec), "chosen": [_assistant(trace.final)],
                    "rejected": [_assistant(trace.initial)], "lineage": row_lineage})
    if spec.makes_rlaif:
        reporter.progress(done_before, total, stage="sampling answer pairs")
        rlaif, judgements = rlaif_rows(chunk, spec, constitution, policy, judge, lineage, reporter)
        rows[RLAIF_PAIRS_FILE], rows[JUDGEMENTS_FILE] = rlaif, judgements
    if spec.samples_best_of_n:
        reporter.progress(done_before, total, stage=f"sampling {spec.best_of_n} answers per prompt")
        for name, made in best_of_n_rows(chunk, spec, policy, lineage).items():
            rows[name].extend(made)
    return rows


def best_of_n_rows(chunk: list[PromptItem], spec: GenerationSpec, policy: GenerationBackend,
                   lineage: dict) -> dict[str, list[dict]]:
    """N sampled answers per prompt, each scored by the refusal rule; SFT rows and pairs from them.

    All N x len(chunk) conversations go to the model as one batched call; the sampler draws each
    row separately, so the N copies of a prompt give N different answers.
    """
    conversations = [templates.initial_conversation(item.prompt, spec.system_prompt) for item in chunk]
    sampling = spec.settings.model_copy(update={"temperature": spec.sample_temperature,
                                                "seed": spec.seed + BEST_OF_N_SEED})
    generations = policy.generate([c for c in conversations for _ in range(spec.best_of_n)], sampling)
    rows: dict[str, list[dict]] = {SAMPLES_FILE: [], SFT_FILE: [], BEST_OF_N_PAIRS_FILE: []}
    row_lineage = {**lineage, "feedback": "refusal_rule", "best_of_n": spec.best_of_n,
                   "sample_temperature": spec.sample_temperature, "system_prompt": spec.system_prompt}
    for index, item in enumerate(chunk):
        answers = [g.text for g in generations[index * spec.best_of_n:(index + 1) * spec.best_of_n]]
        should_refuse = item.source in {_set_stem(source) for source in spec.refuse_sources}
        verdicts = [{"answer": a, "refused": is_refusal(a), "passes": bool(a.strip()) and is_refusal(a) == should_refuse}
                    for a in answers]
        rows[SAMPLES_FILE].append({"id": item.id, "category": item.category, "prompt": item.prompt,
                                   "should_refuse": should_refuse, "samples": verdicts})
        passing = [v["answer"] for v in verdicts if v["passes"]]
        failing = [v["answer"] for v in verdicts if not v["passes"] and v["answer"].strip()]
        if passing and "sft" in spec.phases and spec.sft_source == "best_of_n":
            rows[SFT_FILE].append({"id": item.id, "category": item.category, "principles": [],
                                   "messages": _user_turns(item.prompt, spec) + [_assistant(passing[0])],
                                   "lineage": row_lineage})
        if passing and failing and "prefs" in spec.phases and "best_of_n" in spec.pair_sources:
            rows[BEST_OF_N_PAIRS_FILE].append({
                "id": item.id, "category": item.category, "principles": [], "source": "best_of_n",
                "prompt": _user_turns(item.prompt, spec), "chosen": [_assistant(passing[0])],
                "rejected": [_assistant(failing[0])], "lineage": row_lineage})
    return rows


def rlaif_rows(chunk: list[PromptItem], spec: GenerationSpec, constitution: Constitution, policy: GenerationBackend,
               judge: GenerationBackend, lineage: dict, reporter: Reporter) -> tuple[list[dict], list[dict]]:
    """Two sampled answers per prompt, judged in both orders; pairs under the threshold are dropped."""
    conversations = [templates.initial_conversation(item.prompt, spec.system_prompt) for item in chunk]
    sampling = spec.settings.model_copy(update={"temperature": spec.sample_temperature})
    first = policy.generate(conversations, sampling.model_copy(update={"seed": spec.seed + FIRST_SAMPLE_SEED}))
    reporter.check_stop()
    second = policy.generate(conversations, sampling.model_copy(update={"seed": spec.seed + SECOND_SAMPLE_SEED}))
    reporter.check_stop()
    candidates = [i for i in range(len(chunk)) if _differ(first[i].text, second[i].text) and first[i].text and second[i].text]
    principles = [judge_principles(constitution, spec, chunk[i].prompt) for i in candidates]
    judged = judge_pairs(judge, [(chunk[i].prompt, first[i].text, second[i].text) for i in candidates], principles,
                         batch_size=spec.settings.batch_size, on_fallback=reporter.note)
    pairs, judgements = [], []
    for index, verdict in zip(candidates, judged):
        item = chunk[index]
        first_wins = verdict.p_first >= 0.5
        chosen, rejected = (verdict.first, verdict.second) if first_wins else (verdict.second, verdict.first)

        def for_chosen(p_first: float) -> float:
            return p_first if first_wins else 1.0 - p_first

        label_raw = verdict.confidence
        kept = label_raw >= spec.min_confidence
        judge_record = {
            "model": judge.model_id, "method": verdict.method,
            "p_chosen_shown_first": for_chosen(verdict.p_first_when_shown_first if first_wins else verdict.p_first_when_shown_second),
            "p_chosen_shown_second": for_chosen(verdict.p_first_when_shown_second if first_wins else verdict.p_first_when_shown_first),
            "orders_disagree": verdict.orders_disagree,
            "per_principle": [{"principle": r["principle"], "p_first_when_shown_first": r["p_first_when_shown_first"],
                               "p_first_when_shown_second": r["p_first_when_shown_second"]} for r in verdict.per_principle],
        }
        judgements.append({"id": item.id, "category": item.category, "prompt": item.prompt, "principles": verdict.principles,
                           "confidence": label_raw, "kept": kept, "answer_1": verdict.first, "answer_2": verdict.second,
                           "p_answer_1": verdict.p_first, "chosen_is_answer_1": first_wins, "judge": judge_record})
        if not kept:
            continue
        label = min(max(label_raw, spec.label_band[0]), spec.label_band[1]) if spec.label_band else label_raw
        pairs.append({"id": item.id, "category": item.category, "principles": verdict.principles, "source": "rlaif",
                      "prompt": _user_turns(item.prompt, spec), "chosen": [_assistant(chosen)],
                      "rejected": [_assistant(rejected)], "label": label, "label_raw": label_raw, "judge": judge_record,
                      "lineage": {**lineage, "principles": verdict.principles, "judge_model": judge.model_id,
                                  "sample_temperature": spec.sample_temperature,
                                  "sample_seeds": [spec.seed + FIRST_SAMPLE_SEED, spec.seed + SECOND_SAMPLE_SEED]}})
    return pairs, judgements


def judge_principles(constitution: Constitution, spec: GenerationSpec, prompt: str) -> list[Principle]:
    """The principles a prompt's pair is judged under: an ensemble drawn by weight without
    replacement, seeded by the prompt's text so any chunking gives the same draw."""
    pool = list(select_principles(constitution, spec.principles))
    rng = random.Random(f"{spec.seed}:judge:{prompt}")
    chosen = []
    for _ in range(min(spec.judge_ensemble, len(pool))):
        pick = rng.choices(range(len(pool)), weights=[p.weight for p in pool])[0]
        chosen.append(pool.pop(pick))
    return chosen


def _set_stem(source: str) -> str:
    """A prompt's ``source`` is its file's stem: "mine.csv" and a path to it both name "mine"."""
    path = Path(source.strip())
    return path.stem if path.suffix in (".txt", ".jsonl", ".csv") else path.name


def _user_turns(prompt: str, spec: GenerationSpec) -> list[dict]:
    return templates.initial_conversation(prompt, spec.system_prompt if spec.system_prompt_in_data else None)


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def _differ(one: str, other: str) -> bool:
    return " ".join(one.split()) != " ".join(other.split())


# --------------------------------------------------------------------------- files


def append_rows(folder: Path, rows: dict[str, list[dict]], finished_ids: list[str]) -> None:
    """Append the chunk's rows, then mark its prompts done: the order that makes a kill safe."""
    for name, items in rows.items():
        if items:
            _append_lines(folder / name, [json.dumps(row, ensure_ascii=False) for row in items])
    _append_lines(folder / DONE_FILE, [json.dumps({"id": i}) for i in finished_ids])


def _append_lines(path: Path, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def recover(folder: Path) -> set[str]:
    """The ids already done; rows of unfinished prompts and torn last lines are dropped."""
    done_rows, torn = _complete_rows(folder / DONE_FILE)
    done = {row["id"] for row in done_rows if isinstance(row, dict) and "id" in row}
    if torn:
        _rewrite(folder / DONE_FILE, [{"id": i} for i in _unique(row["id"] for row in done_rows)])
    for name in ROW_FILES:
        path = folder / name
        if not path.exists():
            continue
        rows, torn = _complete_rows(path)
        seen: set[str] = set()
        kept = []
        for row in rows:
            if row.get("id") in done and row["id"] not in seen:
                seen.add(row["id"])
                kept.append(row)
        if torn or len(kept) != len(rows):
            _rewrite(path, kept)
    return done


def _unique(values):
    seen = set()
    for value in values:
        if value not in seen:
            seen.add(value)
            yield value


def _complete_rows(path: Path) -> tuple[list[dict], bool]:
    """Rows of every whole line; True when some line was torn (a kill in the middle of a write)."""
    if not path.exists():
        return [], False
    rows, torn = [], False
    for line in path.read_text(encoding="utf-8", errors="replace").split("\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:  # torn by a kill mid-write, or edited by hand: either way not a row
            torn = True
    return rows, torn


def _rewrite(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_rows(path: Path) -> list[dict]:
    """Every whole row of a JSONL file (a torn last line from a live writer is skipped)."""
    return _complete_rows(Path(path))[0]


# --------------------------------------------------------------------------- rows as the page reads them
# Files on disk may have been edited by hand or written by another tool; a reader that shows them
# checks each row's shape first, so one odd row is reported by its line rather than breaking a page.


class _Row(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    category: str = ""
    principles: list[str] = Field(default_factory=list)


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str


class _SftRow(_Row):
    messages: list[_Message] = Field(min_length=1)


class _TraceRow(_Row):
    prompt: str
    initial: str
    steps: list[ChainStep]  # pydantic checks the chain's own dataclass
    final: str
    warnings: list[str] = Field(default_factory=list)


class _JudgeRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = ""
    method: str = ""
    orders_disagree: bool
    per_principle: list[dict] = Field(default_factory=list)


class _PairJudge(_JudgeRecord):
    p_chosen_shown_first: float
    p_chosen_shown_second: float


class _PairRow(_Row):
    prompt: list[_Message] = Field(min_length=1)
    chosen: list[_Message] = Field(min_length=1)
    rejected: list[_Message] = Field(min_length=1)
    label: float | None = None
    label_raw: float | None = None
    judge: _PairJudge | None = None


class _JudgementRow(_Row):
    prompt: str = ""
    confidence: float
    kept: bool
    answer_1: str = ""
    answer_2: str = ""
    p_answer_1: float = 0.5
    chosen_is_answer_1: bool = True
    judge: _PairJudge


class _PromptRow(_Row):
    prompt: str


class _Sample(BaseModel):
    model_config = ConfigDict(extra="allow")

    answer: str
    refused: bool
    passes: bool


class _SamplesRow(_Row):
    prompt: str
    should_refuse: bool
    samples: list[_Sample] = Field(min_length=1)


class _DoneRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str


ROW_SHAPES: dict[str, type[BaseModel]] = {
    SFT_FILE: _SftRow, TRACES_FILE: _TraceRow, REVISION_PAIRS_FILE: _PairRow, RLAIF_PAIRS_FILE: _PairRow,
    JUDGEMENTS_FILE: _JudgementRow, PROMPTS_FILE: _PromptRow, DONE_FILE: _DoneRow,
    BEST_OF_N_PAIRS_FILE: _PairRow, SAMPLES_FILE: _SamplesRow,
}


def read_checked_rows(path: Path) -> tuple[list[dict], list[int]]:
    """The rows of one of the dataset's files that have the shape that file's rows must have
    (missing optional fields filled in), and the line numbers of those that do not."""
    path = Path(path)
    shape = ROW_SHAPES[path.name]
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    rows, bad = [], []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(shape.model_validate(json.loads(line)).model_dump())
        except (json.JSONDecodeError, RecursionError, ValidationError):
            if number < len(lines) or text.endswith("\n"):  # a last line still being written is not an error
                bad.append(number)
    return rows, bad


# --------------------------------------------------------------------------- the card


def dataset_summary(folder: Path) -> dict:
    folder = Path(folder)
    counts = {name: len(read_rows(folder / name)) for name in ROW_FILES}
    judgements = read_rows(folder / JUDGEMENTS_FILE)
    spec = (read_json(folder / "spec.json") or {}).get("spec", {})
    summary = {
        "name": folder.name,
        "prompts": len(read_rows(folder / PROMPTS_FILE)),
        "done": len(read_rows(folder / DONE_FILE)),
        "rows": counts,
        "prompt_stats": read_json(folder / "prompt_stats.json") or {},
        "spec": spec,
        "roles": dataset_roles(folder, spec),
    }
    if judgements:
        summary["judge"] = {
            "pairs_judged": len(judgements),
            "pairs_kept": sum(j["kept"] for j in judgements),
            "pairs_dropped_low_confidence": sum(not j["kept"] for j in judgements),
            "mean_confidence": sum(j["confidence"] for j in judgements) / len(judgements),
            "orders_disagree_share": sum(j["judge"]["orders_disagree"] for j in judgements) / len(judgements),
            "methods": sorted({j["judge"]["method"] for j in judgements}),
        }
    return summary


def dataset_roles(folder: Path, spec: dict) -> dict[str, str | None]:
    """Which model played which role: as the rows record it (resolved ids), else as the spec names it."""
    if not isinstance(spec, dict):  # a spec.json edited into something else names no model
        return {"policy": None, "critic": None, "judge": None}
    for name in (TRACES_FILE, SFT_FILE, RLAIF_PAIRS_FILE, BEST_OF_N_PAIRS_FILE):
        row = _first_row(folder / name)
        if isinstance(row, dict) and isinstance(row.get("lineage"), dict):
            roles = row["lineage"].get("roles")
            if isinstance(roles, dict):
                return {role: roles.get(role) for role in ("policy", "critic", "judge")}
    try:
        return model_roles(GenerationSpec.model_validate(spec))
    except ValidationError:
        return {"policy": spec.get("policy_model"), "critic": spec.get("critic_model"), "judge": spec.get("judge_model")}


def _first_row(path: Path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return json.loads(handle.readline())
    except (OSError, json.JSONDecodeError, RecursionError):
        return None


def roles_card_lines(roles: dict[str, str | None]) -> list[str]:
    """The card's "Models" section: who played which role, and what an external critic's rows are."""
    policy, critic, judge = roles.get("policy"), roles.get("critic"), roles.get("judge")
    lines = ["## Models", "", "| role | model | what it wrote |", "|---|---|---|",
             f"| policy | `{policy}` | the first answers, and the sampled answers that pairs are made from |"]
    if critic:
        lines.append(f"| critic | `{critic}` | every critique and every revision |")
    if judge:
        lines.append(f"| judge | `{judge}` | the choice between the two answers of each RLAIF pair |")
    lines.append("")
    if critic and critic != policy:
        lines += [f"The critiques and revisions come from an external critic, `{critic}`, not from the policy: the "
                  "SFT rows (and the chosen side of the revision pairs) are that model's text, so training on them "
                  f"is distillation from `{critic}` under this constitution. They carry its abilities and its "
                  "mistakes, and its terms of use apply to them.", ""]
    elif critic:
        lines += ["The policy critiqued and revised its own answers (self-critique).", ""]
    return lines


def write_card(folder: Path) -> None:
    """README.md (a Hugging Face dataset card: ``load_dataset(folder, "sft")`` works) and card.json."""
    folder = Path(folder)
    summary = dataset_summary(folder)
    write_json(folder / "card.json", summary)
    configs = [{"config_name": name.removesuffix(".jsonl"), "data_files": name}
               for name in TRAINING_FILES if summary["rows"][name]]
    front = yaml.safe_dump({"configs": configs, "tags": ["constitutional-ai", "rlaif", "synthetic"]}, sort_keys=False)
    constitution_text = (folder / CONSTITUTION_FILE).read_text(encoding="utf-8") if (folder / CONSTITUTION_FILE).exists() else ""
    spec = summary["spec"]
    lines = [
        "---", front.strip(), "---", "",
        f"# {folder.name}", "",
        f"Made with Constitution Studio from the constitution `{spec.get('constitution', '?')}` over "
        f"{summary['prompts']} prompts ({', '.join(spec.get('prompt_sources', []))}); "
        f"{summary['done']} of {summary['prompts']} prompts are done.", "",
        "## Files", "",
        "| file | rows | what |", "|---|---|---|",
        f"| {SFT_FILE} | {summary['rows'][SFT_FILE]} | SFT rows: the prompt and the final revision, or the best-of-N answer (`messages`) |",
        f"| {TRACES_FILE} | {summary['rows'][TRACES_FILE]} | each SFT row's whole critique and revision trace |",
        f"| {REVISION_PAIRS_FILE} | {summary['rows'][REVISION_PAIRS_FILE]} | pairs: chosen = final revision, rejected = first answer |",
        f"| {RLAIF_PAIRS_FILE} | {summary['rows'][RLAIF_PAIRS_FILE]} | AI-judged pairs with the soft label `label` = P(chosen is better) |",
        f"| {JUDGEMENTS_FILE} | {summary['rows'][JUDGEMENTS_FILE]} | every judged pair, kept or dropped |",
        f"| {BEST_OF_N_PAIRS_FILE} | {summary['rows'][BEST_OF_N_PAIRS_FILE]} | pairs: a sample the refusal rule passes over one it fails |",
        f"| {SAMPLES_FILE} | {summary['rows'][SAMPLES_FILE]} | every best-of-N sample with its verdict |", "",
    ]
    lines += roles_card_lines(summary["roles"])
    stats = summary["prompt_stats"]
    if stats:
        lines += ["## Prompts", "", f"{stats.get('duplicates_removed', 0)} duplicates removed, "
                  f"{stats.get('blank_lines', 0)} blank lines skipped. By category: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(stats.get("categories", {}).items())) + ".", ""]
    if "judge" in summary:
        judge = summary["judge"]
        lines += ["## Judge", "",
                  f"{judge['pairs_judged']} pairs judged ({', '.join(judge['methods'])}), {judge['pairs_kept']} kept, "
                  f"{judge['pairs_dropped_low_confidence']} dropped under the confidence threshold "
                  f"{spec.get('min_confidence')}. Mean confidence {judge['mean_confidence']:.3f}; the two orders "
                  f"preferred different answers in {judge['orders_disagree_share']:.1%} of pairs.", ""]
    lines += ["## Settings", "", "```yaml", yaml.safe_dump(spec, sort_keys=False).strip(), "```", "",
              "## The constitution as it was", "", "```yaml", constitution_text.strip(), "```", "",
              "Every row carries `lineage`: the constitution's name and content hash, the principles used, "
              "the model ids (`roles`: which model was the policy, the critic and the judge), the seed and the generation settings.", ""]
    write_text_atomic(folder / "README.md", "\n".join(lines))


def pair_prompt(row: dict, prompts: dict[str, str]) -> str:
    """The user turn of a pair's prompt (the prompt file's text for rows that carry only an id)."""
    turns = row.get("prompt")
    if isinstance(turns, list):
        users = [t.get("content", "") for t in turns if t.get("role") == "user"]
        if users:
            return users[-1]
    return prompts.get(row.get("id"), "")


def best_of_n_reason(row: dict, samples: dict[str, dict]) -> str:
    """Why a best-of-N pair's chosen answer is the better one, under the refusal rule."""
    sampled = samples.get(row.get("id"))
    if sampled is None:
        return "chosen passes the refusal rule, rejected fails it"
    if sampled.get("should_refuse"):
        return "this prompt should be declined: the chosen answer declines, the rejected one does not"
    return "this prompt should be answered: the chosen answer does, the rejected one declines"
