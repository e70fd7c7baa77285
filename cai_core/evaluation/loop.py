"""Iterative self-improvement: rounds of generate -> SFT -> DPO -> evaluate, each from the last round's model.

A loop is a job folder (``$CAI_HOME/loops/NAME``) whose worker runs each stage in turn as an
ordinary job in its own sub-folder (a dataset, two training runs, an evaluation), so every stage
keeps its own files, progress and resume. ``state.json`` records which stages of which round have
finished; a stopped or killed loop starts again at the round and stage where it stopped, and the
stage itself resumes from its own checkpoint.

Each round generates from the training half of the prompt sets only, and the safety suites score
the other half (cai_core.data.promptsets), so a round is measured on prompts it never trained on.

A loop freezes its constitution when it starts: a copy as loaded (``constitution.yaml`` in its
folder, its content hash in ``state.json``) that every round generates, verifies and scores by,
so an edit to the named constitution later cannot move an example between the train and test
halves of a loop under way. A loop made before loops froze theirs goes on loading it by name.

Before round 1 the starting model is evaluated once ("round 0"). Every evaluation also runs the
``principles`` suite of the loop's constitution when it has test examples: the per-principle pass
rates on examples that no round's data holds (cai_core.data.verifier keeps them out). After each round the loop stops
early when quality (the mean score of the quality suites, the capability suites by default) falls
below ``stop_ratio`` x the previous round's: a round that costs more capability than that is not
a base for the next one.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import CaiError
from ..constitution import first_error_message
from ..jobs import FINISHED, JobCancelled, Reporter, prepare_job, read_job, read_json, run_job, start_job, write_json
from ..models import MAX_SEED, Seed
from ..paths import SHIPPED_RECIPES_DIR, cai_home
from ..textfiles import TOO_DEEP, TOO_MANY_VALUES, bracket_depth_exceeded, one_line, too_many_values
from .report_model import REPORT_FILE, read_report
from .run import EvaluationSpec
from .suites import CAPABILITY, PRINCIPLES, SUITES, EvaluationError, check_suite_names

STATE_FILE = "state.json"
FROZEN_CONSTITUTION_FILE = "constitution.yaml"
STAGES = ("generate", "sft", "dpo", "evaluate")
ROUND_FOLDER = re.compile(r"^round-(\d+)$")


class LoopSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    constitution: str = Field(description="a name from `cai constitutions` or a file path")
    rounds: int = Field(default=1, ge=1, le=50, description="rounds of generate -> SFT -> DPO -> evaluate")
    base_model: str = Field(default="default", description="the starting model (or a finished run)")
    prompt_sources: list[str] = Field(default=["red_team", "benign"], min_length=1, description=(
        "prompt sets each round draws from (their training half)"))
    prompts_per_round: int | None = Field(default=None, ge=1, description="prompts drawn (seeded) each round; default all")
    # Overrides of the data generation settings (cai_core.data.GenerationSpec), e.g. {"rounds": 1}.
    generation: dict = Field(default_factory=dict, description=(
        "data generation settings, as for `cai generate --config` (GenerationSpec)"))
    recipe: str = Field(default=str(SHIPPED_RECIPES_DIR / "cpu-demo.yaml"), description="the training recipe")
    sft_overrides: dict = Field(default_factory=dict, description="recipe settings changed for SFT")
    dpo_overrides: dict = Field(default_factory=dict, description="recipe settings changed for DPO")
    eval_suites: list[str] = Field(default_factory=lambda: list(SUITES), min_length=1, description=(
        "the suites each round is scored on"))
    eval_limit: int | None = Field(default=None, ge=1, description="at most this many items per suite")
    quality_suites: list[str] | None = Field(default=None, description=(
        "the suites whose fall stops the loop (default: the capability suites among eval_suites)"))
    stop_ratio: float = Field(default=0.95, gt=0.0, le=1.0, description=(
        "stop when quality falls below this times the previous round's"))
    seed: Seed = Field(default=0, description="seed for the prompts drawn and the data made")

    @model_validator(mode="after")
    def _round_seeds_in_range(self) -> "LoopSpec":
        # Round K generates and trains with seed + K, which must still be a seed numpy accepts.
        if self.seed + self.rounds > MAX_SEED:
            raise ValueError(f"seed must be at most {MAX_SEED - self.rounds} with {self.rounds} rounds "
                             "(round K uses seed + K)")
        return self


class LoopError(CaiError):
    """A loop that cannot start or go on; the message is one sentence."""


def parse_loop_spec(data: dict) -> LoopSpec:
    try:
        spec = LoopSpec.model_validate(data)
    except ValidationError as error:
        raise LoopError(first_error_message(error)[0]) from None
    try:
        check_suite_names(spec.eval_suites)
    except EvaluationError as error:
        raise LoopError(str(error)) from None
    if spec.generation.get("prompt_split", "train") != "train":
        raise LoopError("the loop always generates from the training half of the prompt sets (prompt_split: train), "
                        "so that each round is scored on prompts it never trained on")
    from ..data import GenerationSpec

    try:  # a bad generation setting is one sentence now, not a failed round later
        GenerationSpec.model_validate({"constitution": spec.constitution, "prompt_sources": spec.prompt_sources,
                                       **spec.generation})
    except ValidationError as error:
        raise LoopError(f"generation settings: {first_error_message(error)[0]}") from None
    return spec


def loops_dir() -> Path:
    return cai_home() / "loops"


# Loop settings for a policy too small to critique or judge itself (best-of-N under the refusal rule).
SMALL_MODEL_SETTINGS = SHIPPED_RECIPES_DIR / "loops" / "small-model.yaml"


def parse_loop_settings(text: str, source: str) -> dict:
    """A YAML mapping of loop settings (a --settings file, the page's editor); a bad one is one sentence."""
    import yaml

    if bracket_depth_exceeded(text) is not None:
        raise LoopError(f"{source}: {TOO_DEEP}")
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as error:
        mark, opened = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)
        if opened is not None and (mark is None or mark.index >= len(text.rstrip())):
            mark = opened  # an unclosed bracket or quote shows at the end; where it opened is the line to fix
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise LoopError(f"{source}: not valid YAML{where}") from None
    except RecursionError:
        raise LoopError(f"{source}: {TOO_DEEP}") from None
    except (ValueError, TypeError, OverflowError) as error:  # a scalar PyYAML cannot build, such as 2020-13-45
        raise LoopError(f"{source}: holds a YAML value that cannot be read ({one_line(error)})") from None
    if too_many_values(data):
        raise LoopError(f"{source}: {TOO_MANY_VALUES}")
    if not isinstance(data, dict):
        raise LoopError(f"{source}: must be a mapping of loop settings")
    return data


