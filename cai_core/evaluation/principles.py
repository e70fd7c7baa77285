"""The ``principles`` suite: does a model follow each principle of a constitution, on its own test prompts?

Each enabled principle's test-half examples (cai_core.constitution.example_half) are answered
greedily, and every answer is checked against the principle's checks and the example's
expectations (cai_core.checks). The suite's score is the mean of the per-principle pass rates, so
a principle with many examples counts once, like one with few; its interval resamples each
principle's examples on their own. Every example's verdicts and reason are kept in the report.

``principle_tax`` compares two such reports (base and aligned) principle by principle: the pass
rates, their difference and a paired bootstrap interval of that difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import prompts as templates
from ..checks import check_answers
from ..constitution import TEST_HALF, Constitution, Principle, example_half
from ..data.promptsets import round_robin
from .stats import bootstrap_interval, stratified_bootstrap_interval
from .suites import PRINCIPLES, EvaluationError, Progress, SuiteScore, _greedy, _in_chunks
from .tax import IMPROVEMENT, NO_CHANGE, REGRESSION

KIND = "principles"  # neither capability nor safety: the user's own rules
# As long as the refusal suites' answers: enough for a refusal, a short reply or the first steps of a list.
MAX_NEW_TOKENS = 128


@dataclass
class PrinciplesScore(SuiteScore):
    constitution: str = ""
    constitution_hash: str = ""
    # principle name -> {"pass_rate", "ci_low", "ci_high" (percent), "passed", "n"}
    per_principle: dict = field(default_factory=dict)
    # enabled principles without a test example, so without a score
    untested: list[str] = field(default_factory=list)


def scored_examples(constitution: Constitution, limit: int | None = None) -> list[tuple[str, int, object]]:
    """(principle name, example position, example) for each enabled principle's test examples,
    taken round-robin across principles so that a ``limit`` still covers every principle."""
    mixed = round_robin([(p.name, index, example) for index, example in p.examples_in(TEST_HALF)]
                        for p in constitution.enabled_principles)
    return mixed[:limit] if limit else mixed


def run_principles(backend, constitution: Constitution, limit: int | None, seed: int, batch_size: int,
                   on_progress: Progress | None = None, judge=None) -> PrinciplesScore:
    """Score ``backend`` on the constitution's test examples; ``judge`` answers llm-rubric checks
    (without one they are reported as not judged and count neither way)."""
    cases = scored_examples(constitution, limit)
    if not cases:
        raise EvaluationError(f"the constitution {constitution.name!r} has no test examples to score; "
                              "give its enabled principles examples")
    items = _answer_and_check(backend, constitution.principles, cases, judge, batch_size, on_progress)
    by_principle: dict[str, list[float]] = {}
    for item in items:
        by_principle.setdefault(item["principle"], []).append(1.0 if item["passed"] else 0.0)
    per_principle = {}
    for name, hits in by_principle.items():
        low, high = bootstrap_interval(hits, seed=seed)
        per_principle[name] = {"pass_rate": 100 * sum(hits) / len(hits), "ci_low": 100 * low, "ci_high": 100 * high,
                               "passed": int(sum(hits)), "n": len(hits)}
    groups = list(by_principle.values())
    low, high = stratified_bootstrap_interval(groups, seed=seed)
    mean = sum(sum(g) / len(g) for g in groups) / len(groups)
    untested = [p.name for p in constitution.enabled_principles if p.name not in by_principle]
    version = f"constitution {constitution.name} ({constitution.content_hash()}), test half, {len(cases)} examples"
    return PrinciplesScore(PRINCIPLES, KIND, version, "mean per-principle pass rate", True, 100 * mean, 100 * low,
                           100 * high, len(cases), items, constitution.name, constitution.content_hash(), per_principle,
                           untested)


def _answer_and_check(backend, principles, cases, judge, batch_size: int, on_progress: Progress | None,
                      max_new_tokens: int = MAX_NEW_TOKENS) -> list[dict]:
    """Answer each (principle name, position, example) greedily and check the answer: one item each."""
    answers = _in_chunks(backend, [templates.initial_conversation(example.prompt) for _, _, example in cases],
                         _greedy(max_new_tokens, batch_size), on_progress)
    by_name = {p.name: p for p in principles}
    checked = check_answers([(example.prompt, answer, by_name[name].expectations(example))
                             for (name, _, example), answer in zip(cases, answers)], judge=judge, batch_size=batch_size)
    return [{"id": f"{name}/{index + 1}", "principle": name, "example": index + 1, "half": example_half(index),
             **result.to_data()} for (name, index, _), result in zip(cases, checked)]


def run_principle_examples(backend, principle: Principle, judge=None, batch_size: int = 16,
                           on_progress: Progress | None = None, max_new_tokens: int = MAX_NEW_TOKENS) -> list[dict]:
    """Every example of one principle, both halves, answered and checked: what the editor's "Test this
    principle" shows, per example (its half, the answer, passed, the reason and every verdict)."""
    cases = [(principle.name, index, example) for index, example in enumerate(principle.examples)]
    if not cases:
        raise EvaluationError(f"principle {principle.name!r} has no examples to test; add some first")
    return _answer_and_check(backend, [principle], cases, judge, batch_size, on_progress, max_new_tokens)


# --------------------------------------------------------------------------- per-principle tax


def _principles_suite(report: dict, which: str) -> dict:
    suite = (report.get("suites") or {}).get(PRINCIPLES)
    if not suite:
        raise EvaluationError(f"the {which} report has no '{PRINCIPLES}' suite; evaluate it with that suite and a constitution")
    return suite


