"""What a training run does: one validated spec per run, read from a commented YAML recipe.

A recipe holds the settings both methods share at its top level and a section per method::

    base_model: default
    lora: {r: 16, alpha: 32}
    sft: {learning_rate: 2.0e-4, max_steps: 60}
    dpo: {learning_rate: 5.0e-5, beta: 0.1}

``load_recipe(path, "dpo")`` merges the top level with the ``dpo`` section into a TrainingSpec.
Every bad value becomes one sentence naming the file and the line, as a constitution's do.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import CaiError
from ..constitution import ConstitutionError, first_error_message
from ..models import Seed
from ..paths import SHIPPED_RECIPES_DIR, is_explicit_path, user_recipes_dir
from ..textfiles import child_node, decode_text, line_of, parse_yaml

METHODS = ("sft", "dpo")
MAX_RECIPE_BYTES = 200_000
RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")


class RecipeError(CaiError):
    """A recipe or run spec that cannot be used; ``str()`` is one sentence with file and line."""


class LoraSettings(BaseModel):
    """The LoRA adapter trained on top of the (frozen) starting model."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1, le=1024, description="rank of the update matrices")
    alpha: int = Field(default=32, ge=1, le=4096, description="scale: the update is multiplied by alpha / r")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="dropout on the adapter's input during training")
    # "all-linear" (PEFT's shorthand for every linear layer but the output head), or module names.
    target_modules: str | list[str] = Field(default="all-linear", description=(
        "all-linear (every linear layer but the output head) or module names such as [q_proj, v_proj]"))

    @field_validator("target_modules")
    @classmethod
    def _known_shape(cls, value):
        if isinstance(value, list) and (not value or not all(isinstance(v, str) and v.strip() for v in value)):
            raise ValueError("must be 'all-linear' or a non-empty list of module names such as [q_proj, v_proj]")
        if isinstance(value, str) and value != "all-linear":
            raise ValueError("must be 'all-linear' or a list of module names such as [q_proj, v_proj]")
        return value


