"""Files that used to break a page or reach the user as a traceback, and values that passed a spec
only to fail later: each is now one sentence naming the file (and line), and the rest still works."""

from __future__ import annotations

import json

import pytest

from cai_core.constitution import ConstitutionError
from cai_core.data import GenerationSpec
from cai_core.evaluation.loop import LoopError, parse_loop_settings, parse_loop_spec
from cai_core.evaluation import parse_evaluation_spec, read_report
from cai_core.evaluation.suites import EvaluationError
from cai_core.models import MAX_SEED, GenerationSettings
from cai_core.paths import SHIPPED_CONSTITUTIONS_DIR
from cai_core.data.promptsets import PromptFileError, parse_prompt_bytes
from cai_core.store import import_constitution, list_constitutions, parse_constitution
from cai_core.training.rows import TrainingDataError, read_training_file
from cai_core.training.spec import RecipeError, parse_recipe, parse_spec

DEEP_BRACKETS = "[" * 3000  # a few KB: deeper than Python's stack


def one_sentence(text: str) -> str:
    assert text.strip() and "\n" not in text and "Traceback" not in text, repr(text)
    return text


# ---------------------------------------------------------------- constitutions


def test_a_deeply_nested_constitution_in_the_store_is_listed_as_one_sentence_beside_the_others(cai_home):
    store = cai_home / "constitutions"
    store.mkdir(parents=True)
    (store / "deep.yaml").write_text(DEEP_BRACKETS)
    (store / "dates.yaml").write_text("name: dates\nprinciples: 2020-13-45\n")
    listed = {info.name: info for info in list_constitutions(store)}
    assert "nests lists or mappings too deeply" in one_sentence(listed["deep"].error)
    assert "cannot be read" in one_sentence(listed["dates"].error) and "month" in listed["dates"].error
    shipped = {path.stem for path in SHIPPED_CONSTITUTIONS_DIR.glob("*.yaml")}
    assert shipped <= set(listed) and all(listed[name].error is None for name in shipped)


def test_a_deeply_nested_upload_is_one_sentence_and_nothing_is_saved(cai_home):
    store = cai_home / "constitutions"
    for text in (DEEP_BRACKETS, "{\"a\": " * 3000, "- " * 3000):
        with pytest.raises(ConstitutionError) as caught:
            import_constitution(text.encode(), "mine.json", store)
        assert "too deeply" in one_sentence(str(caught.value)) and "mine.json" in str(caught.value)
    assert not store.exists() or not any(store.rglob("*.yaml"))


def test_a_file_of_brackets_is_refused_before_the_yaml_parser_reads_it():
    # PyYAML takes time quadratic in the number of open brackets; 200 KB of them would take minutes.
    with pytest.raises(ConstitutionError) as caught:
        parse_constitution("name: x\nprinciples:\n  - " + "[" * 200_000, "big.yaml")
    assert "big.yaml, line 3: nests lists or mappings too deeply" in one_sentence(str(caught.value))


@pytest.mark.parametrize("text", [
    "&a [*a]",  # refers to itself
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(  # ten to the sixth values from a few lines
        f"{name}: &{name} [{', '.join(['*' + before] * 10)}]\n" for before, name in zip("abcde", "bcdef")),
])
def test_yaml_aliases_that_expand_without_end_are_one_sentence(text):
    with pytest.raises(ConstitutionError) as caught:
        parse_constitution(text, "aliases.yaml")
    assert "once its YAML aliases are expanded" in one_sentence(str(caught.value))


def test_a_control_character_is_one_sentence_with_its_line():
    with pytest.raises(ConstitutionError) as caught:
        parse_constitution("name: x\nprinciples: \x1f\n", "ctrl.yaml")
    assert one_sentence(str(caught.value)) == "ctrl.yaml, line 2: holds the control character U+001F, which YAML does not allow"


def test_llm_swarm_entries_with_text_and_number_keys_are_one_sentence():
    with pytest.raises(ConstitutionError) as caught:
        parse_constitution('[{"critique_request": "c", "revision_request": "r", "zz": 1, "1": 2, 3: 4}]', "swarm.json")
    assert "entry 1 has unknown key" in one_sentence(str(caught.value))


# ---------------------------------------------------------------- prompt sets, training rows, loop settings


@pytest.mark.parametrize("line, words", [
    (DEEP_BRACKETS, "nests lists or mappings too deeply"),
    ('{"prompt": "half a character: \\ud800"}', "lone surrogate"),
    ('{"prompt": "x", "id": ' + "1" * 5000 + "}", "digits"),
])
def test_a_bad_jsonl_prompt_line_is_one_sentence_with_its_line(line, words):
    with pytest.raises(PromptFileError) as caught:
        parse_prompt_bytes(f'{{"prompt": "fine"}}\n{line}\n'.encode(), "mine.jsonl")
    assert "mine.jsonl, line 2:" in one_sentence(str(caught.value)) and words in str(caught.value)


