"""Prompt sets: the shipped ones under ``prompts/`` and a user's own .txt, .jsonl or .csv files.

Every prompt has an id and a category. A malformed row stops the load with one sentence naming
the file and the line (and how many other rows are bad), so a dataset is never built from half a
file by accident; blank lines are skipped and duplicates removed, and both are counted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..errors import CaiError
from ..atomic import write_bytes_atomic
from ..constitution import ConstitutionError
from ..paths import SHIPPED_PROMPTS_DIR, cai_home, is_explicit_path
from ..textfiles import decode_text, parse_json_line, read_text_file

MAX_PROMPT_FILE_BYTES = 50 * 1024 * 1024
MAX_PROMPT_CHARS = 20_000
MAX_FIELD_CHARS = 200
SUFFIXES = (".txt", ".jsonl", ".csv")
MAX_SET_NAME_LENGTH = 64
_SET_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,%d}$" % (MAX_SET_NAME_LENGTH - 1))
DEFAULT_CATEGORY = "uncategorised"


class PromptFileError(CaiError):
    """A prompt file that cannot be used; ``str()`` is one sentence with the file and line."""


@dataclass(frozen=True)
class PromptItem:
    id: str
    prompt: str
    category: str = DEFAULT_CATEGORY
    source: str = ""
    # Set on a constitution's own example prompt (the verifier "constitution" adds the training half):
    # the principle whose example it is, so its answers are held to that example's expectations.
    principle: str = ""


@dataclass
class PromptSet:
    name: str
    items: list[PromptItem] = field(default_factory=list)
    blank_lines: int = 0
    duplicates_removed: int = 0

    def categories(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.category] = counts.get(item.category, 0) + 1
        return counts


def user_prompt_sets_dir() -> Path:
    return cai_home() / "prompt_sets"


def list_prompt_sets() -> list[str]:
    """Shipped sets first (by file stem), then the user's saved ones."""
    names = [p.stem for p in sorted(SHIPPED_PROMPTS_DIR.glob("*.jsonl"))]
    folder = user_prompt_sets_dir()
    if folder.is_dir():
        # A dot-name would read as a path (see resolve_prompt_source), so it is not listed as a set.
        names += [p.name for p in sorted(folder.iterdir()) if p.suffix in SUFFIXES and p.is_file() and not p.name.startswith(".")]
    return names


def resolve_prompt_source(source: str) -> Path:
    """A saved set's file name, a shipped set's name, or a path that is clearly one.

    Names resolve among the user's saved sets, then the shipped ones, and never in the current
    directory (see ``paths.is_explicit_path``): ``README.md`` is not a prompt set because a file
    of that name happens to lie where the command runs; ``./mine.txt`` is that file.
    """
    source = source.strip()
    if is_explicit_path(source):
        path = Path(source).expanduser()
        if path.is_file():
            return path
        raise PromptFileError("file not found" if not path.exists() else "is not a file", str(path))
    if source:
        saved = user_prompt_sets_dir() / source
        if saved.is_file():
            return saved
        for shipped in (SHIPPED_PROMPTS_DIR / f"{source}.jsonl", SHIPPED_PROMPTS_DIR / source):
            if shipped.suffix == ".jsonl" and shipped.is_file():
                return shipped
    known = ", ".join(list_prompt_sets()) or "none"
    hint = f"; a file is given by its path, such as ./{source}" if source else ""
    raise PromptFileError(f"prompt set {source!r} is neither a shipped or saved set ({known}){hint}")


# The shipped red-team and benign sets are cut in two halves, alternating within each category in
# file order. The safety suites score the evaluation half; data generation can keep to the training
# half ("prompt_split: train", which the loop always uses), so a trained model is measured on
# prompts it never trained on rather than on its own training set.
SPLIT_SETS = ("red_team", "benign")


def _evaluation_flags(items: list[PromptItem]) -> list[bool]:
    seen: dict[tuple[str, str], int] = {}
    flags = []
    for item in items:
        key = (item.source, item.category)
        flags.append(item.source in SPLIT_SETS and seen.get(key, 0) % 2 == 0)
        seen[key] = seen.get(key, 0) + 1
    return flags


def evaluation_half(items: list[PromptItem]) -> list[PromptItem]:
    """The items of the shipped sets that the safety suites evaluate on (others are left out)."""
    return [item for item, held in zip(items, _evaluation_flags(items)) if held]


def training_half(items: list[PromptItem]) -> list[PromptItem]:
    """Every item except the evaluation half: all of a user's own sets, half of the shipped ones."""
    return [item for item, held in zip(items, _evaluation_flags(items)) if not held]


T = TypeVar("T")


def round_robin(queues: Iterable[Iterable[T]]) -> list[T]:
    """The first of each queue, then the second of each, and so on, so the first N mix them all."""
    pending = [list(queue) for queue in queues]
    mixed = []
    for position in range(max(map(len, pending), default=0)):
        mixed.extend(queue[position] for queue in pending if position < len(queue))
    return mixed


