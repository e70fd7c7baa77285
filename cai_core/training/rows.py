"""The rows a run trains on: found, checked line by line, and put in the one shape TRL takes.

A run reads its data from datasets made on the Data page (by name) or from JSONL files. Every row
is checked before anything is launched, so a bad row is reported with its line number rather than
failing minutes into training, and the checked rows are copied into the run folder: a resume
trains on exactly the rows the run started with, whatever happens to the source files.

SFT rows become prompt/completion conversations, so the loss falls on the answer alone (TRL's
completion-only loss), not on the user's request. DPO rows become prompt/chosen/rejected.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data import BEST_OF_N_PAIRS_FILE, REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, SFT_FILE, datasets_dir
from ..paths import is_explicit_path
from ..textfiles import decode_text, parse_json_line
from ..constitution import ConstitutionError
from .spec import RecipeError, TrainingSpec

PAIR_FILES = {"rlaif": RLAIF_PAIRS_FILE, "revision": REVISION_PAIRS_FILE, "best_of_n": BEST_OF_N_PAIRS_FILE}
MAX_DATA_BYTES = 2_000_000_000
ROLES = ("system", "user", "assistant", "tool")
LINES_NAMED = 5  # bad lines listed by number before "and N more"


class TrainingDataError(RecipeError):
    """Training data that cannot be used; one sentence with the file and the lines."""


def data_files(spec: TrainingSpec) -> list[Path]:
    """The JSONL files ``spec.data`` names: dataset names resolve to that dataset's files.

    A bare entry is a dataset name in ``$CAI_HOME/datasets``, never something in the current
    directory (a dataset named ``docs`` is the dataset even beside a ``docs`` folder); only what
    is clearly a path (see ``paths.is_explicit_path``) is read as a file or dataset folder.
    """
    if not spec.data:
        raise TrainingDataError("no training data chosen: give a dataset name from the Data page or a .jsonl file")
    files: list[Path] = []
    for entry in spec.data:
        if is_explicit_path(entry):
            path = Path(entry).expanduser()
        else:
            path = datasets_dir() / entry.strip()
            if not entry.strip() or not path.is_dir():
                raise TrainingDataError(f"there is no dataset named {entry!r} (see `cai datasets`); "
                                        f"a file is given by its path, such as ./{entry}")
        if path.is_dir():
            wanted = [SFT_FILE] if spec.method == "sft" else [PAIR_FILES[p] for p in spec.pairs]
            # A dataset made without some source still has its (empty) file: skip it, not fail on it.
            present = [path / name for name in wanted if (path / name).is_file() and (path / name).stat().st_size]
            if not present:
                raise TrainingDataError(f"dataset {path.name!r} has no {' or '.join(wanted)}, so it holds no "
                                        f"{'SFT rows' if spec.method == 'sft' else 'preference pairs'}")
            files.extend(present)
        elif path.is_file():
            files.append(path)
        else:
            raise TrainingDataError(f"training data {entry!r} is neither a dataset name nor an existing file")
    return files


def _message(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a message like {{\"role\": \"user\", \"content\": \"...\"}}")
    role, content = value.get("role"), value.get("content")
    if role not in ROLES:
        raise ValueError(f"{what} has role {role!r}; expected one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise ValueError(f"{what} needs a text 'content'")
    return {"role": role, "content": content}


def _turns(value, what: str, default_role: str) -> list[dict]:
    """A string or a list of messages, as a list of messages."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"'{what}' is empty")
        return [{"role": default_role, "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError(f"'{what}' must be text or a non-empty list of messages")
    return [_message(item, f"'{what}' message {index + 1}") for index, item in enumerate(value)]


def _answer(value, what: str) -> list[dict]:
    turns = _turns(value, what, "assistant")
    if turns[-1]["role"] != "assistant" or not turns[-1]["content"].strip():
        raise ValueError(f"'{what}' must end with a non-empty assistant message")
    return turns


def sft_row(data: dict) -> dict:
    if "messages" in data:
        messages = _turns(data["messages"], "messages", "user")
        if len(messages) < 2 or messages[-1]["role"] != "assistant":
            raise ValueError("'messages' must hold a request and end with the assistant's answer")
        if not messages[-1]["content"].strip():
            raise ValueError("the assistant's answer in 'messages' is empty")
        return {"prompt": messages[:-1], "completion": messages[-1:]}
    if "prompt" in data and "completion" in data:
        return {"prompt": _turns(data["prompt"], "prompt", "user"), "completion": _answer(data["completion"], "completion")}
    raise ValueError("an SFT row needs 'messages', or 'prompt' and 'completion'")


def pair_row(data: dict) -> dict:
    missing = [key for key in ("prompt", "chosen", "rejected") if key not in data]
    if missing:
        raise ValueError(f"a preference pair needs 'prompt', 'chosen' and 'rejected' (missing {', '.join(missing)})")
    row = {"prompt": _turns(data["prompt"], "prompt", "user"), "chosen": _answer(data["chosen"], "chosen"),
           "rejected": _answer(data["rejected"], "rejected")}
    if row["chosen"] == row["rejected"]:
        raise ValueError("'chosen' and 'rejected' are the same answer, so the pair teaches nothing")
    return row


def read_training_file(path: Path, method: str) -> list[dict]:
    """Every row of one file in TRL's shape, or one sentence naming the bad lines."""
    shape = sft_row if method == "sft" else pair_row
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise TrainingDataError(f"cannot be read ({error.strerror})", str(path)) from None
    try:
        text = decode_text(raw, str(path), MAX_DATA_BYTES, "data file")
    except ConstitutionError as error:
        raise TrainingDataError(error.message, error.path, error.line) from None
    rows, problems = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = parse_json_line(line)
            if not isinstance(data, dict):
                raise ValueError("is not a JSON object")
            rows.append(shape(data))
        except json.JSONDecodeError as error:
            problems.append((number, f"is not valid JSON ({error.msg})"))
        except ValueError as error:
            problems.append((number, str(error)))
    if problems:
        number, reason = problems[0]
        lines = ", ".join(str(n) for n, _ in problems[:LINES_NAMED])
        more = f" and {len(problems) - LINES_NAMED} more" if len(problems) > LINES_NAMED else ""
        kind = "SFT" if method == "sft" else "DPO"
        raise TrainingDataError(f"{len(problems)} row(s) cannot be used for {kind} (line {lines}{more}); "
                                f"line {number}: {reason}", str(path))
    return rows


def training_rows(spec: TrainingSpec) -> list[dict]:
    """All rows of the run, checked, in file order, cut to ``spec.limit``."""
    rows: list[dict] = []
    for path in data_files(spec):
        rows.extend(read_training_file(path, spec.method))
    if not rows:
        raise TrainingDataError(f"the chosen data holds no rows to train on ({', '.join(spec.data)})")
    return rows[: spec.limit] if spec.limit else rows


def uploads_dir() -> Path:
    from ..paths import cai_home

    return cai_home() / "training-data"


def save_upload(file_name: str, data: bytes, method: str) -> Path:
    """Keep an uploaded JSONL file for training after checking every row; nothing is written if a row is bad.

    The file is stored under its own name; an upload with the same name and other content gets a
    numbered name rather than replacing the earlier one.
    """
    import hashlib
    import tempfile

    from ..atomic import write_bytes_atomic

    stem = Path(file_name).name.removesuffix(".jsonl")
    if not stem or not stem.replace("-", "").replace("_", "").replace(".", "").isalnum():
        stem = "upload"
    with tempfile.TemporaryDirectory() as scratch:
        checked = Path(scratch) / f"{stem}.jsonl"
        checked.write_bytes(data)
        try:
            read_training_file(checked, method)
        except TrainingDataError as error:
            raise TrainingDataError(error.message, Path(file_name).name, error.line) from None
    folder = uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    for number in range(1000):
        target = folder / (f"{stem}.jsonl" if number == 0 else f"{stem}-{number}.jsonl")
        if not target.exists():
            write_bytes_atomic(target, data)
            return target
        if hashlib.sha256(target.read_bytes()).hexdigest() == digest:
            return target  # the same upload again
    raise TrainingDataError(f"too many uploads named {stem}.jsonl; rename the file")


def usable_rows(rows_per_file: dict[str, int], method: str, pairs: list[str]) -> int:
    """How many of a dataset's rows (``rows_per_file``: row file -> rows) a run of ``method`` trains
    on, taking the ``pairs`` kinds for DPO."""
    if method == "sft":
        return rows_per_file.get(SFT_FILE, 0)
    return sum(rows_per_file.get(PAIR_FILES[kind], 0) for kind in pairs)
