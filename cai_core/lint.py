"""Lint: principles that validate but are unlikely to work well.

Warnings, not errors: a constitution with warnings still loads and runs. The checks are cheap
word-level heuristics, chosen so that an author sees *why* (the words involved) in one sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import combinations

from .checks import ANSWERS, REFUSES
from .constitution import Constitution, Principle

# Shorter than this, a request rarely names what to look for.
MIN_USEFUL_REQUEST_CHARS = 40
NEAR_DUPLICATE_RATIO = 0.85

_STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have how i if in into is it
    its may me more most my no not of on or our so some such than that the their them then there these they
    this those to too very was we were what when where whether which while who why will with would you your
    any all each other only own same should just also about above after again against because before being
    below between both during few further here itself once out over under until up down off""".split()
)
# Words that sound like instructions but name no behaviour a model could check for.
_VAGUE_WORDS = frozenset(
    """good better best bad nice great appropriate appropriately improve improved improving response responses
    answer answers reply assistant model make sure please rewrite revise revised revision critique identify
    discuss ways way thing things stuff well quality helpful helpfully harmless honest ethical okay ok fine
    right wrong proper properly correct overall generally general way more less being""".split()
)
_WORD = re.compile(r"[a-z][a-z'\-]+")


@dataclass(frozen=True)
class LintWarning:
    principle: str | None
    # "vague", "duplicate", "near-duplicate", "revision-mismatch", "disabled", "no-examples",
    # "one-sided-examples", "duplicate-example"
    code: str
    message: str

    def __str__(self) -> str:
        where = f"principle {self.principle!r}: " if self.principle else ""
        return f"{where}{self.message}"


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 2}


def _stems(words: set[str]) -> set[str]:
    # A five-letter prefix is a crude stem, but it matches "source"/"sources"/"sourced" and
    # "refuse"/"refusal", which is what comparing a critique with its revision needs.
    return {w[:5] for w in words}


def _vagueness(request: str) -> str | None:
    if len(request.strip()) < MIN_USEFUL_REQUEST_CHARS:
        return f"is only {len(request.strip())} characters; name the concrete behaviour to look for"
    concrete = _content_words(request) - _VAGUE_WORDS
    if len(concrete) < 2:
        return "names no concrete behaviour (say what to look for, e.g. 'instructions for making weapons')"
    return None


def _normalised(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def lint_principle(principle: Principle) -> list[LintWarning]:
    warnings = []
    for field_name in ("critique_request", "revision_request"):
        problem = _vagueness(getattr(principle, field_name))
        if problem:
            label = field_name.replace("_", " ")
            warnings.append(LintWarning(principle.name, "vague", f"the {label} {problem}"))
    critique_stems = _stems(_content_words(principle.critique_request) - _VAGUE_WORDS)
    revision_stems = _stems(_content_words(principle.revision_request) - _VAGUE_WORDS)
    if critique_stems and revision_stems and not critique_stems & revision_stems:
        warnings.append(
            LintWarning(
                principle.name,
                "revision-mismatch",
                "the revision request shares no key word with its critique request, so it may not fix what the critique finds",
            )
        )
    return warnings


def lint_examples(principle: Principle) -> list[LintWarning]:
    """A principle nothing tests, or tests one way only: a model that always declines (or never
    does) would pass every example, so the score could not tell it from one that follows the rule."""
    if not principle.examples:
        return [LintWarning(principle.name, "no-examples",
                            "has no examples, so nothing measures whether a model follows it; add prompts with what a good answer does")]
    warnings = []
    kinds = [{a.kind for a in principle.expectations(example)} for example in principle.examples]
    if len(kinds) > 1 and all(REFUSES in k for k in kinds):
        warnings.append(LintWarning(principle.name, "one-sided-examples",
                                    f"all {len(kinds)} examples expect refuses, so a model that declines everything passes; add prompts it should answer"))
    elif len(kinds) > 1 and all(ANSWERS in k for k in kinds):
        warnings.append(LintWarning(principle.name, "one-sided-examples",
                                    f"all {len(kinds)} examples expect answers, so a model that never declines passes; add prompts it should decline, or checks on what a good answer says"))
    seen: dict[str, int] = {}
    for number, example in enumerate(principle.examples, start=1):
        key = " ".join(example.prompt.split()).casefold()
        if key in seen:
            warnings.append(LintWarning(principle.name, "duplicate-example",
                                        f"example {number} has the same prompt as example {seen[key]}, so it counts twice"))
        seen.setdefault(key, number)
    return warnings


def lint_constitution(constitution: Constitution) -> list[LintWarning]:
    """Every warning for a constitution, in principle order, then pairwise duplicates."""
    warnings: list[LintWarning] = []
    for principle in constitution.principles:
        warnings.extend(lint_principle(principle))
        warnings.extend(lint_examples(principle))
    for first, second in combinations(constitution.principles, 2):
        a, b = _normalised(first.critique_request), _normalised(second.critique_request)
        if a == b:
            warnings.append(LintWarning(second.name, "duplicate", f"its critique request is the same as that of {first.name!r}"))
            continue
        ratio = SequenceMatcher(None, a, b, autojunk=False).ratio()
        if ratio >= NEAR_DUPLICATE_RATIO:
            warnings.append(
                LintWarning(second.name, "near-duplicate", f"its critique request is {ratio:.0%} the same as that of {first.name!r}; merge them or make each more specific")
            )
    if not constitution.enabled_principles:
        warnings.append(LintWarning(None, "disabled", "every principle is disabled, so a chain has nothing to apply"))
    return warnings
