"""The ``cai`` command: constitutions, chain previews, datasets, and training runs.

Every failure a user can cause prints one sentence to stderr and exits 1; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .constitution import ConstitutionError


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
    from .store import load_constitution

    constitution = load_constitution(args.constitution)
    check_prompts([args.prompt])  # fail on an empty prompt before spending seconds on a model load
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                                  repetition_penalty=args.repetition_penalty)
    model = load_model(args.model, trust_remote_code=args.trust_remote_code)

    def show(event) -> None:
        if args.json:
            return
        trace = event.traces[0]
        if event.stage == "initial":
            print(f"--- initial answer ({model.describe()})\n{trace.initial}\n", flush=True)
        elif event.stage == "critique":
            step = trace.steps[-1]
            print(f"--- round {step.round}: critique under {step.principle!r}\n{step.critique}\n", flush=True)
        else:
            step = trace.steps[-1]
            label = "revision" if step.revised else "revision skipped (the critique found nothing to change)"
            print(f"--- round {step.round}: {label}\n{step.revision if step.revised else ''}\n", flush=True)

    from .threads import preview_share

    with preview_share():  # beside running jobs, a preview takes its share of the cores, not all
        traces = run_chain(model, constitution, [args.prompt], rounds=args.rounds, seed=args.seed,
                           principles=args.principle or None, order=args.order, settings=settings, on_event=show)
    trace = traces[0]
    if args.json:
        print(json.dumps(trace_summary(trace), ensure_ascii=False))
    else:
        for warning in trace.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"--- final answer\n{trace.final}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from .data import dataset_summary, parse_spec, run_generation
    from .jobs import FINISHED, is_job_folder, read_json

    folder = Path(args.out)
    stored = read_json(folder / "spec.json") if is_job_folder(folder) else None
    if args.constitution is None and args.prompts is None:
        if not stored or stored["kind"] != "generate":
            raise ConstitutionError("give --constitution and --prompts (or an --out folder that holds a run to resume)")
        spec = parse_spec(stored["spec"])
        print(f"resuming the run in {folder}", file=sys.stderr)
    else:
        if not args.constitution or not args.prompts:
            raise ConstitutionError("give both --constitution and --prompts")
        spec = parse_spec(_generation_spec_data(args))
    if args.background:
        from .data import start_generation

        start_generation(folder, spec)
        print(f"{folder}: started in its own process; `cai datasets` shows its progress, {folder / 'log.txt'} its log")
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
        print(f"note: {note}", file=sys.stderr)
    if state.state == FINISHED:
        print(f"{folder}: {summary['done']}/{summary['prompts']} prompts done; {rows or 'no rows'}")
        return 0
    if state.error:
        raise ConstitutionError(state.error)
    print(f"{folder}: {state.state} at {summary['done']}/{summary['prompts']} prompts; run the same command again to resume",
          file=sys.stderr)
    return 130 if state.state == "cancelled" else 1


def _generation_spec_data(args: argparse.Namespace) -> dict:
    phases = {"sft": ["sft"], "prefs": ["prefs"], "both": ["sft", "prefs"]}[args.phase]
    sources = [part.strip() for value in args.prompts for part in value.split(",") if part.strip()]
    data = {
        "constitution": args.constitution, "prompt_sources": sources, "limit": args.limit, "shuffle": args.shuffle,
        "phases": phases,
        "pair_sources": [part.strip() for part in args.pairs.split(",") if part.strip()], "rounds": args.rounds,
        "principles": args.principle or None, "policy_model": args.model, "judge_model": args.judge_model,
        "settings": {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
                     "repetition_penalty": args.repetition_penalty, "batch_size": args.batch_size},
        "sample_temperature": args.sample_temperature, "judge_ensemble": args.ensemble,
        "min_confidence": args.min_confidence, "seed": args.seed, "chunk_size": args.chunk_size,
    }
    if args.label_band:
        try:
            low, high = (float(x) for x in args.label_band.split(","))
        except ValueError:
            raise ConstitutionError(f"--label-band must be two numbers like 0.5,0.9, not {args.label_band!r}") from None
        data["label_band"] = [low, high]
    return data


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
    from .promptsets import list_prompt_sets, load_prompt_file, resolve_prompt_source

    for name in list_prompt_sets():
        try:
            loaded = load_prompt_file(resolve_prompt_source(name))
        except ConstitutionError as error:
            print(f"{name:28} BROKEN: {error}")
            continue
        categories = ", ".join(f"{k} {v}" for k, v in sorted(loaded.categories().items()))
        print(f"{name:28} {len(loaded.items):5d} prompts  {categories}")
    return 0


def _run_folder(value: str) -> Path:
    """A run named on the command line: a folder path, or a name under $CAI_HOME/runs."""
    from .training import runs_dir

    path = Path(value).expanduser()
    if path.is_dir():
        return path
    named = runs_dir() / value
    if named.is_dir():
        return named
    raise ConstitutionError(f"there is no run {value!r} (see `cai runs`)")


def _model_or_run(value: str) -> str:
    """--from: a run name means that run's folder; anything else is a model spec as given."""
    from .training import runs_dir

    named = runs_dir() / value
    if not Path(value).expanduser().exists() and "/" not in value and named.is_dir():
        return str(named)
    return value