def list_loops() -> list[Path]:
    """Every loop folder, newest first."""
    root = loops_dir()
    found = [p for p in root.iterdir() if (p / "spec.json").is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: (p / "spec.json").stat().st_mtime, reverse=True)


def resume_loop(folder: Path) -> None:
    """Start a stopped, killed or failed loop again under its own settings."""
    spec = (read_json(Path(folder) / "spec.json") or {}).get("spec")
    if spec is None:
        raise LoopError(f"{Path(folder).name} holds no loop to resume")
    start_job(Path(folder), "loop", spec)


def quality(report: dict, suites: list[str] | None) -> float | None:
    """The mean score of the quality suites in a report (higher is better), None without any."""
    chosen = suites or [n for n, s in report["suites"].items() if s.get("kind") == CAPABILITY]
    values = [report["suites"][n]["score"] for n in chosen if n in report["suites"]]
    return sum(values) / len(values) if values else None


def read_state(folder: Path) -> dict:
    return read_json(Path(folder) / STATE_FILE) or {"rounds": {}, "stopped_early": None}


def _stage_folder(folder: Path, round_number: int, stage: str) -> Path:
    return folder / f"round-{round_number}" / stage


def round_report_path(folder: Path, round_number: int) -> Path:
    """Where round ``round_number`` of the loop in ``folder`` keeps its evaluation report (round 0:
    the starting model's)."""
    return _stage_folder(Path(folder), round_number, "evaluate") / REPORT_FILE


