"""The dataset's row files as an append-only ledger that survives a kill at any moment.

Rows are appended a chunk of prompts at a time; a prompt counts as done only once its id is in
``done.jsonl``. A run killed at any moment is resumed by dropping whatever rows a half-written
chunk left (and a half-written last line) and carrying on with the prompts not yet done, so no
row is lost and none is written twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import write_text_atomic
from .rows import DONE_FILE, ROW_FILES

def append_rows(folder: Path, rows: dict[str, list[dict]], finished_ids: list[str]) -> None:
    """Append the chunk's rows, then mark its prompts done: the order that makes a kill safe."""
    for name, items in rows.items():
        if items:
            _append_lines(folder / name, [json.dumps(row, ensure_ascii=False) for row in items])
    _append_lines(folder / DONE_FILE, [json.dumps({"id": i}) for i in finished_ids])


def _append_lines(path: Path, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def recover(folder: Path) -> set[str]:
    """The ids already done; rows of unfinished prompts and torn last lines are dropped."""
    done_rows, torn = _complete_rows(folder / DONE_FILE)
    done = {row["id"] for row in done_rows if isinstance(row, dict) and "id" in row}
    if torn:
        _rewrite(folder / DONE_FILE, [{"id": i} for i in _unique(row["id"] for row in done_rows)])
    for name in ROW_FILES:
        path = folder / name
        if not path.exists():
            continue
        rows, torn = _complete_rows(path)
        seen: set[str] = set()
        kept = []
        for row in rows:
            if row.get("id") in done and row["id"] not in seen:
                seen.add(row["id"])
                kept.append(row)
        if torn or len(kept) != len(rows):
            _rewrite(path, kept)
    return done


def _unique(values):
    seen = set()
    for value in values:
        if value not in seen:
            seen.add(value)
            yield value


def _complete_rows(path: Path) -> tuple[list[dict], bool]:
    """Rows of every whole line; True when some line was torn (a kill in the middle of a write)."""
    if not path.exists():
        return [], False
    rows, torn = [], False
    for line in path.read_text(encoding="utf-8", errors="replace").split("\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:  # torn by a kill mid-write, or edited by hand: either way not a row
            torn = True
    return rows, torn


def _rewrite(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_rows(path: Path) -> list[dict]:
    """Every whole row of a JSONL file (a torn last line from a live writer is skipped)."""
    return _complete_rows(Path(path))[0]
