"""The ``cai`` command: constitutions, chain previews, datasets, and training runs.

Every failure a user can cause prints one sentence to stderr and exits 1; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .constitution import ConstitutionError
from .errors import CaiError, DatasetError, UsageError


def _cmd_validate(args: argparse.Namespace) -> int:
    from .lint import lint_constitution
    from .store import load_constitution

    path = Path(args.file)
    if not path.is_file():
        raise ConstitutionError("file not found" if not path.exists() else "is not a file", str(path))
    constitution = load_constitution(path)
    warnings = lint_constitution(constitution)
    print(f"{path}: valid constitution {constitution.name!r} with {len(constitution.principles)} principles")
    for warning in warnings:
        print(f"{path}: warning: {warning}")
    return 0


def _cmd_constitutions(args: argparse.Namespace) -> int:
    from .store import list_constitutions

    for info in list_constitutions():
        origin = "shipped" if info.shipped else "yours"
        if info.error:
            print(f"{info.name:28} {origin:8} BROKEN: {info.error}")
        else:
            print(f"{info.name:28} {origin:8} {info.principle_count:3d} principles  {info.description[:60]}")
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from .chain import check_prompts, run_chain, trace_summary
    from .models import GenerationSettings, load_model
    from .roles import check_models_fit, role_specs
    from .store import load_constitution

    constitution = load_constitution(args.constitution)
    check_prompts([args.prompt])  # fail on an empty prompt before spending seconds on a model load
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                                  repetition_penalty=args.repetition_penalty)
    roles = role_specs(args.model, args.critic_model, need_judge=False)
    check_models_fit(roles)  # a critic that would not fit beside the policy is refused before either loads
    model = load_model(args.model, trust_remote_code=args.trust_remote_code)
    critic = load_model(roles["critic"], trust_remote_code=args.trust_remote_code) if roles["critic"] else None
    by_critic = f" (by the critic, {critic.model_id})" if critic else ""

    def show(event) -> None:
        if args.json:
            return
        trace = event.traces[0]
        if event.stage == "initial":
            print(f"--- initial answer ({model.describe()})\n{trace.initial}\n", flush=True)
        elif event.stage == "critique":
            step = trace.steps[-1]
            print(f"--- round {step.round}: critique under {step.principle!r}{by_critic}\n{step.critique}\n", flush=True)
        else:
            step = trace.steps[-1]
            label = "revision" + by_critic if step.revised else "revision skipped (the critique found nothing to change)"
            print(f"--- round {step.round}: {label}\n{step.revision if step.revised else ''}\n", flush=True)

    from .threads import preview_share

    with preview_share():  # beside running jobs, a preview takes its share of the cores, not all
        traces = run_chain(model, constitution, [args.prompt], rounds=args.rounds, seed=args.seed,
                           principles=args.principle or None, order=args.order, settings=settings, on_event=show,
                           critic=critic)
    trace = traces[0]
    if args.json:
        print(json.dumps(trace_summary(trace), ensure_ascii=False))
    else:
        for warning in trace.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"--- final answer\n{trace.final}")
    return 0


# Option names the README used before the options came from the spec; they stay as aliases.
GENERATION_ALIASES = {"prompt_sources": ("prompts",), "pair_sources": ("pairs",), "principles": ("principle",),
                      "policy_model": ("model",), "judge_ensemble": ("ensemble",)}
PHASES = {"sft": ["sft"], "prefs": ["prefs"], "both": ["sft", "prefs"]}


def _cmd_generate(args: argparse.Namespace) -> int:
    from .cli_specs import read_config, spec_data, validate
    from .data import GenerationSpec, check_dataset_name, dataset_summary, datasets_dir, run_generation
    from .jobs import FINISHED, check_output_folder, read_json

    if not (args.name or args.out):
        raise UsageError("give the dataset a --name (it is kept in $CAI_HOME/datasets/NAME, where `cai train --data "
                         "NAME` finds it)")
    name = check_dataset_name(args.name or Path(args.out).name)
    folder = datasets_dir() / name
    out = Path(args.out).expanduser() if args.out else None
    if out is not None and out.resolve() == folder.resolve():
        out = None  # --out named the dataset's own folder: nothing to copy
    if out is not None and out.resolve().parent == datasets_dir().resolve():
        raise UsageError(f"--out {out} is the dataset {out.name!r}; a copy goes outside $CAI_HOME/datasets")
    if out is not None:
        check_output_folder(out)  # a copy goes only where this tool's files, or none, are
    config = read_config(args.config, "generation") if args.config else None
    data = spec_data(args, GenerationSpec, config, args.set)
    if args.phase:
        data["phases"] = PHASES[args.phase]
    stored = read_json(folder / "spec.json")
    if not data:
        if not stored or stored.get("kind") != "generate":
            raise UsageError(f"there is no dataset named {name!r} to resume; give --constitution and --prompts "
                             "(or --config FILE) to make it")
        spec = validate(GenerationSpec, stored["spec"])
        print(f"resuming the dataset {name!r}", file=sys.stderr)
    else:
        missing = [f"--{option}" for key, option in (("constitution", "constitution"), ("prompt_sources", "prompts"))
                   if key not in data]
        if missing:
            raise UsageError(f"give {' and '.join(missing)} (on the command line or in --config)")
        spec = validate(GenerationSpec, data, config, DatasetError)
    check_output_folder(folder)
    if _is_endpoint(spec.policy_model):
        from .models.endpoint import endpoint_setting_notes

        for note in endpoint_setting_notes(spec.settings):
            print(f"note: {note}", file=sys.stderr)
    if args.background:
        from .data import start_generation

        start_generation(folder, spec)
        print(f"{folder}: started in its own process; `cai datasets` shows its progress, {folder / 'log.txt'} its log"
              + ("; --out exports only a finished dataset: run the same command again once it is done" if out else ""))
        return 0
    from tqdm import tqdm

    bars: list = []  # made on the first report, so an error before the run prints no empty bar

    def show(progress: dict) -> None:
        if not bars:
            bars.append(tqdm(total=progress["total"], unit="prompt", dynamic_ncols=True, file=sys.stderr))
        bar = bars[0]
        bar.total = progress["total"]
        bar.n = progress["done"]
        bar.set_postfix_str(progress.get("stage") or "", refresh=False)
        bar.refresh()

    try:
        state = run_generation(folder, spec, on_progress=show)
    finally:
        for bar in bars:
            bar.close()
    summary = dataset_summary(folder)
    rows = ", ".join(f"{name} {count}" for name, count in summary["rows"].items() if count)
    for note in state.notes:
        if not (_is_endpoint(spec.policy_model) and note in _endpoint_notes(spec)):  # said at the start
            print(f"note: {note}", file=sys.stderr)
    if state.state == FINISHED:
        print(f"{folder}: {summary['done']}/{summary['prompts']} prompts done; {rows or 'no rows'}")
        if out is not None:
            _export_dataset(folder, out)
            print(f"{out}: a copy of the dataset")
        return 0
    if state.error:
        raise DatasetError(state.error)
    print(f"{folder}: {state.state} at {summary['done']}/{summary['prompts']} prompts; run the same command again to resume",
          file=sys.stderr)
    return 130 if state.state == "cancelled" else 1


def _is_endpoint(model: str | None) -> bool:
    from .models import is_endpoint_spec

    return bool(model) and is_endpoint_spec(model)


def _endpoint_notes(spec) -> list[str]:
    from .models.endpoint import endpoint_setting_notes

    return endpoint_setting_notes(spec.settings)


def _export_dataset(folder: Path, out: Path) -> None:
    """Copy the finished dataset's files into ``out``, each written atomically."""
    from .atomic import write_bytes_atomic
    from .jobs import is_stop_file

    out.mkdir(parents=True, exist_ok=True)
    # spec.json first: it marks the copy as this tool's, so the same command may refresh it later.
    names = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and not is_stop_file(p)),
                   key=lambda p: p.name != "spec.json")
    for path in names:
        write_bytes_atomic(out / path.name, path.read_bytes())


