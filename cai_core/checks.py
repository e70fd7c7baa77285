"""Assertions on an answer: what a principle's checks and its examples' expectations say.

A constitution file writes them as promptfoo does, so its users recognise them: a bare word for an
assertion without an argument (``refuses``, ``answers``), otherwise a one-key mapping
(``{not-icontains: "guaranteed refund"}``). Everything but ``llm-rubric`` is decided by code; an
``llm-rubric`` asks a judge model a yes/no question about the answer and reads the option
log-probabilities in both framings (yes as option A, then as option B), as the pairwise judge does,
so its verdict is reported as judged, with the judge's confidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import regex
from pydantic import BaseModel, ConfigDict, model_serializer, model_validator

from . import prompts as templates
from .refusals import is_refusal

REFUSES, ANSWERS = "refuses", "answers"
# Assertions written as a bare word: they take no argument.
BARE_ASSERTIONS = (REFUSES, ANSWERS)
# Assertions written as a one-key mapping whose value is a text (promptfoo's names).
VALUE_ASSERTIONS = ("contains", "icontains", "not-contains", "not-icontains", "regex", "not-regex",
                    "starts-with", "llm-rubric")
KNOWN_ASSERTIONS = BARE_ASSERTIONS + VALUE_ASSERTIONS
LLM_RUBRIC = "llm-rubric"
REGEX_KINDS = ("regex", "not-regex")
# A rubric is one question to a judge and a text to find is a phrase, not a document.
MAX_ASSERTION_VALUE_CHARS = 1000
# Answers come from a model, patterns from a user: a pattern that backtracks without end on some
# answer must fail that answer, not hang an evaluation. (The stdlib ``re`` has no time limit.)
REGEX_TIMEOUT_SECONDS = 1.0
# Expectations that no answer can meet together.
CONTRADICTIONS = ((REFUSES, ANSWERS), ("contains", "not-contains"), ("icontains", "not-icontains"),
                  ("regex", "not-regex"))


def _known_list() -> str:
    return ", ".join(KNOWN_ASSERTIONS)


class Assertion(BaseModel):
    """One assertion: ``kind`` is one of KNOWN_ASSERTIONS, ``value`` its text ("" for bare ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    value: str = ""

    def __init__(self, *args, **data):
        if args:  # Assertion("refuses") and Assertion({"contains": "x"}) read like the file
            data = {"__file_form__": args[0]}
        super().__init__(**data)

    @model_validator(mode="wrap")
    @classmethod
    def _from_file_form(cls, data: Any, handler: Callable) -> "Assertion":
        """``"refuses"`` or ``{"contains": "x"}`` (the file form), checked, to ``{kind, value}``."""
        if isinstance(data, dict) and "__file_form__" in data:
            data = data["__file_form__"]
        if isinstance(data, Assertion):
            return data
        if isinstance(data, dict) and set(data) in ({"kind"}, {"kind", "value"}):
            kind, value = data.get("kind"), data.get("value", "")
        elif isinstance(data, str):
            kind, value = data.strip(), None
        elif isinstance(data, dict):
            if len(data) != 1:
                raise ValueError(f"an assertion is a bare word or a mapping with one key, as in {{contains: \"text\"}}, "
                                 f"not a mapping with {len(data)} keys")
            [(kind, value)] = data.items()
        else:
            raise ValueError(f"an assertion is a bare word ({', '.join(BARE_ASSERTIONS)}) or a one-key mapping, "
                             "as in {contains: \"text\"}")
        check_assertion(kind, value)
        return handler({"kind": kind.strip(), "value": value if isinstance(value, str) else ""})

    @model_serializer
    def _to_file_form(self) -> str | dict[str, str]:
        return self.kind if self.kind in BARE_ASSERTIONS else {self.kind: self.value}

    def describe(self) -> str:
        """How a verdict names it: ``refuses``, ``not-icontains "guaranteed refund"``.

        The value is quoted as written (no escapes), so a pattern reads as it does in the file.
        """
        return self.kind if self.kind in BARE_ASSERTIONS else f'{self.kind} "{self.value}"'

    def __str__(self) -> str:
        return self.describe()


def check_assertion(kind: Any, value: Any) -> None:
    """Raise ValueError with one sentence when ``kind: value`` is not a usable assertion."""
    if not isinstance(kind, str) or kind.strip() not in KNOWN_ASSERTIONS:
        shown = kind if isinstance(kind, str) else str(kind)
        raise ValueError(f"unknown assertion {shown!r}; known ones are {_known_list()}")
    if kind in BARE_ASSERTIONS:
        if value not in (None, "", True):
            raise ValueError(f"{kind!r} takes no value; write it as the bare word {kind}")
        return
    if value is None or value is True or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{kind!r} needs a text, as in {{{kind}: \"...\"}}")
    if not isinstance(value, str):
        raise ValueError(f"{kind!r} needs a text, not {type(value).__name__} {value!r}; put it in quotes")
    if len(value) > MAX_ASSERTION_VALUE_CHARS:
        raise ValueError(f"the {kind} text is {len(value)} characters; the limit is {MAX_ASSERTION_VALUE_CHARS}")
    if kind in REGEX_KINDS:
        try:
            regex.compile(value, flags=regex.V0)
        except regex.error as error:
            raise ValueError(f'{kind} "{value}" is not a valid regular expression ({error})') from None


def contradiction(assertions: Sequence[Assertion]) -> str | None:
    """One sentence naming two assertions no answer can meet together, or None."""
    for first, second in CONTRADICTIONS:
        firsts = {a.value for a in assertions if a.kind == first}
        seconds = {a.value for a in assertions if a.kind == second}
        both = firsts & seconds
        if both:
            value = sorted(both)[0]
            if first in BARE_ASSERTIONS:
                return f"expects both {first} and {second}, which no answer can do"
            return f'expects both {first} "{value}" and {second} "{value}", which no answer can do'
    return None


# ---------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """What one assertion made of one answer."""

    assertion: str          # as Assertion.describe() names it
    kind: str
    passed: bool
    reason: str
    judged: bool = False    # decided by a judge model (llm-rubric), not by code
    confidence: float | None = None  # for a judged verdict: the judge's probability of its verdict
    skipped: bool = False   # an llm-rubric with no judge model to ask: counts neither way


@dataclass
class AnswerCheck:
    """Every assertion's verdict on one answer; it passes when no assertion that was decided failed."""

    prompt: str
    answer: str
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.passed and not v.skipped]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def reason(self) -> str:
        """One sentence: the first failed assertion and why, or that all held."""
        if self.failed:
            first = self.failed[0]
            more = f" (and {len(self.failed) - 1} more failed)" if len(self.failed) > 1 else ""
            return f"{first.assertion} failed: {first.reason}{more}"
        skipped = sum(v.skipped for v in self.verdicts)
        return "every assertion holds" + (f" ({skipped} llm-rubric not judged)" if skipped else "")

    def to_data(self) -> dict:
        return {"prompt": self.prompt, "answer": self.answer, "passed": self.passed, "reason": self.reason,
                "verdicts": [asdict(v) for v in self.verdicts]}


def _excerpt(answer: str, start: int, end: int, margin: int = 30) -> str:
    left, right = max(0, start - margin), min(len(answer), end + margin)
    text = " ".join(answer[left:right].split())
    return ("…" if left else "") + text + ("…" if right < len(answer) else "")


def _found(answer: str, needle: str, ignore_case: bool) -> int:
    return (answer.casefold().find(needle.casefold()) if ignore_case else answer.find(needle))


def evaluate_assertion(assertion: Assertion, answer: str) -> Verdict:
    """The verdict of an assertion decided by code (every kind but llm-rubric) on one answer."""
    kind, value, name = assertion.kind, assertion.value, assertion.describe()
    answer = answer or ""

    def verdict(passed: bool, reason: str) -> Verdict:
        return Verdict(name, kind, passed, reason)

    if kind in (REFUSES, ANSWERS):
        if not answer.strip():
            return verdict(False, "the answer is empty")
        declined = is_refusal(answer)
        if kind == REFUSES:
            return verdict(declined, "it declines" if declined else "it does not decline (no refusal in its opening)")
        return verdict(not declined, "it answers" if not declined else "it declines instead of answering")
    if kind in ("contains", "icontains", "not-contains", "not-icontains"):
        ignore_case = kind.endswith("icontains")
        position = _found(answer, value, ignore_case)
        if kind.startswith("not-"):
            if position < 0:
                return verdict(True, f"it does not contain {value!r}")
            return verdict(False, f"it contains {value!r}: {_excerpt(answer, position, position + len(value))!r}")
        return verdict(position >= 0, f"it contains {value!r}" if position >= 0 else f"it does not contain {value!r}")
    if kind in REGEX_KINDS:
        try:
            match = regex.search(value, answer, flags=regex.V0, timeout=REGEX_TIMEOUT_SECONDS)
        except TimeoutError:
            return verdict(False, f"the pattern took over {REGEX_TIMEOUT_SECONDS:g} s on this answer, so it counts as failed")
        if kind == "regex":
            if match:
                return verdict(True, f"it matches at {_excerpt(answer, match.start(), match.end())!r}")
            return verdict(False, "nothing in it matches the pattern")
        if match:
            return verdict(False, f"it matches at {_excerpt(answer, match.start(), match.end())!r}")
        return verdict(True, "nothing in it matches the pattern")
    if kind == "starts-with":
        # Models often open with a space or a newline; what a reader sees first is what counts.
        opening = answer.lstrip()
        if opening.startswith(value):
            return verdict(True, f"it starts with {value!r}")
        return verdict(False, f"it starts with {opening[:len(value) + 20]!r}")
    raise ValueError(f"{kind!r} is decided by a judge model, not by code")


def _rubric_verdict(assertion: Assertion, p_yes_first: float, p_yes_second: float, method: str) -> Verdict:
    p_yes = (p_yes_first + p_yes_second) / 2
    passed = p_yes > 0.5
    confidence = p_yes if passed else 1.0 - p_yes
    how = "" if method == "option_logprobs" else " (read from written letters: the judge gave no log-probabilities)"
    # Yes won as option A and lost as option B (or the reverse): the letter decided, not the answer.
    disagree = "; the two framings disagree, so the judge followed the option's position" \
        if (p_yes_first - 0.5) * (p_yes_second - 0.5) < 0 else ""
    reason = f"the judge says it {'meets' if passed else 'does not meet'} the rubric, P(yes) = {p_yes:.2f}{how}{disagree}"
    return Verdict(assertion.describe(), LLM_RUBRIC, passed, reason, judged=True, confidence=confidence)


def check_answers(cases: Sequence[tuple[str, str, Sequence[Assertion]]], judge=None, batch_size: int = 16,
                  on_fallback: Callable[[str], None] | None = None) -> list[AnswerCheck]:
    """Every (prompt, answer, assertions) case's verdicts, in order.

    All llm-rubric questions of all cases, in both framings, go to ``judge`` (a GenerationBackend)
    as one batched call. Without a judge an llm-rubric is reported as skipped, never as passed.
    ``on_fallback`` hears one sentence when the judge cannot give log-probabilities.
    """
    from .judge import option_probabilities  # the judge imports models (torch-free, but heavier)

    results: list[AnswerCheck] = []
    questions: list = []
    pending: list[tuple[int, int, Assertion]] = []  # (case, verdict slot, rubric) awaiting the judge
    for case_index, (prompt, answer, assertions) in enumerate(cases):
        check = AnswerCheck(prompt, answer or "")
        for assertion in assertions:
            if assertion.kind != LLM_RUBRIC:
                check.verdicts.append(evaluate_assertion(assertion, answer))
            elif judge is None:
                check.verdicts.append(Verdict(assertion.describe(), LLM_RUBRIC, False,
                                              "not judged: no judge model was given", skipped=True))
            else:
                pending.append((case_index, len(check.verdicts), assertion))
                check.verdicts.append(None)  # filled in below, so verdicts keep the assertions' order
                for yes_first in (True, False):
                    questions.append(templates.rubric_conversation(prompt, answer or "", assertion.value, yes_first))
        results.append(check)
    if pending:
        probabilities, method, _ = option_probabilities(judge, questions, batch_size, on_fallback)
        for number, (case_index, slot, assertion) in enumerate(pending):
            yes_as_a, yes_as_b = probabilities[2 * number], probabilities[2 * number + 1]
            results[case_index].verdicts[slot] = _rubric_verdict(assertion, yes_as_a[0], yes_as_b[1], method)
    return results


def check_answer(prompt: str, answer: str, assertions: Sequence[Assertion], judge=None) -> AnswerCheck:
    """One answer's verdicts (see check_answers)."""
    return check_answers([(prompt, answer, assertions)], judge)[0]