def _outcomes(suite: dict) -> dict[str, dict[str, float]]:
    """principle -> {prompt: 1.0 passed / 0.0 failed}: examples are matched by their prompt, which
    survives an example being moved, where its position would not."""
    outcomes: dict[str, dict[str, float]] = {}
    for item in suite.get("items") or []:
        if isinstance(item.get("principle"), str) and isinstance(item.get("prompt"), str):
            outcomes.setdefault(item["principle"], {})[item["prompt"]] = 1.0 if item.get("passed") else 0.0
    return outcomes


def _words(change: float, low: float, high: float, clear: bool) -> str:
    if abs(change) < 1e-9:
        return NO_CHANGE
    way = "improved" if change > 0 else "regressed"
    certainty = "" if clear else ", within noise"
    return f"{way} by {abs(change):.1f} points (95% interval {low:+.1f} to {high:+.1f}{certainty})"


def principle_tax(base: dict, aligned: dict, seed: int = 0) -> dict:
    """Per-principle rows comparing two reports' ``principles`` suites, and their summary.

    Each row: principle, base and aligned pass rates (percent, on the examples both answered) with
    each one's own 95% interval, change in points, a paired bootstrap 95% interval of the change, n, direction (improvement,
    regression or no change), ``clear`` (the interval excludes 0) and the change in words. The
    summary holds the mean per-principle pass rates and the largest fall, the numbers an author
    asks of training: did the rules get followed more, and did any get followed less?
    """
    base_suite, aligned_suite = _principles_suite(base, "base"), _principles_suite(aligned, "aligned")
    base_outcomes, aligned_outcomes = _outcomes(base_suite), _outcomes(aligned_suite)
    rows = []
    for name, base_by_prompt in base_outcomes.items():
        shared = [prompt for prompt in base_by_prompt if prompt in aligned_outcomes.get(name, {})]
        if not shared:
            continue
        before = [base_by_prompt[p] for p in shared]
        after = [aligned_outcomes[name][p] for p in shared]
        change = 100 * (sum(after) - sum(before)) / len(shared)
        low, high = bootstrap_interval([a - b for a, b in zip(after, before)], seed=seed)
        low, high = 100 * low, 100 * high
        clear = low > 0 or high < 0
        direction = NO_CHANGE if abs(change) < 1e-9 else IMPROVEMENT if change > 0 else REGRESSION
        # Each side's own interval on the same shared examples, for bars drawn side by side.
        base_low, base_high = bootstrap_interval(before, seed=seed)
        aligned_low, aligned_high = bootstrap_interval(after, seed=seed)
        rows.append({"principle": name, "base": 100 * sum(before) / len(shared), "aligned": 100 * sum(after) / len(shared),
                     "change": change, "ci_low": low, "ci_high": high, "n": len(shared), "direction": direction,
                     "clear": clear, "words": _words(change, low, high, clear),
                     "base_ci_low": 100 * base_low, "base_ci_high": 100 * base_high,
                     "aligned_ci_low": 100 * aligned_low, "aligned_ci_high": 100 * aligned_high})
    if not rows:
        raise EvaluationError("the two reports share no principle examples to compare; evaluate both on the same constitution")
    same = base_suite.get("constitution_hash") == aligned_suite.get("constitution_hash")
    mean_base = sum(r["base"] for r in rows) / len(rows)
    mean_aligned = sum(r["aligned"] for r in rows) / len(rows)
    worst = min(rows, key=lambda r: r["change"])
    return {"constitution": aligned_suite.get("constitution") or base_suite.get("constitution"),
            "same_constitution": same, "rows": rows, "mean_base": mean_base, "mean_aligned": mean_aligned,
            "mean_change": mean_aligned - mean_base,
            "largest_fall": {"principle": worst["principle"], "change": worst["change"]} if worst["change"] < 0 else None}


def principle_pass_rates(report: dict) -> dict[str, float]:
    """principle -> pass rate (percent) of one report: a point per principle on a chart over rounds."""
    suite = (report.get("suites") or {}).get(PRINCIPLES) or {}
    return {name: float(row["pass_rate"]) for name, row in (suite.get("per_principle") or {}).items()
            if isinstance(row, dict) and isinstance(row.get("pass_rate"), (int, float))}


def has_principles(report: dict | None) -> bool:
    """Whether a report carries the principles suite (the per-principle views need it)."""
    return bool(((report or {}).get("suites") or {}).get(PRINCIPLES))


def principle_scores(report: dict) -> dict[str, dict]:
    """principle -> {"pass_rate", "ci_low", "ci_high"} (percent) of one report, the interval falling
    back to the rate where a report does not keep it: one point with its error bar per principle on a
    chart over rounds."""
    suite = (report.get("suites") or {}).get(PRINCIPLES) or {}
    scores = {}
    for name, rate in principle_pass_rates(report).items():
        row = (suite.get("per_principle") or {}).get(name) or {}
        low, high = row.get("ci_low"), row.get("ci_high")
        scores[name] = {"pass_rate": rate, "ci_low": float(low) if isinstance(low, (int, float)) else rate,
                        "ci_high": float(high) if isinstance(high, (int, float)) else rate}
    return scores


def tax_seed(report: dict) -> int:
    """The seed a comparison's bootstrap uses: the aligned report's own, else 0."""
    seed = (report.get("settings") or {}).get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0
