"""A constitution test: every test example of one constitution answered by two models, side by side.

Each model is an ordinary ``principles`` evaluation (cai_core.evaluation.run) in its own process and
folder, so a test survives a closed tab, can be stopped and resumed, and its two reports appear on
the Alignment tax page like any other. The two folders share a stem,
``constitution-test-CONSTITUTION-YYYYMMDD-HHMMSS``, and end in ``-a`` and ``-b``: the stem pairs
them again later and tells a reader of the evaluations list what they were made for.

``scorecard(report_a, report_b)`` reads the two reports into one per-principle comparison: each
model's pass rate with its interval, the difference B − A with a paired interval, and every test
example's prompt, both answers and both verdicts.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..checks import LLM_RUBRIC
from ..jobs import read_json, request_stop
from .principles import principle_tax, scored_examples
from .report_model import REPORT_FILE
from .run import EvaluationSpec, list_evaluations, parse_evaluation_spec, start_evaluation
from .suites import PRINCIPLES, EvaluationError

PREFIX = "constitution-test"
SIDES = ("a", "b")
STAMP_FORMAT = "%Y%m%d-%H%M%S"
_FOLDER_NAME = re.compile(rf"^{PREFIX}-(?P<constitution>.+)-(?P<stamp>\d{{8}}-\d{{6}})-(?P<side>[ab])$")
# A job name has at most 80 characters; the prefix, the stamp and the side take 36 of them.
MAX_CONSTITUTION_CHARS = 40


@dataclass(frozen=True)
class ConstitutionTest:
    """One test on disk: its stem, the constitution it scores, when it started, and its two folders."""

    name: str
    constitution: str
    started: float
    folders: tuple[Path, Path]

    def folder(self, side: str) -> Path:
        return self.folders[SIDES.index(side)]


def _name_part(constitution: str) -> str:
    """The constitution's name as it may stand in a job name (letters, digits, '_', '-', '.')."""
    part = re.sub(r"[^A-Za-z0-9_.-]+", "-", constitution).strip("-.") or "constitution"
    return part[:MAX_CONSTITUTION_CHARS].rstrip("-.")


def constitution_test_name(constitution: str, when: float | None = None) -> str:
    """The stem of a new test's two evaluation folders."""
    return f"{PREFIX}-{_name_part(constitution)}-{time.strftime(STAMP_FORMAT, time.localtime(when))}"


def uses_rubric(constitution) -> bool:
    """Whether any scored test example is judged by an llm-rubric (which needs a judge model)."""
    by_name = {p.name: p for p in constitution.principles}
    return any(assertion.kind == LLM_RUBRIC for name, _, example in scored_examples(constitution)
               for assertion in by_name[name].expectations(example))


def start_constitution_test(constitution: str, model_a: str, model_b: str, judge_model: str | None = None,
                            batch_size: int = 16, when: float | None = None) -> ConstitutionTest:
    """Check both evaluations, then start them; nothing starts when either is refused (one sentence)."""
    if not (model_a or "").strip() or not (model_b or "").strip():
        raise EvaluationError("choose a model for both A and B")
    if model_a.strip() == model_b.strip():
        raise EvaluationError("A and B are the same model; choose two different models to compare")
    name = constitution_test_name(constitution, when)
    specs = [parse_evaluation_spec(EvaluationSpec(model=model.strip(), suites=[PRINCIPLES], constitution=constitution,
                                                  judge_model=judge_model or None, batch_size=batch_size).model_dump())
             for model in (model_a, model_b)]
    first = start_evaluation(specs[0], f"{name}-a")
    try:
        second = start_evaluation(specs[1], f"{name}-b")
    except BaseException:
        request_stop(first)  # half a test compares nothing; the error says why the other could not start
        raise
    folders = (first, second)
    return ConstitutionTest(name, constitution, time.time(), folders)


