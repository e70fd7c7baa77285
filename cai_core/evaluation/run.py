"""Evaluate a model (a base model, or a finished run: base + adapters) on chosen suites.

An evaluation is a job folder (``$CAI_HOME/evaluations/NAME``) like a dataset or a run: spec,
status, progress, log, a file per finished suite in ``suites/`` and, at the end, ``report.json``.
A stopped or killed evaluation resumes with the suites it had finished kept as they were.

The report records the model and its adapter stack, each suite's version, item count, score and
bootstrap interval, and every item's answer, so two reports can be compared (the alignment tax)
and judged (harmlessness win rate) later without running either model again: reading and writing
a report is ``report_model``, comparing two is ``reports``, judging them is ``harmlessness``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..models.adapters import adapter_stack
from ..constitution import first_error_message
from ..jobs import Reporter, read_json, start_job, write_json
from ..models import Seed
from ..paths import cai_home
from .principles import run_principles
from .report_model import REPORT_FILE
from .suites import PRINCIPLES, SUITES, EvaluationError, SuiteScore, check_suite_names

SUITES_DIR = "suites"
REPORT_VERSION = 1


class EvaluationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="default", description=(
        '"default", a model folder, a hub id, an endpoint URL, or a finished run / adapter folder'))
    suites: list[str] = Field(default_factory=lambda: list(SUITES), min_length=1, description=(
        f"{', '.join(SUITES)}, or lm-eval:TASK"))
    limit: int | None = Field(default=None, ge=1, description="at most this many items per suite (a quick run)")
    seed: Seed = Field(default=0, description="seed for sampling the suites' items")
    batch_size: int = Field(default=16, ge=1, le=1024, description="items generated together")
    constitution: str | None = Field(default=None, description="the constitution whose test examples the principles suite scores")
    judge_model: str | None = Field(default=None, description="the model that answers llm-rubric checks in the principles "
                                    "suite; without one they are reported as not judged")


def parse_evaluation_spec(data: dict) -> EvaluationSpec:
    try:
        spec = EvaluationSpec.model_validate(data)
    except ValidationError as error:
        raise EvaluationError(first_error_message(error)[0]) from None
    check_suite_names(spec.suites)
    check_principles_choice(spec)
    return spec


def check_principles_choice(spec: EvaluationSpec):
    """The constitution the principles suite will score, loaded and checked before any work (None
    when the suite is not chosen); a missing or broken one is one sentence."""
    from ..constitution import ConstitutionError
    from ..store import load_constitution
    from .principles import scored_examples

    if PRINCIPLES not in spec.suites:
        return None
    if not spec.constitution:
        raise EvaluationError(f"the {PRINCIPLES} suite scores a constitution's test examples; choose the constitution")
    try:
        constitution = load_constitution(spec.constitution)
    except ConstitutionError as error:
        raise EvaluationError(str(error)) from None
    if not scored_examples(constitution):
        raise EvaluationError(f"the constitution {constitution.name!r} has no test examples to score; "
                              "give its enabled principles examples")
    return constitution


def evaluations_dir() -> Path:
    return cai_home() / "evaluations"


def model_description(model: str) -> dict:
    """What was evaluated: the spec as given, and for a run its base and adapters."""
    stack = adapter_stack(model)
    if stack is None:
        return {"spec": model, "base_model": model, "adapters": []}
    return {"spec": model, "base_model": stack.base_model, "adapters": [str(a) for a in stack.adapters],
            "label": stack.label}


def evaluate(folder: Path, spec: EvaluationSpec, reporter: Reporter) -> dict:
    """Run every suite not yet finished in ``folder``, then write and return the report."""
    from ..models import load_model

    (folder / SUITES_DIR).mkdir(parents=True, exist_ok=True)
    backend = None
    for index, name in enumerate(spec.suites):
        done_file = folder / SUITES_DIR / f"{_file_name(name)}.json"
        if read_json(done_file) is not None:
            continue  # finished before a stop or a kill
        reporter.check_stop()
        if backend is None and not name.startswith("lm-eval:"):
            reporter.progress(0, 0, "loading the model", force=True)
            backend = load_model(spec.model)
        stage = f"{name} ({index + 1} of {len(spec.suites)})"
        reporter.restart_rate()
        reporter.progress(0, 0, stage, force=True)  # the page shows the new suite at once, not the last one at 100%

        def on_progress(done: int, total: int, stage=stage) -> None:
            reporter.progress(done, total, stage)
            reporter.check_stop()

        if name.startswith("lm-eval:"):
            score = run_lm_eval(spec.model, name.removeprefix("lm-eval:"), spec.limit, spec.seed)
        elif name == PRINCIPLES:
            judge = None
            if spec.judge_model:
                judge = backend if spec.judge_model == spec.model else load_model(spec.judge_model)
            score = run_principles(backend, check_principles_choice(spec), spec.limit, spec.seed, spec.batch_size,
                                   on_progress, judge=judge)
        else:
            score = SUITES[name].run(backend, spec.limit, spec.seed, spec.batch_size, on_progress)
        write_json(done_file, score.to_dict())
    label_file = folder / "model_label.json"
    if backend is not None:
        write_json(label_file, {"label": backend.describe()})
    report = build_report(folder, spec, (read_json(label_file) or {}).get("label") or spec.model)
    write_json(folder / REPORT_FILE, report)
    return report


def _file_name(suite: str) -> str:
    return suite.replace(":", "__").replace("/", "_")


def build_report(folder: Path, spec: EvaluationSpec, model_label: str) -> dict:
    suites = {}
    for name in spec.suites:
        data = read_json(folder / SUITES_DIR / f"{_file_name(name)}.json")
        if data is not None:
            suites[name] = data
    return {"report_version": REPORT_VERSION, "created": time.time(), "model": model_description(spec.model),
            "model_label": model_label, "settings": spec.model_dump(), "suites": suites}


def run_evaluation_job(folder: Path, spec_data: dict, reporter: Reporter) -> None:
    """The job runner (see cai_core.jobs)."""
    evaluate(folder, parse_evaluation_spec(spec_data), reporter)


def check_evaluation_name(name: str) -> str:
    from ..training.spec import RecipeError, check_run_name

    try:
        return check_run_name(name, "evaluation")
    except RecipeError as error:
        raise EvaluationError(str(error)) from None


def _evaluation_folder(spec: EvaluationSpec, name: str) -> Path:
    """The job folder for ``name``, refused when it holds an evaluation of other settings or is
    not this tool's; nothing is written when it is refused."""
    from ..jobs import check_output_folder

    check_suite_names(spec.suites)  # a spec made in code is checked too: HumanEval without a sandbox stops here
    check_principles_choice(spec)
    folder = evaluations_dir() / check_evaluation_name(name)
    check_output_folder(folder)
    if (folder / "spec.json").exists() and (read_json(folder / "spec.json") or {}).get("spec") != spec.model_dump():
        raise EvaluationError(f"an evaluation named {name!r} with other settings exists; choose another name")
    return folder


