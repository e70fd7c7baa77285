"""What a data-generation run makes, and how: ``GenerationSpec``, the single source of the CLI's
flags, the Data page's form and the loop's ``generation:`` block, and the checks that refuse a
spec before anything is written.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..cli_specs import spec_arguments
from ..constitution import first_error_message
from ..errors import DatasetError
from ..models import DEFAULT_MODEL, GenerationSettings, ModelLoadError, Seed, is_endpoint_spec, resolve_model_path
from ..models.adapters import AdapterError, adapter_stack
from ..roles import check_models_fit, role_specs

class GenerationSpec(BaseModel):
    """What a data-generation run makes, and how. Stored in the job's spec.json."""

    model_config = ConfigDict(extra="forbid")

    # --- inputs
    constitution: str = Field(description="a name from `cai constitutions` or a file path")
    prompt_sources: list[str] = Field(min_length=1, description=(
        "prompt sets from `cai prompt-sets` or .txt/.jsonl/.csv files"))
    limit: int | None = Field(default=None, ge=1, description="use only the first N prompts")
    shuffle: bool = Field(default=False, description="mix the chosen sets in a seeded random order before the limit")
    # "train" leaves out the half of the shipped red-team and benign sets that the safety suites
    # evaluate on (cai_core.data.promptsets), and any prompt that is one of the constitution's test
    # examples (the principles suite's), so a model trained on the data is scored on unseen prompts.
    prompt_split: Literal["all", "train"] = Field(default="train", description=(
        "train: leave out the half of the shipped red_team and benign sets that the safety suites score, "
        "and the constitution's test examples; all: every prompt"))
    # --- what to make: "sft" (Phase 1) and/or "prefs" (Phase 2, from "revision", "rlaif", "best_of_n")
    phases: list[Literal["sft", "prefs"]] = Field(default=["sft", "prefs"], min_length=1, description=(
        "what to make: sft (Phase 1 rows), prefs (Phase 2 pairs), or both"))
    pair_sources: list[Literal["revision", "rlaif", "best_of_n"]] = Field(default=["revision", "rlaif"], description=(
        "where Phase 2 pairs come from: revision, rlaif, best_of_n"))
    # Where the SFT rows come from: the chain's final revisions (Phase 1 as in the paper), or the
    # best of N samples under the refusal rule (below).
    sft_source: Literal["revision", "best_of_n"] = Field(default="revision", description=(
        "where SFT rows come from: the chain's final revision, or the best of N samples under the verifier"))
    # --- best-of-N, for a policy too small to critique or judge (its critiques and its judge are
    # at chance; see docs/results.md): N samples per prompt, each scored by the refusal rule
    # (cai_core.refusals): a prompt from a set in refuse_sources should be declined, any other
    # prompt answered. SFT keeps a passing sample; a pair puts a passing one over a failing one.
    best_of_n: int = Field(default=4, ge=2, le=16, description="samples per prompt for best_of_n")
    refuse_sources: list[str] = Field(default=["red_team"], description=(
        "prompt sets whose prompts should be declined (best_of_n); every other prompt should be answered"))
    # What scores a best-of-N sample. "rule" is the refusal rule above alone. "constitution" makes the
    # user's constitution decide what is learned: each sample is held to the checks of the principles
    # that govern its prompt, and the constitution's training-half example prompts join the data with
    # their own expectations (the test half, which the principles suite scores, never does).
    verifier: Literal["rule", "constitution"] = Field(default="rule", description=(
        "what scores a best-of-N sample: rule (the refusal rule alone: prompts from refuse_sources declined, "
        "all others answered), or constitution (the checks of the principles that govern the prompt, plus, "
        "for the constitution's training-half example prompts, which join the data, that example's expectations; "
        "llm-rubric ones are asked of judge_model, and skipped without one)"))
    # With "constitution", the prompt sets' prompts still carry the refusal rule, unless turned off:
    # a shipped red-team prompt says nothing a principle's checks can see on their own.
    rule_for_prompt_sets: bool = Field(default=True, description=(
        "with verifier constitution, also hold the prompt sets' prompts to the refusal rule (refuse_sources "
        "declined, the rest answered); the constitution's example prompts follow their own expectations"))
    # False trains on the answers without the system prompt they were written under: context
    # distillation (Askell et al., 2021), so the trained model behaves as if it were still there.
    system_prompt_in_data: bool = Field(default=True, description=(
        "keep the system prompt in the rows; false trains on the answers without it (context distillation)"))
    # --- the chain
    rounds: int = Field(default=1, ge=1, le=16, description="critique -> revision rounds per prompt")
    principles: list[str] | None = Field(default=None, description="use only these principles (default: every enabled one)")
    order: Literal["random", "sequential"] = Field(default="random", description=(
        "how each round's principle is picked: drawn by weight, or in the constitution's order"))
    system_prompt: str | None = Field(default=None, description="a system prompt the answers are written under")
    # --- models: without a critic the policy critiques itself, and the judge defaults to the critic,
    # else the policy (one model in memory, as in the paper)
    policy_model: str = Field(default="default", description=(
        'the policy: "default" (the bundled model), a local folder, a hub id, a finished run or an endpoint URL'))
    critic_model: str | None = Field(default=None, description=(
        "the critic: writes every critique and revision (the text SFT learns) after the policy's first answer, "
        "and judges pairs unless a judge is named; the bundled 'default', a folder, a hub id, a finished run "
        "or an endpoint URL like http://host:port/v1; unset, the policy critiques itself"))
    judge_model: str | None = Field(default=None, description=(
        "the RLAIF judge, which picks the better of two answers (unset, the critic judges, else the policy); "
        "with verifier constitution it also answers llm-rubric assertions"))
    settings: GenerationSettings = Field(default_factory=GenerationSettings)
    # --- RLAIF: two samples per prompt at this temperature, judged under an ensemble of principles
    sample_temperature: float = Field(default=1.0, gt=0.0, le=2.0, description=(
        "temperature of the sampled answers (RLAIF pairs and best-of-N)"))
    judge_ensemble: int = Field(default=1, ge=1, le=8, description="principles the judge asks per pair")
    min_confidence: float = Field(default=0.55, ge=0.5, le=1.0, description=(
        "drop pairs whose preferred answer wins with less probability (0.5 keeps all)"))
    label_band: tuple[float, float] | None = Field(default=None, description=(
        "clamp the stored soft label into LOW,HIGH, e.g. 0.5,0.9, so no pair is taken as certain"))
    seed: Seed = Field(default=0, description="seed for principle draws, sampling and shuffling")
    chunk_size: int = Field(default=16, ge=1, le=4096, description="prompts per checkpoint: a kill loses at most this much work")

    @model_validator(mode="after")
    def _coherent(self) -> "GenerationSpec":
        if "prefs" in self.phases and not self.pair_sources:
            raise ValueError("Phase 2 needs at least one pair source: 'revision', 'rlaif' or 'best_of_n'")
        wanted = {prompt_set_stem(source) for source in self.prompt_sources}
        strays = [source for source in self.refuse_sources if prompt_set_stem(source) not in wanted]
        # The default (red_team) simply matches no prompt when that set is not among them: data made
        # from benign prompts alone has nothing to decline. Only a set the user named is checked.
        if strays and self.samples_best_of_n and "refuse_sources" in self.model_fields_set:
            raise ValueError(f"refuse_sources names {strays[0]!r}, which is not one of the prompt sets "
                             f"({', '.join(self.prompt_sources)})")
        if self.verifier == "constitution" and not self.samples_best_of_n:
            raise ValueError("verifier constitution scores best-of-N samples; choose best_of_n as the sft_source "
                             "or among the pair_sources")
        if self.label_band is not None:
            low, high = self.label_band
            if not 0.5 <= low <= high <= 1.0:
                raise ValueError("label_band must be two numbers with 0.5 <= low <= high <= 1")
        return self

    @property
    def runs_chain(self) -> bool:
        return ("sft" in self.phases and self.sft_source == "revision") or (
            "prefs" in self.phases and "revision" in self.pair_sources)

    @property
    def makes_rlaif(self) -> bool:
        return "prefs" in self.phases and "rlaif" in self.pair_sources

    @property
    def samples_best_of_n(self) -> bool:
        return ("sft" in self.phases and self.sft_source == "best_of_n") or (
            "prefs" in self.phases and "best_of_n" in self.pair_sources)