def _cmd_datasets(args: argparse.Namespace) -> int:
    from .data import datasets_dir, dataset_summary, list_datasets
    from .jobs import read_job

    folders = list_datasets()
    if not folders:
        print(f"no datasets yet in {datasets_dir()}; make one with `cai generate` or on the Data page")
    for folder in folders:
        job, summary = read_job(folder), dataset_summary(folder)
        rows = ", ".join(f"{name.removesuffix('.jsonl')} {count}" for name, count in summary["rows"].items()
                         if count and name != "traces.jsonl")
        print(f"{folder.name:28} {job.state:11} {summary['done']:5d}/{summary['prompts']:<5d} prompts  {rows}")
        if job.error:
            print(f"{'':28} error: {job.error}")
    return 0


def _cmd_prompt_sets(args: argparse.Namespace) -> int:
    from .data.promptsets import list_prompt_sets, load_prompt_file, resolve_prompt_source

    for name in list_prompt_sets():
        try:
            loaded = load_prompt_file(resolve_prompt_source(name))
        except CaiError as error:
            print(f"{name:28} BROKEN: {error}")
            continue
        categories = ", ".join(f"{k} {v}" for k, v in sorted(loaded.categories().items()))
        print(f"{name:28} {len(loaded.items):5d} prompts  {categories}")
    return 0


