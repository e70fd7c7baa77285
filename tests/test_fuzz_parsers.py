"""Property tests for every reader of a user's files: whatever the bytes, a file loads or is refused
with the project's one-sentence error, and reading (or a refused upload) writes nothing.

Inputs are arbitrary bytes, arbitrary JSON/YAML structures (serialised both ways), structures in
the shape each reader expects with arbitrary values in its fields, and deeply nested brackets.
The number of examples per test comes from the "cai" Hypothesis profile (tests/conftest.py):
``CAI_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_parsers.py`` searches longer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cai_core import charts  # noqa: E402
from cai_core.constitution import ConstitutionError  # noqa: E402
from cai_core.evaluation.loop import LoopError, parse_loop_settings, parse_loop_spec, quality  # noqa: E402
from cai_core.evaluation import compare_reports, read_report, shared_refusal_ids  # noqa: E402
from cai_core.evaluation.suites import EvaluationError  # noqa: E402
from cai_core.data.promptsets import PromptFileError, parse_prompt_bytes, save_prompt_set  # noqa: E402
from cai_core.store import import_constitution, list_constitutions, load_constitution, parse_constitution  # noqa: E402
from cai_core.training.rows import TrainingDataError, read_training_file, save_upload  # noqa: E402
from cai_core.training.spec import RecipeError, load_recipe  # noqa: E402

# Deep inputs vary little (an opener, a depth and a tail), so a quarter of the examples covers them.
DEEP = settings(max_examples=max(10, settings.default.max_examples // 4))

# ---------------------------------------------------------------- inputs

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=40))
structures = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                          | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=40)


def serialised(value) -> list[bytes]:
    """The value as JSON and as YAML (YAML cannot hold every float spelling, so it may be left out)."""
    forms = [json.dumps(value).encode()]
    try:
        forms.append(yaml.safe_dump(value, allow_unicode=True).encode("utf-8", "surrogatepass"))
    except (yaml.YAMLError, ValueError):
        pass
    return forms


def shaped(fields: dict) -> st.SearchStrategy:
    """A mapping with some of a reader's own keys (each holding anything) and perhaps a stray key."""
    return st.fixed_dictionaries({}, optional={key: st.one_of(strategy, structures) for key, strategy in fields.items()})


principle = shaped({"name": st.text(max_size=70), "critique_request": st.text(), "revision_request": st.text(),
                    "comparison_request": st.text(), "description": st.text(), "tags": st.lists(st.text(max_size=50)),
                    "enabled": st.booleans(), "weight": st.floats()})
constitutions = st.one_of(
    shaped({"name": st.text(max_size=70), "description": st.text(), "principles": st.lists(principle, max_size=4)}),
    st.lists(shaped({"critic": st.text(), "revision": st.text()}), max_size=4),  # llm-swarm
    shaped({"constitutions": st.lists(shaped({"critic": st.text(), "revision": st.text()}), max_size=4),  # HF recipe
            "system_chat": structures}),
    st.lists(principle, max_size=4),  # a bare list of principles
    structures,
)
message = shaped({"role": st.sampled_from(["system", "user", "assistant", "tool", "robot"]), "content": st.text()})
turns = st.one_of(st.text(), st.lists(message, max_size=3))
training_rows = st.one_of(shaped({"messages": st.lists(message, max_size=4)}),
                          shaped({"prompt": turns, "completion": turns, "chosen": turns, "rejected": turns}), structures)
recipes = st.one_of(shaped({"method": st.sampled_from(["sft", "dpo", "ppo"]), "base_model": st.text(),
                            "learning_rate": st.floats(), "seed": st.integers(), "num_processes": st.integers(),
                            "lora": shaped({"r": st.integers(), "alpha": st.integers(), "target_modules": st.text()}),
                            "sft": shaped({"max_steps": st.integers(), "lora": shaped({"r": st.integers()})}),
                            "dpo": shaped({"beta": st.floats()})}), structures)
loop_settings = st.one_of(shaped({"rounds": st.integers(), "seed": st.integers(), "generation": structures,
                                  "sft_overrides": structures, "eval_suites": st.lists(st.text()),
                                  "stop_ratio": st.floats(), "prompts_per_round": st.integers()}), structures)
