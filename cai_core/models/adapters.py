"""Trained LoRA adapters as models: find them, load them merged into their base, export them.

An adapter is a standard PEFT folder (``adapter_config.json`` + ``adapter_model.safetensors``), so
``PeftModel.from_pretrained(base, folder)`` loads it anywhere. Beside it, ``cai_adapter.json``
records what the adapter was trained on top of: the base model and any adapters merged into it
first (DPO trains on base + merged SFT adapter). Loading an adapter here rebuilds that whole
stack, so a DPO adapter is never applied to a model it was not trained on.

Anywhere a model is asked for, a finished run's folder or an adapter folder may be given.
"""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import CaiError
from ..jobs import read_json
from .base import is_endpoint_spec, resolve_model_path

ADAPTER_DIR = "adapter"
ADAPTER_CONFIG = "adapter_config.json"
STACK_FILE = "cai_adapter.json"


class AdapterError(CaiError):
    """An adapter that cannot be found or used; the message is one sentence."""


@dataclass(frozen=True)
class AdapterStack:
    """A base model and the adapters merged into it, in order (the last is the one asked for)."""

    base_model: str
    adapters: tuple[Path, ...]

    @property
    def label(self) -> str:
        return " + ".join([Path(self.base_model).name or self.base_model, *map(adapter_name, self.adapters)])


def adapter_name(adapter: Path) -> str:
    """A run's adapter is called by its run's name."""
    return adapter.parent.name if adapter.name == ADAPTER_DIR else adapter.name


def find_adapter(spec: str | Path) -> Path | None:
    """The adapter folder ``spec`` names (an adapter folder, or a run folder holding one), else None."""
    text = str(spec).strip()
    if not text or text.lower().startswith(("http://", "https://")):
        return None
    path = Path(text).expanduser()
    for candidate in (path, path / ADAPTER_DIR):
        if (candidate / ADAPTER_CONFIG).is_file():
            return candidate.resolve()
    return None


def adapter_stack(spec: str | Path) -> AdapterStack | None:
    """What loading ``spec`` means when it names an adapter; None when it names a plain model."""
    adapter = find_adapter(spec)
    if adapter is None:
        folder = Path(str(spec).strip()).expanduser()
        if (folder / "spec.json").is_file() and not (folder / "config.json").is_file():
            raise AdapterError(f"run {folder.name!r} has no trained adapter yet (it has not finished, or its "
                               "adapter folder was deleted), so it cannot be used as a model")
        return None
    recorded = read_json(adapter / STACK_FILE)
    if recorded is None:  # an adapter made elsewhere: trust its own config for the base
        config = read_json(adapter / ADAPTER_CONFIG) or {}
        base = config.get("base_model_name_or_path")
        if not isinstance(base, str) or not base:
            raise AdapterError(f"adapter {adapter} does not say which base model it belongs to "
                               "(no base_model_name_or_path in adapter_config.json)")
        return AdapterStack(base, (adapter,))
    earlier = [Path(p) for p in recorded.get("merged_first", [])]
    for path in earlier:
        if not (path / ADAPTER_CONFIG).is_file():
            raise AdapterError(f"adapter {adapter} was trained on top of {path}, which no longer holds an adapter")
    return AdapterStack(str(recorded.get("base_model") or "default"), (*earlier, adapter))


def write_stack_record(adapter: Path, started_from: AdapterStack | None, base_model: str, run: dict) -> None:
    """Record, beside a new adapter, the stack it was trained on (read back by adapter_stack)."""
    record = {
        "base_model": started_from.base_model if started_from else base_model,
        "merged_first": [str(p) for p in started_from.adapters] if started_from else [],
        **run,
    }
    write_text_atomic(adapter / STACK_FILE, json.dumps(record, indent=2) + "\n")


def load_merged(spec: str, dtype, trust_remote_code: bool = False):
    """(network, tokenizer, label) for a plain model or an adapter stack, adapters merged in.

    Merging makes generation as fast as the base model's and leaves one plain model in memory.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stack = adapter_stack(spec)
    base_spec = stack.base_model if stack else spec
    source, model_id = resolve_model_path(base_spec)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    network = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, use_safetensors=True,
                                                   trust_remote_code=trust_remote_code)
    if stack:
        from peft import PeftModel

        for adapter in stack.adapters:
            network = PeftModel.from_pretrained(network, str(adapter)).merge_and_unload()
        model_id = " + ".join([model_id, *map(adapter_name, stack.adapters)])
    return network, tokenizer, model_id


def export_merged(spec: str, out_dir: str | Path) -> Path:
    """Write base + adapters merged as a plain safetensors model folder any tool can load."""
    import torch

    out_dir = Path(out_dir).expanduser()
    # An empty folder (made beforehand with mkdir) is replaced by the rename below; anything else
    # there is the user's and is never written over.
    if out_dir.is_symlink() or (out_dir.exists() and not (out_dir.is_dir() and not any(out_dir.iterdir()))):
        raise AdapterError(f"{out_dir} already exists and is not an empty folder, so it was left as it is; "
                           "choose a new or empty folder for the merged model")
    if adapter_stack(spec) is None:
        raise AdapterError(f"{spec} is not a finished run or an adapter folder, so there is nothing to merge")
    network, tokenizer, _ = load_merged(spec, torch.float32)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        network.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        # The folder appears complete or not at all; rename replaces an empty folder only, so
        # files put there during the merge make it fail rather than vanish.
        try:
            staging.rename(out_dir)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise
            raise AdapterError(f"{out_dir} was filled while the model was merged, so it was left as it is; "
                               "choose a new or empty folder for the merged model") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def content_key(spec: str | Path) -> str:
    """A short key that changes whenever the weights ``spec`` loads change, for caches of loaded or
    merged models.

    A run's name is not enough: a run deleted and trained again under its name has other weights.
    The key covers the files of every adapter in the stack and of a local base model folder, by
    size, modification time and inode (a retrained adapter is a new folder renamed into place, so
    all three change), which costs a few ``stat`` calls rather than hashing gigabytes on every page
    rerun. A hub id or endpoint adds nothing of its own; a spec that cannot be read gives an empty
    key and its load says why.
    """
    import hashlib

    if is_endpoint_spec(str(spec)):
        return ""
    try:
        stack = adapter_stack(spec)
    except (AdapterError, OSError):
        return ""
    folders = list(stack.adapters) if stack else []
    base = Path(str(stack.base_model if stack else spec).strip()).expanduser()
    if base.is_dir():
        folders.insert(0, base)
    if not folders:
        return ""
    digest = hashlib.sha256()
    for folder in folders:
        digest.update(str(folder.resolve()).encode() + b"\0")
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            entries = []
        for entry in entries:
            try:
                info = entry.stat()
            except OSError:
                continue
            if entry.is_file():
                digest.update(f"{entry.name}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}\0".encode())
    return digest.hexdigest()[:16]