def _run_folder(value: str) -> Path:
    """A run named on the command line: a name under $CAI_HOME/runs, or a path written as one
    (``./run``, ``~/runs/x``; see ``paths.is_explicit_path``), so a stray folder of the same name
    where the command runs never stands in for the run."""
    from .paths import is_explicit_path
    from .training import runs_dir

    path = Path(value).expanduser() if is_explicit_path(value) else runs_dir() / value
    if path.is_dir():
        return path
    raise UsageError(f"there is no run {value!r} (see `cai runs`)")


def _model_or_run(value: str) -> str:
    """--from: a run's name means that run's folder; anything else is a model spec as given."""
    from .paths import is_explicit_path
    from .training import runs_dir

    named = runs_dir() / value
    if not is_explicit_path(value) and named.is_dir():
        return str(named)
    return value


def _overrides(pairs: list[str] | None) -> dict:
    """--set key=value (value read as YAML, so 1e-4, true and [q_proj, v_proj] work; lora.r for LoRA keys)."""
    from .cli_specs import nest, parse_overrides

    return nest(parse_overrides(pairs))


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import load_recipe, read_run, resume_run, start_run

    if args.resume:
        folder = _run_folder(args.resume)
        run = read_run(folder)
        if run.spec is not None and run.spec.method != args.method:
            raise UsageError(f"run {run.name!r} is a {run.spec.method} run, not {args.method}")
        resume_run(folder)
        print(f"{folder}: resumed in its own process", file=sys.stderr)
    else:
        if not args.recipe:
            raise UsageError("give --recipe FILE (see recipes/), or --resume RUN to continue a run")
        overrides = _overrides(args.set)
        if args.data:
            overrides["data"] = [part.strip() for value in args.data for part in value.split(",") if part.strip()]
        if args.start_from:
            overrides["base_model"] = _model_or_run(args.start_from)
        spec = load_recipe(args.recipe, args.method, overrides)
        folder = start_run(spec, args.name)
        print(f"{folder}: started in its own process; log in {folder / 'log.txt'}", file=sys.stderr)
    if args.background:
        return 0
    return _watch_run(folder)


def _watch_run(folder: Path) -> int:
    """Follow a run with a progress bar until it ends; Ctrl-C stops it at a checkpoint."""
    import time

    from tqdm import tqdm

    from .jobs import log_tail
    from .training import read_run, stop_run

    bar = tqdm(total=0, unit="step", dynamic_ncols=True, file=sys.stderr)
    stopping = False
    try:
        while True:
            try:
                run = read_run(folder)
                progress = run.job.progress
                bar.total, bar.n = progress.get("total") or 0, progress.get("done") or 0
                loss = progress.get("loss")
                bar.set_postfix_str(progress.get("stage", "") + (f", loss {loss:.4f}" if isinstance(loss, float) else ""),
                                    refresh=False)
                bar.refresh()
                if not run.job.active:
                    break
                time.sleep(1.0)
            except KeyboardInterrupt:
                if stopping:
                    print("\nleft running in its own process; `cai runs` shows it", file=sys.stderr)
                    return 130
                stopping = True
                stop_run(folder)
                bar.write("stopping at the end of this step, after saving a checkpoint (Ctrl-C again to stop waiting)")
    finally:
        bar.close()
    for note in run.job.notes:
        print(f"note: {note}", file=sys.stderr)
    if run.state == "finished":
        result = run.result or {}
        loss = result.get("train_loss")
        print(f"{folder}: finished {result.get('steps')} steps" + (f", mean loss {loss:.4f}" if isinstance(loss, float) else "")
              + f"; adapter in {folder / 'adapter'}")
        return 0
    if run.state == "failed":
        print(log_tail(folder, 15), file=sys.stderr)
        from .training import TrainingError

        raise TrainingError(f"run {run.name!r} failed: {run.job.error}")
    step = run.job.progress.get("done")
    print(f"{folder}: {run.state} at step {step}; continue with `cai train {run.spec.method if run.spec else 'sft'} "
          f"--resume {folder}`", file=sys.stderr)
    return 130 if run.state == "cancelled" else 1