item = shaped({"id": st.one_of(st.text(max_size=8), st.integers()), "prompt": st.text(), "answer": st.text(),
               "refused": st.booleans(), "correct": st.booleans(), "category": st.text()})
suite = shaped({"score": st.floats(), "kind": st.sampled_from(["capability", "safety"]), "higher_is_better": st.booleans(),
                "ci_low": st.floats(), "ci_high": st.floats(), "n": st.integers(), "items": st.lists(item, max_size=3)})
reports = st.one_of(shaped({"suites": st.dictionaries(st.sampled_from(["refusal", "arithmetic", "x"]), suite, max_size=3),
                            "model": st.one_of(shaped({"spec": st.text(), "adapters": st.lists(st.text())}), structures),
                            "model_label": st.text(), "settings": structures}), structures)

# A few thousand opening brackets or indents: deeper than any parser's stack.
OPENERS = ["[", "{\"a\": ", "- ", "a:\n ", "[{\"b\": [", "!!seq ["]
deep_text = st.builds(lambda opener, depth, tail: (opener * depth + tail).encode(),
                      st.sampled_from(OPENERS), st.integers(200, 2500), st.text(alphabet="]}1a\n ", max_size=8))


def files_from(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """File contents: arbitrary bytes, or the shape (and anything else) serialised as JSON or YAML."""
    return st.one_of(st.binary(max_size=600), strategy.flatmap(lambda value: st.sampled_from(serialised(value))))


# ---------------------------------------------------------------- what every reader must keep to


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for folder in folders if folder.exists()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def one_sentence(error: BaseException) -> None:
    text = str(error)
    assert text.strip() and "\n" not in text.strip() and "Traceback" not in text, repr(text)


def check(read, error_type, *folders: Path):
    """Run a reader: it returns, or raises error_type with one sentence; and no file changes."""
    before = snapshot(*folders)
    try:
        result = read()
    except error_type as error:
        one_sentence(error)
        result = None
    assert snapshot(*folders) == before, "reading a file wrote to disk"
    return result


# ---------------------------------------------------------------- constitutions


def constitution_checks(data: bytes, tmp_path: Path, cai_home: Path) -> None:
    store = cai_home / "constitutions"
    store.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "upload.yaml"
    path.write_bytes(data)
    check(lambda: load_constitution(path, store), ConstitutionError, tmp_path, cai_home)
    before = snapshot(cai_home)
    try:
        import_constitution(data, "upload.json", store, name="fuzzed")
    except ConstitutionError as error:  # a refused upload leaves the store as it was
        one_sentence(error)
        assert snapshot(cai_home) == before
    # In the store, a bad file is one listed sentence and never hides the shipped constitutions.
    (store / "broken.yaml").write_bytes(data)
    listed = check(lambda: list_constitutions(store), (), cai_home)
    broken = [info for info in listed if info.name == "broken"]
    assert len(broken) == 1 and (broken[0].error is None or "\n" not in broken[0].error)
    assert any(info.shipped and info.error is None for info in listed)
    (store / "broken.yaml").unlink()


@given(data=files_from(constitutions))
def test_constitution_files_load_or_are_one_sentence(data, tmp_path, cai_home):
    constitution_checks(data, tmp_path, cai_home)


@DEEP
@given(data=deep_text)
def test_deeply_nested_constitutions_are_one_sentence(data, tmp_path, cai_home):
    constitution_checks(data, tmp_path, cai_home)


@given(text=st.text(max_size=400))
def test_constitution_text_parses_or_is_one_sentence(text, cai_home):
    check(lambda: parse_constitution(text, "pasted.yaml"), ConstitutionError, cai_home)


# ---------------------------------------------------------------- prompt sets


def prompt_checks(data: bytes, cai_home: Path) -> None:
    for suffix in (".txt", ".jsonl", ".csv"):
        check(lambda: parse_prompt_bytes(data, f"mine{suffix}"), PromptFileError, cai_home)
        before = snapshot(cai_home)
        try:
            save_prompt_set(f"mine{suffix}", data)
        except PromptFileError as error:
            one_sentence(error)
            assert snapshot(cai_home) == before


prompt_rows = st.one_of(shaped({"prompt": st.text(), "id": st.one_of(st.text(), st.integers()), "category": st.text()}),
                        structures)


@given(data=st.one_of(st.binary(max_size=600), st.lists(prompt_rows, max_size=4).map(
    lambda rows: "\n".join(json.dumps(row) for row in rows).encode()),
    st.lists(st.lists(st.text(max_size=20), max_size=4), max_size=5).map(
        lambda rows: "\n".join(",".join(row) for row in [["prompt", "id", "category"], *rows]).encode())))
def test_prompt_files_load_or_are_one_sentence(data, cai_home):
    prompt_checks(data, cai_home)


@DEEP
@given(data=deep_text)
def test_deeply_nested_prompt_files_are_one_sentence(data, cai_home):
    prompt_checks(data, cai_home)


# ---------------------------------------------------------------- training rows


def training_checks(data: bytes, tmp_path: Path, cai_home: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(data)
    for method in ("sft", "dpo"):
        check(lambda: read_training_file(path, method), TrainingDataError, tmp_path, cai_home)
        before = snapshot(cai_home)
        try:
            save_upload("rows.jsonl", data, method)
        except TrainingDataError as error:
            one_sentence(error)
            assert snapshot(cai_home) == before


@given(data=st.one_of(st.binary(max_size=600), st.lists(training_rows, max_size=4).map(
    lambda rows: "\n".join(json.dumps(row) for row in rows).encode())))
def test_training_files_load_or_are_one_sentence(data, tmp_path, cai_home):
    training_checks(data, tmp_path, cai_home)


@DEEP
@given(data=deep_text)
def test_deeply_nested_training_files_are_one_sentence(data, tmp_path, cai_home):
    training_checks(data, tmp_path, cai_home)


# ---------------------------------------------------------------- recipes


def recipe_checks(data: bytes, tmp_path: Path, cai_home: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(data)
    for method in ("sft", "dpo"):
        check(lambda: load_recipe(path, method), RecipeError, tmp_path, cai_home)


@given(data=files_from(recipes))
def test_recipes_load_or_are_one_sentence(data, tmp_path, cai_home):
    recipe_checks(data, tmp_path, cai_home)


@DEEP
@given(data=deep_text)
def test_deeply_nested_recipes_are_one_sentence(data, tmp_path, cai_home):
    recipe_checks(data, tmp_path, cai_home)


# ---------------------------------------------------------------- loop settings


def loop_checks(text: str, cai_home: Path) -> None:
    def read():
        settings_data = parse_loop_settings(text, "settings.yaml")
        return parse_loop_spec({"constitution": "general-hhh", **settings_data})

    check(read, LoopError, cai_home)


@given(data=files_from(loop_settings))
def test_loop_settings_load_or_are_one_sentence(data, cai_home):
    loop_checks(data.decode("utf-8", "replace"), cai_home)


@DEEP
@given(data=deep_text)
def test_deeply_nested_loop_settings_are_one_sentence(data, cai_home):
    loop_checks(data.decode(), cai_home)


# ---------------------------------------------------------------- evaluation reports


def report_checks(data: bytes, tmp_path: Path, cai_home: Path) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(data)
    report = check(lambda: read_report(path), EvaluationError, tmp_path, cai_home)
    if report is not None:
        # A report that is accepted works everywhere reports are used, against itself and a plain one.
        plain = {"model": {"spec": "m"}, "suites": {"refusal": {"kind": "safety", "score": 10.0, "items": []}}}
        for base, aligned in ((report, report), (plain, report), (report, plain)):
            comparison = compare_reports(base, aligned)
            assert all(math.isfinite(entry["base"]) for entry in comparison["all"]["per_benchmark"].values())
            shared_refusal_ids(base, aligned)
        quality(report, None)
        charts.benchmark_bars([("a", report), ("b", plain)])


@given(data=files_from(reports))
def test_evaluation_reports_load_or_are_one_sentence(data, tmp_path, cai_home):
    report_checks(data, tmp_path, cai_home)


@DEEP
@given(data=deep_text)
def test_deeply_nested_reports_are_one_sentence(data, tmp_path, cai_home):
    report_checks(data, tmp_path, cai_home)
