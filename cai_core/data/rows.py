"""The files of a dataset folder and the shape of each file's rows.

Files on disk may have been edited by hand or written by another tool; a reader that shows them
checks each row's shape first, so one odd row is reported by its line rather than breaking a page.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..chain import ChainStep

SFT_FILE, TRACES_FILE = "sft.jsonl", "traces.jsonl"
REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, JUDGEMENTS_FILE = "prefs_revision.jsonl", "prefs_rlaif.jsonl", "judgements.jsonl"
BEST_OF_N_PAIRS_FILE, SAMPLES_FILE = "prefs_best_of_n.jsonl", "samples.jsonl"
DONE_FILE, PROMPTS_FILE, CONSTITUTION_FILE = "done.jsonl", "prompts.jsonl", "constitution.yaml"
ROW_FILES = (SFT_FILE, TRACES_FILE, REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, JUDGEMENTS_FILE, BEST_OF_N_PAIRS_FILE,
             SAMPLES_FILE)
TRAINING_FILES = (SFT_FILE, REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, BEST_OF_N_PAIRS_FILE)


class _Row(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    category: str = ""
    principles: list[str] = Field(default_factory=list)


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str


class _SftRow(_Row):
    messages: list[_Message] = Field(min_length=1)


class _TraceRow(_Row):
    prompt: str
    initial: str
    steps: list[ChainStep]  # pydantic checks the chain's own dataclass
    final: str
    warnings: list[str] = Field(default_factory=list)


class _JudgeRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = ""
    method: str = ""
    orders_disagree: bool
    per_principle: list[dict] = Field(default_factory=list)


class _PairJudge(_JudgeRecord):
    p_chosen_shown_first: float
    p_chosen_shown_second: float


class _PairRow(_Row):
    prompt: list[_Message] = Field(min_length=1)
    chosen: list[_Message] = Field(min_length=1)
    rejected: list[_Message] = Field(min_length=1)
    label: float | None = None
    label_raw: float | None = None
    judge: _PairJudge | None = None


class _JudgementRow(_Row):
    prompt: str = ""
    confidence: float
    kept: bool
    answer_1: str = ""
    answer_2: str = ""
    p_answer_1: float = 0.5
    chosen_is_answer_1: bool = True
    judge: _PairJudge


class _PromptRow(_Row):
    prompt: str


class _Sample(BaseModel):
    model_config = ConfigDict(extra="allow")

    answer: str
    refused: bool
    passes: bool


class _SamplesRow(_Row):
    prompt: str
    should_refuse: bool
    samples: list[_Sample] = Field(min_length=1)


class _DoneRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str


ROW_SHAPES: dict[str, type[BaseModel]] = {
    SFT_FILE: _SftRow, TRACES_FILE: _TraceRow, REVISION_PAIRS_FILE: _PairRow, RLAIF_PAIRS_FILE: _PairRow,
    JUDGEMENTS_FILE: _JudgementRow, PROMPTS_FILE: _PromptRow, DONE_FILE: _DoneRow,
    BEST_OF_N_PAIRS_FILE: _PairRow, SAMPLES_FILE: _SamplesRow,
}


def read_checked_rows(path: Path) -> tuple[list[dict], list[int]]:
    """The rows of one of the dataset's files that have the shape that file's rows must have
    (missing optional fields filled in), and the line numbers of those that do not."""
    path = Path(path)
    shape = ROW_SHAPES[path.name]
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    rows, bad = [], []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(shape.model_validate(json.loads(line)).model_dump())
        except (json.JSONDecodeError, RecursionError, ValidationError):
            if number < len(lines) or text.endswith("\n"):  # a last line still being written is not an error
                bad.append(number)
    return rows, bad


def pair_prompt(row: dict, prompts: dict[str, str]) -> str:
    """The user turn of a pair's prompt (the prompt file's text for rows that carry only an id)."""
    turns = row.get("prompt")
    if isinstance(turns, list):
        users = [t.get("content", "") for t in turns if t.get("role") == "user"]
        if users:
            return users[-1]
    return prompts.get(row.get("id"), "")


def best_of_n_reason(row: dict, samples: dict[str, dict]) -> str:
    """Why a best-of-N pair's chosen answer is the better one, under the verifier that scored it."""
    verifier = row.get("verifier")
    if isinstance(verifier, dict):  # the constitution verifier names what the rejected answer failed
        failed = [str(name) for name in verifier.get("rejected_failed") or []]
        return ("the chosen answer passes every assertion; the rejected one fails "
                + ("; ".join(failed) if failed else str(verifier.get("rejected") or "one")))
    sampled = samples.get(row.get("id"))
    if sampled is None:
        return "chosen passes the refusal rule, rejected fails it"
    if sampled.get("should_refuse"):
        return "this prompt should be declined: the chosen answer declines, the rejected one does not"
    return "this prompt should be answered: the chosen answer does, the rejected one declines"