def _cmd_runs(args: argparse.Namespace) -> int:
    from .training import list_runs, runs_dir

    runs = list_runs()
    if not runs:
        print(f"no training runs yet in {runs_dir()}; start one with `cai train sft --recipe recipes/cpu-demo.yaml --data DATASET`")
    for run in runs:
        progress = run.job.progress
        method = run.spec.method if run.spec else "?"
        loss = (run.result or {}).get("train_loss", progress.get("loss"))
        loss_text = f"loss {loss:.4f}" if isinstance(loss, (int, float)) else ""
        adapter = "adapter" if run.has_adapter else ""
        print(f"{run.name:36} {method:4} {run.state:11} {progress.get('done', 0):6d}/{progress.get('total', 0):<6d} steps  "
              f"{loss_text:12} {adapter}")
        if run.job.error:
            print(f"{'':36} error: {run.job.error}")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from .training import read_run, stop_run

    folder = _run_folder(args.run)
    if not read_run(folder).job.active:
        raise UsageError(f"run {folder.name!r} is not running")
    stop_run(folder)
    print(f"{folder}: asked to stop; it saves a checkpoint at the end of the current step")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .models.adapters import export_merged

    folder = _run_folder(args.run)
    out = export_merged(str(folder), args.out)
    print(f"{out}: the base model with the adapter merged in (plain safetensors; loads with from_pretrained)")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate in this process with a progress bar (or in its own, with --background); the
    suites finished so far are kept in $CAI_HOME/evaluations/NAME, so the same command again resumes."""
    from tqdm import tqdm

    from .evaluation import EvaluationError, check_report_path, evaluations_dir, write_report
    from .evaluation.run import check_evaluation_name, run_evaluation, start_evaluation

    if args.name and args.name_option and args.name != args.name_option:
        raise UsageError(f"the evaluation is named twice ({args.name!r} and --name {args.name_option!r}); give one")
    args.name = args.name or args.name_option
    if not (args.name or args.out):
        raise UsageError("give the evaluation a NAME (it is kept in $CAI_HOME/evaluations/NAME, listed on the "
                         "Alignment tax page)")
    out = Path(args.out).expanduser() if args.out else None
    name = check_evaluation_name(args.name or out.stem)
    spec = evaluation_spec_from_args(args)
    if out is not None:  # before any work: a file at --out is replaced only by the same evaluation again
        check_report_path(out, spec.model_dump())
    if args.background:
        folder = start_evaluation(spec, name)
        print(f"{folder}: started in its own process; its log is {folder / 'log.txt'}"
              + ("; --out is written by a foreground run only" if out else ""))
        return 0
    bars: list = []

    def show(progress: dict) -> None:
        if not bars or bars[0].desc != progress.get("stage", ""):
            if bars:
                bars.pop().close()
            bars.append(tqdm(total=progress["total"], desc=progress.get("stage", ""), unit="item", file=sys.stderr,
                             dynamic_ncols=True))
        bars[0].total, bars[0].n = progress["total"], progress["done"]
        bars[0].refresh()

    try:
        state, report = run_evaluation(spec, name, on_progress=show)
    finally:
        for bar in bars:
            bar.close()
    folder = evaluations_dir() / name
    for note in state.notes:
        print(f"note: {note}", file=sys.stderr)
    if report is None:
        if state.error:
            raise EvaluationError(f"evaluation {name!r} failed: {state.error}")
        print(f"{folder}: {state.state}; run the same command again to resume", file=sys.stderr)
        return 130 if state.state == "cancelled" else 1
    for suite_name, suite in report["suites"].items():
        print(f"{suite_name:16} {suite['score']:6.1f}  [{suite['ci_low']:.1f}, {suite['ci_high']:.1f}]  "
              f"{suite['metric']}, n={suite['n']}")
    print(f"{folder / 'report.json'}: report written")
    if out is not None:
        write_report(out, report)
        print(f"{out}: a copy of the report")
    return 0


def evaluation_spec_from_args(args: argparse.Namespace):
    """The evaluation spec `cai eval`'s options describe: --config, then the options, then --set."""
    from .cli_specs import read_config, spec_data, validate
    from .evaluation import EvaluationError, EvaluationSpec

    config = read_config(args.config) if args.config else None
    data = spec_data(args, EvaluationSpec, config, args.set)
    if args.model or args.adapter or "model" not in data:
        data["model"] = _evaluated_model(args.model, args.adapter)
    return validate(EvaluationSpec, data, config, EvaluationError)


