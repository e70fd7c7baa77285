"""The generation backend contract, its settings and errors, and what a model name means.

The contract is small on purpose: a batch of chat conversations and settings in, texts out
(``generate``), plus optional token streaming for one conversation and option log-probabilities
for the judge. The chain, the judge and the evaluation import only this module, never a backend,
so they never know whether they talk to local transformers or an HTTP endpoint; and nothing here
imports torch or transformers, so the CLI's help and the forms stay instant.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Iterator, Sequence

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..errors import CaiError

DEFAULT_MODEL = "default"
_HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")


def default_model_spec() -> str:
    """The model the app and CLI use unless told otherwise (``$CAI_MODEL``, else the bundled one)."""
    return os.environ.get("CAI_MODEL", "").strip() or DEFAULT_MODEL


class ModelLoadError(CaiError):
    """A model that cannot be loaded; the message is one sentence for the user."""


class LogprobsUnavailable(CaiError):
    """The backend cannot report next-token log-probabilities (e.g. an endpoint that omits them)."""


# numpy takes seeds below 2**32 (transformers' set_seed and lm-eval seed it), and stages add small
# offsets to a run's seed, so a seed is kept well below that: it fails here, not minutes into a job.
MAX_SEED = 2**31 - 1


def _seed_in_range(value: int) -> int:
    if value > MAX_SEED:
        raise ValueError(f"must be at most {MAX_SEED} (numpy and torch take seeds below 2**32)")
    return value


Seed = Annotated[int, Field(ge=0), AfterValidator(_seed_in_range)]


class GenerationSettings(BaseModel):
    """How to sample. ``temperature == 0`` means greedy decoding (deterministic)."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(default=192, ge=1, le=8192, description="the longest answer, in tokens")
    temperature: float = Field(default=0.7, ge=0.0, le=5.0, description="sampling temperature; 0 decodes greedily")
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, description="nucleus sampling: draw from the smallest set of "
                         "tokens whose probabilities add up to this")
    # Above 1, tokens the answer already used become less likely (as in CTRL, over the new tokens
    # only, so the model may still quote the prompt). Small models loop without it; 1.0 is off.
    repetition_penalty: float = Field(default=1.1, ge=1.0, le=2.0, description=(
        "above 1 makes tokens the answer already used less likely; 1.0 turns it off (small models loop without it)"))
    seed: Seed = Field(default=0, description="seed for sampling")
    # Chunk size for batched generation: bigger is faster until memory or padding waste bites.
    batch_size: int = Field(default=16, ge=1, le=1024, description=(
        "conversations generated together on a local model (an endpoint batches on its own)"))
    # An endpoint (cai_core.models.endpoint) sends this many requests at once and lets the server batch
    # them; a local model ignores it.
    concurrency: int | None = Field(default=None, ge=1, le=256, description=(
        "requests in flight at once to an endpoint (default 8; a local model ignores it)"))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Generation:
    """One completion, with what a trace needs to account for it."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    warning: str | None = None
    token_ids: list[int] = field(default_factory=list)


class GenerationBackend(ABC):
    """Batch of chat conversations + settings -> texts. Implement ``generate``; the rest is optional."""

    model_id: str = "unknown"
    device: str = "cpu"
    # True when ``generate`` accepts ``on_text`` and reports text while it is being written.
    reports_partial_text: bool = False

    @abstractmethod
    def generate(self, conversations: list[list[dict]], settings: GenerationSettings) -> list[Generation]:
        """One Generation per conversation, in the order given."""

    def stream(self, conversation: list[dict], settings: GenerationSettings) -> Iterator[str]:
        """Yield pieces of text as they are made; the default yields the whole answer at once."""
        yield self.generate([conversation], settings)[0].text

    def option_logprobs(self, conversations: list[list[dict]], options: Sequence[str],
                        answer_prefix: str = "", batch_size: int = 16) -> list[dict[str, float]]:
        """For each conversation, the log-probability of each option being the assistant's next
        token, right after its turn begins with ``answer_prefix``: one forward pass, no sampling.

        An option the backend saw no probability for is ``-inf``. Raises LogprobsUnavailable when
        the backend cannot report log-probabilities at all (the judge then says so and falls back).
        """
        raise LogprobsUnavailable(f"{self.describe()} does not report token log-probabilities")

    def describe(self) -> str:
        return f"{self.model_id} on {self.device}"

    def setting_notes(self, settings: GenerationSettings) -> list[str]:
        """One line for each setting this backend treats otherwise than a local model, said when a
        run starts (an endpoint batches on its own, for one)."""
        return []



def resolve_model_path(model: str) -> tuple[str, str]:
    """(what to pass to from_pretrained, a display id) for "default", a local folder or a hub id."""
    model = (model or "").strip()
    if model in ("", DEFAULT_MODEL):
        # Imported here, not at the top, so `python -m cai_core.models.bundled` runs a module
        # the package has not already imported.
        from .bundled import BUNDLED_MODEL_ID, BundledModelError, bundled_model_dir

        try:
            return str(bundled_model_dir()), BUNDLED_MODEL_ID
        except BundledModelError as error:
            raise ModelLoadError(str(error)) from None
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"model path {model!r} is a file; give the folder that holds config.json")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"model folder {model!r} has no config.json, so it is not a transformers model folder")
        return str(path), path.name
    if not _HUB_ID_PATTERN.match(model) or model.count("/") > 1:
        raise ModelLoadError(f"model {model!r} is neither an existing local folder nor a Hugging Face model id like 'org/name'")
    return model, model


def is_endpoint_spec(model: str) -> bool:
    """An OpenAI-compatible endpoint is named by its URL: ``http://host:port/v1[#model-name]``."""
    return (model or "").strip().lower().startswith(("http://", "https://"))