class TrainingSpec(BaseModel):
    """Everything one run needs, stored in the run's spec.json; a resume reads it back unchanged."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["sft", "dpo"] = Field(description="sft (supervised fine-tuning) or dpo (preference pairs)")
    # "default" (the bundled model), a model folder, a hub id, or a finished run / adapter folder:
    # an adapter is merged into its base before a fresh LoRA goes on top (DPO after SFT).
    base_model: str = Field(default="default", description=(
        '"default", a model folder, a hub id, or a finished run (its adapter is merged in first)'))
    # Dataset names from the Data page, or .jsonl files (SFT: messages, or prompt + completion;
    # DPO: prompt + chosen + rejected).
    data: list[str] = Field(default_factory=list, description="dataset names from `cai datasets`, or .jsonl files")
    # Which preference pairs of a dataset DPO trains on: the AI-judged ones, the revision ones, the
    # best-of-N ones (refusal rule), or any mix.
    pairs: list[Literal["rlaif", "revision", "best_of_n"]] = Field(default=["rlaif", "revision", "best_of_n"], min_length=1,
                                                                   description="which of a dataset's pairs DPO trains on")
    limit: int | None = Field(default=None, ge=1, description="use at most this many rows (quick runs)")
    lora: LoraSettings = Field(default_factory=LoraSettings)

    learning_rate: float = Field(default=2e-4, gt=0.0, le=1.0, description="the optimiser's step size")
    num_epochs: float = Field(default=1.0, gt=0.0, le=1000.0, description="passes over the data")
    # When set, the run stops after this many optimiser steps whatever num_epochs says.
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many optimiser steps, whatever num_epochs says")
    batch_size: int = Field(default=4, ge=1, le=4096, description="rows per device per forward pass")
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=4096, description="forward passes per optimiser step")
    max_length: int = Field(default=512, ge=16, le=131072, description="tokens per row (DPO: prompt + answer)")
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0, description="share of the steps the learning rate rises over")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        default="linear", description="how the learning rate changes over the run")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, description="AdamW weight decay")
    max_grad_norm: float = Field(default=1.0, gt=0.0, description="gradients are clipped to this norm")
    gradient_checkpointing: bool = Field(default=False, description="recompute activations to save memory (slower)")
    seed: Seed = Field(default=0, description="seed for the data order and the adapter's initial weights")

    # DPO: strength of the pull towards the reference (smaller lets the policy move further).
    beta: float = Field(default=0.1, gt=0.0, le=10.0, description=(
        "DPO: strength of the pull towards the reference (smaller lets the policy move further)"))
    # DPO: score every pair under the reference once before training instead of at every step.
    precompute_ref_log_probs: bool = Field(default=False, description=(
        "DPO: score every pair under the reference once before training"))

    save_steps: int = Field(default=20, ge=1, description="a checkpoint every this many steps")
    logging_steps: int = Field(default=1, ge=1, description="a loss point every this many steps")
    keep_checkpoints: int = Field(default=2, ge=1, le=100, description="checkpoints kept; older ones are deleted")
    precision: Literal["auto", "fp32", "bf16"] = Field(default="auto", description=(
        "auto: bf16 on a GPU, float32 on a CPU"))

    # More than one process: the runner goes through `accelerate launch` (DDP by default, or the
    # FSDP / DeepSpeed set-up in accelerate_config).
    num_processes: int = Field(default=1, ge=1, le=1024, description="processes (GPUs); more than one goes through accelerate")
    accelerate_config: str | None = Field(default=None, description="an accelerate config file (FSDP or DeepSpeed)")

    @field_validator("data")
    @classmethod
    def _non_empty_entries(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value]
        if any(not v for v in cleaned):
            raise ValueError("must not hold an empty name")
        return cleaned

    @field_validator("base_model")
    @classmethod
    def _base_model_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a model: 'default', a model folder, a hub id or a finished run")
        return value.strip()

    @field_validator("num_processes")
    @classmethod
    def _fits_this_machine(cls, value: int) -> int:
        if value > 1:
            available, what = available_devices()
            if value > available:
                raise ValueError(f"is {value}, but this machine has {available} {what} (one process runs on each)")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> "TrainingSpec":
        if self.accelerate_config is not None and self.num_processes == 1:
            raise ValueError("accelerate_config is used only with num_processes above 1")
        return self

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps * self.num_processes


def available_devices() -> tuple[int, str]:
    """How many training processes this machine can run side by side: one per GPU, else one per CPU core."""
    import os

    import torch  # only asked when a spec wants several processes

    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        return count, "GPU" if count == 1 else "GPUs"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores, "CPU core" if cores == 1 else "CPU cores"


def check_run_name(name: str, what: str = "run") -> str:
    """A job's name (a run, an evaluation, a loop, a recipe: ``what`` says which, for the message)."""
    name = (name or "").strip()
    if not RUN_NAME_PATTERN.match(name):
        raise RecipeError(f"{what} name {name!r} must start with a letter or digit and use only letters, digits, "
                          "'_', '-' and '.', at most 80 characters")
    return name


def parse_spec(data: dict, source: str = "run spec") -> TrainingSpec:
    """A TrainingSpec from plain data (spec.json, the page's form), or one RecipeError sentence."""
    try:
        return TrainingSpec.model_validate(data)
    except ValidationError as error:
        message, _ = first_error_message(error)
        raise RecipeError(message, source) from None


def parse_recipe(text: str, method: str, source: str = "recipe", overrides: dict[str, Any] | None = None) -> TrainingSpec:
    """The spec for ``method`` from a recipe's text: top level, then its section, then overrides."""
    if method not in METHODS:
        raise RecipeError(f"method must be one of {', '.join(METHODS)}, not {method!r}", source)
    try:
        data, root = parse_yaml(text, source)
    except ConstitutionError as error:
        raise RecipeError(error.message, error.path, error.line) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError("must be a mapping of settings (key: value lines)", source, line_of(root, ()))
    shared = {k: v for k, v in data.items() if k not in METHODS}
    section = data.get(method) or {}
    if not isinstance(section, dict):
        raise RecipeError(f"the {method!r} section must be a mapping of settings", source, line_of(root, (method,)))
    declared = shared.get("method")
    if declared is not None and declared != method:
        raise RecipeError(f"this recipe is for {declared!r}, not {method!r}", source, line_of(root, ("method",)))
    merged = {**shared, **section, "method": method}
    if isinstance(shared.get("lora"), dict) and isinstance(section.get("lora"), dict):
        merged["lora"] = {**shared["lora"], **section["lora"]}
    for key, value in (overrides or {}).items():
        if key == "lora" and isinstance(value, dict) and isinstance(merged.get("lora"), dict):
            merged["lora"] = {**merged["lora"], **value}
        else:
            merged[key] = value
    try:
        return TrainingSpec.model_validate(merged)
    except ValidationError as error:
        message, location = first_error_message(error)
        key = location[0] if location else None
        if key in (overrides or {}):
            line = None  # the value came from the command line or the page, not the file
        elif key in section and (len(location) < 2 or not isinstance(section[key], dict) or location[1] in section[key]):
            line = line_of(child_node(root, method), location)
        else:
            line = line_of(root, location) if location else None
        raise RecipeError(message, source, line) from None


