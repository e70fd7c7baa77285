"""Which model plays which role (policy, critic, judge), and whether the local ones fit in memory together.

The policy writes the first answers (and the samples that RLAIF and best-of-N rank); the critic
writes each critique and each revision under the principle, so the revisions SFT learns from are
the critic's text; the judge picks between two answers. Without a critic the policy critiques
itself; without a judge the critic judges, else the policy.

Two or three local models held by one process can need more memory than the machine has; loading
them anyway swaps the machine to a crawl. So before anything is loaded, each local model's weights
are estimated from its safetensors headers (or its config) and the sum is compared with the memory
that is free; when it does not fit, the job is refused in one sentence. An endpoint costs nothing
here: with an endpoint critic the process holds only the policy.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from .models import DEFAULT_MODEL, GenerationBackend, ModelLoadError, is_endpoint_spec, load_model

# Set to a number of bytes (or "8G", "512M") to say how much memory the models may use, instead of
# what the machine reports free: for a machine shared with other work, and for tests.
AVAILABLE_MEMORY_VARIABLE = "CAI_MEMORY_AVAILABLE"
# Beyond the weights: activations, the KV cache of a batch, the tokenizer and the interpreter itself.
WORKING_ROOM_SHARE = 0.2
WORKING_ROOM_BYTES = 512 * 1024**2
_MAX_HEADER_BYTES = 100 * 1024**2  # a safetensors header this large is not one we trust to parse
_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
                "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


# What each role does, one sentence each, for the forms where a user picks the models.
ROLE_SENTENCES = {
    "policy": "The policy writes the first answer to each prompt, and it is the model that training changes.",
    "critic": ("The critic writes every critique and revision, the text SFT learns; leave it empty for "
               "self-critique, where the policy critiques its own answers."),
    "judge": "The judge picks the better of two answers for the RLAIF pairs; by default the critic judges, else the policy.",
}


class ModelsDoNotFit(ModelLoadError):
    """The local models of a job would not fit in memory together; the message is one sentence."""


@dataclass
class RoleModels:
    """The loaded backends. ``critic`` is None when the policy critiques itself; ``judge`` is None when
    no judge is needed. A model named for two roles is loaded once and shared."""

    policy: GenerationBackend
    critic: GenerationBackend | None = None
    judge: GenerationBackend | None = None

    @property
    def writer_of_revisions(self) -> GenerationBackend:
        return self.critic or self.policy


def role_specs(policy: str, critic: str | None = None, judge: str | None = None, *,
               need_critic: bool = True, need_judge: bool = True) -> dict[str, str | None]:
    """{role: model spec} with the defaults applied: no critic means self-critique (None); the judge
    defaults to the critic, else the policy. A critic named the same as the policy is no critic."""
    policy = (policy or DEFAULT_MODEL).strip()
    critic = (critic or "").strip() or None
    if critic == policy or not need_critic:
        critic = None
    judge = ((judge or "").strip() or critic or policy) if need_judge else None
    return {"policy": policy, "critic": critic, "judge": judge}


def load_roles(policy: str, critic: str | None = None, judge: str | None = None, *, need_critic: bool = True,
               need_judge: bool = True, available_bytes: int | None = None) -> RoleModels:
    """Check that the local models fit together, then load each named model once."""
    specs = role_specs(policy, critic, judge, need_critic=need_critic, need_judge=need_judge)
    check_models_fit(specs, available_bytes=available_bytes)
    loaded: dict[str, GenerationBackend] = {}

    def get(spec: str | None) -> GenerationBackend | None:
        if spec is None:
            return None
        if spec not in loaded:
            loaded[spec] = load_model(spec)
        return loaded[spec]

    return RoleModels(policy=get(specs["policy"]), critic=get(specs["critic"]), judge=get(specs["judge"]))


# --------------------------------------------------------------------------- memory


def check_models_fit(specs: dict[str, str | None], *, available_bytes: int | None = None,
                     device: str | None = None) -> None:
    """Refuse, in one sentence, local models whose weights (plus working room) exceed the free memory.

    Only applies when two or more distinct local models would be held at once: that is the case
    the roles create, and one model alone is what the user asked for. A model whose size cannot be
    read (a hub id not yet downloaded) counts as nothing rather than blocking the job.
    """
    by_model: dict[str, list[str]] = {}
    for role, spec in specs.items():
        if spec and not is_endpoint_spec(spec):
            by_model.setdefault(spec, []).append(role)
    if len(by_model) < 2:
        return
    device = device or _device()
    sizes = {spec: estimate_weight_bytes(spec, device) for spec in by_model}
    known = {spec: size for spec, size in sizes.items() if size}
    if not known:
        return
    needed = required_bytes(known.values())
    available = available_memory_bytes(device) if available_bytes is None else available_bytes
    if available is None or needed <= available:
        return
    parts = [f"the {' and '.join(by_model[spec])} model {spec!r} ({_gigabytes(size)})" for spec, size in known.items()]
    where = "free GPU memory" if device.startswith("cuda") else "free memory"
    raise ModelsDoNotFit(
        f"{_join(parts)} need about {_gigabytes(needed)} with working room, but only {_gigabytes(available)} of "
        f"{where} is available; give the critic (or judge) as an endpoint URL such as http://host:port/v1, "
        "pick a smaller model, or use one model for both roles")


def required_bytes(weight_sizes) -> int:
    """The memory a set of loaded models needs: their weights plus working room."""
    total = sum(weight_sizes)
    return int(total * (1 + WORKING_ROOM_SHARE)) + WORKING_ROOM_BYTES


def available_memory_bytes(device: str = "cpu") -> int | None:
    """Free memory for models: $CAI_MEMORY_AVAILABLE when set; free GPU memory on CUDA; else the
    RAM the system says can be used without swapping (psutil, else /proc/meminfo MemAvailable)."""
    told = os.environ.get(AVAILABLE_MEMORY_VARIABLE, "").strip()
    if told:
        match = _SIZE.match(told)
        if not match:
            raise ModelLoadError(f"{AVAILABLE_MEMORY_VARIABLE}={told!r} is not a size like 8000000000, 8G or 512M")
        scale = 1024 ** "bkmgt".index((match.group(2) or "b").lower())
        return int(float(match.group(1)) * scale)
    if device.startswith("cuda"):
        try:
            import torch

            return int(torch.cuda.mem_get_info()[0])
        except Exception:  # noqa: BLE001 - an unreadable figure means no check, not a failed job
            return None
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def estimate_weight_bytes(spec: str, device: str = "cpu") -> int | None:
    """The bytes a model's weights take once loaded on ``device`` (float32 on CPU, bf16 on CUDA, as
    ``load_model`` loads them); 0 for an endpoint; None when the size cannot be read cheaply."""
    if is_endpoint_spec(spec):
        return 0
    folder = _model_folder(spec)
    if folder is None:
        return None
    parameters = _parameters_from_safetensors(folder)
    if parameters is None:
        parameters = _parameters_from_config(folder / "config.json")
    if parameters is None:
        return None
    return parameters * (2 if device.startswith("cuda") else 4)


def _model_folder(spec: str) -> Path | None:
    """The local folder holding the model's weights (a finished run: its base model's), if any."""
    from .models.adapters import AdapterError, adapter_stack

    spec = spec.strip()
    try:
        stack = adapter_stack(spec)
    except AdapterError:
        return None
    if stack is not None:
        spec = stack.base_model
    if spec in ("", DEFAULT_MODEL):
        from .models.bundled import BundledModelError, bundled_model_dir

        try:
            return bundled_model_dir(convert=False)
        except BundledModelError:
            return None
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    try:  # a hub id already in the local cache
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(spec, "config.json")
    except Exception:  # noqa: BLE001 - not a hub id the cache knows
        return None
    return Path(config).parent if isinstance(config, str) else None


def _parameters_from_safetensors(folder: Path) -> int | None:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        try:
            with open(path, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                if length > _MAX_HEADER_BYTES:
                    return None
                header = json.loads(handle.read(length))
        except (OSError, struct.error, ValueError, RecursionError):
            return None
        if not isinstance(header, dict):
            return None
        for name, tensor in header.items():
            if name == "__metadata__" or not isinstance(tensor, dict):
                continue
            shape = tensor.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                return None
            total += math.prod(shape)
    return total


def _parameters_from_config(path: Path) -> int | None:
    """A decoder's parameter count from its config (an upper bound: full attention, untied heads)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
        vocab = int(config["vocab_size"])
        inner = int(config.get("intermediate_size") or 4 * hidden)
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return embeddings + layers * (4 * hidden * hidden + 3 * hidden * inner)


def _device() -> str:
    try:
        from .models import pick_device

        return pick_device()[0]
    except Exception:  # noqa: BLE001 - no torch: the CPU figure is the one that matters
        return "cpu"


def _gigabytes(size: int) -> str:
    return f"{size / 1024**3:.1f} GB" if size >= 1024**3 / 10 else f"{size / 1024**2:.0f} MB"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
