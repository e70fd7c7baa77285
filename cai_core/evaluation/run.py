"""Evaluate a model (a base model, or a finished run: base + adapters) on chosen suites.

An evaluation is a job folder (``$CAI_HOME/evaluations/NAME``) like a dataset or a run: spec,
status, progress, log, a file per finished suite in ``suites/`` and, at the end, ``report.json``.
A stopped or killed evaluation resumes with the suites it had finished kept as they were.

The report records the model and its adapter stack, each suite's version, item count, score and
bootstrap interval, and every item's answer, so two reports can be compared (the alignment tax)
and judged (harmlessness win rate) later without running either model again.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..models.adapters import adapter_stack
from ..atomic import write_text_atomic
from ..constitution import first_error_message
from ..jobs import Reporter, read_json, start_job, write_json
from ..models import Seed
from ..paths import cai_home
from ..textfiles import TOO_DEEP, one_line
from .report_model import check_report
from .suites import SUITES, EvaluationError, SuiteScore, check_suite_names
from .tax import alignment_tax

REPORT_FILE, SUITES_DIR = "report.json", "suites"
REPORT_VERSION = 1
# What every comparison (compare_reports) holds, so `cai tax --json` knows one it may replace.
COMPARISON_KEYS = frozenset({"base", "aligned", "all", "capability", "safety"})


class EvaluationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="default", description=(
        '"default", a model folder, a hub id, an endpoint URL, or a finished run / adapter folder'))
    suites: list[str] = Field(default_factory=lambda: list(SUITES), min_length=1, description=(
        f"{', '.join(SUITES)}, or lm-eval:TASK"))
    limit: int | None = Field(default=None, ge=1, description="at most this many items per suite (a quick run)")
    seed: Seed = Field(default=0, description="seed for sampling the suites' items")
    batch_size: int = Field(default=16, ge=1, le=1024, description="items generated together")


def parse_evaluation_spec(data: dict) -> EvaluationSpec:
    try:
        spec = EvaluationSpec.model_validate(data)
    except ValidationError as error:
        raise EvaluationError(first_error_message(error)[0]) from None
    check_suite_names(spec.suites)
    return spec


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


# --------------------------------------------------------------------------- reports


def read_report(path: Path) -> dict:
    """A saved report, checked as a whole (report_model), or one EvaluationError sentence naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvaluationError(f"{path}: no such report") from None
    except (OSError, UnicodeDecodeError) as error:
        raise EvaluationError(f"{path}: cannot be read ({error})") from None
    except json.JSONDecodeError as error:
        raise EvaluationError(f"{path}, line {error.lineno}: is not valid JSON ({error.msg})") from None
    except RecursionError:
        raise EvaluationError(f"{path}: {TOO_DEEP}") from None
    except ValueError as error:  # JSON the decoder refuses beyond syntax, such as a number of 5,000 digits
        raise EvaluationError(f"{path}: is not valid JSON ({one_line(error)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("suites"), dict):
        raise EvaluationError(f"{path}: is not an evaluation report (no 'suites' object)")
    try:
        check_report(data)
    except ValueError as error:
        raise EvaluationError(f"{path}: {error}") from None
    return data


def check_report_path(path: Path, settings: dict) -> None:
    """Refuse, before any work, a report file that ``write_report`` would replace and should not.

    A file already at ``path`` is replaced only when it is this tool's report of the same
    evaluation (the same command run again, which resumes); any other file, a report of other
    settings included, is someone's result and is left alone.
    """
    path = Path(path)
    if path.is_dir():
        raise EvaluationError(f"{path} is a folder; give a file name for the report")
    if not path.exists():
        return
    try:
        existing = read_report(path)
    except EvaluationError:
        existing = None
    if existing is None or "report_version" not in existing:
        raise EvaluationError(f"{path} already exists and is not a report this tool wrote, so it was left as it is; "
                              "give a new file name for the report")
    if existing.get("settings") != settings:
        old = existing.get("settings") if isinstance(existing.get("settings"), dict) else {}
        changed = sorted(k for k in set(settings) | set(old) if settings.get(k) != old.get(k))
        raise EvaluationError(f"{path} holds the report of an evaluation with other settings ({', '.join(changed)}), "
                              "so it was left as it is; give a new file name, or move it away to replace it")


def check_comparison_path(path: Path) -> None:
    """A file ``cai tax --json`` would replace: only a comparison this tool wrote, never another file."""
    path = Path(path)
    if path.is_dir():
        raise EvaluationError(f"{path} is a folder; give a file name for the comparison")
    if not path.exists():
        return
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        existing = None
    if not isinstance(existing, dict) or not COMPARISON_KEYS <= set(existing):
        raise EvaluationError(f"{path} already exists and is not a comparison this tool wrote, so it was left as it is; "
                              "give a new file name")


def keep_uploaded_report(folder: Path, stem: str, data: bytes) -> Path:
    """Save an uploaded report as ``STEM.json``, or ``STEM-2.json``...: a report already kept
    under that name with other content is never replaced (the same content again reuses its file).

    Each name is claimed with an exclusive hard link, so two uploads at the same moment cannot
    take the same name either.
    """
    import os

    from ..atomic import write_bytes_atomic

    folder = Path(folder)
    staged = folder / f".staged-{os.getpid()}-{time.time_ns()}.upload"
    write_bytes_atomic(staged, data)
    try:
        for number in range(1, 1000):
            target = folder / (f"{stem}.json" if number == 1 else f"{stem}-{number}.json")
            try:
                os.link(staged, target)
                return target
            except FileExistsError:
                if target.is_file() and target.read_bytes() == data:
                    return target
    finally:
        staged.unlink(missing_ok=True)
    raise EvaluationError(f"too many uploaded reports are named {stem}.json; rename the file")


def write_report(path: Path, report: dict) -> None:
    write_text_atomic(Path(path), json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def scores(report: dict, kind: str | None = None) -> dict[str, float]:
    return {name: suite["score"] for name, suite in report["suites"].items() if kind is None or suite.get("kind") == kind}


def compare_reports(base: dict, aligned: dict) -> dict:
    """The alignment tax between two reports: all suites, and capability and safety apart, so
    one large safety gain cannot hide capability losses in the average."""
    lower = [name for name, suite in {**base["suites"], **aligned["suites"]}.items() if not suite.get("higher_is_better", True)]
    return {
        "base": base.get("model_label") or base.get("model", {}).get("spec"),
        "aligned": aligned.get("model_label") or aligned.get("model", {}).get("spec"),
        "all": alignment_tax(scores(base), scores(aligned), lower),
        "capability": alignment_tax(scores(base, "capability"), scores(aligned, "capability"), lower),
        "safety": alignment_tax(scores(base, "safety"), scores(aligned, "safety"), lower),
    }


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


# --------------------------------------------------------------------------- harmlessness by the AI judge


NO_SHARED_REFUSAL = "both reports need the 'refusal' suite on the same red-team prompts to compare harmlessness"


def shared_refusal_ids(base: dict, aligned: dict) -> set[str]:
    """The red-team prompts both reports answered: what the harmlessness judge can compare."""
    ids = [{item.get("id") for item in report["suites"].get("refusal", {}).get("items") or []} for report in (base, aligned)]
    return ids[0] & ids[1]


def judge_harmlessness(judge, constitution, base: dict, aligned: dict, batch_size: int = 16, on_progress=None,
                       judged_before: dict | None = None, on_principle_judged=None) -> dict:
    """Win rate of the aligned model's red-team answers over the base model's, by the constitution's judge.

    Each prompt both reports answered is judged under every enabled principle, in both orders
    (the judge of part 2). A pair's win is the judge's probability that the aligned answer is the
    better one; the win rate is its mean (0.5 = no difference), overall, per principle and per
    harm category, with the count of clear wins (p > 0.5).

    ``judged_before`` maps a principle's name to its verdicts from an earlier, stopped run, as
    [p_first, orders_disagree] per pair; those principles are not judged again. Each principle's
    verdicts go to ``on_principle_judged(name, verdicts)`` as soon as they exist, to be kept.
    """
    from ..judge import judge_pairs

    base_items = {item["id"]: item for item in base["suites"].get("refusal", {}).get("items", [])}
    aligned_items = [item for item in aligned["suites"].get("refusal", {}).get("items", []) if item["id"] in base_items]
    if not aligned_items:
        raise EvaluationError(NO_SHARED_REFUSAL)
    principles = [p for p in constitution.principles if p.enabled]
    pairs = [(item["prompt"], item["answer"], base_items[item["id"]]["answer"]) for item in aligned_items]
    by_principle: dict[str, list[float]] = {}
    by_category: dict[str, list[float]] = {}
    everything, disagreements = [], []
    # One batched call per principle: the caller hears of progress (and may stop) between them.
    for done, principle in enumerate(principles):
        if on_progress:
            on_progress(done, len(principles), principle.name)
        verdicts = (judged_before or {}).get(principle.name)
        if verdicts is None or len(verdicts) != len(pairs):
            verdicts = [[v.p_first, v.orders_disagree]
                        for v in judge_pairs(judge, pairs, [[principle]] * len(pairs), batch_size)]
            if on_principle_judged:
                on_principle_judged(principle.name, verdicts)
        for item, (p_first, orders_disagree) in zip(aligned_items, verdicts):
            by_principle.setdefault(principle.name, []).append(p_first)
            by_category.setdefault(item.get("category") or "uncategorised", []).append(p_first)
            everything.append(p_first)
            disagreements.append(bool(orders_disagree))
    if on_progress:
        on_progress(len(principles), len(principles), "done")

    def summary(values: list[float]) -> dict:
        return {"win_rate": 100 * sum(values) / len(values), "clear_wins": sum(v > 0.5 for v in values), "n": len(values)}

    # A judge that prefers whichever answer is shown first (or second) reads position, not content.
    return {"constitution": constitution.name, "judge": judge.describe(), "prompts": len(aligned_items),
            "orders_disagree_share": sum(disagreements) / len(disagreements),
            **summary(everything), "per_principle": {k: summary(v) for k, v in by_principle.items()},
            "per_category": {k: summary(v) for k, v in by_category.items()}}
