"""The terminal commands that do what the Alignment tax page's forms do: `cai eval` for an
evaluation spec, `cai tax` for a comparison of two reports.

The page shows them so that a user can repeat, script or share its work; the CLI's own parser
reads each line back to the same spec (tests/test_commands.py).
"""

from __future__ import annotations

import shlex

from ..cli_specs import spec_options
from .reports import EVALUATION, ReportRef
from .run import EvaluationSpec

# Given even when they equal the defaults: a reader should see what is evaluated, and on which suites.
ALWAYS_SHOWN = ("suites",)


def eval_command(spec: EvaluationSpec, name: str | None = None) -> str:
    """The `cai eval NAME --model ... --suites ...` line for ``spec``: the model and the suites, then
    every setting that differs from its default (the constitution and the judge among them)."""
    parts = ["cai", "eval", (name or "").strip() or "NAME", "--model", spec.model]
    options = spec_options(EvaluationSpec)
    defaults = EvaluationSpec.model_construct().model_dump()
    for field, value in spec.model_dump().items():
        if field == "model" or value is None or (value == defaults.get(field) and field not in ALWAYS_SHOWN):
            continue
        shown = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        parts += [f"--{options[(field,)]}", shown]
    return shlex.join(parts)


def report_argument(ref: ReportRef) -> str:
    """How `cai tax` names a report: an evaluation by its name, any other report by its file."""
    if ref.origin == EVALUATION:
        return ref.id.split(":", 1)[1]
    return str(ref.path)


def tax_command(base: ReportRef, aligned: ReportRef) -> str:
    """The `cai tax BASE ALIGNED` line comparing two reports as the page does."""
    return shlex.join(["cai", "tax", report_argument(base), report_argument(aligned)])
