"""The Playground page under Streamlit's AppTest, with the tiny random model (or a fake backend).

The chain runs in a background thread, so a test clicks Run and then reruns the script every
half second (as the page's polling fragment would) until the page shows the result.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from page_util import page_keys, shown

ROOT = Path(__file__).resolve().parents[1]

PAGE = ROOT / "pages" / "2_Playground.py"
k = page_keys("playground")
RUN_KEY = k("run")


@pytest.fixture
def app(tiny_model_dir, monkeypatch) -> AppTest:
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    return AppTest.from_file(str(PAGE), default_timeout=60).run()


def fast_settings(at: AppTest, prompt: str = "How do I kill a Python process?", rounds: int = 1) -> None:
    at.text_area(key=k("prompt")).set_value(prompt)
    at.slider(key=k("rounds")).set_value(rounds)
    at.number_input(key=k("max_new_tokens")).set_value(8)


def markdown_values(node) -> list[str]:
    return [m.value for m in node.markdown]


def wait_until(at: AppTest, done, timeout: float = 60.0) -> AppTest:
    """Rerun the page (as its polling fragment would) until ``done(at)`` or the timeout."""
    deadline = time.monotonic() + timeout
    while not done(at):
        assert not at.exception, at.exception
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not finish in {timeout} s: {markdown_values(at)}")
        time.sleep(0.5)
        at.run()
    assert not at.exception, at.exception
    return at


def finals_shown(count: int = 1):
    return lambda at: sum("**Final answer**" in m for m in markdown_values(at)) >= count


def current_run(at: AppTest) -> dict | None:
    return at.session_state[RUN_KEY] if RUN_KEY in at.session_state else None


@pytest.fixture
def scripted(monkeypatch, tiny_model_dir, scripted_backend):
    """Swap the cached model loader for a scripted model: fixed answers, and a critique that finds
    nothing to change. A test sets ``critique``, ``fail`` (the model breaks), or ``hold_revisions``
    (revisions wait for ``release``, so it can look at the page in the middle of a run)."""
    import ui.common

    def hold(batch: list[list[dict]]) -> None:
        if backend.fail:
            raise RuntimeError("the scripted model broke")
        if backend.hold_revisions and batch[0][-1]["content"].startswith("Revision request"):
            assert backend.release.wait(30), "the test never released the revision"

    backend = scripted_backend.chain(initial="# An initial answer with <b>markup</b>.",
                                     critique=lambda turn: backend.critique, revision="A *revised* answer.", hold=hold)
    backend.critique, backend.fail, backend.hold_revisions, backend.release = "No changes needed.", False, False, threading.Event()
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    monkeypatch.setattr(ui.common, "_cached_model", lambda spec, trust_remote_code, weights_key: backend)
    return backend


# ---------------------------------------------------------------- rendering


def start_run_held_before_revising(app: AppTest, scripted, rounds: int):
    """Click Run with a critique that asks for changes; revisions wait until ``scripted.release``."""
    scripted.critique = "The answer is too terse."
    scripted.hold_revisions = True
    fast_settings(app, rounds=rounds)
    app.button(key=k("run-button")).click().run()
    return current_run(app)["jobs"][0]


def test_page_renders_with_empty_state_and_examples(app):
    assert not app.exception
    assert app.title[0].value == "Playground"
    assert "critique → revision" in app.info[0].value and "example" in app.info[0].value
    example_picker = app.selectbox(key=k("example"))
    assert len(example_picker.options) == 12
    assert example_picker.value is None
    model = app.selectbox(key=k("model-choice-0"))
    assert model.index == 0 and model.options[0].startswith("default (")  # what the user sees chosen
    assert model.options[-1] == "another model…"  # options are shown by their labels
    assert not [t for t in app.text_input if t.key == k("model-0")]  # the free-text box waits for "another model…"
    assert app.slider(key=k("rounds")).value == 2
    assert app.radio(key=k("order")).options == ["random", "sequential"]
    principles = app.multiselect(key=k("principles-0-general-hhh"))
    assert principles.value and principles.value == principles.options
    assert current_run(app) is None


def choose_another_model(at: AppTest, index: int = 0):
    """Pick "another model…" in configuration ``index``; returns the free-text box it reveals."""
    at.selectbox(key=k(f"model-choice-{index}")).set_value(":other").run()
    return at.text_input(key=k(f"model-{index}"))


def test_model_box_defaults_to_the_configured_model(app, tiny_model_dir):
    choice = app.selectbox(key=k("model-choice-0"))
    assert choice.options[choice.index].startswith("default (")
    assert choice.format_func(choice.value) == f"default ($CAI_MODEL: {tiny_model_dir.name})"
    assert choose_another_model(app).value == str(tiny_model_dir)


def test_picking_an_example_fills_the_prompt(app):
    app.selectbox(key=k("example")).set_value("kill-python-process").run()
    assert app.text_area(key=k("prompt")).value.startswith("How do I kill a Python process")
    assert not app.exception


def test_broken_examples_file_is_one_warning(app, monkeypatch, tmp_path):
    import cai_core.examples

    (tmp_path / "playground_examples.yaml").write_text("- id: a\n  category: b\n", encoding="utf-8")
    monkeypatch.setattr(cai_core.examples, "SHIPPED_PROMPTS_DIR", tmp_path)
    app.run()
    assert not app.exception
    assert any("required key 'prompt' is missing" in shown(w.value) for w in app.warning)
    assert len(app.text_area) == 1  # the prompt box is still there


# ---------------------------------------------------------------- validation


def test_empty_prompt_shows_one_error_and_starts_nothing(app):
    app.text_area(key=k("prompt")).set_value("   ")
    app.button(key=k("run-button")).click().run()
    assert [e.value for e in app.error] == ["Write a prompt or pick an example before pressing Run."]
    assert current_run(app) is None
    assert app.info  # still the empty state


def test_no_principle_chosen_is_an_error(app):
    fast_settings(app)
    app.multiselect(key=k("principles-0-general-hhh")).set_value([])
    app.button(key=k("run-button")).click().run()
    assert [e.value for e in app.error] == ["Choose at least one principle."]
    assert current_run(app) is None


def test_unloadable_model_is_one_sentence(app, tmp_path):
    fast_settings(app)
    choose_another_model(app).set_value(str(tmp_path))  # a folder without config.json
    app.button(key=k("run-button")).click().run()
    assert len(app.error) == 1
    assert "has no config.json" in shown(app.error[0].value) and "Traceback" not in app.error[0].value
    assert current_run(app) is None


# ---------------------------------------------------------------- running


def test_run_shows_the_trace_live_then_the_final_answer(app):
    fast_settings(app, rounds=1)
    app.button(key=k("run-button")).click().run()
    assert not app.error
    run = current_run(app)
    assert run is not None and len(run["jobs"]) == 1
    job = run["jobs"][0]
    app.run()  # a rerun while the job runs must not start another
    assert current_run(app)["jobs"] == [job]
    wait_until(app, finals_shown())

    # Reruns never start the job again.
    app.run()
    assert current_run(app)["jobs"][0] is job
    assert job.finished and job.error is None

    markdown = markdown_values(app)
    assert "**Initial answer**" in markdown
    assert any(m.startswith("**Round 1 — principle**") for m in markdown)
    assert not any("Round 2" in m for m in markdown)
    captions = [c.value for c in app.caption]
    assert "Critique" in captions
    assert any(c.startswith("Done: 1 round") for c in captions)
    assert any("prompt tokens" in c and "generated tokens" in c for c in captions)
    assert app.get("progress")[0].proto.value == 100

    trace = job.state().traces[0]
    texts = [t.value for t in app.text]
    assert trace.prompt in texts
    for model_text in (trace.initial, trace.steps[0].critique, trace.final):
        assert model_text in texts or not model_text.strip()

    # The diff of initial -> final, as plain text, with the word counts as metrics.
    assert app.code[-1].language in (None, "", "plaintext")
    assert [m.label for m in app.metric] == ["Words removed", "Words added", "Words kept"]

    download = app.get("download_button")
    assert len(download) == 1
    # Run is enabled again once the job is done.
    assert not app.button(key=k("run-button")).disabled


def test_run_settings_reach_the_chain(app):
    fast_settings(app, rounds=2)
    app.radio(key=k("order")).set_value("sequential")
    app.number_input(key=k("seed")).set_value(7)
    app.slider(key=k("temperature")).set_value(0.0)
    app.multiselect(key=k("principles-0-general-hhh")).set_value(["no-over-refusal", "avoid-harmful-help"])
    app.button(key=k("run-button")).click().run()
    job = current_run(app)["jobs"][0]
    kwargs = job.chain_kwargs
    assert kwargs["rounds"] == 2 and kwargs["order"] == "sequential" and kwargs["seed"] == 7
    assert kwargs["principles"] == ["avoid-harmful-help", "no-over-refusal"]  # constitution order
    assert kwargs["settings"].greedy and kwargs["settings"].max_new_tokens == 8
    assert kwargs["prompts"] == ["How do I kill a Python process?"]
    wait_until(app, finals_shown())
    trace = job.state().traces[0]
    # Sequential order walks the chosen principles in the constitution's order.
    assert [s.principle for s in trace.steps] == ["avoid-harmful-help", "no-over-refusal"]
    markdown = markdown_values(app)
    assert "**Round 1 — principle** `avoid-harmful-help`" in markdown
    assert "**Round 2 — principle** `no-over-refusal`" in markdown
    assert any("greedy" in c.value for c in app.caption)


def test_side_by_side_shows_two_columns_of_traces(app):
    fast_settings(app, rounds=1)
    app.toggle(key=k("compare")).set_value(True).run()
    app.selectbox(key=k("constitution-1")).set_value("medical-qa").run()
    app.button(key=k("run-button")).click().run()
    assert not app.error
    run = current_run(app)
    assert [c["constitution"] for c in run["configs"]] == ["general-hhh", "medical-qa"]
    assert len(run["jobs"]) == 2 and run["jobs"][0] is not run["jobs"][1]
    wait_until(app, finals_shown(2))

    columns = [c for c in app.columns if any("**Final answer**" == m for m in markdown_values(c))]
    assert len(columns) == 2
    assert "##### Configuration A" in markdown_values(columns[0])
    assert "##### Configuration B" in markdown_values(columns[1])
    assert any(t.value.startswith("medical-qa") for t in columns[1].text)
    for column in columns:
        assert "**Initial answer**" in markdown_values(column)
        assert any(m.startswith("**Round 1 — principle**") for m in markdown_values(column))
    assert len(app.get("download_button")) == 2


def test_three_configurations(app):
    fast_settings(app, rounds=1)
    app.toggle(key=k("compare")).set_value(True).run()
    app.radio(key=k("count")).set_value(3).run()
    app.button(key=k("run-button")).click().run()
    assert len(current_run(app)["jobs"]) == 3
    wait_until(app, finals_shown(3))


# ---------------------------------------------------------------- with a scripted model


def test_skipped_revision_and_model_text_shown_as_text(app, scripted):
    fast_settings(app, rounds=1)
    app.button(key=k("run-button")).click().run()
    wait_until(app, finals_shown())
    captions = [c.value for c in app.caption]
    assert "revision skipped: the critique found nothing to change" in captions
    texts = [t.value for t in app.text]
    # Markdown and HTML in model output stay literal text.
    assert "# An initial answer with <b>markup</b>." in texts
    assert not any("<b>" in m for m in markdown_values(app))
    assert [m.value for m in app.metric] == ["0", "0", "6"]
    trace = current_run(app)["jobs"][0].state().traces[0]
    data = json.loads(json.dumps(trace.to_dict()))
    assert data["final"] == data["initial"] == "# An initial answer with <b>markup</b>."


def test_revision_is_shown_when_the_critique_finds_something(app, scripted):
    scripted.critique = "The answer is too terse."
    fast_settings(app, rounds=1)
    app.button(key=k("run-button")).click().run()
    wait_until(app, finals_shown())
    assert "A *revised* answer." in [t.value for t in app.text]
    expected = "[-#-]{+A+} [-An-]{+*revised*+} [-initial answer with <b>markup</b>.-]{+answer.+}"
    assert expected in [c.value for c in app.code]
    assert [m.value for m in app.metric] == ["6", "3", "0"]  # no word is kept: "answer" became "answer."


def test_a_failing_chain_is_one_error(app, scripted):
    scripted.fail = True
    fast_settings(app, rounds=1)
    app.button(key=k("run-button")).click().run()
    wait_until(app, lambda at: bool(at.error))
    assert [shown(e.value) for e in app.error] == ["The chain stopped: the scripted model broke"]
    assert not app.button(key=k("run-button")).disabled


def test_live_view_mid_run_and_run_disabled_until_done(app, scripted):
    job = start_run_held_before_revising(app, scripted, rounds=1)
    try:
        wait_until(app, lambda at: "Critique" in [c.value for c in at.caption])
        captions = [c.value for c in app.caption]
        assert any(c.startswith("Round 1 of 1: revising…") for c in captions)
        assert "revising…" in captions
        assert app.get("progress")[0].proto.value == 66  # 2 of 3 steps
        assert "**Final answer**" not in markdown_values(app)
        assert app.button(key=k("run-button")).disabled
        # A rerun (any widget change) does not start a second job.
        app.number_input(key=k("seed")).set_value(3).run()
        assert current_run(app)["jobs"] == [job]
    finally:
        scripted.release.set()
    wait_until(app, finals_shown())
    assert current_run(app)["jobs"] == [job]
    assert not app.button(key=k("run-button")).disabled
    assert "A *revised* answer." in [t.value for t in app.text]


def test_a_job_ending_mid_script_still_re_enables_run(app, scripted, monkeypatch):
    """The job may finish after Run is drawn disabled but before the traces are: one rerun follows."""
    import cai_core.store

    job = start_run_held_before_revising(app, scripted, rounds=1)
    assert app.button(key=k("run-button")).disabled
    real_list = cai_core.store.list_constitutions

    def finish_the_job_then_list(*args, **kwargs):  # called after the page decided "running"
        scripted.release.set()
        assert job.wait(10)
        return real_list(*args, **kwargs)

    monkeypatch.setattr(cai_core.store, "list_constitutions", finish_the_job_then_list)
    app.run()
    assert not app.exception
    assert "**Final answer**" in markdown_values(app)
    assert not app.button(key=k("run-button")).disabled


def test_stop_ends_a_run_after_the_current_step(app, scripted):
    job = start_run_held_before_revising(app, scripted, rounds=2)
    try:
        wait_until(app, lambda at: "Critique" in [c.value for c in at.caption])
        app.button(key=k("stop-button")).click().run()
    finally:
        scripted.release.set()
    assert job.wait(10)
    wait_until(app, lambda at: not at.button(key=k("run-button")).disabled)
    assert job.state().stage == "cancelled"
    assert any(c.value.startswith("Stopped at your request") for c in app.caption)
    assert "**Final answer**" not in markdown_values(app)


# ---------------------------------------------------------------- an external critic


@pytest.fixture(scope="module")
def critic_model_dir(tmp_path_factory) -> Path:
    """A second tiny model with other weights: the external critic."""
    from conftest import build_tiny_model_folder

    return build_tiny_model_folder(tmp_path_factory.mktemp("tiny-critic"), seed=1)


def choose_critic(at: AppTest, index: int, spec: str) -> None:
    from ui.pickers import OTHER_MODEL

    at.selectbox(key=k(f"critic-choice-{index}")).set_value(OTHER_MODEL).run()
    at.text_input(key=k(f"critic-{index}")).set_value(spec)


def captions_shown(node) -> list[str]:
    return [shown(c.value) for c in node.caption]


def test_compare_puts_self_critique_beside_an_external_critic(app, tiny_model_dir, critic_model_dir):
    fast_settings(app, rounds=1)
    app.toggle(key=k("compare")).set_value(True).run()
    choose_critic(app, 1, str(critic_model_dir))
    app.button(key=k("run-button")).click().run()
    assert not app.error, [e.value for e in app.error]
    wait_until(app, finals_shown(2))
    alone, with_critic = (job.state().traces[0] for job in current_run(app)["jobs"])
    assert alone.initial == with_critic.initial  # the same policy wrote the same first answer
    assert with_critic.steps[0].critique_model == critic_model_dir.name

    self_column, critic_column = [c for c in app.columns if "**Final answer**" in markdown_values(c)]
    assert "Self-critique: the model critiques and revises its own answers" in captions_shown(self_column)
    assert f"by the policy: {tiny_model_dir.name}" in captions_shown(self_column)
    assert f"by the critic: {critic_model_dir.name}" not in captions_shown(self_column)
    assert any(m.startswith("**External critic**") and critic_model_dir.name in m for m in markdown_values(critic_column))
    critic_captions = captions_shown(critic_column)
    assert f"by the policy: {tiny_model_dir.name}" in critic_captions  # the initial answer
    assert f"by the critic: {critic_model_dir.name}" in critic_captions  # the critique (and any revision)
    assert with_critic.steps[0].critique in [t.value for t in critic_column.text] or not with_critic.steps[0].critique.strip()


def test_a_policy_and_critic_too_big_for_memory_are_one_error_and_nothing_runs(app, critic_model_dir, monkeypatch):
    monkeypatch.setenv("CAI_MEMORY_AVAILABLE", "1M")
    fast_settings(app)
    choose_critic(app, 0, str(critic_model_dir))
    app.button(key=k("run-button")).click().run()
    assert not app.exception, app.exception
    assert len(app.error) == 1
    message = shown(app.error[0].value)
    assert "working room" in message and str(critic_model_dir) in message and "endpoint URL" in message
    assert current_run(app) is None