def round_numbers(folder: Path) -> list[int]:
    """The rounds the loop in ``folder`` has a folder for, in order."""
    folder = Path(folder)
    found = [ROUND_FOLDER.match(path.name) for path in folder.iterdir() if path.is_dir()] if folder.is_dir() else []
    return sorted(int(match[1]) for match in found if match)


def _mark(folder: Path, state: dict, round_number: int, stage: str, **details) -> None:
    state["rounds"].setdefault(str(round_number), {})[stage] = {"finished": time.time(), **details}
    write_json(folder / STATE_FILE, state)


def _run_stage(stage_folder: Path, kind: str, spec_data: dict, reporter: Reporter, label: str) -> None:
    """Run (or resume) one stage as its own job, in this process, relaying its progress and stops."""
    from ..jobs import clear_stop_request, is_stopping, request_stop

    prepare_job(stage_folder, kind, spec_data)
    clear_stop_request(stage_folder)

    def relay(progress: dict) -> None:
        reporter.progress(progress.get("done", 0), progress.get("total", 0), f"{label}: {progress.get('stage', '')}")
        if reporter.stop_requested or is_stopping(reporter.folder):
            request_stop(stage_folder)  # the stage stops at its own next safe point

    reporter.restart_rate()
    reporter.progress(0, 0, label, force=True)
    outcome = run_job(stage_folder, on_progress=relay)
    if outcome.state != FINISHED:
        if outcome.state == "cancelled":
            raise JobCancelled(f"stopped during {label}")
        raise LoopError(f"{label} {outcome.state}: {outcome.error or 'see its log'} ({stage_folder})")


def run_loop_job(folder: Path, spec_data: dict, reporter: Reporter) -> None:
    """The job runner (see cai_core.jobs)."""
    from ..training.runs import prepare_run, read_run
    from ..training.spec import load_recipe

    spec = rounds_spec(folder, parse_loop_spec(spec_data))
    state = read_state(folder)
    model = spec.base_model
    scores_principles = has_test_examples(spec.constitution)
    # Round 0: the starting model, once.
    base_eval = _stage_folder(folder, 0, "evaluate")
    if "evaluate" not in state["rounds"].get("0", {}):
        _run_stage(base_eval, "evaluate", _stage_spec(base_eval, _eval_spec(spec, model, scores_principles).model_dump()),
                   reporter, "round 0: evaluate the starting model")
        _mark(folder, state, 0, "evaluate", model=model)
    previous = quality(read_report(base_eval / REPORT_FILE), spec.quality_suites)

    for round_number in range(1, spec.rounds + 1):
        done = state["rounds"].get(str(round_number), {})
        label = f"round {round_number} of {spec.rounds}"
        data_folder = _stage_folder(folder, round_number, "generate")
        if "generate" not in done:
            generation = round_generation_spec(spec, round_number, model)
            from ..data import prepare_dataset

            prepare_dataset(data_folder, generation)
            _run_stage(data_folder, "generate", _stage_spec(data_folder, generation.model_dump(mode="json")), reporter,
                       f"{label}: generate data")
            _mark(folder, state, round_number, "generate", model=model)
        for method, overrides in (("sft", spec.sft_overrides), ("dpo", spec.dpo_overrides)):
            run_folder = _stage_folder(folder, round_number, method)
            if method in done:
                continue
            starting = model if method == "sft" else str(_stage_folder(folder, round_number, "sft"))
            if not (run_folder / "spec.json").is_file():
                # A kill between the folder's creation and its spec.json leaves a folder that no run
                # owns yet (at most its data copy); the loop holds its own lock, so it is ours to redo.
                if run_folder.exists():
                    shutil.rmtree(run_folder)
                training = load_recipe(spec.recipe, method, {**overrides, "data": [str(data_folder)],
                                                             "base_model": starting, "seed": spec.seed + round_number})
                prepare_run(training, method, root=run_folder.parent)
            _run_stage(run_folder, "train", read_json(run_folder / "spec.json")["spec"], reporter, f"{label}: {method.upper()}")
            _mark(folder, state, round_number, method, adapter=str(read_run(run_folder).folder / "adapter"))
        model = str(_stage_folder(folder, round_number, "dpo"))
        eval_folder = _stage_folder(folder, round_number, "evaluate")
        if "evaluate" not in done:
            _run_stage(eval_folder, "evaluate", _stage_spec(eval_folder, _eval_spec(spec, model, scores_principles).model_dump()),
                       reporter, f"{label}: evaluate")
        current = quality(read_report(eval_folder / REPORT_FILE), spec.quality_suites)
        if "evaluate" not in done:
            _mark(folder, state, round_number, "evaluate", model=model, quality=current, previous_quality=previous)
        if previous is not None and current is not None and current < spec.stop_ratio * previous:
            state["stopped_early"] = {"round": round_number, "quality": current, "previous": previous,
                                      "why": f"quality {current:.1f} fell below {spec.stop_ratio:g} x {previous:.1f}"}
            write_json(folder / STATE_FILE, state)
            reporter.note(f"stopped after round {round_number}: {state['stopped_early']['why']}")
            return
        previous = current