def _cmd_evaluations(args: argparse.Namespace) -> int:
    from .evaluation import evaluations_dir, list_evaluations
    from .jobs import read_job, read_json

    folders = list_evaluations()
    if not folders:
        print(f"no evaluations yet in {evaluations_dir()}; make one with `cai eval NAME` or on the Alignment tax page")
    for folder in folders:
        job = read_job(folder)
        report = read_json(folder / "report.json") or {}
        scores = ", ".join(f"{name} {suite.get('score', 0):.1f}" for name, suite in (report.get("suites") or {}).items()
                           if isinstance(suite, dict))
        print(f"{folder.name:28} {job.state:11} {scores}")
        if job.error:
            print(f"{'':28} error: {job.error}")
    return 0


def _evaluated_model(model: str | None, adapter: str | None) -> str:
    """--model, or --adapter (a run or adapter folder, loaded on the base it was trained on).
    Both: the model must be that base, since an adapter only fits the model it was trained on."""
    if not adapter:
        return _model_or_run(model or "default")
    from .models.adapters import adapter_stack

    loaded = _model_or_run(adapter)
    stack = adapter_stack(loaded)
    if stack is None:
        raise UsageError(f"--adapter {adapter} is neither a finished run nor an adapter folder")
    if model is not None and not _same_model(model, stack.base_model):
        raise UsageError(f"--adapter {adapter} was trained on {stack.base_model!r}, not on --model {model!r}; "
                         "leave --model out (the adapter brings its base) or give that base")
    return loaded


def _same_model(one: str, other: str) -> bool:
    one, other = one.strip(), other.strip()
    if one == other:
        return True
    first, second = Path(one).expanduser(), Path(other).expanduser()
    return first.exists() and second.exists() and first.resolve() == second.resolve()


def _cmd_tax(args: argparse.Namespace) -> int:
    from .evaluation import compare_reports, read_report
    from .evaluation import check_comparison_path

    if args.json:
        check_comparison_path(Path(args.json))
    base, aligned = read_report(_report_path(args.base)), read_report(_report_path(args.aligned))
    comparison = compare_reports(base, aligned)
    print(f"base: {comparison['base']}\naligned: {comparison['aligned']}")
    for name, entry in comparison["all"]["per_benchmark"].items():
        better = "higher is better" if entry["higher_is_better"] else "lower is better"
        print(f"{name:16} {entry['base']:6.1f} -> {entry['aligned']:6.1f}  {entry['words']:24} ({better})")
    # Capability and safety are averaged apart and never blended: a large safety gain on a small
    # base would otherwise read as an overall improvement while capability fell.
    for part in ("capability", "safety"):
        print(f"average tax, {part}: {comparison[part]['average_words']}")
    per_principle = _print_principle_tax(base, aligned)
    if per_principle is not None:
        comparison["principles"] = per_principle
    if args.json:
        from .evaluation import write_report

        write_report(Path(args.json), comparison)
    return 0