def resolve_recipe(path_or_name: str | Path) -> Path:
    """The file for a recipe name (the user's saved recipes first, then the shipped ones) or a path.

    As with constitutions, a name never reads the current directory, and only what is clearly a
    path is read as one (see ``paths.is_explicit_path``): ``cpu-demo`` and ``cpu-demo.yaml`` are
    the shipped recipe, ``recipes/cpu-demo.yaml`` and ``./mine.yaml`` are files. A name is found
    exactly as ``save_recipe`` stores it, so whatever it accepts loads by the same name.
    """
    if is_explicit_path(path_or_name):
        return Path(path_or_name).expanduser()
    text = str(path_or_name).strip()
    name = text.removesuffix(".yaml")
    if name:
        for folder in (user_recipes_dir(), SHIPPED_RECIPES_DIR):
            if (folder / f"{name}.yaml").is_file():
                return folder / f"{name}.yaml"
    known = ", ".join(path.stem for path in list_recipes()) or "none"
    hint = f"; a file is given by its path, such as ./{text}" if text else ""
    raise RecipeError(f"there is no recipe named {text!r} among yours or the shipped ones ({known}){hint}")


def load_recipe(path: str | Path, method: str, overrides: dict[str, Any] | None = None) -> TrainingSpec:
    """The ``method`` spec from a recipe named or given by path (see ``resolve_recipe``)."""
    path = resolve_recipe(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecipeError("no such recipe file", str(path)) from None
    except OSError as error:
        raise RecipeError(f"cannot be read ({error.strerror})", str(path)) from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(f"is larger than {MAX_RECIPE_BYTES // 1000} kB, too large for a recipe", str(path))
    try:
        text = decode_text(raw, str(path), MAX_RECIPE_BYTES, "recipe")
    except ConstitutionError as error:
        raise RecipeError(error.message, error.path, error.line) from None
    return parse_recipe(text, method, str(path), overrides)


def recipe_text(spec: TrainingSpec) -> str:
    """A spec written back as a recipe (for a run folder, and the page's editor)."""
    import yaml

    data = spec.model_dump(exclude_defaults=False)
    method = data.pop("method")
    return f"# {method} run spec, written by Constitution Studio\n" + yaml.safe_dump(
        {**data, "method": method}, sort_keys=False, allow_unicode=True)


def list_recipes() -> list[Path]:
    """The shipped recipes, then the user's own (saved from the Training page)."""
    found = sorted(SHIPPED_RECIPES_DIR.glob("*.yaml"))
    if user_recipes_dir().is_dir():
        found += sorted(user_recipes_dir().glob("*.yaml"))
    return found


def save_recipe(name: str, text: str, method: str) -> Path:
    """Save an edited recipe under the user's folder after checking it reads as a ``method`` spec."""
    from ..atomic import write_text_atomic

    name = check_run_name(name.removesuffix(".yaml"), "recipe")
    path = user_recipes_dir() / f"{name}.yaml"
    parse_recipe(text, method, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text if text.endswith("\n") else text + "\n")
    return path


def planned_steps(spec: TrainingSpec, rows: int) -> str:
    """The optimiser steps a run of ``spec`` on ``rows`` rows will take, as a reader sees it:
    max_steps when set, else "≈ N" from the epochs over the rows, "—" with no rows."""
    import math

    if spec.max_steps:
        return str(spec.max_steps)
    if not rows:
        return "—"
    batches = math.ceil(rows / (spec.batch_size * spec.num_processes))
    return f"≈ {math.ceil(math.ceil(batches / spec.gradient_accumulation_steps) * spec.num_epochs)}"


def read_recipe_text(path: Path) -> str:
    """A recipe file's text, or "" when it cannot be read (the form then shows the parse error)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def recipe_label(path: Path) -> str:
    """A recipe as a list shows it: its name, and whether it is shipped or the user's own."""
    from ..paths import SHIPPED_RECIPES_DIR

    where = "shipped" if Path(path).parent == SHIPPED_RECIPES_DIR else "yours"
    return f"{Path(path).stem} ({where})"


def recipe_argument(path: Path) -> str:
    """The recipe as the command line names it: relative to the repository when shipped."""
    from ..paths import REPO_ROOT

    try:
        return str(Path(path).relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