def generation_command(spec: GenerationSpec, name: str | None = None) -> str:
    """The `cai generate` line that makes the same dataset from a terminal."""
    return shlex.join(["cai", "generate", "--name", name or "NAME", *spec_arguments(spec)])


def parse_spec(data: dict) -> GenerationSpec:
    try:
        return GenerationSpec.model_validate(data)
    except ValidationError as error:
        raise DatasetError(f"generation settings: {first_error_message(error)[0]}") from None


def check_model_specs(spec: GenerationSpec) -> None:
    """Refuse a model folder or hub id that cannot exist before anything is written. Cheap: nothing
    is loaded (the bundled model and endpoints are checked by the worker, which loads them)."""
    for model in (spec.policy_model, spec.critic_model, spec.judge_model):
        if model and model != DEFAULT_MODEL and not is_endpoint_spec(model):
            try:
                stack = adapter_stack(model)  # a finished training run is a model too
            except AdapterError as error:
                raise DatasetError(str(error)) from None
            resolve_model_path(stack.base_model if stack else model)
    try:  # two or three local models that cannot fit together are refused now, not after a swap storm
        check_models_fit(model_roles(spec))
    except ModelLoadError as error:
        raise DatasetError(str(error)) from None


def model_roles(spec: GenerationSpec) -> dict[str, str | None]:
    """{role: model spec} for the roles this run uses: no critic without a chain, no judge without RLAIF."""
    return role_specs(spec.policy_model, spec.critic_model, spec.judge_model,
                      need_critic=spec.runs_chain, need_judge=spec.makes_rlaif or bool(rubric_judge_spec(spec)))


def rubric_judge_spec(spec: GenerationSpec) -> str | None:
    """The model that answers llm-rubric assertions for the constitution verifier: the judge model
    when one is named (never a stand-in: without one those assertions are skipped, not guessed)."""
    if spec.verifier == "constitution" and spec.samples_best_of_n and (spec.judge_model or "").strip():
        return spec.judge_model.strip()
    return None


def prompt_set_stem(source: str) -> str:
    """A prompt's ``source`` is its file's stem: "mine.csv" and a path to it both name "mine"."""
    path = Path(source.strip())
    return path.stem if path.suffix in (".txt", ".jsonl", ".csv") else path.name
