"""The errors a user can cause or meet, under one base.

Every ``CaiError`` carries one sentence for the user (``str(error)``): the file and line when there
is one, and what is wrong. The CLI and the pages catch ``CaiError`` (and ``OSError``, for a disk
that refuses a write) once and show that sentence; anything else is a bug and keeps its traceback.

Each domain keeps its own subclass beside the code that raises it, so the import paths people use
stay as they are:

    ConstitutionError   cai_core.constitution   a constitution file or name
    PromptFileError     cai_core.data.promptsets  a prompt set or file
    DatasetError        cai_core.errors         a dataset name or generation settings
    RecipeError         cai_core.training.spec  a recipe or training spec (TrainingDataError: its rows)
    TrainingError       cai_core.training.runs  a run that cannot start or go on
    JobError            cai_core.jobs           a job folder that cannot be started or read
    ModelLoadError      cai_core.models.base    a model that cannot be loaded (LogprobsUnavailable: no judge)
    EndpointError       cai_core.models.endpoint  an endpoint that did not answer
    AdapterError        cai_core.models.adapters  an adapter that cannot be found or used
    BundledModelError   cai_core.models.bundled   the bundled model is missing or broken
    EvaluationError     cai_core.evaluation     an evaluation that cannot run (SandboxUnavailable: no sandbox)
    LoopError           cai_core.evaluation.loop  a loop that cannot start or go on
    UsageError          cai_core.errors         command-line options that do not fit together

A stop that was asked for is not an error: ``ChainCancelled`` and ``JobCancelled`` derive from
``Cancelled`` instead.
"""

from __future__ import annotations


class CaiError(Exception):
    """Something the user can act on; ``str()`` is one sentence for the user, never a traceback.

    ``path`` and ``line`` say where, when known; ``str(error)`` already includes them, and
    ``message`` is the sentence without them.
    """

    def __init__(self, message: str = "", path: str | None = None, line: int | None = None):
        self.message, self.path, self.line = message, path, line
        where = ""
        if path:
            where = f"{path}, line {line}: " if line else f"{path}: "
        super().__init__(f"{where}{message}")


class DatasetError(CaiError):
    """A dataset name, folder or generation setting that cannot be used."""


class UsageError(CaiError):
    """Command-line options that are missing or do not fit together."""


class Cancelled(Exception):
    """A run stopped because someone asked it to; the message says where it stopped."""
