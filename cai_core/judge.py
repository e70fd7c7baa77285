"""The AI judge of Phase 2: which of two answers better follows a principle, and how sure it is.

The judge asks a multiple-choice question and reads the normalised probabilities of the option
letters from one forward pass (Bai et al., 2022): no text is generated and nothing is parsed, so
there is no verdict that fails to parse and the label is soft. Each pair is asked in both orders
(first answer as A, then as B) and the two averaged, which cancels the judge's position bias.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from . import prompts as templates
from .models import GenerationBackend, GenerationSettings, LogprobsUnavailable

if TYPE_CHECKING:  # the constitution imports checks, whose llm-rubric asks this judge
    from .constitution import Principle

METHOD_LOGPROBS = "option_logprobs"
METHOD_PARSED = "parsed_verdict"
# An endpoint without logprobs writes its letter; a few tokens leave room for "(A)" or "A." only.
_LETTER_TOKENS = 4
_VERDICT_PATTERN = re.compile(r"\[\[\s*([AB])\s*\]\]")
_LETTER_PATTERN = re.compile(r"^\W*\(?\s*([AB])\b")


@dataclass
class JudgedPair:
    """What the judge made of one pair: ``first`` and ``second`` are the two answers."""

    prompt: str
    first: str
    second: str
    # P(first is better), averaged over both orders and every principle asked.
    p_first: float = 0.5
    # The same probability from each order alone: first shown as A, and first shown as B.
    p_first_when_shown_first: float = 0.5
    p_first_when_shown_second: float = 0.5
    principles: list[str] = field(default_factory=list)
    per_principle: list[dict] = field(default_factory=list)
    method: str = METHOD_LOGPROBS
    # How many of this pair's verdicts could not be parsed (only for METHOD_PARSED).
    unparsed: int = 0

    @property
    def orders_disagree(self) -> bool:
        """True when the two orders prefer different answers: the judge followed the position."""
        return (self.p_first_when_shown_first - 0.5) * (self.p_first_when_shown_second - 0.5) < 0

    @property
    def confidence(self) -> float:
        """The probability that the preferred answer is better (0.5 = a coin toss)."""
        return max(self.p_first, 1.0 - self.p_first)


def normalise(logprobs: dict[str, float], options: Sequence[str] = templates.JUDGE_OPTIONS) -> list[float]:
    """The options' probabilities renormalised to sum to one (uniform when none was seen)."""
    values = [logprobs.get(option, -math.inf) for option in options]
    top = max(values)
    if top == -math.inf:
        return [1.0 / len(options)] * len(options)
    weights = [math.exp(v - top) for v in values]
    total = sum(weights)
    return [w / total for w in weights]


def comparison_request(principle: Principle) -> str:
    return principle.comparison_request or templates.default_comparison_request(principle.critique_request)


def both_orders(prompt: str, request: str, first: str, second: str, explain: bool = False) -> list:
    """The question asked with ``first`` as option A, then with ``first`` as option B."""
    return [templates.judge_conversation(prompt, request, first, second, explain),
            templates.judge_conversation(prompt, request, second, first, explain)]


def judge_pairs(backend: GenerationBackend, pairs: Sequence[tuple[str, str, str]],
                principles: Sequence[Sequence[Principle]], batch_size: int = 16,
                on_fallback: callable | None = None) -> list[JudgedPair]:
    """Judge each (prompt, first, second) under its principles (an ensemble when more than one).

    Every pair x principle x order becomes one question, and all questions go to the backend as
    one batched call. When the backend cannot report log-probabilities, the judge asks for the
    letter as text instead and ``on_fallback`` receives one sentence saying so.
    """
    questions = []
    for (prompt, first, second), chosen in zip(pairs, principles, strict=True):
        for principle in chosen:
            request = comparison_request(principle)
            questions.extend(both_orders(prompt, request, first, second))
    probabilities, method, unparsed_flags = option_probabilities(backend, questions, batch_size, on_fallback)

    results, cursor = [], 0
    for (prompt, first, second), chosen in zip(pairs, principles):
        judged = JudgedPair(prompt, first, second, method=method, principles=[p.name for p in chosen])
        shown_first, shown_second = [], []
        for principle in chosen:
            a_first, a_second = probabilities[cursor], probabilities[cursor + 1]
            # In the second question the first answer is option B.
            shown_first.append(a_first[0])
            shown_second.append(a_second[1])
            judged.unparsed += unparsed_flags[cursor] + unparsed_flags[cursor + 1]
            judged.per_principle.append({"principle": principle.name, "p_first_when_shown_first": a_first[0],
                                         "p_first_when_shown_second": a_second[1]})
            cursor += 2
        judged.p_first_when_shown_first = sum(shown_first) / len(shown_first)
        judged.p_first_when_shown_second = sum(shown_second) / len(shown_second)
        judged.p_first = (judged.p_first_when_shown_first + judged.p_first_when_shown_second) / 2
        results.append(judged)
    return results