def _overrides(pairs: list[str] | None) -> dict:
    """--set key=value (value read as YAML, so 1e-4, true and [q_proj, v_proj] work; lora.r for LoRA keys)."""
    import yaml

    overrides: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConstitutionError(f"--set {pair!r} must look like key=value, e.g. --set learning_rate=1e-4")
        parsed = yaml.safe_load(value) if value.strip() else ""
        if isinstance(parsed, str) and value.strip():
            try:
                parsed = float(value) if any(c in value for c in ".eE") else parsed
            except ValueError:
                pass
        key = key.strip()
        if key.startswith("lora."):
            overrides.setdefault("lora", {})[key.removeprefix("lora.")] = parsed
        else:
            overrides[key] = parsed
    return overrides


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import load_recipe, read_run, resume_run, start_run

    if args.resume:
        folder = _run_folder(args.resume)
        run = read_run(folder)
        if run.spec is not None and run.spec.method != args.method:
            raise ConstitutionError(f"run {run.name!r} is a {run.spec.method} run, not {args.method}")
        resume_run(folder)
        print(f"{folder}: resumed in its own process", file=sys.stderr)
    else:
        if not args.recipe:
            raise ConstitutionError("give --recipe FILE (see recipes/), or --resume RUN to continue a run")
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
        raise ConstitutionError(f"run {run.name!r} failed: {run.job.error}")
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
        raise ConstitutionError(f"run {folder.name!r} is not running")
    stop_run(folder)
    print(f"{folder}: asked to stop; it saves a checkpoint at the end of the current step")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .adapters import export_merged

    folder = _run_folder(args.run)
    out = export_merged(str(folder), args.out)
    print(f"{out}: the base model with the adapter merged in (plain safetensors; loads with from_pretrained)")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate in this process with a progress bar; the suites finished so far are kept in the
    work folder beside --out, so running the same command again after a stop resumes."""
    from tqdm import tqdm

    from .evaluation import evaluate, parse_evaluation_spec, write_report
    from .evaluation.run import check_report_path
    from .jobs import Reporter, check_output_folder

    model = _model_or_run(args.model)
    if args.adapter:
        model = _model_or_run(args.adapter)  # a run or adapter folder: its recorded base is loaded under it
    suites = [part.strip() for value in (args.suites or []) for part in value.split(",") if part.strip()]
    data = {"model": model, "limit": args.limit, "seed": args.seed, "batch_size": args.batch_size}
    if suites:
        data["suites"] = suites
    spec = parse_evaluation_spec(data)
    out = Path(args.out)
    work = out.with_name(f".{out.name}.work")
    # Before any work: a file at --out is replaced only by the same evaluation run again.
    check_report_path(out, spec.model_dump())
    check_output_folder(work)
    bars: list = []

    def show(progress: dict) -> None:
        if not bars or bars[0].desc != progress.get("stage", ""):
            if bars:
                bars.pop().close()
            bars.append(tqdm(total=progress["total"], desc=progress.get("stage", ""), unit="item", file=sys.stderr,
                             dynamic_ncols=True))
        bars[0].total, bars[0].n = progress["total"], progress["done"]
        bars[0].refresh()

    work.mkdir(parents=True, exist_ok=True)
    from .jobs import prepare_job

    prepare_job(work, "evaluate", spec.model_dump())  # other settings on the same --out: one sentence
    try:
        report = evaluate(work, spec, Reporter(work, on_progress=show))
    finally:
        for bar in bars:
            bar.close()
    write_report(out, report)
    for name, suite in report["suites"].items():
        print(f"{name:16} {suite['score']:6.1f}  [{suite['ci_low']:.1f}, {suite['ci_high']:.1f}]  "
              f"{suite['metric']}, n={suite['n']}")
    print(f"{out}: report written")
    return 0


def _cmd_tax(args: argparse.Namespace) -> int:
    from .evaluation import compare_reports, read_report
    from .evaluation.run import check_comparison_path

    if args.json:
        check_comparison_path(Path(args.json))
    comparison = compare_reports(read_report(args.base), read_report(args.aligned))
    print(f"base: {comparison['base']}\naligned: {comparison['aligned']}")
    for name, entry in comparison["all"]["per_benchmark"].items():
        better = "higher is better" if entry["higher_is_better"] else "lower is better"
        print(f"{name:16} {entry['base']:6.1f} -> {entry['aligned']:6.1f}  {entry['words']:24} ({better})")
    # Capability and safety are averaged apart and never blended: a large safety gain on a small
    # base would otherwise read as an overall improvement while capability fell.
    for part in ("capability", "safety"):
        print(f"average tax, {part}: {comparison[part]['average_words']}")
    if args.json:
        from .evaluation import write_report

        write_report(Path(args.json), comparison)
    return 0


def _cmd_loop(args: argparse.Namespace) -> int:
    """Rounds of generate -> SFT -> DPO -> evaluate; the same command again resumes where it stopped."""
    from .evaluation.loop import loop_reports, parse_loop_settings, parse_loop_spec, prepare_loop, read_state, start_loop
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
    spec = parse_loop_spec(data)
    name = args.name or f"loop-{spec.constitution}"
    if args.background:
        folder = start_loop(spec, name)
        print(f"{folder}: started in its own process; its log is {folder / 'log.txt'}")
        return 0
    folder = prepare_loop(spec, name)
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
        raise ConstitutionError(f"the loop {state.state}: {state.error or 'run the same command again to resume'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
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
    preview.add_argument("--principle", action="append", help="apply only this principle (repeatable)")
    preview.add_argument("--order", choices=["random", "sequential"], default="random")
    preview.add_argument("--max-new-tokens", type=int, default=192)
    preview.add_argument("--temperature", type=float, default=0.7, help="0 for greedy decoding")
    preview.add_argument("--top-p", type=float, default=0.95)
    preview.add_argument("--repetition-penalty", type=float, default=1.1, help="1.0 turns it off; small models loop without it")
    preview.add_argument("--trust-remote-code", action="store_true")
    preview.add_argument("--json", action="store_true", help="print the trace as one JSON object")
    preview.set_defaults(handler=_cmd_preview)

    generate = commands.add_parser(
        "generate", help="make SFT data and preference pairs from a constitution and prompt sets (again on the same --out: resume)")
    generate.add_argument("--constitution", help="a name from `cai constitutions` or a file path")
    generate.add_argument("--prompts", action="append", help="a set from `cai prompt-sets` or a .txt/.jsonl/.csv file (repeatable)")
    generate.add_argument("--out", required=True, help="the dataset folder: new, empty, or one this tool made (running again on it resumes)")
    generate.add_argument("--phase", choices=["sft", "prefs", "both"], default="both")
    generate.add_argument("--pairs", default="revision,rlaif", help="Phase 2 pair sources: revision, rlaif or both (comma-separated)")
    generate.add_argument("--rounds", type=int, default=1)
    generate.add_argument("--limit", type=int, help="use only the first N prompts")
    generate.add_argument("--shuffle", action="store_true", help="mix the sets in a seeded random order before --limit")
    generate.add_argument("--principle", action="append", help="use only this principle (repeatable)")
    generate.add_argument("--model", default="default", help='the policy: "default", a local folder, a hub id or an endpoint URL')
    generate.add_argument("--judge-model", help="the judge, when not the policy itself")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--max-new-tokens", type=int, default=192)
    generate.add_argument("--temperature", type=float, default=0.7, help="for the chain's answers, critiques and revisions")
    generate.add_argument("--repetition-penalty", type=float, default=1.1)
    generate.add_argument("--sample-temperature", type=float, default=1.0, help="for the two RLAIF answers (must be > 0)")
    generate.add_argument("--ensemble", type=int, default=1, help="principles the judge asks per pair")
    generate.add_argument("--min-confidence", type=float, default=0.55, help="drop pairs the judge prefers with less probability")
    generate.add_argument("--label-band", help="clamp soft labels into LOW,HIGH, e.g. 0.5,0.9")
    generate.add_argument("--batch-size", type=int, default=16)
    generate.add_argument("--chunk-size", type=int, default=16, help="prompts per checkpoint")
    generate.add_argument("--background", action="store_true",
                          help="start the run in its own process and return (as the Data page does)")
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
    evaluation.add_argument("--model", default="default", help='"default", a model folder, a hub id, or a finished run')
    evaluation.add_argument("--adapter", help="a finished run or adapter folder, loaded on the base it was trained on")
    evaluation.add_argument("--suites", action="append",
                            help="humaneval, arithmetic, knowledge_mc, refusal, over_refusal, lm-eval:TASK (comma-separated; default all)")
    evaluation.add_argument("--limit", type=int, help="at most N items per suite (a quick run)")
    evaluation.add_argument("--seed", type=int, default=0)
    evaluation.add_argument("--batch-size", type=int, default=16)
    evaluation.add_argument("--out", required=True, help="the report file (JSON); the same command again resumes, and no other file there is replaced")
    evaluation.set_defaults(handler=_cmd_eval)

    tax = commands.add_parser("tax", help="the alignment tax between two evaluation reports")
    tax.add_argument("base", help="the base model's report (JSON)")
    tax.add_argument("aligned", help="the aligned model's report (JSON)")
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
    loop.add_argument("--settings", help="a YAML file of further loop settings (generation, sft_overrides, dpo_overrides...)")
    loop.add_argument("--seed", type=int, default=0)
    loop.add_argument("--name", help="the loop's name (default loop-CONSTITUTION); the same name resumes")
    loop.add_argument("--background", action="store_true", help="start in its own process and return")
    loop.set_defaults(handler=_cmd_loop)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    from .endpoint import EndpointError
    from .jobs import JobError
    from .adapters import AdapterError
    from .evaluation import EvaluationError
    from .evaluation.loop import LoopError
    from .models import ModelLoadError
    from .training import TrainingError

    try:
        return args.handler(args)
    except (ConstitutionError, ModelLoadError, JobError, EndpointError, TrainingError, AdapterError, EvaluationError, LoopError) as error:
        print(f"error: {error}", file=sys.stderr)
    except ValidationError as error:
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