def list_constitution_tests() -> list[ConstitutionTest]:
    """Every test with both its folders on disk, newest first."""
    found: dict[str, dict[str, Path]] = {}
    for folder in list_evaluations():
        match = _FOLDER_NAME.match(folder.name)
        if match:
            found.setdefault(folder.name[:-2], {})[match["side"]] = folder
    tests = []
    for name, sides in found.items():
        if set(sides) != set(SIDES):
            continue
        spec = (read_json(sides["a"] / "spec.json") or {}).get("spec") or {}
        match = _FOLDER_NAME.match(sides["a"].name)
        try:
            started = time.mktime(time.strptime(match["stamp"], STAMP_FORMAT))
        except ValueError:  # a folder named like a test by hand, with no real date in it
            started = (sides["a"] / "spec.json").stat().st_mtime
        tests.append(ConstitutionTest(name, str(spec.get("constitution") or match["constitution"]), started,
                                      (sides["a"], sides["b"])))
    return sorted(tests, key=lambda test: test.started, reverse=True)


def read_test_reports(test: ConstitutionTest) -> tuple[dict, dict] | None:
    """The two finished reports, or None while either is missing."""
    reports = [read_json(folder / REPORT_FILE) for folder in test.folders]
    return None if any(report is None for report in reports) else (reports[0], reports[1])


# --------------------------------------------------------------------------- the scorecard


def _suite(report: dict, side: str) -> dict:
    suite = (report.get("suites") or {}).get(PRINCIPLES)
    if not isinstance(suite, dict):
        raise EvaluationError(f"the report of model {side.upper()} has no '{PRINCIPLES}' suite")
    return suite


def _rates(suite: dict) -> dict[str, dict]:
    """The suite's per-principle rows that hold every number the scorecard shows; others are left out."""
    rows = suite.get("per_principle")
    return {name: row for name, row in (rows.items() if isinstance(rows, dict) else ())
            if isinstance(row, dict) and all(isinstance(row.get(field), (int, float)) and not isinstance(row.get(field), bool)
                                             for field in ("pass_rate", "ci_low", "ci_high", "passed", "n"))}


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _verdict(item: dict | None) -> dict | None:
    if item is None:
        return None
    return {"answer": str(item.get("answer") or ""), "passed": bool(item.get("passed")),
            "reason": str(item.get("reason") or ""), "verdicts": item.get("verdicts") or []}


def scorecard(report_a: dict, report_b: dict, seed: int = 0) -> dict:
    """Per principle: both pass rates with intervals, B − A with a paired interval, and every example.

    ``rows``: principle, a and b (each the suite's {"pass_rate", "ci_low", "ci_high", "passed", "n"}, or
    None where that model has no score for it), change (points, None without both), change_low,
    change_high, words. ``examples``: principle -> [{"example", "prompt", "a", "b"}] where a and b are
    {"answer", "passed", "reason", "verdicts"} (None where that model did not answer it). Also the two
    mean pass rates, whether both scored the same version of the constitution, and the principles no
    model had a test example for.
    """
    suite_a, suite_b = _suite(report_a, "a"), _suite(report_b, "b")
    rates_a, rates_b = _rates(suite_a), _rates(suite_b)
    try:
        changes = {row["principle"]: row for row in principle_tax(report_a, report_b, seed)["rows"]}
    except EvaluationError:  # nothing both answered: rates side by side, no difference
        changes = {}
    names = list(dict.fromkeys([*rates_a, *rates_b]))
    rows = []
    for name in names:
        change = changes.get(name)
        rows.append({"principle": name, "a": rates_a.get(name), "b": rates_b.get(name),
                     "change": change and change["change"], "change_low": change and change["ci_low"],
                     "change_high": change and change["ci_high"], "words": change["words"] if change else "not compared"})
    examples: dict[str, list[dict]] = {name: [] for name in names}
    by_key = {}
    for side, suite in (("a", suite_a), ("b", suite_b)):
        for item in suite.get("items") or []:
            if isinstance(item, dict) and item.get("principle") in examples:
                entry_key = (item["principle"], str(item.get("prompt") or ""))
                if entry_key not in by_key:
                    by_key[entry_key] = {"example": item.get("example"), "prompt": entry_key[1], "a": None, "b": None}
                    examples[item["principle"]].append(by_key[entry_key])
                by_key[entry_key][side] = _verdict(item)
    return {"constitution": suite_a.get("constitution") or suite_b.get("constitution"),
            "same_constitution": suite_a.get("constitution_hash") == suite_b.get("constitution_hash"),
            "mean_a": _number(suite_a.get("score")), "mean_b": _number(suite_b.get("score")), "rows": rows, "examples": examples,
            "untested": sorted(set(suite_a.get("untested") or []) | set(suite_b.get("untested") or []))}
