"""The Data page under Streamlit's AppTest, with real worker processes on the tiny random model.

A launch really starts ``python -m cai_core.jobs`` in its own process; the test polls the job's
folder (as the page's fragment would) and reruns the page once the job has ended.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cai_core.data import (
    BEST_OF_N_PAIRS_FILE,
    JUDGEMENTS_FILE,
    PROMPTS_FILE,
    RLAIF_PAIRS_FILE,
    SAMPLES_FILE,
    SFT_FILE,
    GenerationSpec,
    datasets_dir,
    parse_spec,
    prepare_dataset,
    read_rows,
    run_generation,
)
from cai_core.jobs import JobState, prepare_job, read_job, write_json
from cai_core.models import GenerationSettings
from cai_core.data.promptsets import (
    evaluation_half,
    load_prompt_sources,
    user_prompt_sets_dir,
)
from page_util import page_keys
from ui.pickers import OTHER_MODEL

ROOT = Path(__file__).resolve().parents[1]

PAGE = ROOT / "pages" / "3_Data.py"
JOB_TIMEOUT_S = 120


k = page_keys("data")


@pytest.fixture
def app(tiny_model_dir, monkeypatch) -> AppTest:
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def wait_for_job(folder: Path, timeout: float = JOB_TIMEOUT_S) -> JobState:
    deadline = time.monotonic() + timeout
    while (job := read_job(folder)).active:
        assert time.monotonic() < deadline, f"the job did not end in {timeout} s: {job}"
        time.sleep(0.25)
    log = (folder / "log.txt").read_text(errors="replace") if (folder / "log.txt").exists() else ""
    assert job.state == "finished", f"{job}\n{log}"
    return job


def unescape(text: str) -> str:
    """Alerts escape markdown (they show text from files and models); read them as displayed."""
    return re.sub(r"\\(.)", r"\1", text)


def errors(at: AppTest) -> list[str]:
    return [unescape(e.value) for e in at.error]


def markdown_values(at) -> list[str]:
    return [m.value for m in at.markdown]


def texts(node) -> list[str]:
    return [t.value for t in node.text]


def fill_small_run(at: AppTest, name: str, limit: int) -> None:
    at.text_input(key=k("name")).set_value(name)
    at.number_input(key=k("limit")).set_value(limit)
    at.number_input(key=k("max_new_tokens")).set_value(8)
    at.slider(key=k("min_confidence")).set_value(0.5)
    at.number_input(key=k("chunk_size")).set_value(limit // 2)


def pick_other_model(at: AppTest, label: str, spec: str) -> None:
    """Choose "another model" in the picker called ``label`` and type ``spec`` beside it."""
    next(box for box in at.selectbox if box.label == label).set_value(OTHER_MODEL).run()
    next(box for box in at.text_input if box.label == label).set_value(spec)


def test_empty_state_renders(app):
    assert not app.error
    assert any("No datasets yet" in info.value for info in app.info)
    assert app.button(key=k("launch")).label == "Start generating"
    assert app.multiselect(key=k("sources")).value == ["red_team", "benign"]
    # The counts per category of the chosen prompt sets are shown before anything starts.
    categories = app.dataframe[0].value
    assert set(categories.columns) == {"category", "prompts"}
    assert categories["prompts"].sum() == 20  # the default limit
    assert not app.get("plotly_chart")


def test_bad_dataset_name_is_one_error(app):
    app.text_input(key=k("name")).set_value("no spaces/or slashes")
    app.button(key=k("launch")).click().run()
    assert not app.exception
    assert len(app.error) == 1
    assert "Dataset name" in app.error[0].value and "letters, digits" in app.error[0].value
    assert not datasets_dir().exists() or not any(datasets_dir().iterdir())


def test_a_model_folder_that_does_not_exist_is_refused_before_anything_is_written(app, tmp_path):
    app.text_input(key=k("name")).set_value("no-model")
    pick_other_model(app, "Policy model", str(tmp_path / "missing-model"))
    app.button(key=k("launch")).click().run()
    assert not app.exception
    assert len(errors(app)) == 1 and str(tmp_path / "missing-model") in errors(app)[0]
    assert not (datasets_dir() / "no-model").exists()


def test_upload_a_malformed_file_names_the_line_and_saves_nothing(app):
    app.file_uploader(key=k("upload")).set_value(
        ("mine.jsonl", b'{"prompt": "fine"}\n{"prompt": oops}\n', "application/jsonl")).run()
    assert not app.exception
    assert len(app.error) == 1
    assert "mine" in app.error[0].value and "line 2" in app.error[0].value
    assert not user_prompt_sets_dir().exists() or not any(user_prompt_sets_dir().iterdir())
    assert app.multiselect(key=k("sources")).value == ["red_team", "benign"]

    good = b"prompt,category\nHow do I boil an egg?,cooking\nWhat is a mole in chemistry?,science\n"
    app.file_uploader(key=k("upload")).set_value(("my prompts.csv", good, "text/csv")).run()
    assert not app.exception and not app.error
    assert (user_prompt_sets_dir() / "my-prompts.csv").is_file()
    assert "my-prompts.csv" in app.multiselect(key=k("sources")).value
    assert any("Saved" in s.value and "2 prompts" in s.value for s in app.success), [s.value for s in app.success]
    assert {"cooking", "science"} <= set(app.dataframe[0].value["category"])


def test_launch_runs_in_a_worker_then_rows_charts_and_downloads_show(app):
    fill_small_run(app, "small", limit=12)
    app.button(key=k("launch")).click().run()
    assert not app.exception, app.exception
    assert not errors(app), errors(app)
    folder = datasets_dir() / "small"
    assert (folder / "spec.json").is_file()
    # The script returned at once: the worker is a separate process that may still be going.
    assert app.session_state[k("selected")] == "small"
    job = wait_for_job(folder)
    assert job.progress["done"] == job.progress["total"] == 12
    spec = parse_spec(json.loads((folder / "spec.json").read_text())["spec"])
    assert spec.settings.max_new_tokens == 8 and spec.min_confidence == 0.5 and spec.limit == 12

    app.run()
    assert not app.exception, app.exception
    assert "**State:** finished" in markdown_values(app)
    assert [t.label for t in app.tabs] == ["Phase 1 (SFT)", "Pairs from revisions", "RLAIF pairs", "Judgements",
                                           "Best-of-N pairs", "Best-of-N samples"]
    sft_tab, _revision_tab, _rlaif_tab, judgements_tab, best_tab, samples_tab = app.tabs
    # Best-of-N was not chosen (the default): its tabs say so rather than stay blank.
    assert any("makes no best-of-N pairs" in i.value for i in best_tab.info)
    assert any("makes no best-of-N samples" in i.value for i in samples_tab.info)
    sft_rows = read_rows(folder / SFT_FILE)
    assert len(sft_rows) == 12
    # Ten rows a page: page 1 shows the first prompt, page 2 the last two.
    assert sft_rows[0]["messages"][0]["content"] in texts(sft_tab)
    assert any("Rows 1–10 of 12" in c.value for c in sft_tab.caption)
    sft_tab.number_input(key=k("page:small:sft")).set_value(2).run()
    sft_tab = app.tabs[0]
    assert any("Rows 11–12 of 12" in c.value for c in sft_tab.caption)
    assert sft_rows[-1]["messages"][0]["content"] in texts(sft_tab)
    # Every judged pair is shown, kept or dropped; with min confidence 0.5 all are kept.
    judged = read_rows(folder / JUDGEMENTS_FILE)
    assert judged and len(read_rows(folder / RLAIF_PAIRS_FILE)) == len(judged)
    assert any(f"of {len(judged)}" in c.value for c in judgements_tab.caption)
    # The random judge is never sure: a high confidence range leaves no RLAIF pair.
    app.slider(key=k("confidence:small")).set_value((0.9, 1.0)).run()
    assert any("No RLAIF pairs match the filters" in i.value for i in app.tabs[2].info)

    assert len(app.get("plotly_chart")) == 4
    labels = [d.label for d in app.get("download_button")]
    for name in ("sft.jsonl", "traces.jsonl", "prefs_rlaif.jsonl", "judgements.jsonl"):
        assert any(label.startswith(name) for label in labels), labels
    assert "Dataset card (README.md)" in labels and "Whole dataset (.zip)" in labels

    # The same name again is refused: a dataset is resumed, never overwritten.
    app.text_input(key=k("name")).set_value("small")
    app.button(key=k("launch")).click().run()
    assert len(app.error) == 1 and "already exists" in app.error[0].value


def test_interrupted_job_shows_resume_and_resumes(app, tiny_model_dir):
    spec = parse_spec({"constitution": "general-hhh", "prompt_sources": ["benign"], "limit": 4,
                       "policy_model": str(tiny_model_dir), "settings": {"max_new_tokens": 8},
                       "phases": ["sft"], "chunk_size": 2})
    folder = datasets_dir() / "cut-short"
    prepare_dataset(folder, spec)
    prepare_job(folder, "generate", spec.model_dump(mode="json"))
    # What a worker killed mid-run leaves: "running" in status.json, and nobody holding the lock.
    write_json(folder / "status.json", {"state": "running", "kind": "generate", "started": time.time()})
    assert read_job(folder).state == "interrupted"

    app.run()
    assert not app.exception, app.exception
    assert "**State:** interrupted" in markdown_values(app)
    resume = app.button(key=k("resume"))
    assert resume.label == "Resume"
    resume.click().run()
    assert not app.exception, app.exception
    assert not errors(app), errors(app)
    wait_for_job(folder)
    app.run()
    assert "**State:** finished" in markdown_values(app)
    assert not [b for b in app.button if b.key == k("resume")]
    assert len(read_rows(folder / SFT_FILE)) == 4


def test_a_dataset_edited_by_hand_shows_its_bad_lines_instead_of_failing(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    broken = datasets_dir() / "edited"
    broken.mkdir(parents=True)
    write_json(broken / "spec.json", {"kind": "generate", "spec": {"constitution": "x", "prompt_sources": ["y"]}})
    (broken / "status.json").write_text("[1, 2]")
    (broken / "progress.json").write_text('{"done": "lots", "total": null, "updated": "soon"}')
    (broken / "sft.jsonl").write_text('{"id": 1}\n{"id": "a", "messages": "nope"}\n[1, 2]\n')
    user, answer = '[{"role": "user", "content": "hi"}]', '[{"role": "assistant", "content": "hello"}]'
    (broken / "prefs_rlaif.jsonl").write_text('{"id": "q", "prompt": [], "chosen": 3, "judge": null}\n'
                                              f'{{"id": "q", "prompt": {user}, "chosen": {answer}, "rejected": {answer}}}\n')
    (broken / "judgements.jsonl").write_text('{"id": "q", "confidence": "high", "kept": 1}\n')
    (broken / "prompts.jsonl").write_text('{"id": "q", "prompt": "a real prompt"}\n{"prompt": 5}\n')
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state[k("selected")] = "edited"
    at.run()
    assert not at.exception, at.exception
    warnings = " ".join(unescape(w.value) for w in at.warning)
    assert "sft.jsonl: 3 rows (line 1, 2, 3) are not in the shape" in warnings
    assert "prompts.jsonl: 1 row (line 2) is not in the shape" in warnings


def checkbox_keys(at: AppTest) -> set[str]:
    return {c.key for c in at.checkbox}


def test_best_of_n_and_distillation_inputs_appear_only_when_used(app):
    # The split is on by default; best-of-N and context distillation are not in play.
    assert app.checkbox(key=k("split")).value is True
    assert app.radio(key=k("sft_source")).value == "revision"
    assert app.checkbox(key=k("pairs_best_of_n")).value is False
    assert not [n for n in app.number_input if n.key == k("best_of_n")]
    assert not [m for m in app.multiselect if m.key == k("refuse_sources")]
    assert k("distil") not in checkbox_keys(app)

    app.radio(key=k("sft_source")).set_value("best_of_n").run()
    assert not app.exception, app.exception
    assert app.number_input(key=k("best_of_n")).value == 4
    refuse = app.multiselect(key=k("refuse_sources"))
    assert refuse.value == ["red_team"] and refuse.options == ["red_team", "benign"]
    # The split is on, so the caption promises unseen prompts; off, it warns that they are not.
    assert any("never saw" in c.value for c in app.caption)
    app.checkbox(key=k("split")).uncheck().run()
    assert any("prompts it trained on" in c.value for c in app.caption)

    # Best-of-N pairs alone (SFT from the chain) also ask for N.
    app.radio(key=k("sft_source")).set_value("revision").run()
    assert not [n for n in app.number_input if n.key == k("best_of_n")]
    app.checkbox(key=k("pairs_best_of_n")).check().run()
    assert app.number_input(key=k("best_of_n")).value == 4

    app.text_area(key=k("system_prompt")).set_value("You are a careful assistant.").run()
    assert not app.exception, app.exception
    assert app.checkbox(key=k("distil")).value is False


def test_the_split_leaves_out_the_evaluation_half_in_the_preview(app):
    app.number_input(key=k("limit")).set_value(0).run()
    with_split = int(app.dataframe[0].value["prompts"].sum())
    app.checkbox(key=k("split")).uncheck().run()
    assert not app.exception, app.exception
    everything = int(app.dataframe[0].value["prompts"].sum())
    held_out = len(evaluation_half(load_prompt_sources(["red_team", "benign"]).items))
    assert held_out and with_split == everything - held_out


def test_phase_2_without_any_pair_source_is_one_error(app):
    app.text_input(key=k("name")).set_value("no-pairs")
    app.checkbox(key=k("pairs_revision")).uncheck()
    app.checkbox(key=k("pairs_rlaif")).uncheck()
    app.button(key=k("launch")).click().run()
    assert not app.exception, app.exception
    assert len(errors(app)) == 1 and "best-of-N pairs" in errors(app)[0]
    assert not (datasets_dir() / "no-pairs").exists()


def test_launch_best_of_n_with_the_split_and_context_distillation(app):
    fill_small_run(app, "best", limit=4)
    app.number_input(key=k("max_new_tokens")).set_value(4)
    app.radio(key=k("sft_source")).set_value("best_of_n").run()
    app.checkbox(key=k("pairs_revision")).uncheck()
    app.checkbox(key=k("pairs_rlaif")).uncheck()
    app.checkbox(key=k("pairs_best_of_n")).check()
    app.number_input(key=k("best_of_n")).set_value(2)
    app.text_area(key=k("system_prompt")).set_value("Be careful.").run()
    app.checkbox(key=k("distil")).check()
    app.button(key=k("launch")).click().run()
    assert not app.exception, app.exception
    assert not errors(app), errors(app)
    folder = datasets_dir() / "best"
    spec = parse_spec(json.loads((folder / "spec.json").read_text())["spec"])
    assert spec.sft_source == "best_of_n" and spec.pair_sources == ["best_of_n"] and spec.prompt_split == "train"
    assert spec.best_of_n == 2 and spec.refuse_sources == ["red_team"]
    assert spec.system_prompt == "Be careful." and spec.system_prompt_in_data is False
    assert not spec.runs_chain and spec.samples_best_of_n
    # None of the prompts the safety suites score went into the data.
    held_out = {item.id for item in evaluation_half(load_prompt_sources(["red_team", "benign"]).items)}
    used = {row["id"] for row in read_rows(folder / PROMPTS_FILE)}
    assert len(used) == 4 and not used & held_out

    wait_for_job(folder)
    sampled = read_rows(folder / SAMPLES_FILE)
    assert len(sampled) == 4 and all(len(row["samples"]) == 2 for row in sampled)
    for row in read_rows(folder / SFT_FILE):  # context distillation: no system turn in the training rows
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    app.run()
    assert not app.exception, app.exception
    samples_tab = app.tabs[5]
    assert sampled[0]["prompt"] in texts(samples_tab)
    assert any("Best-of-N pairs" == m.label for m in app.metric)


def test_a_finished_best_of_n_dataset_shows_its_samples_and_pairs(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    folder = datasets_dir() / "sampled"
    state = run_generation(folder, GenerationSpec(
        constitution="general-hhh", prompt_sources=["red_team", "benign"], policy_model=str(tiny_model_dir),
        sft_source="best_of_n", pair_sources=["best_of_n"], best_of_n=2, shuffle=True,
        settings=GenerationSettings(max_new_tokens=6, batch_size=8), limit=6))
    assert state.state == "finished"
    sampled = read_rows(folder / SAMPLES_FILE)
    assert len(sampled) == 6
    # The random model rarely declines; a pair needs one passing and one failing sample, so add one by hand
    # if the run made none (the viewer must show a pair either way).
    pairs = read_rows(folder / BEST_OF_N_PAIRS_FILE)
    if not pairs:
        pair = {"id": sampled[0]["id"], "category": sampled[0]["category"], "principles": [], "source": "best_of_n",
                "prompt": [{"role": "user", "content": sampled[0]["prompt"]}],
                "chosen": [{"role": "assistant", "content": "chosen <b>answer</b>"}],
                "rejected": [{"role": "assistant", "content": "rejected **answer**"}], "lineage": {}}
        (folder / BEST_OF_N_PAIRS_FILE).write_text(json.dumps(pair) + "\n")
        pairs = [pair]

    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state[k("selected")] = "sampled"
    at.run()
    assert not at.exception, at.exception
    assert not at.warning, [w.value for w in at.warning]
    best_tab, samples_tab = at.tabs[4], at.tabs[5]
    assert best_tab.label == "Best-of-N pairs" and samples_tab.label == "Best-of-N samples"
    # Each prompt's samples are shown as text, with whether it should be declined and each sample's verdict.
    shown = texts(samples_tab)
    for row in sampled:
        assert row["prompt"] in shown
        for sample in row["samples"]:
            if sample["answer"].strip():
                assert sample["answer"] in shown
    captions = [unescape(c.value) for c in samples_tab.caption]
    # The shuffled six (the spec's fixed seed) hold red-team and benign prompts both.
    red = next(row for row in sampled if row["should_refuse"])
    benign = next(row for row in sampled if not row["should_refuse"])
    assert any(red["id"] in c and "should be declined" in c for c in captions), captions
    assert any(benign["id"] in c and "should be answered" in c for c in captions), captions
    first = sampled[0]["samples"][0]
    title = f"Sample 1 · {'passes' if first['passes'] else 'fails'}"
    assert title in [unescape(m.value).strip("*") for m in samples_tab.markdown]
    # The pairs: chosen and rejected side by side, as text (never markdown or HTML).
    best_texts = texts(best_tab)
    assert pairs[0]["chosen"][-1]["content"] in best_texts and pairs[0]["rejected"][-1]["content"] in best_texts
    assert {"Chosen", "Rejected"} <= {unescape(m.value).strip("*") for m in best_tab.markdown}
    # The SFT rows come from the samples, and say so.
    assert read_rows(folder / SFT_FILE), "a random model's answers to the benign prompts pass"
    assert "Best-of-N sample (the SFT target)" in [unescape(m.value).strip("*") for m in at.tabs[0].markdown]
    # Filtering to prompts none of whose samples pass leaves exactly those.
    at.radio(key=k("sampled:sampled")).set_value("no sample passes").run()
    failing = [row for row in sampled if not any(s["passes"] for s in row["samples"])]
    shown = texts(at.tabs[5])
    assert all(row["prompt"] in shown for row in failing)
    assert not any(row["prompt"] in shown for row in sampled if row not in failing)
    labels = [d.label for d in at.get("download_button")]
    assert any(label.startswith(SAMPLES_FILE) for label in labels), labels


# --------------------------------------------------------------------------- the policy, the critic and the judge


@pytest.fixture(scope="module")
def critic_model_dir(tmp_path_factory) -> Path:
    from conftest import build_tiny_model_folder

    return build_tiny_model_folder(tmp_path_factory.mktemp("tiny-critic"), seed=1)


def test_three_model_pickers_say_what_each_role_does_and_the_critic_writes_the_rows(app, tiny_model_dir,
                                                                                   critic_model_dir):
    labels = [box.label for box in app.selectbox]
    assert {"Policy model", "Critic model", "Judge model"} <= set(labels)
    captions = " ".join(c.value for c in app.caption)
    assert "The policy writes the first answer to each prompt" in captions
    assert "The critic writes every critique and revision, the text SFT learns; leave it empty for self-critique" in captions
    assert "The judge picks the better of two answers for the RLAIF pairs" in captions
    critic_box = next(box for box in app.selectbox if box.label == "Critic model")
    assert critic_box.format_func(critic_box.value) == "none: the policy critiques itself"  # self-critique by default

    fill_small_run(app, "with-critic", limit=2)
    app.checkbox(key=k("phase_prefs")).uncheck()
    pick_other_model(app, "Critic model", str(critic_model_dir))
    app.button(key=k("launch")).click().run()
    assert not app.exception, app.exception
    assert not errors(app), errors(app)
    folder = datasets_dir() / "with-critic"
    spec = parse_spec(json.loads((folder / "spec.json").read_text())["spec"])
    assert spec.critic_model == str(critic_model_dir) and spec.policy_model == str(tiny_model_dir)
    assert spec.judge_model is None  # the judge defaults to the critic
    wait_for_job(folder)
    for trace in read_rows(folder / "traces.jsonl"):
        assert trace["steps"][0]["critique_model"] == critic_model_dir.name
        assert trace["models"]["initial"] == tiny_model_dir.name
    app.run()
    assert not app.exception, app.exception
    shown = " ".join(unescape(c.value) for c in app.caption)
    assert f"Policy {tiny_model_dir.name} · critic {critic_model_dir.name} (the SFT rows are its text" in shown


def test_a_policy_and_critic_too_big_for_memory_are_one_error(app, critic_model_dir, monkeypatch):
    monkeypatch.setenv("CAI_MEMORY_AVAILABLE", "1M")
    app.text_input(key=k("name")).set_value("too-big")
    pick_other_model(app, "Critic model", str(critic_model_dir))
    app.button(key=k("launch")).click().run()
    assert not app.exception, app.exception
    assert len(errors(app)) == 1
    message = errors(app)[0]
    assert "working room" in message and str(critic_model_dir) in message and "endpoint URL" in message
    assert not (datasets_dir() / "too-big").exists()


def test_the_form_shows_the_cai_generate_command_for_its_settings(app, tiny_model_dir):
    from test_cli_specs import parsed_back

    critic = "http://127.0.0.1:9/v1#big-critic"  # never reached: nothing is started
    fill_small_run(app, "from-a-terminal", limit=12)
    app.checkbox(key=k("phase_prefs")).uncheck()
    pick_other_model(app, "Critic model", critic)
    app.run()
    assert not app.exception, app.exception
    assert any(c.value == "The same dataset from a terminal:" for c in app.caption)
    [command] = [c.value for c in app.code if c.value.startswith("cai generate ")]
    name, spec = parsed_back(command)
    assert name == "from-a-terminal"
    assert (spec.limit, spec.settings.max_new_tokens, spec.min_confidence, spec.chunk_size) == (12, 8, 0.5, 6)
    assert (spec.phases, spec.critic_model, spec.policy_model) == (["sft"], critic, str(tiny_model_dir))
    assert spec.prompt_sources == app.multiselect(key=k("sources")).value
    assert not datasets_dir().exists() or not any(datasets_dir().iterdir())


def test_best_of_n_can_be_scored_by_the_constitution(app):
    from cai_core.constitution import TRAIN_HALF
    from cai_core.store import load_constitution

    fill_small_run(app, "verified", limit=2)
    app.number_input(key=k("max_new_tokens")).set_value(2)
    app.number_input(key=k("chunk_size")).set_value(64)
    app.radio(key=k("sft_source")).set_value("best_of_n").run()
    app.checkbox(key=k("pairs_revision")).uncheck()
    app.checkbox(key=k("pairs_rlaif")).uncheck()
    app.checkbox(key=k("pairs_best_of_n")).check().run()
    assert app.radio(key=k("verifier")).value == "rule"  # the spec's default: the refusal rule alone
    app.radio(key=k("verifier")).set_value("constitution")
    app.number_input(key=k("best_of_n")).set_value(2)
    app.button(key=k("launch")).click().run()
    assert not app.exception, app.exception
    assert not errors(app), errors(app)
    folder = datasets_dir() / "verified"
    assert parse_spec(json.loads((folder / "spec.json").read_text())["spec"]).verifier == "constitution"
    constitution = load_constitution(app.selectbox(key=k("constitution")).value)
    examples = sum(len(p.examples_in(TRAIN_HALF)) for p in constitution.enabled_principles)
    assert len(read_rows(folder / PROMPTS_FILE)) == 2 + examples  # the training-half examples joined the data
    wait_for_job(folder)
    sampled = read_rows(folder / SAMPLES_FILE)
    assert all(sample["verdicts"] for row in sampled for sample in row["samples"])
    # The samples tab says why each sample lost (or that every assertion held).
    app.run()
    assert not app.exception, app.exception
    captions = [unescape(c.value) for c in app.tabs[5].caption]
    reasons = {sample["reason"] for row in sampled for sample in row["samples"]}
    assert any(reason in caption for reason in reasons for caption in captions), captions[:10]