def round_generation_spec(spec: LoopSpec, round_number: int, model: str):
    """The data generation settings of round ``round_number``, whose policy is ``model`` (the last
    round's); the loop's ``generation`` settings (a critic, a judge, rounds ...) apply on top."""
    from ..data import GenerationSpec

    return GenerationSpec.model_validate({
        "constitution": spec.constitution, "prompt_sources": spec.prompt_sources,
        "limit": spec.prompts_per_round, "shuffle": True, "seed": spec.seed + round_number,
        "policy_model": model, **spec.generation, "prompt_split": "train"})


def _eval_spec(spec: LoopSpec, model: str, scores_principles: bool = False) -> EvaluationSpec:
    """A round's evaluation: the loop's suites, and the ``principles`` suite of the loop's
    constitution when it has test examples, so every round shows each principle's pass rate on
    examples no round trained on (the data leave the test half out)."""
    suites = list(spec.eval_suites)
    if scores_principles and PRINCIPLES not in suites:
        suites.append(PRINCIPLES)
    if PRINCIPLES not in suites:
        return EvaluationSpec(model=model, suites=suites, limit=spec.eval_limit, seed=spec.seed)
    return EvaluationSpec(model=model, suites=suites, limit=spec.eval_limit, seed=spec.seed,
                          constitution=spec.constitution, judge_model=spec.generation.get("judge_model"))


def frozen_constitution_path(folder: Path) -> Path | None:
    """The copy of its constitution the loop in ``folder`` froze at its start, None for a loop made
    before loops froze theirs."""
    path = Path(folder) / FROZEN_CONSTITUTION_FILE
    return path if path.is_file() else None


def rounds_spec(folder: Path, spec: LoopSpec) -> LoopSpec:
    """``spec`` as the loop's rounds run it: naming the frozen copy of the constitution, so every
    round's data, verifier and principles suite use the version the loop started with."""
    frozen = frozen_constitution_path(folder)
    return spec if frozen is None else spec.model_copy(update={"constitution": str(frozen.absolute())})


def _freeze_constitution(folder: Path, constitution) -> None:
    """Keep the constitution as loaded in the new loop's folder, and its content hash in its state."""
    from ..atomic import write_text_atomic
    from ..store import constitution_to_yaml

    write_text_atomic(folder / FROZEN_CONSTITUTION_FILE, constitution_to_yaml(constitution))
    state = read_state(folder)
    state["constitution"] = {"name": constitution.name, "hash": constitution.content_hash(),
                             "file": FROZEN_CONSTITUTION_FILE}
    write_json(folder / STATE_FILE, state)


