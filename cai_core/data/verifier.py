"""The constitution verifier: best-of-N samples scored by the user's own constitution.

With ``verifier: constitution`` (GenerationSpec) each sample is held to assertions (cai_core.checks):

- a prompt from the prompt sets: the checks of every principle that governs the run (the chosen
  principles, else every enabled one), and, unless ``rule_for_prompt_sets`` is off, the refusal rule
  written as an assertion (``refuses`` for a prompt from ``refuse_sources``, ``answers`` otherwise);
- a constitution's training-half example prompt: its principle's checks and the example's own
  expectations, which replace the refusal rule (the example says whether to decline).

A sample passes when it is not empty, at least one assertion was decided, and none that was decided
failed; an ``llm-rubric`` without a judge model is skipped, counted neither way. The test half of the
examples is what the ``principles`` suite scores, so it never joins the data, not even as a prompt
that happens to sit in a prompt set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from ..chain import select_principles
from ..checks import ANSWERS, REFUSES, Assertion, check_answers
from ..constitution import TEST_HALF, TRAIN_HALF, Constitution, Principle
from ..errors import DatasetError
from .promptsets import PromptItem, prompt_key, round_robin
from .spec import GenerationSpec, prompt_set_stem

CONSTITUTION = "constitution"
# The ``source`` and ``category`` of an example prompt in prompts.jsonl (its ``principle`` names whose).
EXAMPLE_SOURCE, EXAMPLE_CATEGORY = "constitution", "constitution-example"
RULE, CHECK, EXPECTATION = "refusal rule", "check", "expectation"


@dataclass(frozen=True)
class Governed:
    """What one prompt's samples are held to: each assertion with where it comes from."""

    assertions: tuple[Assertion, ...]
    origins: tuple[str, ...]        # "refusal rule", "check of PRINCIPLE", "expectation of PRINCIPLE/N"
    principles: tuple[str, ...]     # the principles that govern the prompt
    example: str | None = None      # "PRINCIPLE/N" for an example prompt

    @property
    def should_refuse(self) -> bool:
        return any(a.kind == REFUSES for a in self.assertions)


def check_verifier(constitution: Constitution, spec: GenerationSpec) -> None:
    """One sentence when the constitution verifier is chosen but the principles give it nothing to check."""
    if spec.verifier != CONSTITUTION or not spec.samples_best_of_n:
        return
    principles = select_principles(constitution, spec.principles)
    if not any(p.checks or p.examples_in(TRAIN_HALF) for p in principles):
        raise DatasetError(f"verifier constitution needs checks or examples to score samples by, and the "
                           f"constitution {constitution.name!r} has none in the principles it uses; add some, "
                           "or use verifier rule")


def held_out_example_keys(constitution: Constitution) -> set[str]:
    """Every test-half example prompt of every principle (enabled or not): never training data."""
    return {prompt_key(example.prompt) for p in constitution.principles for _, example in p.examples_in(TEST_HALF)}


def training_example_items(constitution: Constitution, spec: GenerationSpec) -> list[PromptItem]:
    """The training-half example prompts of the principles the run uses, round-robin across
    principles, each tagged with its principle; a prompt that is also a test example is left out."""
    held_out = held_out_example_keys(constitution)
    queues = [[PromptItem(example_id(p, index), example.prompt, EXAMPLE_CATEGORY, EXAMPLE_SOURCE, p.name)
               for index, example in p.examples_in(TRAIN_HALF) if prompt_key(example.prompt) not in held_out]
              for p in select_principles(constitution, spec.principles)]
    items, seen = [], set()
    for item in round_robin(queues):
        if prompt_key(item.prompt) not in seen:  # two principles sharing an example prompt: the first keeps it
            seen.add(prompt_key(item.prompt))
            items.append(item)
    return items


def example_id(principle: Principle, index: int) -> str:
    """The example's name as the principles suite's report gives it ("PRINCIPLE/N", N from 1)."""
    return f"{principle.name}/{index + 1}"


def governing_assertions(item: PromptItem, spec: GenerationSpec, constitution: Constitution) -> Governed:
    """What the samples of ``item`` are held to under the constitution verifier."""
    if item.principle:
        principle = constitution.principle(item.principle)
        for index, example in principle.examples_in(TRAIN_HALF):
            if prompt_key(example.prompt) == prompt_key(item.prompt):
                name = example_id(principle, index)
                return Governed(tuple(principle.checks) + tuple(example.expect),
                                (f"{CHECK} of {principle.name}",) * len(principle.checks)
                                + (f"{EXPECTATION} of {name}",) * len(example.expect),
                                (principle.name,), name)
        # Not a training example of this constitution (any more): held to its principle's checks alone.
        return Governed(tuple(principle.checks), (f"{CHECK} of {principle.name}",) * len(principle.checks),
                        (principle.name,))
    principles = select_principles(constitution, spec.principles)
    assertions: list[Assertion] = []
    origins: list[str] = []
    for principle in principles:
        for check in principle.checks:
            if check not in assertions:  # the same check in two principles is one assertion
                assertions.append(check)
                origins.append(f"{CHECK} of {principle.name}")
    if spec.rule_for_prompt_sets:
        declined = item.source in {prompt_set_stem(source) for source in spec.refuse_sources}
        assertions.append(Assertion(REFUSES if declined else ANSWERS))
        origins.append(RULE)
    return Governed(tuple(assertions), tuple(origins), tuple(p.name for p in principles))


def verify_samples(items: list[PromptItem], answers: list[list[str]], spec: GenerationSpec,
                   constitution: Constitution, judge=None,
                   on_note: Callable[[str], None] | None = None) -> list[tuple[Governed, list[dict]]]:
    """Each item's governing assertions and its samples' verdicts: ``answer``, ``refused``, ``passes``,
    ``reason`` (one sentence: the first failed assertion, or that all held) and ``verdicts`` (each
    assertion's, with ``origin``). Every llm-rubric of the chunk goes to ``judge`` in one batched call."""
    from ..refusals import is_refusal

    governed = [governing_assertions(item, spec, constitution) for item in items]
    cases = [(item.prompt, answer, rules.assertions) for item, rules, samples in zip(items, governed, answers)
             for answer in samples]
    checked = iter(check_answers(cases, judge=judge, batch_size=spec.settings.batch_size, on_fallback=on_note))
    results = []
    for rules, samples in zip(governed, answers):
        verdicts = []
        for answer in samples:
            check = next(checked)
            decided = [v for v in check.verdicts if not v.skipped]
            passes = bool(answer.strip()) and bool(decided) and check.passed
            if not answer.strip():
                reason = "the answer is empty"
            elif not decided:
                reason = "nothing was checked (no assertion applies, or every one is an llm-rubric without a judge)"
            else:
                reason = check.reason
            verdicts.append({"answer": answer, "refused": is_refusal(answer), "passes": passes, "reason": reason,
                             "verdicts": [{**asdict(v), "origin": origin}
                                          for v, origin in zip(check.verdicts, rules.origins)]})
        results.append((rules, verdicts))
    return results


def failed_assertions(sample: dict) -> list[str]:
    """The assertions a sample failed, each with where it comes from: what the Data page shows of a loser."""
    return [f"{v['assertion']} ({v.get('origin', '')})".replace(" ()", "") for v in sample.get("verdicts") or []
            if not v.get("passed") and not v.get("skipped")]