def interleave_categories(items: list[PromptItem]) -> list[PromptItem]:
    """Round-robin over the categories (each in file order), so the first N items mix them all."""
    queues: dict[str, list[PromptItem]] = {}
    for item in items:
        queues.setdefault(item.category, []).append(item)
    return round_robin(queues.values())


def load_prompt_sources(sources: list[str], limit: int | None = None, shuffle_seed: int | None = None,
                        training_only: bool = False, leave_out: set[str] | frozenset[str] = frozenset()) -> PromptSet:
    """Several sets as one, duplicates across them removed, cut to the first ``limit`` prompts.

    ``training_only`` leaves out the shipped sets' evaluation half (see ``training_half``), and
    ``leave_out`` any prompt whose ``prompt_key`` is in it (a constitution's example prompts), both
    before the limit, so the limit still counts prompts that are used.

    With ``shuffle_seed``, the prompts are put in a seeded random order before the cut, so a limit
    takes a mix of every set and category rather than the first set's first category.
    """
    combined = PromptSet(name="+".join(sources))
    seen: set[str] = set()
    for source in sources:
        loaded = load_prompt_file(resolve_prompt_source(source))
        combined.blank_lines += loaded.blank_lines
        combined.duplicates_removed += loaded.duplicates_removed
        for item in loaded.items:
            key = _dedupe_key(item.prompt)
            if key in seen:
                combined.duplicates_removed += 1
                continue
            seen.add(key)
            combined.items.append(item)
    if training_only:
        combined.items = training_half(combined.items)
    if leave_out:
        combined.items = [item for item in combined.items if _dedupe_key(item.prompt) not in leave_out]
    if not combined.items:
        raise PromptFileError("the chosen prompt sets hold no prompts")
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(combined.items)
    if limit is not None:
        combined.items = combined.items[:limit]
    return combined


def load_prompt_file(path: Path) -> PromptSet:
    path = Path(path)
    try:
        text = read_text_file(path, MAX_PROMPT_FILE_BYTES, "prompt file")
    except ConstitutionError as error:
        raise PromptFileError(error.message, error.path, error.line) from None
    return parse_prompt_text(text, path.name, str(path))


def parse_prompt_bytes(data: bytes, file_name: str) -> PromptSet:
    """An uploaded file's bytes (the name decides the format)."""
    try:
        text = decode_text(data, file_name, MAX_PROMPT_FILE_BYTES, "prompt file")
    except ConstitutionError as error:
        raise PromptFileError(error.message, error.path, error.line) from None
    return parse_prompt_text(text, file_name, file_name)


def parse_prompt_text(text: str, file_name: str, source: str) -> PromptSet:
    suffix = Path(file_name).suffix.lower()
    stem = Path(file_name).stem
    if suffix == ".txt":
        rows, blank = _txt_rows(text)
    elif suffix == ".jsonl":
        rows, blank = _jsonl_rows(text, source)
    elif suffix == ".csv":
        rows, blank = _csv_rows(text, source)
    else:
        raise PromptFileError(f"has the extension {suffix or '(none)'!r}; use .txt (one prompt a line), .jsonl or .csv", source)
    problems = []
    prompt_set = PromptSet(name=stem, blank_lines=blank)
    seen_prompts: set[str] = set()
    seen_ids: dict[str, int] = {}
    for line, row in rows:
        try:
            item = _check_row(row, stem, source)
        except ValueError as problem:
            problems.append((line, str(problem)))
            continue
        key = _dedupe_key(item.prompt)
        if key in seen_prompts:
            prompt_set.duplicates_removed += 1
            continue
        if item.id in seen_ids:
            problems.append((line, f"id {item.id!r} was already used on line {seen_ids[item.id]}"))
            continue
        seen_prompts.add(key)
        seen_ids[item.id] = line
        prompt_set.items.append(item)
    if problems:
        line, message = problems[0]
        more = f" ({len(problems) - 1} more rows have problems)" if len(problems) > 1 else ""
        raise PromptFileError(f"{message}{more}", source, line)
    if not prompt_set.items:
        raise PromptFileError("holds no prompts", source)
    return prompt_set


def save_prompt_set(file_name: str, data: bytes) -> tuple[str, PromptSet]:
    """Validate an uploaded file and keep it among the user's sets; nothing is written if it is bad.

    The saved name is always one ``check_prompt_set_name`` accepts, so it can be used as a source:
    other characters become '-', a leading '_' or '.' is dropped, and the stem is cut so that a
    numbered name (``stem-12.jsonl``) still fits in 64 characters.
    """
    name = Path(file_name).name
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise PromptFileError(f"has the extension {suffix or '(none)'!r}; use .txt (one prompt a line), .jsonl or .csv", name)
    safe_stem = re.sub(r"^[^A-Za-z0-9]+", "", re.sub(r"[^A-Za-z0-9_.\-]+", "-", stem)) or "prompts"
    parsed = parse_prompt_bytes(data, name)
    target = check_prompt_set_name(_free_name(safe_stem, suffix, data))
    write_bytes_atomic(user_prompt_sets_dir() / target, data)
    return target, parsed


