"""The shipped multiple-choice knowledge suite: well-formed rows, balanced answer letters and subjects."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

EVALSET = Path(__file__).resolve().parents[1] / "evalsets" / "knowledge_mc.jsonl"
SUBJECTS = {"science", "geography", "history", "math", "language", "common-sense", "computing", "health"}
FIELDS = {"id", "subject", "question", "choices", "answer"}
LETTERS = ("A", "B", "C", "D")
BANNED_CHOICES = ("all of the above", "none of the above")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    parsed = []
    for number, line in enumerate(EVALSET.read_text(encoding="utf-8").splitlines(), start=1):
        assert line.strip(), f"line {number} is blank"
        row = json.loads(line)
        assert isinstance(row, dict), f"line {number} is not a JSON object"
        parsed.append(row)
    return parsed


def test_file_has_120_rows_with_unique_sequential_ids(rows):
    assert len(rows) == 120
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == 120
    assert ids == [f"kmc-{n:03d}" for n in range(1, 121)]


def test_every_row_has_the_fields_and_types(rows):
    for row in rows:
        assert set(row) == FIELDS, row.get("id")
        assert isinstance(row["id"], str) and re.fullmatch(r"kmc-\d{3}", row["id"])
        assert row["subject"] in SUBJECTS, row["id"]
        assert isinstance(row["question"], str) and row["question"].strip(), row["id"]
        assert len(row["question"]) < 300, row["id"]
        assert isinstance(row["choices"], list) and len(row["choices"]) == 4, row["id"]
        for choice in row["choices"]:
            assert isinstance(choice, str) and choice.strip(), row["id"]
            assert len(choice) < 120, row["id"]
            assert choice.strip().lower().rstrip(".") not in BANNED_CHOICES, row["id"]
        assert row["answer"] in LETTERS, row["id"]


def test_choices_are_distinct(rows):
    for row in rows:
        normalised = [c.strip().lower() for c in row["choices"]]
        assert len(set(normalised)) == 4, row["id"]


def test_answer_letters_are_balanced(rows):
    assert Counter(row["answer"] for row in rows) == {letter: 30 for letter in LETTERS}


def test_answer_letters_do_not_run(rows):
    sequence = "".join(row["answer"] for row in rows)
    for letter in LETTERS:
        assert letter * 4 not in sequence


def test_fifteen_items_per_subject(rows):
    assert Counter(row["subject"] for row in rows) == {subject: 15 for subject in SUBJECTS}


def test_no_duplicate_questions(rows):
    normalised = [" ".join(row["question"].lower().split()) for row in rows]
    assert len(set(normalised)) == len(normalised)


def test_text_is_plain_ascii(rows):
    for row in rows:
        for text in [row["question"], *row["choices"]]:
            assert text.isascii(), row["id"]
