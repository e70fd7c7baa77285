"""The playground's shipped example prompts, and how a broken examples file is reported."""

from __future__ import annotations

import pytest

from cai_core.constitution import ConstitutionError
from cai_core.examples import (
    PlaygroundExample,
    default_examples_path,
    examples_by_category,
    load_playground_examples,
    parse_playground_examples,
)

GOOD = """\
- id: first
  category: benign
  prompt: "Explain recursion."
- id: second
  category: harmful
  prompt: How do I pick a lock?
"""


def test_shipped_examples_load_in_file_order():
    examples = load_playground_examples()
    assert len(examples) == 12
    assert examples[0].id == "neighbour-wifi"
    assert {e.category for e in examples} == {"harmful", "borderline", "benign", "medical", "customer-service"}
    assert len({e.id for e in examples}) == len(examples)
    assert all(isinstance(e, PlaygroundExample) and e.prompt for e in examples)
    assert default_examples_path().name == "playground_examples.yaml"


def test_load_from_a_given_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD, encoding="utf-8")
    examples = load_playground_examples(path)
    assert [(e.id, e.category, e.prompt) for e in examples] == [
        ("first", "benign", "Explain recursion."),
        ("second", "harmful", "How do I pick a lock?"),
    ]
    assert load_playground_examples(str(path)) == examples


def test_grouping_keeps_first_appearance_order():
    examples = parse_playground_examples(GOOD + "- id: third\n  category: benign\n  prompt: Hi\n")
    groups = examples_by_category(examples)
    assert list(groups) == ["benign", "harmful"]
    assert [e.id for e in groups["benign"]] == ["first", "third"]


def test_label_is_short_and_names_the_category():
    example = PlaygroundExample(id="x", category="medical", prompt="word " * 100)
    assert example.label.startswith("[medical] word word")
    assert len(example.label) < 100 and example.label.endswith("…")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("- id: a\n  category: b\n  prompt: c\n  colour: red\n", 4, "unknown key 'colour'"),
        ("- id: a\n  category: b\n", 1, "required key 'prompt' is missing"),
        ("- id: a\n  category: b\n  prompt: '   '\n", 3, "prompt: must not be empty"),
        ("- id: Not A Slug\n  category: b\n  prompt: c\n", 1, "id must be lower-case"),
        ("- id: a\n  category: b\n  prompt: c\n- id: a\n  category: b\n  prompt: d\n", 4, "ids must be unique"),
        ("- id: a\n  category: b\n  prompt: [1, 2\n", 4, "YAML syntax error"),
        ("- just a string\n", 1, "should be a mapping"),
        ("id: a\ncategory: b\n", 1, "should be a list"),
    ],
)
def test_malformed_files_raise_one_sentence_with_file_and_line(tmp_path, text, line, fragment):
    path = tmp_path / "examples.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConstitutionError) as caught:
        load_playground_examples(path)
    error = caught.value
    assert error.path == str(path)
    assert error.line == line
    assert fragment in str(error)
    assert str(error).startswith(str(path))
    assert "\n" not in str(error) and "Traceback" not in str(error)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "[]\n"])
def test_empty_files_are_refused(tmp_path, text):
    path = tmp_path / "examples.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConstitutionError, match="(empty|no examples)"):
        load_playground_examples(path)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(ConstitutionError, match="file not found"):
        load_playground_examples(tmp_path / "nope.yaml")
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"- id: a\n  prompt: \xff\xfe\n")
    with pytest.raises(ConstitutionError, match="not UTF-8") as caught:
        load_playground_examples(path)
    assert caught.value.line == 2


def test_python_tags_are_not_executed(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("- !!python/object/apply:os.system ['echo hi']\n", encoding="utf-8")
    with pytest.raises(ConstitutionError, match="YAML syntax error"):
        load_playground_examples(path)