def check_prompt_set_name(name: str) -> str:
    """A saved set's file name: a letter or digit first, then letters, digits, '_', '.', '-', at most 64."""
    if not _SET_NAME_PATTERN.match(name) or Path(name).suffix.lower() not in SUFFIXES:
        raise PromptFileError(f"prompt set name {name!r} must start with a letter or digit, use only letters, "
                              "digits, '_', '.' and '-', end in .txt, .jsonl or .csv and be at most 64 characters")
    return name


def _numbered_name(stem: str, suffix: str, number: int) -> str:
    tail = suffix if number == 1 else f"-{number}{suffix}"
    return stem[:MAX_SET_NAME_LENGTH - len(tail)].rstrip("-.") + tail


def _free_name(stem: str, suffix: str, data: bytes) -> str:
    """The stem itself, or stem-2, stem-3...: a shipped set's name is never shadowed, and an
    earlier upload with other content is never overwritten (the same content reuses its name)."""
    shipped = {p.stem for p in SHIPPED_PROMPTS_DIR.glob("*.jsonl")}
    folder = user_prompt_sets_dir()
    for number in range(1, 1000):
        candidate = _numbered_name(stem, suffix, number)
        if number == 1 and Path(candidate).stem in shipped:
            continue
        existing = folder / candidate
        if not existing.exists() or existing.read_bytes() == data:
            return candidate
    raise PromptFileError(f"too many uploaded prompt sets are named {stem!r}; rename the file", stem + suffix)


def prompt_id(text: str) -> str:
    """A stable id for a prompt without one: the same text gets the same id in any file."""
    return "p-" + hashlib.sha1(_dedupe_key(text).encode("utf-8")).hexdigest()[:12]


def _dedupe_key(text: str) -> str:
    return " ".join(text.split()).casefold()


def prompt_key(text: str) -> str:
    """What makes two prompts the same prompt here: their words, case and spacing aside."""
    return _dedupe_key(text)


def _check_row(row: dict, stem: str, source: str) -> PromptItem:
    prompt = row.get("prompt")
    if not isinstance(prompt, str):
        raise ValueError("the 'prompt' field is missing" if prompt is None else "the 'prompt' field must be text")
    prompt = prompt.strip()
    if not prompt:
        raise ValueError("the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
    values = {}
    for key in ("id", "category"):
        value = row.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ValueError(f"the {key!r} field must be text")
        value = str(value).strip()
        if len(value) > MAX_FIELD_CHARS:
            raise ValueError(f"the {key!r} field is longer than {MAX_FIELD_CHARS} characters")
        values[key] = value
    return PromptItem(id=values.get("id") or prompt_id(prompt), prompt=prompt,
                      category=values.get("category") or DEFAULT_CATEGORY, source=stem)


def _txt_rows(text: str) -> tuple[list[tuple[int, dict]], int]:
    rows, blank = [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            rows.append((number, {"prompt": line}))
        else:
            blank += 1
    return rows, blank


def _jsonl_rows(text: str, source: str) -> tuple[list[tuple[int, dict]], int]:
    rows, blank = [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            blank += 1
            continue
        try:
            value = parse_json_line(line)
        except json.JSONDecodeError as error:
            raise PromptFileError(f"is not valid JSON ({error.msg} at column {error.colno})", source, number) from None
        except ValueError as error:
            raise PromptFileError(str(error), source, number) from None
        if not isinstance(value, dict):
            raise PromptFileError("must be a JSON object like {\"prompt\": \"...\"}", source, number)
        rows.append((number, value))
    return rows, blank


def _csv_rows(text: str, source: str) -> tuple[list[tuple[int, dict]], int]:
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [name.strip().lower() for name in (reader.fieldnames or [])]
        if "prompt" not in header:
            raise PromptFileError(f"has no 'prompt' column (the header row has {', '.join(header) or 'nothing'})", source, 1)
        reader.fieldnames = header
        rows, blank = [], 0
        for row in reader:
            if not any((value or "").strip() for key, value in row.items() if key is not None):
                blank += 1
                continue
            if None in row:  # more cells than header names: usually an unquoted comma
                raise PromptFileError(f"has {len(header) + len(row[None])} cells but the header has {len(header)}; quote text that holds commas", source, reader.line_num)
            rows.append((reader.line_num, row))
    except csv.Error as error:
        raise PromptFileError(f"is not valid CSV ({error})", source, reader.line_num) from None
    return rows, blank