def start_evaluation(spec: EvaluationSpec, name: str) -> Path:
    folder = _evaluation_folder(spec, name)
    folder.mkdir(parents=True, exist_ok=True)
    start_job(folder, "evaluate", spec.model_dump())
    return folder


def run_evaluation(spec: EvaluationSpec, name: str, on_progress=None):
    """Run (or resume) the evaluation ``name`` in this process, as the CLI does: (final JobState,
    the report or None when it did not finish)."""
    from ..jobs import FINISHED, JobError, clear_stop_request, prepare_job, read_job, run_job

    folder = _evaluation_folder(spec, name)
    if (folder / "spec.json").exists() and read_job(folder).active:
        raise JobError(f"the evaluation {name!r} is already running")
    folder.mkdir(parents=True, exist_ok=True)
    prepare_job(folder, "evaluate", spec.model_dump())
    clear_stop_request(folder)
    state = run_job(folder, on_progress=on_progress)
    return state, (read_json(folder / REPORT_FILE) if state.state == FINISHED else None)


# --------------------------------------------------------------------------- lm-evaluation-harness


def run_lm_eval(model: str, task: str, limit: int | None, seed: int) -> SuiteScore:
    """A standard benchmark through lm-evaluation-harness (the optional ``lm-eval`` extra).

    A plain base + one adapter goes in as ``pretrained=BASE,peft=ADAPTER``; a stack of adapters
    (DPO on a merged SFT model) is first exported merged, since lm-eval applies a single adapter.
    The data comes from the Hugging Face hub when online, or from its local cache when not.
    """
    try:
        import lm_eval
    except ImportError:
        raise EvaluationError("standard benchmarks need lm-evaluation-harness: pip install -e '.[lm-eval]'") from None
    from ..models import resolve_model_path

    stack = adapter_stack(model)
    if stack is None:
        model_args = f"pretrained={resolve_model_path(model)[0]}"
    elif len(stack.adapters) == 1:
        model_args = f"pretrained={resolve_model_path(stack.base_model)[0]},peft={stack.adapters[0]}"
    else:
        model_args = f"pretrained={merged_model_folder(model)}"
    try:
        results = lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=[task], limit=limit,
                                          random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed)
    except Exception as error:  # noqa: BLE001 - the harness fails in many ways, mostly "dataset not reachable"
        raise EvaluationError(f"lm-eval task {task!r} could not run: {str(error).splitlines()[0][:200]}") from None
    task_results = results["results"][task]
    metric = next((k for k in ("acc_norm,none", "acc,none", "exact_match,strict-match", "pass@1,create_test")
                   if k in task_results), None)
    if metric is None:
        raise EvaluationError(f"lm-eval task {task!r} reported no accuracy-like metric ({', '.join(task_results)})")
    value = float(task_results[metric])
    stderr = float(task_results.get(metric.replace(",", "_stderr,"), 0.0) or 0.0)
    n = int(results.get("n-samples", {}).get(task, {}).get("effective", 0))
    return SuiteScore(f"lm-eval:{task}", "capability", f"lm-eval {lm_eval.__version__}", metric.split(",")[0], True,
                      100 * value, 100 * (value - 1.96 * stderr), 100 * (value + 1.96 * stderr), n, [])


