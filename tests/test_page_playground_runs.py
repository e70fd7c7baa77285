"""Trained runs as Playground models, and the before/after preset the Training page leaves.

A real SFT run on the tiny random model is trained once per module (a training process, a few
seconds) and copied into each test's private CAI_HOME, so every test sees it in ``list_runs()``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]

from page_util import page_keys, shown
from test_page_playground import current_run, fast_settings, finals_shown, k, markdown_values, wait_until

PAGE = ROOT / "pages" / "2_Playground.py"
RUN_NAME = "tiny-sft"
PRESET_KEY = page_keys("playground")("preset")


@pytest.fixture(scope="module")
def trained_run_template(tiny_model_dir, tmp_path_factory) -> Path:
    """A finished SFT run (with its adapter) trained for real on the tiny model."""
    from cai_core.training import TrainingSpec, read_run, start_run

    scratch = tmp_path_factory.mktemp("playground-runs")
    data = scratch / "rows.jsonl"
    data.write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": f"hi {n}"}, {"role": "assistant", "content": "hello"}]}) + "\n"
        for n in range(8)
    ), encoding="utf-8")
    spec = TrainingSpec(method="sft", base_model=str(tiny_model_dir), data=[str(data)], max_steps=4, batch_size=4,
                        save_steps=4, learning_rate=5e-3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAI_HOME", str(scratch / "home"))
        folder = start_run(spec, name=RUN_NAME, root=scratch / "runs")
        deadline = time.monotonic() + 120
        while read_run(folder).job.active:
            assert time.monotonic() < deadline, (folder / "log.txt").read_text(errors="replace")[-2000:]
            time.sleep(0.25)
    run = read_run(folder)
    assert run.state == "finished" and run.has_adapter, (folder / "log.txt").read_text(errors="replace")[-2000:]
    return folder


@pytest.fixture
def run_folder(trained_run_template, cai_home) -> Path:
    """The trained run, in this test's CAI_HOME/runs."""
    folder = cai_home / "runs" / RUN_NAME
    shutil.copytree(trained_run_template, folder)
    return folder


@pytest.fixture
def page(tiny_model_dir, monkeypatch, run_folder) -> AppTest:
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    return AppTest.from_file(str(PAGE), default_timeout=60)


def run_label(tiny_model_dir: Path) -> str:
    return f"run: {RUN_NAME} (sft, from {tiny_model_dir.name})"


def with_preset(at: AppTest, before: str, after: str) -> AppTest:
    at.session_state[PRESET_KEY] = {"models": [before, after]}
    return at.run()


def infos(at: AppTest) -> list[str]:
    return [shown(i.value) for i in at.info]


