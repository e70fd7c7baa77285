"""``load_model``: what a model name means, turned into a backend.

A name is "default" (the bundled SmolLM2), a local folder, a Hugging Face hub id, a trained run or
adapter folder (loaded with its adapters merged into its base), or an OpenAI-compatible endpoint
URL. This is the one module that knows every backend; the rest of the engine asks for a
``GenerationBackend`` and never learns which one it got.
"""

from __future__ import annotations

from pathlib import Path

from .adapters import AdapterError, adapter_stack, load_merged
from .base import DEFAULT_MODEL, GenerationBackend, ModelLoadError, is_endpoint_spec, resolve_model_path
from .endpoint import load_endpoint
from .transformers import TransformersBackend, pick_device


def load_model(model: str = DEFAULT_MODEL, *, trust_remote_code: bool = False, device: str | None = None) -> GenerationBackend:
    """Load a model for generation: "default" (the bundled SmolLM2), a local folder, a hub id, or
    an OpenAI-compatible endpoint URL (see ``cai_core.models.endpoint``).

    Safetensors only (a pickle checkpoint can run code on load), and remote code only when asked.
    Any failure becomes one ModelLoadError sentence.
    """
    if is_endpoint_spec(model):
        return load_endpoint(model)
    try:
        stack = adapter_stack(model)
    except AdapterError as error:
        raise ModelLoadError(str(error)) from None
    if stack is not None:
        return _load_adapter_stack(model, stack.base_model, trust_remote_code, device)
    source, model_id = resolve_model_path(model)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a bar per load is noise in the CLI and logs
    except ImportError as error:  # pragma: no cover - broken install
        raise ModelLoadError(f"transformers could not be imported ({error}); run `make install`") from None

    if source == model_id and not Path(source).exists():
        _check_hub_reachable(model)
    chosen_device, dtype = pick_device()
    if device:
        chosen_device = device
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        network = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except Exception as error:  # noqa: BLE001 - every cause becomes one sentence
        raise ModelLoadError(_explain_load_failure(model, error)) from None
    return _backend(model, network, tokenizer, model_id, chosen_device)


def _load_adapter_stack(model: str, base_model: str, trust_remote_code: bool, device: str | None) -> GenerationBackend:
    """A trained run (or adapter folder) as a model: its base with every adapter merged in."""
    resolve_model_path(base_model)  # a missing base is one sentence, before any loading
    chosen_device, dtype = pick_device()
    try:
        network, tokenizer, model_id = load_merged(model, dtype, trust_remote_code)
    except Exception as error:  # noqa: BLE001 - every cause becomes one sentence
        raise ModelLoadError(_explain_load_failure(model, error)) from None
    return _backend(model, network, tokenizer, model_id, device or chosen_device)


def _backend(model: str, network, tokenizer, model_id: str, chosen_device: str) -> GenerationBackend:
    network.to(chosen_device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(tokenizer, "chat_template", None) is None:
        raise ModelLoadError(f"model {model!r} has no chat template, so it cannot hold a conversation; use an instruction-tuned model")
    max_context = int(getattr(network.config, "max_position_embeddings", 2048) or 2048)
    return TransformersBackend(network, tokenizer, model_id, chosen_device, max_context)


def _check_hub_reachable(model: str, timeout: float = 3.0) -> None:
    """Fail in seconds, not after a minute of retries, when the hub cannot be reached.

    A model already in the local Hugging Face cache, or offline mode, needs no network.
    """
    import os
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE or isinstance(try_to_load_from_cache(model, "config.json"), str):
        return
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        raise ModelLoadError(
            f"model {model!r} is not a local folder and the Hugging Face hub ({host}) cannot be reached; "
            "give a local folder or connect to the network"
        ) from None


def _explain_load_failure(model: str, error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    lowered = text.lower()
    if "safetensors" in lowered or "no file named model.safetensors" in lowered:
        return f"model {model!r} has no safetensors weights; only safetensors checkpoints are loaded"
    if "trust_remote_code" in lowered:
        return f"model {model!r} needs its own code to load; turn on trust_remote_code only if you trust its author"
    if any(word in lowered for word in ("connection", "resolve", "offline", "not a valid model identifier", "repository not found", "404", "couldn't connect", "cannot find the requested files")):
        return f"model {model!r} is not a local folder and could not be fetched from the Hugging Face hub (no such model, or no network)"
    return f"model {model!r} could not be loaded: {text[:200]}"