def _print_principle_tax(base: dict, aligned: dict) -> dict | None:
    """The per-principle table, when both reports carry the principles suite; a note when only one does."""
    from .evaluation import EvaluationError
    from .evaluation.principles import PRINCIPLES, has_principles, principle_tax, tax_seed

    if not (has_principles(base) or has_principles(aligned)):
        return None
    if not (has_principles(base) and has_principles(aligned)):
        lacking = "base" if not has_principles(base) else "aligned"
        print(f"per principle: the {lacking} report has no '{PRINCIPLES}' suite; evaluate both with "
              f"--suites {PRINCIPLES} --constitution NAME to compare them principle by principle")
        return None
    try:
        result = principle_tax(base, aligned, tax_seed(aligned))
    except EvaluationError as error:
        print(f"per principle: {error}")
        return None
    print(f"\nper principle (constitution {result['constitution']}, the test examples both reports answered):")
    if not result["same_constitution"]:
        print("note: the two reports scored different versions of the constitution; only their shared examples count")
    rows = [(row["principle"], f"{row['base']:.1f}", f"{row['aligned']:.1f}",
             f"{row['change']:+.1f} [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]", row["words"])
            for row in result["rows"]]
    header = ("principle", "base", "aligned", "change [95% interval]", "in words")
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(4)]
    for cells in [header, *rows]:
        print(f"{cells[0]:{widths[0]}}  {cells[1]:>{widths[1]}}  {cells[2]:>{widths[2]}}  {cells[3]:{widths[3]}}  {cells[4]}")
    fall = result["largest_fall"]
    print(f"mean per-principle pass rate: {result['mean_base']:.1f} -> {result['mean_aligned']:.1f} "
          f"({result['mean_change']:+.1f} points)"
          + (f"; largest fall: {fall['principle']} ({fall['change']:+.1f} points)" if fall else "; no principle fell"))
    return result


def _report_path(value: str) -> Path:
    """A report file or folder as given, or the name of an evaluation under $CAI_HOME/evaluations."""
    from .evaluation import evaluations_dir

    path = Path(value).expanduser()
    named = evaluations_dir() / value
    if not path.exists() and "/" not in value and (named / "report.json").is_file():
        return named
    return path