def no_traceback(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.get("exception")


# ---------------------------------------------------------------- the model choice


def test_finished_run_is_a_model_choice(page, run_folder, tiny_model_dir, cai_home):
    # A run that has not finished (no adapter yet) is not offered.
    unfinished = cai_home / "runs" / "half-done"
    shutil.copytree(run_folder, unfinished)
    shutil.rmtree(unfinished / "adapter")
    page.run()
    no_traceback(page)
    choice = page.selectbox(key=k("model-choice-0"))
    assert choice.options[choice.index].startswith("default (")
    assert choice.options == [f"default ($CAI_MODEL: {tiny_model_dir.name})", run_label(tiny_model_dir), "another model…"]
    choice.set_value(str(run_folder)).run()
    no_traceback(page)
    assert page.selectbox(key=k("model-choice-0")).value == str(run_folder)
    assert not [t for t in page.text_input if t.key == k("model-0")]  # no free text for a run


def test_chosen_run_runs_the_chain_with_its_adapter_merged(page, run_folder, tiny_model_dir):
    page.run()
    page.selectbox(key=k("model-choice-0")).set_value(str(run_folder)).run()
    fast_settings(page, rounds=1)
    page.button(key=k("run-button")).click().run()
    assert not page.error, [e.value for e in page.error]
    run = current_run(page)
    assert run["configs"][0]["model"] == str(run_folder)
    wait_until(page, finals_shown())
    job = run["jobs"][0]
    assert job.finished and job.error is None
    trace = job.state().traces[0]
    assert len(trace.steps) == 1
    # The model that wrote the trace is the base with the run's adapter merged in.
    assert trace.lineage["model"] == f"{tiny_model_dir.name} + {RUN_NAME}"
    assert f"**Model** `{run_label(tiny_model_dir)}`" in markdown_values(page)


def test_a_run_folder_typed_as_another_model_is_named_as_its_run(page, run_folder, tiny_model_dir):
    page.run()
    page.selectbox(key=k("model-choice-0")).set_value(":other").run()
    page.text_input(key=k("model-0")).set_value(str(run_folder / "adapter")).run()
    fast_settings(page, rounds=1)
    page.button(key=k("run-button")).click().run()
    wait_until(page, finals_shown())
    assert f"**Model** `{run_label(tiny_model_dir)}`" in markdown_values(page)


# ---------------------------------------------------------------- the before/after preset


def test_preset_compares_the_base_and_the_run_side_by_side(page, run_folder, tiny_model_dir):
    with_preset(page, str(tiny_model_dir), str(run_folder))
    no_traceback(page)
    assert PRESET_KEY not in page.session_state  # used once
    assert not page.warning  # no "set through Session State and given a default" warnings
    assert page.toggle(key=k("compare")).value is True
    assert page.radio(key=k("count")).value == 2
    # A: the base folder, which is $CAI_MODEL here, so the default; B: the run, as its run choice.
    model_a = page.selectbox(key=k("model-choice-0"))
    assert model_a.options[model_a.index].startswith("default (")
    assert page.selectbox(key=k("model-choice-1")).value == str(run_folder)
    assert f"Comparing {RUN_NAME} before and after training" in infos(page)
    # Same constitution and principles on both sides: only the model differs.
    assert page.selectbox(key=k("constitution-0")).value == page.selectbox(key=k("constitution-1")).value
    name = page.selectbox(key=k("constitution-0")).value
    assert (page.multiselect(key=k(f"principles-0-{name}")).value
            == page.multiselect(key=k(f"principles-1-{name}")).value)

    fast_settings(page, rounds=1)
    page.run()
    assert f"Comparing {RUN_NAME} before and after training" in infos(page)  # the note stays
    page.button(key=k("run-button")).click().run()
    assert not page.error, [e.value for e in page.error]
    run = current_run(page)
    assert [c["model"] for c in run["configs"]] == [str(tiny_model_dir), str(run_folder)]
    wait_until(page, finals_shown(2))

    columns = [c for c in page.columns if "**Final answer**" in markdown_values(c)]
    assert len(columns) == 2
    assert "##### Configuration A" in markdown_values(columns[0])
    assert f"**Model** `default ($CAI_MODEL: {tiny_model_dir.name})`" in markdown_values(columns[0])
    assert "##### Configuration B" in markdown_values(columns[1])
    assert f"**Model** `{run_label(tiny_model_dir)}`" in markdown_values(columns[1])
    for column in columns:
        assert "**Initial answer**" in markdown_values(column)
    traces = [job.state().traces[0] for job in run["jobs"]]
    assert [t.lineage["model"] for t in traces] == [tiny_model_dir.name, f"{tiny_model_dir.name} + {RUN_NAME}"]


def test_preset_note_goes_when_a_model_is_changed(page, run_folder, tiny_model_dir):
    with_preset(page, str(tiny_model_dir), str(run_folder))
    assert f"Comparing {RUN_NAME} before and after training" in infos(page)
    page.selectbox(key=k("model-choice-1")).select_index(0).run()  # "default (…)", the first entry
    no_traceback(page)
    assert not any(i.startswith("Comparing") for i in infos(page))


@pytest.mark.parametrize("before", ["default", "base-folder"])
def test_preset_shows_each_spec_in_its_own_form(before, tiny_model_dir, run_folder, monkeypatch):
    """Without $CAI_MODEL: "default" is the default choice; a plain folder goes in the free-text box;
    the run's adapter folder shows as its run."""
    monkeypatch.delenv("CAI_MODEL", raising=False)
    spec = "default" if before == "default" else str(tiny_model_dir)
    at = with_preset(AppTest.from_file(str(PAGE), default_timeout=60), spec, str(run_folder / "adapter"))
    no_traceback(at)
    choice = at.selectbox(key=k("model-choice-0"))
    if before == "default":
        assert choice.options[choice.index].startswith("default (") and choice.options[0] == "default (bundled model)"
    else:
        assert choice.value == ":other"
        assert at.text_input(key=k("model-0")).value == str(tiny_model_dir)
    assert at.selectbox(key=k("model-choice-1")).value == str(run_folder)
    assert f"Comparing {RUN_NAME} before and after training" in infos(at)


# ---------------------------------------------------------------- a run that lost its adapter


def test_preset_with_a_run_whose_adapter_was_deleted_is_one_sentence(page, run_folder, tiny_model_dir):
    shutil.rmtree(run_folder / "adapter")
    with_preset(page, str(tiny_model_dir), str(run_folder))
    no_traceback(page)
    assert page.selectbox(key=k("model-choice-1")).value == ":other"
    assert page.text_input(key=k("model-1")).value == str(run_folder)
    expected = (f"Run '{RUN_NAME}' has no trained adapter (it did not finish, or its adapter folder was deleted), "
                "so it cannot be used as a model; choose another.")
    assert [shown(e.value) for e in page.error] == [expected]

    fast_settings(page, rounds=1)
    page.button(key=k("run-button")).click().run()
    no_traceback(page)
    assert current_run(page) is None
    errors = [shown(e.value) for e in page.error]
    assert errors == [expected, "Choose another model for configuration B: the one chosen cannot be loaded."]
    assert not any("Traceback" in e for e in errors)


def test_a_chosen_run_whose_adapter_goes_is_one_sentence(page, run_folder):
    page.run()
    page.selectbox(key=k("model-choice-0")).set_value(str(run_folder)).run()
    shutil.rmtree(run_folder / "adapter")
    fast_settings(page, rounds=1)
    page.button(key=k("run-button")).click().run()
    no_traceback(page)
    # The choice falls back to the free-text box holding the folder, with the reason beside it.
    assert page.selectbox(key=k("model-choice-0")).value == ":other"
    assert page.text_input(key=k("model-0")).value == str(run_folder)
    assert current_run(page) is None
    assert len(page.error) == 2 and all(shown(e.value).count(". ") == 0 for e in page.error)
    assert shown(page.error[0].value).startswith(f"Run '{RUN_NAME}' has no trained adapter")