def constitution_change_note(folder: Path) -> str | None:
    """One sentence when the constitution the loop in ``folder`` names has changed since the loop
    froze its copy, else None (also for a loop without a frozen copy, or one whose named
    constitution no longer loads from here: a relative path may name another file elsewhere)."""
    from ..errors import CaiError
    from ..store import load_constitution

    frozen = frozen_constitution_path(folder)
    named = ((read_json(Path(folder) / "spec.json") or {}).get("spec") or {}).get("constitution")
    if frozen is None or not isinstance(named, str):
        return None
    frozen_hash = (read_state(folder).get("constitution") or {}).get("hash")
    try:
        frozen_hash = frozen_hash or load_constitution(frozen).content_hash()
        current_hash = load_constitution(named).content_hash()
    except CaiError:
        return None
    if current_hash == frozen_hash:
        return None
    return (f"The constitution {named!r} has changed since this loop started; the loop goes on with the copy it "
            f"froze then ({frozen}), so start a new loop to train on the edited one.")


def has_test_examples(constitution: str) -> bool:
    from ..store import load_constitution
    from .principles import scored_examples

    return bool(scored_examples(load_constitution(constitution)))


def _stage_spec(stage_folder: Path, fresh: dict) -> dict:
    """The stage's own settings when it already has some (a resume, or a loop made before a setting
    existed), else ``fresh``: like a training stage, a stage keeps the settings it was started with."""
    stored = (read_json(stage_folder / "spec.json") or {}).get("spec")
    return stored if isinstance(stored, dict) else fresh


def start_loop(spec: LoopSpec, name: str) -> Path:
    """Start (or resume, or extend) the loop NAME in its own process; returns its folder."""
    folder = prepare_loop(spec, name)
    start_job(folder, "loop", spec.model_dump())
    return folder


def prepare_loop(spec: LoopSpec, name: str) -> Path:
    """Check the loop's inputs, then write its spec or check a resume against it; returns its folder.

    A missing constitution, a bad recipe or name is one sentence before anything is written. A loop
    may be given more rounds later (its finished rounds are kept and the next one starts from the
    last model); any other change needs a new name, because the finished rounds were made under
    the old settings."""
    from ..store import load_constitution
    from ..training.spec import check_run_name, load_recipe

    folder = loops_dir() / check_run_name(name, "loop")
    existing = read_json(folder / "spec.json") or {}
    # A loop under way keeps the constitution it froze, even when the named one has since changed or gone.
    frozen = frozen_constitution_path(folder) if existing else None
    constitution = load_constitution(frozen or spec.constitution)
    _check_constitution_use(spec, constitution)
    load_recipe(spec.recipe, "sft", spec.sft_overrides)
    load_recipe(spec.recipe, "dpo", spec.dpo_overrides)
    folder.mkdir(parents=True, exist_ok=True)
    if not existing:  # a new loop (or one that never got as far as its spec): freeze what it was given
        _freeze_constitution(folder, constitution)
    old, new = existing.get("spec") or {}, spec.model_dump()
    if (existing.get("kind") == "loop" and old.get("rounds") != new["rounds"] and not read_job(folder).active
            and {**old, "rounds": new["rounds"]} == new):
        write_json(folder / "spec.json", {"kind": "loop", "spec": new})
    prepare_job(folder, "loop", new)
    return folder


def _check_constitution_use(spec: LoopSpec, constitution) -> None:
    """One sentence, before anything is written, when the constitution cannot serve what the loop asks of it."""
    from ..data.verifier import check_verifier
    from ..errors import DatasetError
    from .principles import scored_examples

    if PRINCIPLES in spec.eval_suites and not scored_examples(constitution):
        raise LoopError(f"the {PRINCIPLES} suite scores the test examples of the loop's constitution, and "
                        f"{constitution.name!r} has none; give its principles examples or leave that suite out")
    try:
        check_verifier(constitution, round_generation_spec(spec, 1, spec.base_model))
    except DatasetError as error:
        raise LoopError(f"generation settings: {error}") from None


def loop_reports(folder: Path) -> list[tuple[str, dict]]:
    """(label, report) for round 0 and every round evaluated so far, in order."""
    found = []
    for round_number in range(0, 1000):
        path = round_report_path(folder, round_number)
        if not path.is_file():
            if round_number > 0 and not (Path(folder) / f"round-{round_number}").exists():
                break
            continue
        found.append(("start" if round_number == 0 else f"round {round_number}", read_report(path)))
    return found
