"""Constitution Studio's engine: constitutions, models, chains. Never imports streamlit.

The names below are the stable API for scripts and tests.
"""

from .chain import ChainEvent, ChainStep, Trace, run_chain
from .constitution import Constitution, ConstitutionError, Principle
from .lint import LintWarning, lint_constitution
from .models import GenerationBackend, GenerationSettings, ModelLoadError, TransformersBackend, load_model
from .store import (
    export_constitution,
    import_constitution,
    list_constitutions,
    load_constitution,
    parse_constitution,
    save_constitution,
)

__all__ = [
    "ChainEvent",
    "ChainStep",
    "Constitution",
    "ConstitutionError",
    "GenerationBackend",
    "GenerationSettings",
    "LintWarning",
    "ModelLoadError",
    "Principle",
    "Trace",
    "TransformersBackend",
    "export_constitution",
    "import_constitution",
    "lint_constitution",
    "list_constitutions",
    "load_constitution",
    "load_model",
    "parse_constitution",
    "run_chain",
    "save_constitution",
]
