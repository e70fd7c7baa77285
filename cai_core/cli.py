"""The ``cai`` command: validate and list constitutions, preview chains.

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    from .models import ModelLoadError

    try:
        return args.handler(args)
    except (ConstitutionError, ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
    except ValidationError as error:
        from .constitution import first_error_message

        print(f"error: {first_error_message(error)[0]}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
