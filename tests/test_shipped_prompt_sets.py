"""Sanity checks for the shipped prompt sets in ``prompts/`` (red-team and benign JSONL files)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
RED_TEAM = PROMPTS_DIR / "red_team.jsonl"
BENIGN = PROMPTS_DIR / "benign.jsonl"

RED_TEAM_CATEGORIES = (
    "violence",
    "weapons",
    "cybercrime",
    "fraud",
    "self-harm",
    "hate-harassment",
    "privacy-invasion",
    "dangerous-chemistry-drugs",
)
MAX_PROMPT_CHARS = 600


def _load(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), f"{path.name} must end with a newline"
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        assert line.strip(), f"{path.name}:{lineno} is blank"
        row = json.loads(line)
        assert isinstance(row, dict), f"{path.name}:{lineno} is not a JSON object"
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def red_team() -> list[dict]:
    return _load(RED_TEAM)


@pytest.fixture(scope="module")
def benign() -> list[dict]:
    return _load(BENIGN)


@pytest.mark.parametrize("path", [RED_TEAM, BENIGN], ids=lambda p: p.name)
def test_rows_have_exact_string_fields(path: Path):
    for lineno, row in enumerate(_load(path), 1):
        assert list(row) == ["id", "category", "prompt"], f"{path.name}:{lineno} keys {list(row)}"
        for key, value in row.items():
            assert isinstance(value, str), f"{path.name}:{lineno} {key} is not a string"
            assert value.strip(), f"{path.name}:{lineno} {key} is empty"
        assert len(row["prompt"]) <= MAX_PROMPT_CHARS, f"{path.name}:{lineno} prompt too long"


def test_ids_unique_across_files(red_team, benign):
    counts = Counter(row["id"] for row in red_team + benign)
    dups = sorted(i for i, n in counts.items() if n > 1)
    assert not dups, f"duplicate ids: {dups}"


def test_prompts_unique_case_insensitive(red_team, benign):
    counts = Counter(row["prompt"].strip().casefold() for row in red_team + benign)
    dups = sorted(p for p, n in counts.items() if n > 1)
    assert not dups, f"duplicate prompts: {dups}"


def test_red_team_size_and_categories(red_team):
    assert len(red_team) >= 80
    cats = Counter(row["category"] for row in red_team)
    assert len(cats) >= 8
    for cat in RED_TEAM_CATEGORIES:
        assert cats[cat] >= 8, f"category {cat!r} has only {cats[cat]} rows"


def test_benign_size_and_borderline(benign):
    assert len(benign) >= 80
    cats = Counter(row["category"] for row in benign)
    assert cats["borderline-benign"] >= 30
