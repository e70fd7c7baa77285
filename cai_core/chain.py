"""Batched critique -> revision chains: initial answer, then K rounds, one principle per round.

Each stage (initial answers, round-k critiques, round-k revisions) is one batched ``generate``
call over every prompt still in play, which is where the speed over the one-prompt-at-a-time
loop comes from.

The policy writes the initial answers; the critiques and revisions come from the critic when one
is given (a stronger model: the revisions are then its text, distilled into the policy by SFT),
else from the policy itself. Each step records which model wrote it.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Callable, Literal, Sequence

from .errors import Cancelled
from .constitution import Constitution, ConstitutionError, Principle
from .models import GenerationBackend, GenerationSettings
from . import prompts as templates

MAX_PROMPT_CHARS = 20_000


class ChainCancelled(Cancelled):
    """Raised by run_chain when its ``should_stop`` callback asks it to stop."""


@dataclass
class ChainStep:
    round: int
    principle: str
    critique: str
    revision: str
    # False when the revision was skipped; ``skip_reason`` says why ("no_change": the critique
    # found nothing to change; "empty_revision": the model returned nothing, so the answer stood).
    revised: bool = True
    skip_reason: str | None = None
    # The model that wrote the critique, and the one whose text ``revision`` holds (for a skipped
    # revision, whoever wrote the answer that stood). Empty in traces written before roles existed.
    critique_model: str = ""
    revision_model: str = ""


@dataclass
class Trace:
    prompt: str
    initial: str
    steps: list[ChainStep] = field(default_factory=list)
    final: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    lineage: dict = field(default_factory=dict)
    # Which model played which stage: {"initial": policy id, "critique": ..., "revision": ...}.
    models: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ChainEvent:
    """Progress report: ``stage`` is "initial", "critique" or "revision"; ``traces`` are live objects."""

    stage: str
    round: int
    traces: list[Trace]


def check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    cleaned = []
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConstitutionError(f"prompt {index + 1} is empty; write the request the model should answer")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ConstitutionError(f"prompt {index + 1} is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
        cleaned.append(prompt.strip())
    if not cleaned:
        raise ConstitutionError("no prompts given")
    return cleaned


def select_principles(constitution: Constitution, names: Sequence[str] | None = None) -> list[Principle]:
    """The named principles (in the constitution's order), or all enabled ones."""
    if names:
        wanted = {constitution.principle(name).name for name in names}  # raises for an unknown name
        chosen = [p for p in constitution.principles if p.name in wanted]
    else:
        chosen = constitution.enabled_principles
    if not chosen:
        raise ConstitutionError(f"constitution {constitution.name!r} has no enabled principle to apply")
    return chosen


def plan_principles(principles: Sequence[Principle], prompts: Sequence[str], rounds: int, seed: int, order: str) -> list[list[Principle]]:
    """Which principle each prompt gets in each round: plan[prompt][round].

    "random" draws by weight with one RNG per prompt, seeded from ``seed`` and the prompt's
    text, so a prompt gets the same principles whether it runs alone or in any batch.
    "sequential" walks the principles in order, wrapping around.
    """
    plan = []
    for prompt in prompts:
        if order == "sequential":
            plan.append([principles[r % len(principles)] for r in range(rounds)])
        else:
            rng = random.Random(f"{seed}:{prompt}")  # str seeds hash with sha512: stable across runs
            weights = [p.weight for p in principles]
            plan.append(rng.choices(list(principles), weights=weights, k=rounds))
    return plan


def run_chain(
    model: GenerationBackend,
    constitution: Constitution,
    prompts: Sequence[str] | str,
    rounds: int = 1,
    seed: int = 0,
    *,
    principles: Sequence[str] | None = None,
    order: Literal["random", "sequential"] = "random",
    settings: GenerationSettings | None = None,
    system_prompt: str | None = None,
    on_event: Callable[[ChainEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_partial: Callable[[str, int, dict[int, str]], None] | None = None,
    critic: GenerationBackend | None = None,
) -> list[Trace]:
    """Answer every prompt, then critique and revise it ``rounds`` times; one Trace per prompt.

    ``model`` (the policy) writes the first answers; ``critic``, when given, writes every critique
    and revision (None, or the policy itself: self-critique, exactly as without a critic).

    ``should_stop`` is checked between stages; when it returns True the chain raises
    ChainCancelled (a batch already running on the model finishes first). ``on_partial(stage,
    round, {prompt index: text so far})`` reports text while a stage is being written, when the
    backend can.
    """
    prompt_list = check_prompts(prompts)
    if not 0 <= rounds <= 16:
        raise ConstitutionError(f"rounds must be between 0 and 16, not {rounds}")
    if order not in ("random", "sequential"):
        raise ConstitutionError(f"order must be 'random' or 'sequential', not {order!r}")
    settings = (settings or GenerationSettings()).model_copy(update={"seed": seed})
    chosen = select_principles(constitution, principles)
    plan = plan_principles(chosen, prompt_list, rounds, seed, order)
    critic = model if critic is None else critic
    lineage = {
        "constitution": constitution.name,
        "constitution_hash": constitution.content_hash(),
        "principles": [p.name for p in chosen],
        "model": model.model_id,
        "seed": seed,
        "rounds": rounds,
        "order": order,
        "settings": settings.model_dump(),
    }
    if critic is not model:
        lineage["critic_model"] = critic.model_id
    stage_models = {"initial": model.model_id, "critique": critic.model_id, "revision": critic.model_id}
    bases = [templates.initial_conversation(p, system_prompt) for p in prompt_list]
    traces = [Trace(prompt=p, initial="", lineage=dict(lineage), models=dict(stage_models)) for p in prompt_list]
    # Each prompt's answer-so-far conversation, used as context for its next critique.
    answers: list[str] = []
    answer_authors: list[str] = []  # the model that wrote each prompt's answer so far

    def notify(stage: str, round_number: int) -> None:
        if on_event:
            on_event(ChainEvent(stage, round_number, traces))
        if should_stop and should_stop():
            raise ChainCancelled(f"stopped after {stage} of round {round_number}")

    def account(trace: Trace, generation) -> None:
        trace.prompt_tokens += generation.prompt_tokens
        trace.completion_tokens += generation.completion_tokens
        trace.seconds += generation.seconds
        if generation.warning and generation.warning not in trace.warnings:
            trace.warnings.append(generation.warning)

    def generate(conversations: list, offset: int, stage: str, round_number: int, indices: list[int]):
        writer = model if stage == "initial" else critic
        extra = {}
        if on_partial is not None and writer.reports_partial_text:
            extra["on_text"] = lambda texts: on_partial(stage, round_number, {indices[i]: t for i, t in texts.items()})
        return writer.generate(conversations, stage_settings(offset), **extra)

    def stage_settings(offset: int) -> GenerationSettings:
        # A distinct seed per stage, so sampled critiques do not replay the answer's random draws.
        return settings.model_copy(update={"seed": seed + offset})

    for trace, generation in zip(traces, generate(bases, 0, "initial", 0, list(range(len(traces))))):
        trace.initial = generation.text
        answers.append(generation.text)
        answer_authors.append(model.model_id)
        account(trace, generation)
    notify("initial", 0)

    for round_index in range(rounds):
        critique_convs = [
            templates.critique_conversation(bases[i], answers[i], plan[i][round_index].critique_request)
            for i in range(len(traces))
        ]
        critiques = generate(critique_convs, 2 * round_index + 1, "critique", round_index + 1, list(range(len(traces))))
        for i, generation in enumerate(critiques):
            account(traces[i], generation)
            traces[i].steps.append(ChainStep(round_index + 1, plan[i][round_index].name, generation.text, "", True,
                                             critique_model=critic.model_id))
        notify("critique", round_index + 1)

        needs_revision = [i for i, g in enumerate(critiques) if not templates.critique_finds_nothing(g.text)]
        revision_convs = [
            templates.revision_conversation(critique_convs[i], critiques[i].text, plan[i][round_index].revision_request)
            for i in needs_revision
        ]
        revisions = generate(revision_convs, 2 * round_index + 2, "revision", round_index + 1, needs_revision) if revision_convs else []
        for i, generation in zip(needs_revision, revisions):
            account(traces[i], generation)
            revised = templates.clean_revision(generation.text)
            # An empty revision would erase the answer; keep the previous one and say so.
            if revised:
                answers[i] = revised
                answer_authors[i] = critic.model_id
                traces[i].steps[-1].revision = revised
            else:
                traces[i].steps[-1].revised = False
                traces[i].steps[-1].skip_reason = "empty_revision"
                traces[i].warnings.append(f"Round {round_index + 1}: the revision came back empty, so the previous answer was kept.")
        for i in set(range(len(traces))) - set(needs_revision):
            traces[i].steps[-1].revised = False
            traces[i].steps[-1].skip_reason = "no_change"
        for i, trace in enumerate(traces):
            if not trace.steps[-1].revised:
                trace.steps[-1].revision = answers[i]
            trace.steps[-1].revision_model = answer_authors[i]
        notify("revision", round_index + 1)

    for trace, answer in zip(traces, answers):
        trace.final = answer
    return traces


def trace_summary(trace: Trace) -> dict:
    """The trace as the CLI's ``--json`` prints it: prompt, initial, steps, final (+ details)."""
    data = trace.to_dict()
    return {
        "prompt": data["prompt"],
        "initial": data["initial"],
        "steps": data["steps"],
        "final": data["final"],
        "prompt_tokens": data["prompt_tokens"],
        "completion_tokens": data["completion_tokens"],
        "seconds": round(data["seconds"], 3),
        "warnings": data["warnings"],
        "lineage": data["lineage"],
        "models": data["models"],
    }