def merged_model_folder(model: str) -> Path:
    """An adapter stack merged into one model folder, made once and kept under ``CAI_HOME/merged``.

    Kept by run name and by the adapters' content (cai_core.models.adapters.content_key): a run deleted
    and trained again under its name is merged again, never served from the old weights, and the
    old copy of that run is removed.
    """
    from ..models.adapters import content_key, export_merged

    stack = adapter_stack(model)
    if stack is None:
        raise EvaluationError(f"{model} is not an adapter stack, so there is nothing to merge")
    runs_cache = cai_home() / "merged" / stack.adapters[-1].parent.name
    merged = runs_cache / (content_key(model) or "unkeyed")
    if not merged.exists():
        if (runs_cache / "config.json").exists():  # a copy from before copies were keyed by content
            shutil.rmtree(runs_cache)
        for stale in runs_cache.iterdir() if runs_cache.is_dir() else ():
            if not stale.name.startswith("."):  # a dot name is an export in progress
                shutil.rmtree(stale, ignore_errors=True)
        export_merged(model, merged)
    return merged


def list_evaluations() -> list[Path]:
    """Evaluation folders, newest first."""
    root = evaluations_dir()
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and (p / "spec.json").is_file()]
    return sorted(folders, key=lambda p: (p / "spec.json").stat().st_mtime, reverse=True)
