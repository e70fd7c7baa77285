"""An evaluation report: its shape, checked as a whole whenever a report is read, and its file.

A report is kept and compared in later sessions, so a file that is only right at the top (say a
suite whose items are numbers, or a model given as a bare string) would be saved once and then
break every comparison and page that reads it. The models below say what the pages, the CLI,
the tax and the harmlessness judge rely on; anything else a report holds (settings, per-item
details such as log-probabilities) is kept as it is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, model_validator

from ..atomic import write_text_atomic
from ..textfiles import TOO_DEEP, one_line
from .suites import EvaluationError

REPORT_FILE = "report.json"


def finite(default=...):
    """A strict, finite number: NaN or infinity in a score would make every average and chart meaningless."""
    return Field(default, allow_inf_nan=False, strict=True)


class ReportItem(BaseModel):
    """One scored item; which fields it has depends on its suite."""

    model_config = ConfigDict(extra="allow")

    # Items are matched across two reports by id, so it must be a plain value.
    id: StrictStr | StrictInt | None = None
    prompt: StrictStr | None = None
    question: StrictStr | None = None
    answer: StrictStr | None = None
    category: StrictStr | None = None
    subject: StrictStr | None = None
    status: StrictStr | None = None
    detail: StrictStr | None = None
    correct: StrictBool | None = None
    passed: StrictBool | None = None
    refused: StrictBool | None = None


class ReportSuite(BaseModel):
    model_config = ConfigDict(extra="allow")

    score: float = finite()
    name: StrictStr | None = None
    kind: StrictStr | None = None
    version: StrictStr | None = None
    metric: StrictStr | None = None
    higher_is_better: StrictBool = True
    ci_low: float | None = finite(None)
    ci_high: float | None = finite(None)
    n: StrictInt | None = Field(default=None, ge=0)
    items: list[ReportItem] = Field(default_factory=list)


class ReportModelInfo(BaseModel):
    """What was evaluated (cai_core.evaluation.run.model_description)."""

    model_config = ConfigDict(extra="allow")

    spec: StrictStr | None = None
    base_model: StrictStr | None = None
    adapters: list[StrictStr] = Field(default_factory=list)
    label: StrictStr | None = None


class EvaluationReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    suites: dict[StrictStr, ReportSuite]
    model: ReportModelInfo | None = None
    model_label: StrictStr | None = None
    report_version: StrictInt | None = None
    created: float | None = finite(None)
    settings: dict | None = None

    @model_validator(mode="after")
    def _refusal_items_can_be_judged(self) -> "EvaluationReport":
        # The harmlessness judge pairs the two reports' refusal answers by id and shows each prompt.
        refusal = self.suites.get("refusal")
        for index, item in enumerate(refusal.items if refusal else []):
            missing = [name for name in ("id", "prompt", "answer") if getattr(item, name) is None]
            if missing:
                raise ValueError(f"suite 'refusal' item {index + 1} has no {missing[0]!r}")
        return self


def report_problem(error: ValidationError) -> str:
    """The first problem pydantic found, as words that name the suite, the item and the field."""
    first = error.errors()[0]
    location = tuple(first.get("loc", ()))
    message = first.get("msg", "is not valid").removeprefix("Value error, ")
    message = re.sub(r"^Input should", "should", message)
    message = re.sub(r"a valid dictionary or instance of \w+", "a JSON object (a mapping)", message)
    if first.get("type") == "missing":
        message = "is missing"
    parts: list[str] = []
    rest = location
    if location[:1] == ("suites",) and len(location) > 1:
        parts.append(f"suite {location[1]!r}")
        rest = location[2:]
    for position, key in enumerate(rest):
        if isinstance(key, int) and position and rest[position - 1] == "items":
            parts[-1] = f"item {key + 1}"
        elif isinstance(key, int):
            parts.append(f"entry {key + 1}")
        elif key not in _UNION_BRANCHES:  # pydantic names the branch of a union it tried, not a key
            parts.append(repr(key))
    return f"{', '.join(parts)} {message}" if parts else message


_UNION_BRANCHES = {"str", "int", "float", "bool", "none"}


def check_report(data: object) -> EvaluationReport:
    """The report validated as a whole, or ValueError with one sentence (without the file's name)."""
    try:
        return EvaluationReport.model_validate(data)
    except ValidationError as error:
        raise ValueError(report_problem(error)) from None
    except RecursionError:
        raise ValueError("nests lists or mappings too deeply to be read") from None


def read_report(path: Path) -> dict:
    """A saved report, checked as a whole (report_model), or one EvaluationError sentence naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvaluationError(f"{path}: no such report") from None
    except (OSError, UnicodeDecodeError) as error:
        raise EvaluationError(f"{path}: cannot be read ({error})") from None
    except json.JSONDecodeError as error:
        raise EvaluationError(f"{path}, line {error.lineno}: is not valid JSON ({error.msg})") from None
    except RecursionError:
        raise EvaluationError(f"{path}: {TOO_DEEP}") from None
    except ValueError as error:  # JSON the decoder refuses beyond syntax, such as a number of 5,000 digits
        raise EvaluationError(f"{path}: is not valid JSON ({one_line(error)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("suites"), dict):
        raise EvaluationError(f"{path}: is not an evaluation report (no 'suites' object)")
    try:
        check_report(data)
    except ValueError as error:
        raise EvaluationError(f"{path}: {error}") from None
    return data


def check_report_path(path: Path, settings: dict) -> None:
    """Refuse, before any work, a report file that ``write_report`` would replace and should not.

    A file already at ``path`` is replaced only when it is this tool's report of the same
    evaluation (the same command run again, which resumes); any other file, a report of other
    settings included, is someone's result and is left alone.
    """
    path = Path(path)
    if path.is_dir():
        raise EvaluationError(f"{path} is a folder; give a file name for the report")
    if not path.exists():
        return
    try:
        existing = read_report(path)
    except EvaluationError:
        existing = None
    if existing is None or "report_version" not in existing:
        raise EvaluationError(f"{path} already exists and is not a report this tool wrote, so it was left as it is; "
                              "give a new file name for the report")
    if existing.get("settings") != settings:
        old = existing.get("settings") if isinstance(existing.get("settings"), dict) else {}
        changed = sorted(k for k in set(settings) | set(old) if settings.get(k) != old.get(k))
        raise EvaluationError(f"{path} holds the report of an evaluation with other settings ({', '.join(changed)}), "
                              "so it was left as it is; give a new file name, or move it away to replace it")


def write_report(path: Path, report: dict) -> None:
    write_text_atomic(Path(path), json.dumps(report, indent=2, ensure_ascii=False) + "\n")
