"""The data model: what a valid constitution is, and the sentence a bad one gets."""

import pytest
from pydantic import ValidationError

from cai_core import Constitution, ConstitutionError, Principle, parse_constitution

GOOD = """\
name: tiny
description: Two rules for tests.
principles:
  - name: no-weapons
    critique_request: Point out any instructions for building weapons in the answer.
    revision_request: Rewrite the answer without the weapon-building instructions.
    tags: [safety]
    weight: 2
  - name: cite-sources
    critique_request: List each factual claim in the answer that names no checkable source.
    revision_request: Rewrite the answer so each factual claim names a checkable source.
    enabled: false
"""


def test_good_constitution_loads_with_defaults():
    constitution = parse_constitution(GOOD, "good.yaml")
    assert constitution.name == "tiny"
    assert [p.name for p in constitution.principles] == ["no-weapons", "cite-sources"]
    assert constitution.principles[0].weight == 2.0 and constitution.principles[0].tags == ["safety"]
    assert [p.name for p in constitution.enabled_principles] == ["no-weapons"]
    assert constitution.principles[1].comparison_request is None


def test_content_hash_changes_with_content_only():
    first = parse_constitution(GOOD, "a.yaml")
    second = parse_constitution(GOOD.replace("Two rules", "Two rules"), "b.yaml")
    assert first.content_hash() == second.content_hash()
    changed = parse_constitution(GOOD.replace("weapons in the answer", "weapons or poisons"), "c.yaml")
    assert changed.content_hash() != first.content_hash()


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("name: x\nprinciples: [\n", 3, "unclosed bracket"),
        ("name: x\nprinciples: []\n", 1, "at least one principle"),
        ("name: x\nprinciples:\n  - name: a\n    critique_request: q\n    revision_request: r\n    colour: red\n", 6, "unknown key 'colour'"),
        ("name: x\nprinciples:\n  - name: a\n    revision_request: r\n", 3, "required key 'critique_request' is missing"),
        ("name: x\nprinciples:\n  - name: a\n    critique_request: ''\n    revision_request: r\n", 4, "must not be empty"),
        ("name: x\nprinciples:\n  - name: ''\n    critique_request: q\n    revision_request: r\n", 3, "must not be empty"),
        ("name: x\nprinciples:\n  - {name: a, critique_request: q, revision_request: r}\n  - {name: A, critique_request: q, revision_request: r}\n", 4, "names must be unique"),
        ("name: x\nprinciples:\n  - {name: a, critique_request: q, revision_request: r, weight: heavy}\n", 3, "weight"),
        ("name: ../escape\nprinciples:\n  - {name: a, critique_request: q, revision_request: r}\n", 1, "may use only"),
        ("!!python/object/apply:os.system ['touch /tmp/pwned']\n", 1, "YAML syntax error"),
        ("- 3\n", 1, "entry 1"),
        ("just a string\n", 1, "is not a constitution"),
        ("", None, "is empty"),
    ],
)
def test_bad_constitutions_get_one_sentence_with_the_line(text, line, words):
    with pytest.raises(ConstitutionError) as caught:
        parse_constitution(text, "bad.yaml")
    message = str(caught.value)
    assert words in message
    assert caught.value.line == line
    assert message.startswith("bad.yaml")
    assert "\n" not in message and "Traceback" not in message


def test_request_length_is_bounded():
    with pytest.raises(ValidationError, match="critique_request\n  String should have at most 2000 characters"):
        Principle(name="a", critique_request="x" * 5000, revision_request="y")


def test_edits_are_validated_on_assignment():
    principle = Principle(name="a", critique_request="q", revision_request="r")
    with pytest.raises(ValidationError, match="critique_request\n  String should have at least 1 character"):
        principle.critique_request = ""
    with pytest.raises(ValidationError, match="a constitution needs at least one principle"):
        Constitution(name="x", principles=[])