def _cmd_loop(args: argparse.Namespace) -> int:
    """Rounds of generate -> SFT -> DPO -> evaluate; the same command again resumes where it stopped."""
    from .evaluation.loop import (constitution_change_note, loop_reports, parse_loop_settings, parse_loop_spec,
                                  prepare_loop, read_state, start_loop)
    from .jobs import clear_stop_request, run_job

    data = {"constitution": args.constitution, "rounds": args.rounds, "base_model": _model_or_run(args.base_model),
            "seed": args.seed, "stop_ratio": args.stop_ratio}
    for key, value in (("prompts_per_round", args.prompts_per_round), ("eval_limit", args.eval_limit),
                       ("recipe", args.recipe)):
        if value is not None:
            data[key] = value
    if args.suites:
        data["eval_suites"] = [p.strip() for v in args.suites for p in v.split(",") if p.strip()]
    if args.settings:
        data.update(parse_loop_settings(Path(args.settings).read_text(encoding="utf-8"), args.settings))
    # The one generation setting worth a flag: it decides whose text the rounds learn. A "generation"
    # that is not a mapping is left for parse_loop_spec to name.
    if args.critic_model and isinstance(data.get("generation", {}), dict):
        data["generation"] = {**data.get("generation", {}), "critic_model": args.critic_model}
    # And what scores best-of-N samples: the shipped small-model settings' constitution, or the rule alone.
    if args.verifier and isinstance(data.get("generation", {}), dict):
        data["generation"] = {**data.get("generation", {}), "verifier": args.verifier}
    spec = parse_loop_spec(data)
    name = args.name or f"loop-{spec.constitution}"
    if args.background:
        folder = start_loop(spec, name)
        print(f"{folder}: started in its own process; its log is {folder / 'log.txt'}")
        if note := constitution_change_note(folder):
            print(note)
        return 0
    folder = prepare_loop(spec, name)
    if note := constitution_change_note(folder):
        print(note)
    clear_stop_request(folder)

    def show(progress: dict) -> None:
        done, total = progress.get("done", 0), progress.get("total", 0)
        print(f"\r{progress.get('stage', '')[:90]:90} {done}/{total}", end="", file=sys.stderr, flush=True)

    state = run_job(folder, on_progress=show)
    print(file=sys.stderr)
    for label, report in loop_reports(folder):
        scores = ", ".join(f"{n} {s['score']:.1f}" for n, s in report["suites"].items())
        print(f"{label:10} {scores}")
    stopped = read_state(folder).get("stopped_early")
    if stopped:
        print(f"stopped early after round {stopped['round']}: {stopped['why']}")
    if state.state != "finished":
        from .evaluation.loop import LoopError

        raise LoopError(f"the loop {state.state}: {state.error or 'run the same command again to resume'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .cli_specs import add_spec_options, field_info
    from .data import GenerationSpec
    from .evaluation.run import EvaluationSpec
    from .models import GenerationSettings

    parser = argparse.ArgumentParser(prog="cai", description="Constitution Studio: Constitutional AI from the command line.")
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="validate and lint a constitution file")
    validate.add_argument("file")
    validate.set_defaults(handler=_cmd_validate)

    listing = commands.add_parser("constitutions", help="list the shipped constitutions and yours")
    listing.set_defaults(handler=_cmd_constitutions)

    preview = commands.add_parser("preview", help="run a critique -> revision chain on one prompt")
    preview.add_argument("--constitution", required=True, help="a name from `cai constitutions` or a file path")
    preview.add_argument("--prompt", required=True)
    preview.add_argument("--rounds", type=int, default=1)
    preview.add_argument("--seed", type=int, default=0)
    preview.add_argument("--model", default="default", help='"default" (bundled SmolLM2-135M-Instruct), a local folder or a hub id')
    preview.add_argument("--critic-model", help="a model that writes the critiques and revisions after the first answer "
                         "(a folder, a hub id, a finished run or an endpoint URL); default: the model critiques itself")
    preview.add_argument("--principle", action="append", help="apply only this principle (repeatable)")
    preview.add_argument("--order", choices=["random", "sequential"], default="random")
    for field, kind in (("max_new_tokens", int), ("temperature", float), ("top_p", float), ("repetition_penalty", float)):
        info = field_info(GenerationSettings, field)  # the spec's default and help, never a copy
        preview.add_argument(f"--{field.replace('_', '-')}", type=kind, default=info.default, help=info.help)
    preview.add_argument("--trust-remote-code", action="store_true")
    preview.add_argument("--json", action="store_true", help="print the trace as one JSON object")
    preview.set_defaults(handler=_cmd_preview)

    generate = commands.add_parser(
        "generate", help="make SFT data and preference pairs from a constitution and prompt sets (the same command "
                         "again resumes)",
        description="Every setting of the generation spec is an option, a key in --config, or a --set key=value; "
                    "a loop settings file's generation: block works as a --config as it is.")
    generate.add_argument("--name", help="the dataset's name: it is kept in $CAI_HOME/datasets/NAME, where `cai datasets`, "
                                         "`cai train --data NAME` and the Data page find it (default: the --out folder's name)")
    generate.add_argument("--out", help="also copy the finished dataset into this folder (new, empty, or an earlier copy)")
    generate.add_argument("--config", metavar="FILE", help="a YAML file of generation settings (or a loop settings file, "
                                                          "whose generation: block is used); options given here win")
    generate.add_argument("--set", action="append", metavar="KEY=VALUE",
                          help="any setting, e.g. --set settings.top_p=0.9 (the value is read as YAML; repeatable)")
    generate.add_argument("--phase", choices=list(PHASES), help="shorthand for --phases: sft, prefs or both")
    generate.add_argument("--background", action="store_true",
                          help="start the run in its own process and return (as the Data page does)")
    add_spec_options(generate, GenerationSpec, aliases=GENERATION_ALIASES)
    generate.set_defaults(handler=_cmd_generate)

    datasets = commands.add_parser("datasets", help="list the datasets in $CAI_HOME/datasets, with their state and rows")
    datasets.set_defaults(handler=_cmd_datasets)

    prompt_sets = commands.add_parser("prompt-sets", help="list the shipped prompt sets and yours")
    prompt_sets.set_defaults(handler=_cmd_prompt_sets)

    train = commands.add_parser("train", help="train a LoRA adapter with SFT or DPO in its own process, and follow it")
    train.add_argument("method", choices=["sft", "dpo"])
    train.add_argument("--recipe", help="a recipe YAML, e.g. recipes/cpu-demo.yaml")
    train.add_argument("--data", action="append",
                       help="a dataset name from `cai datasets` or a .jsonl file (repeatable); overrides the recipe's data")
    train.add_argument("--from", dest="start_from",
                       help='the starting model: "default", a model folder, a hub id, or a finished run (DPO after SFT)')
    train.add_argument("--name", help="the run's name (default: METHOD-DATA-TIME)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a recipe setting, e.g. --set max_steps=20 --set lora.r=8 (repeatable)")
    train.add_argument("--resume", metavar="RUN", help="continue a stopped, failed or killed run from its last checkpoint")
    train.add_argument("--background", action="store_true", help="return at once; `cai runs` shows progress")
    train.set_defaults(handler=_cmd_train)

    runs = commands.add_parser("runs", help="list the training runs in $CAI_HOME/runs with their state and progress")
    runs.set_defaults(handler=_cmd_runs)

    stop = commands.add_parser("stop", help="stop a training run at the end of its current step, saving a checkpoint")
    stop.add_argument("run", help="a run name from `cai runs` or its folder")
    stop.set_defaults(handler=_cmd_stop)

    export = commands.add_parser("export", help="merge a run's adapter into its base model and save a plain model folder")
    export.add_argument("run", help="a run name from `cai runs` or its folder")
    export.add_argument("--out", required=True, help="a new or empty folder for the merged model")
    export.set_defaults(handler=_cmd_export)

    evaluation = commands.add_parser("eval", help="score a model (or base + adapter) on capability and safety suites")
    evaluation.add_argument("name", nargs="?", help="the evaluation's name: it is kept in $CAI_HOME/evaluations/NAME "
                                                   "(with report.json), listed on the Alignment tax page; the same "
                                                   "command again resumes (default: the --out file's name)")
    evaluation.add_argument("--name", dest="name_option", metavar="NAME", help="the same as NAME, as train and loop take it")
    evaluation.add_argument("--model", help='"default", a model folder, a hub id, an endpoint URL or a finished run '
                                            '(default: "default", or the base of --adapter)')
    evaluation.add_argument("--adapter", help="a finished run or adapter folder, loaded on the base it was trained on")
    evaluation.add_argument("--out", help="also copy the report to this file (a new one, or this evaluation's copy)")
    evaluation.add_argument("--background", action="store_true", help="start in its own process and return")
    evaluation.add_argument("--config", metavar="FILE", help="a YAML file of evaluation settings; options given here win")
    evaluation.add_argument("--set", action="append", metavar="KEY=VALUE", help="any setting, e.g. --set limit=20")
    add_spec_options(evaluation, EvaluationSpec, skip=("model",))
    evaluation.set_defaults(handler=_cmd_eval)

    evaluations = commands.add_parser("evaluations", help="list the evaluations in $CAI_HOME/evaluations with their scores")
    evaluations.set_defaults(handler=_cmd_evaluations)

    tax = commands.add_parser("tax", help="the alignment tax between two evaluation reports")
    tax.add_argument("base", help="the base model's evaluation: a name from `cai eval NAME`, or a report file")
    tax.add_argument("aligned", help="the aligned model's evaluation: a name, or a report file")
    tax.add_argument("--json", help="also write the comparison to this file (a new one, or a comparison written before)")
    tax.set_defaults(handler=_cmd_tax)

    loop = commands.add_parser("loop", help="rounds of generate -> SFT -> DPO -> evaluate (again: resumes)")
    loop.add_argument("--constitution", required=True)
    loop.add_argument("--rounds", type=int, default=1)
    loop.add_argument("--base-model", default="default", help="the starting model (or a finished run)")
    loop.add_argument("--prompts-per-round", type=int, help="prompts drawn (seeded) from the shipped sets each round")
    loop.add_argument("--recipe", help="the training recipe (default recipes/cpu-demo.yaml)")
    loop.add_argument("--suites", action="append", help="evaluation suites (comma-separated; default all)")
    loop.add_argument("--eval-limit", type=int, help="at most N items per suite")
    loop.add_argument("--stop-ratio", type=float, default=0.95, help="stop when quality falls below this x the previous round")
    loop.add_argument("--settings", "--config", help="a YAML file of further loop settings (generation, sft_overrides, dpo_overrides...)")
    loop.add_argument("--seed", type=int, default=0)
    loop.add_argument("--critic-model", help="a model that writes every round's critiques and revisions (and judges), "
                      "such as an endpoint URL http://host:port/v1; default: each round's model critiques itself")
    loop.add_argument("--verifier", choices=["rule", "constitution"], help=(
        "what scores best-of-N samples (with --settings recipes/loops/small-model.yaml): the constitution's "
        "checks and examples, or the refusal rule alone"))
    loop.add_argument("--name", help="the loop's name (default loop-CONSTITUTION); the same name resumes")
    loop.add_argument("--background", action="store_true", help="start in its own process and return")
    loop.set_defaults(handler=_cmd_loop)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    try:
        return args.handler(args)
    except CaiError as error:
        print(f"error: {error}", file=sys.stderr)
    except ValidationError as error:  # a spec made in code and not checked first: still one sentence
        from .constitution import first_error_message

        print(f"error: {first_error_message(error)[0]}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # a folder that cannot be made or written
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
