"""Names resolve in the store (then among the shipped files), never in the current directory.

Every test runs from a folder that holds a decoy: a junk file named like the thing asked for, or
the repository root with its README.md, Makefile, app.py, docs/ and tests/. Whatever a save
accepts as a name must load by that same name.
"""

from __future__ import annotations

import re

import pytest

from cai_core.constitution import Constitution, ConstitutionError, Principle
from cai_core.data import SFT_FILE, check_dataset_name, datasets_dir
from cai_core.paths import REPO_ROOT, SHIPPED_CONSTITUTIONS_DIR, SHIPPED_RECIPES_DIR
from cai_core.data.promptsets import (
    PromptFileError, list_prompt_sets, load_prompt_sources, resolve_prompt_source, save_prompt_set,
)
from cai_core.store import check_constitution_name, list_constitutions, load_constitution, save_constitution
from cai_core.training.rows import TrainingDataError, data_files
from cai_core.training.spec import RecipeError, check_run_name, list_recipes, load_recipe, save_recipe

JUNK = "name: junk\nprinciples: [not, a, principle]\n"
REPO_FILES = ["README.md", "Makefile", "app.py"]
# What a saved prompt set's name may look like: the pattern the sources are checked against.
SAVED_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def one_sentence(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    return text


# ---------------------------------------------------------------- constitutions


def test_a_file_named_like_a_shipped_constitution_in_the_current_folder_does_not_replace_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "general-hhh").write_text(JUNK, encoding="utf-8")
    (tmp_path / "general-hhh.yaml").write_text(JUNK, encoding="utf-8")
    shipped = load_constitution(SHIPPED_CONSTITUTIONS_DIR / "general-hhh.yaml")
    assert load_constitution("general-hhh") == shipped
    assert load_constitution("general-hhh.yaml") == shipped
    # The file itself is still reachable, but only by a path that says so.
    with pytest.raises(ConstitutionError, match=r"general-hhh, line \d+"):
        load_constitution("./general-hhh")


@pytest.mark.parametrize("name", REPO_FILES)
def test_repository_files_are_not_constitution_names(name, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    assert (REPO_ROOT / name).is_file()
    with pytest.raises(ConstitutionError) as caught:
        load_constitution(name)
    assert one_sentence(caught.value).startswith(f"no constitution named {name!r}")


CONSTITUTION_NAMES = ["mine", "My rules 2", "v1.yaml", "v2.json", "team.rules_v3-final", "x" * 64]


@pytest.mark.parametrize("name", CONSTITUTION_NAMES)
def test_every_constitution_name_the_save_accepts_loads_by_that_name(name, tmp_path, monkeypatch):
    assert check_constitution_name(name) == name
    principle = Principle(name="be-kind", critique_request="Is it unkind?", revision_request="Make it kind.")
    saved = Constitution(name=name, description="round trip", principles=[principle])
    save_constitution(saved)
    decoys = tmp_path / "decoys"
    decoys.mkdir()
    (decoys / name).write_text(JUNK, encoding="utf-8")
    monkeypatch.chdir(decoys)
    assert load_constitution(name) == saved
    assert name in [info.name for info in list_constitutions()]


# ---------------------------------------------------------------- datasets used by training


@pytest.mark.parametrize("name", ["docs", "tests"])
def test_a_dataset_named_like_a_repository_folder_is_the_stores_dataset(name, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    assert (REPO_ROOT / name).is_dir() and check_dataset_name(name) == name
    folder = datasets_dir() / name
    folder.mkdir(parents=True)
    (folder / SFT_FILE).write_text('{"prompt": "hi", "completion": "hello"}\n', encoding="utf-8")
    spec = load_recipe(SHIPPED_RECIPES_DIR / "cpu-demo.yaml", "sft", {"data": [name]})
    assert data_files(spec) == [folder / SFT_FILE]


def test_a_missing_dataset_is_not_looked_for_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rows.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n', encoding="utf-8")
    spec = load_recipe(SHIPPED_RECIPES_DIR / "cpu-demo.yaml", "sft", {"data": ["rows.jsonl"]})
    with pytest.raises(TrainingDataError) as caught:
        data_files(spec)
    assert "no dataset named 'rows.jsonl'" in one_sentence(caught.value) and "./rows.jsonl" in str(caught.value)
    files = data_files(spec.model_copy(update={"data": ["./rows.jsonl"]}))
    assert [path.resolve() for path in files] == [(tmp_path / "rows.jsonl").resolve()]


# ---------------------------------------------------------------- prompt sets


@pytest.mark.parametrize("name", REPO_FILES)
def test_repository_files_are_not_prompt_sets(name, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    with pytest.raises(PromptFileError) as caught:
        resolve_prompt_source(name)
    assert one_sentence(caught.value).startswith(f"prompt set {name!r} is neither a shipped or saved set")


def test_an_uploaded_prompt_set_is_saved_under_a_name_that_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uploads = [("_mine.txt", b"one\ntwo\n"), (".hidden.jsonl", b'{"prompt": "one"}\n{"prompt": "two"}\n'),
               ("--dashes.csv", b"prompt\none\ntwo\n"), ("my prompts (1).txt", b"one\ntwo\n")]
    for file_name, data in uploads:
        name, _ = save_prompt_set(file_name, data)
        assert SAVED_SET_NAME.match(name) and name in list_prompt_sets(), file_name
        assert [item.prompt for item in load_prompt_sources([name]).items] == ["one", "two"], file_name


def test_repeated_uploads_of_a_long_file_name_always_get_a_name_that_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    file_name = "a-very-long-prompt-file-name-" + "x" * 50 + ".jsonl"
    names = []
    for number in range(1, 13):
        name, _ = save_prompt_set(file_name, f'{{"prompt": "prompt number {number}"}}\n'.encode())
        assert SAVED_SET_NAME.match(name), name
        assert [item.prompt for item in load_prompt_sources([name]).items] == [f"prompt number {number}"]
        names.append(name)
    assert len(set(names)) == 12 and set(names) <= set(list_prompt_sets())


# ---------------------------------------------------------------- recipes


@pytest.mark.parametrize("name", ["mine", "v1.yaml", "v2.yml", "Team.Recipe_3"])
def test_every_recipe_name_the_save_accepts_loads_by_that_name(name, tmp_path, monkeypatch):
    check_run_name(name.removesuffix(".yaml"))
    text = (SHIPPED_RECIPES_DIR / "cpu-demo.yaml").read_text(encoding="utf-8").replace("max_steps: 60", "max_steps: 7")
    assert "max_steps: 7" in text
    path = save_recipe(name, text, "sft")
    decoys = tmp_path / "decoys"
    decoys.mkdir()
    (decoys / name).write_text(JUNK, encoding="utf-8")
    monkeypatch.chdir(decoys)
    assert load_recipe(name, "sft").max_steps == 7
    assert path in list_recipes()


def test_shipped_recipes_load_by_name_from_any_folder_and_repository_files_are_not_recipes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = load_recipe(SHIPPED_RECIPES_DIR / "cpu-demo.yaml", "dpo")
    assert load_recipe("cpu-demo", "dpo") == load_recipe("cpu-demo.yaml", "dpo") == shipped
    monkeypatch.chdir(REPO_ROOT)
    for name in REPO_FILES:
        with pytest.raises(RecipeError) as caught:
            load_recipe(name, "sft")
        assert one_sentence(caught.value).startswith(f"there is no recipe named {name!r}")