def option_probabilities(backend: GenerationBackend, questions: list, batch_size: int = 16,
                         on_fallback: callable | None = None) -> tuple[list[list[float]], str, list[bool]]:
    """P(A) and P(B) for each A/B question in one batched call, the method used, and which
    written letters could not be parsed (only when the backend has no log-probabilities)."""
    try:
        # A backend found without log-probabilities once is not asked again (an endpoint would
        # answer every question of every chunk only to say so).
        if getattr(backend, "lacks_logprobs", None):
            raise LogprobsUnavailable(backend.lacks_logprobs)
        scores = backend.option_logprobs(questions, templates.JUDGE_OPTIONS, templates.JUDGE_ANSWER_PREFIX, batch_size)
        return [normalise(s) for s in scores], METHOD_LOGPROBS, [False] * len(questions)
    except LogprobsUnavailable as reason:
        backend.lacks_logprobs = str(reason)
        if on_fallback:
            on_fallback(f"{reason}; the judge read each one-letter answer instead, so labels are 0, 0.5 or 1 rather than soft")
        probabilities, unparsed_flags = letter_verdicts(backend, questions, batch_size)
        return probabilities, METHOD_PARSED, unparsed_flags


def parse_verdict(text: str) -> str | None:
    """The option a written verdict names: "[[A]]" anywhere, else a leading "A"/"(B)"; None if neither."""
    bracketed = _VERDICT_PATTERN.findall(text)
    if bracketed:
        return bracketed[-1]
    letter = _LETTER_PATTERN.match(text)
    return letter.group(1) if letter else None


def letter_verdicts(backend: GenerationBackend, questions: list, batch_size: int):
    """Greedy one-letter answers, parsed: the judge's fallback when log-probabilities are missing."""
    settings = GenerationSettings(max_new_tokens=_LETTER_TOKENS, temperature=0.0, repetition_penalty=1.0,
                                  batch_size=batch_size)
    probabilities, unparsed = [], []
    for generation in backend.generate(questions, settings):
        verdict = parse_verdict(generation.text)
        unparsed.append(verdict is None)
        probabilities.append([0.5, 0.5] if verdict is None else [float(verdict == "A"), float(verdict == "B")])
    return probabilities, unparsed


def judge_by_written_verdict(backend: GenerationBackend, pairs: Sequence[tuple[str, str, str]],
                             principle: Principle, max_new_tokens: int = 128, batch_size: int = 16) -> tuple[list[float], int]:
    """The generate-then-parse judge most tools use (explain, then "[[A]]"), for comparison.

    Returns P(first is better) per pair (0, 0.5 or 1, averaged over both orders) and how many
    verdicts could not be parsed. The benchmark runs it beside ``judge_pairs`` on the same pairs.
    """
    request = comparison_request(principle)
    questions = []
    for prompt, first, second in pairs:
        questions.extend(both_orders(prompt, request, first, second, explain=True))
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size)
    verdicts = [parse_verdict(g.text) for g in backend.generate(questions, settings)]
    results = []
    for index in range(len(pairs)):
        shown_first, shown_second = verdicts[2 * index], verdicts[2 * index + 1]
        score_first = 0.5 if shown_first is None else float(shown_first == "A")
        score_second = 0.5 if shown_second is None else float(shown_second == "B")
        results.append((score_first + score_second) / 2)
    return results, sum(v is None for v in verdicts)
