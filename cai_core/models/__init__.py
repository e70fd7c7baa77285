"""Models: the backend contract (``base``), the local transformers backend, OpenAI-compatible
endpoints, trained adapters, the bundled model, and ``load_model``, which turns a model name into
one of them.

The modules import downward only (base <- transformers, endpoint, adapters <- loading), so there
is no import circle; the names below are the ones the rest of the engine, the pages and scripts use.
"""

from .adapters import AdapterError, AdapterStack, adapter_stack, content_key, export_merged, find_adapter
from .base import (
    DEFAULT_MODEL,
    MAX_SEED,
    Generation,
    GenerationBackend,
    GenerationSettings,
    LogprobsUnavailable,
    ModelLoadError,
    Seed,
    default_model_spec,
    is_endpoint_spec,
    resolve_model_path,
)
from .endpoint import EndpointError, OpenAIEndpointBackend, load_endpoint
from .loading import load_model
from .transformers import TransformersBackend, pick_device

__all__ = [
    "DEFAULT_MODEL",
    "MAX_SEED",
    "AdapterError",
    "AdapterStack",
    "EndpointError",
    "Generation",
    "GenerationBackend",
    "GenerationSettings",
    "LogprobsUnavailable",
    "ModelLoadError",
    "OpenAIEndpointBackend",
    "Seed",
    "TransformersBackend",
    "adapter_stack",
    "content_key",
    "default_model_spec",
    "export_merged",
    "find_adapter",
    "is_endpoint_spec",
    "load_endpoint",
    "load_model",
    "pick_device",
    "resolve_model_path",
]
