"""Where Constitution Studio keeps the user's files.

Everything a user makes lives under one directory so that it can be backed up, moved or wiped
as a unit. ``CAI_HOME`` overrides it, which is also how tests point the app at a temp folder.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONSTITUTIONS_DIR = REPO_ROOT / "constitutions"
SHIPPED_PROMPTS_DIR = REPO_ROOT / "prompts"
SHIPPED_RECIPES_DIR = REPO_ROOT / "recipes"


def cai_home() -> Path:
    """The user data directory (``$CAI_HOME``, default ``~/.cache/cai-studio``)."""
    configured = os.environ.get("CAI_HOME")
    home = Path(configured).expanduser() if configured else Path.home() / ".cache" / "cai-studio"
    return home


def user_constitutions_dir() -> Path:
    return cai_home() / "constitutions"


def models_cache_dir() -> Path:
    return cai_home() / "models"


def user_recipes_dir() -> Path:
    return cai_home() / "recipes"


def is_explicit_path(text: str | os.PathLike) -> bool:
    """Whether ``text`` names a file rather than something in the store, by its shape alone.

    Names (constitutions, prompt sets, recipes, datasets) resolve in ``$CAI_HOME`` and then among
    the shipped files, never in the current directory: a stray ``general-hhh`` or ``README.md``
    where the command runs must not stand in for a name. So a string is a path only when it
    cannot be a name: it holds a path separator (``./mine.yaml``, ``data/run1``, ``/abs/file``)
    or starts with ``.`` or ``~``. A bare ``mine.yaml`` is a name; write ``./mine.yaml`` for the
    file in this folder. A ``pathlib.Path`` is always a path: code that built one meant a file.
    """
    if isinstance(text, os.PathLike):
        return True
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return any(sep in text for sep in separators) or text.startswith((".", "~"))