def test_a_deeply_nested_training_row_is_reported_with_its_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
                    + "\n" + DEEP_BRACKETS + "\n")
    with pytest.raises(TrainingDataError) as caught:
        read_training_file(path, "sft")
    assert "line 2: nests lists or mappings too deeply" in one_sentence(str(caught.value))


@pytest.mark.parametrize("text, words", [(DEEP_BRACKETS, "too deeply"), ("rounds: 2020-13-45", "cannot be read"),
                                         ("a: &a [*a]", "aliases")])
def test_hostile_loop_settings_are_one_sentence(text, words):
    with pytest.raises(LoopError) as caught:
        parse_loop_settings(text, "settings.yaml")
    assert str(caught.value).startswith("settings.yaml: ") and words in one_sentence(str(caught.value))


def test_a_deeply_nested_recipe_is_one_sentence():
    with pytest.raises(RecipeError) as caught:
        parse_recipe("sft: " + DEEP_BRACKETS, "sft", "deep.yaml")
    assert "deep.yaml, line 1: nests lists or mappings too deeply" in one_sentence(str(caught.value))


# ---------------------------------------------------------------- evaluation reports


ISSUE_REPORT = {"model": "x", "suites": {"refusal": {"score": 50, "items": [1, 2]}}}


@pytest.mark.parametrize("report, words", [
    (ISSUE_REPORT, "suite 'refusal', item 1 should be a JSON object"),
    ({"model": "x", "suites": {"refusal": {"score": 50}}}, "'model' should be a JSON object"),
    ({"suites": {"refusal": {"score": 50, "items": [1, 2]}}}, "suite 'refusal', item 1 should be a JSON object"),
    ({"suites": {"refusal": {"score": 50, "items": [{"id": "a", "prompt": "p"}]}}}, "suite 'refusal' item 1 has no 'answer'"),
    ({"suites": {"arithmetic": {"score": True}}}, "suite 'arithmetic', 'score' should be a valid number"),
    ({"suites": {"arithmetic": {"score": "50"}}}, "suite 'arithmetic', 'score' should be a valid number"),
    ({"suites": {"arithmetic": {"score": 50, "items": [{"id": ["a"]}]}}}, "item 1, 'id' should be a valid"),
    ({"suites": {"arithmetic": {"score": 50}}, "model": {"adapters": "one"}}, "'model', 'adapters' should be a valid list"),
])
def test_a_report_is_checked_as_a_whole(tmp_path, report, words):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    with pytest.raises(EvaluationError) as caught:
        read_report(path)
    assert str(caught.value).startswith(f"{path}: ") and words in one_sentence(str(caught.value))


@pytest.mark.parametrize("text, words", [("NaN", "not an evaluation report"),
                                         ('{"suites": {"a": {"score": NaN}}}', "finite number"),
                                         (DEEP_BRACKETS, "too deeply"), ('{"suites": ' + "9" * 5000 + "}", "digits")])
def test_odd_json_in_a_report_is_one_sentence(tmp_path, text, words):
    path = tmp_path / "report.json"
    path.write_text(text)
    with pytest.raises(EvaluationError) as caught:
        read_report(path)
    assert words in one_sentence(str(caught.value))


# ---------------------------------------------------------------- values that pass a spec and fail later


def test_seeds_numpy_cannot_take_are_refused_by_every_spec():
    import numpy

    numpy.random.seed(MAX_SEED + 1000)  # the largest seed plus the offsets stages add still works
    too_big = 2**32
    makers = [
        lambda seed: GenerationSettings(seed=seed),
        lambda seed: GenerationSpec(constitution="general-hhh", prompt_sources=["red_team"], seed=seed),
        lambda seed: parse_spec({"method": "sft", "seed": seed}),
        lambda seed: parse_evaluation_spec({"seed": seed}),
        lambda seed: parse_loop_spec({"constitution": "general-hhh", "seed": seed}),
    ]
    for make in makers:
        make(MAX_SEED - 50)
        with pytest.raises((ValueError, RecipeError, EvaluationError, LoopError)) as caught:
            make(too_big)
        assert f"at most {MAX_SEED}" in str(caught.value)


def test_a_loop_seed_leaves_room_for_its_rounds():
    parse_loop_spec({"constitution": "general-hhh", "seed": MAX_SEED - 3, "rounds": 3})
    with pytest.raises(LoopError) as caught:
        parse_loop_spec({"constitution": "general-hhh", "seed": MAX_SEED - 2, "rounds": 3})
    assert one_sentence(str(caught.value)) == f"seed must be at most {MAX_SEED - 3} with 3 rounds (round K uses seed + K)"


def test_more_training_processes_than_the_machine_has_devices_is_one_sentence():
    import os

    import torch

    devices = torch.cuda.device_count() if torch.cuda.is_available() else len(os.sched_getaffinity(0))
    if devices > 1:
        parse_spec({"method": "sft", "num_processes": devices})
    with pytest.raises(RecipeError) as caught:
        parse_recipe(f"num_processes: {devices + 1}\n", "sft", "many.yaml")
    message = one_sentence(str(caught.value))
    assert message.startswith("many.yaml, line 1: num processes: ") and f"this machine has {devices} " in message

