"""The Training page under Streamlit's AppTest, with real training processes on the tiny random model.

The page is opened through app.py (as a user reaches it), so its links to the Data page and its
switch to the Playground resolve. A launch really starts ``python -m cai_core.training`` in its own
process; the tests poll the run folder (as the page's fragment would) and rerun the page.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cai_core.training import (
    TrainingSpec,
    last_checkpoint,
    list_runs,
    read_metrics,
    read_run,
    runs_dir,
    start_run,
    stop_run,
    uploads_dir,
)
from page_util import page_keys

ROOT = Path(__file__).resolve().parents[1]

APP = ROOT / "app.py"
PAGE = "pages/4_Training.py"
CPU_DEMO = ROOT / "recipes" / "cpu-demo.yaml"
RUN_TIMEOUT_S = 120
# A tiny run: 6 steps of 4 rows, a checkpoint every 3 steps; about 6 s for SFT and 10 s for DPO here.
TINY = {"max_steps": 6, "batch_size": 4, "save_steps": 3, "learning_rate": 5e-3}


k = page_keys("training")


def shown(box) -> str:
    """What a select box shows as chosen."""
    return box.options[box.index]


def sft_lines(count: int = 16) -> str:
    return "".join(json.dumps({"messages": [{"role": "user", "content": f"How do I boil egg number {i}?"},
                                            {"role": "assistant", "content": f"Put egg {i} in boiling water."}]}) + "\n"
                   for i in range(count))


def dpo_lines(count: int = 16) -> str:
    return "".join(json.dumps({"prompt": f"How do I pick lock {i}?", "chosen": "Call a locksmith.",
                               "rejected": f"Here is how to break lock {i}."}) + "\n" for i in range(count))


def wait_for_run(folder: Path, state: str = "finished", timeout: float = RUN_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while (run := read_run(folder)).job.active:
        assert time.monotonic() < deadline, f"the run did not end in {timeout} s: {run.job}"
        time.sleep(0.25)
    log = (folder / "log.txt").read_text(errors="replace") if (folder / "log.txt").exists() else ""
    assert run.state == state, f"{run.job}\n{log[-3000:]}"
    return run


def wait_for_step(folder: Path, step: int, timeout: float = RUN_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while read_run(folder).job.progress.get("done", 0) < step:
        assert read_run(folder).job.active, read_run(folder).job
        assert time.monotonic() < deadline, f"the run did not reach step {step} in {timeout} s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory, tiny_model_dir) -> Path:
    """A CAI_HOME holding a finished SFT run and a finished DPO run started from it (made once)."""
    home = tmp_path_factory.mktemp("training-home")
    data = tmp_path_factory.mktemp("training-data")
    (data / "sft.jsonl").write_text(sft_lines())
    (data / "pairs.jsonl").write_text(dpo_lines())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAI_HOME", str(home))
        sft = start_run(TrainingSpec(method="sft", base_model=str(tiny_model_dir), data=[str(data / "sft.jsonl")], **TINY),
                        name="sft-tiny")
        wait_for_run(sft)
        dpo = start_run(TrainingSpec(method="dpo", base_model=str(sft), data=[str(data / "pairs.jsonl")], **TINY),
                        name="dpo-tiny")
        wait_for_run(dpo)
    return home


@pytest.fixture
def with_runs(finished_runs, cai_home) -> Path:
    """This test's CAI_HOME with a copy of the two finished runs."""
    shutil.copytree(finished_runs / "runs", cai_home / "runs", ignore=shutil.ignore_patterns(".trainer.lock"))
    return cai_home / "runs"


@pytest.fixture(autouse=True)
def no_run_left_behind(cai_home):
    """A test that fails half way must not leave a training process running."""
    yield
    for run in list_runs():
        if run.job.active:
            stop_run(run.folder)
            deadline = time.monotonic() + 60
            while read_run(run.folder).job.active and time.monotonic() < deadline:
                time.sleep(0.25)


@pytest.fixture
def app(tiny_model_dir, monkeypatch) -> AppTest:
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    return open_page()


def open_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def unescape(text: str) -> str:
    """Alerts escape markdown (they show text from files); read them as displayed."""
    return re.sub(r"\\(.)", r"\1", text)


def errors(at: AppTest) -> list[str]:
    return [unescape(e.value) for e in at.error]


def chart_titles(at: AppTest) -> list[str]:
    return [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")]


def badges(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "-badge[" in m.value]


def select_run(at: AppTest, name: str) -> None:
    at.selectbox(key=k("selected")).set_value(name).run()
    assert not at.exception, at.exception


def test_empty_page_points_to_the_data_page_and_to_new_run(app):
    assert not app.error
    infos = [i.value for i in app.info]
    assert any("No datasets yet" in i for i in infos) and any("No training runs yet" in i for i in infos)
    assert [link.proto.label for link in app.get("page_link")] == ["Open the Data page"]
    assert app.radio(key=k("method")).value == "sft"
    assert app.selectbox(key=k("recipe")).value == str(CPU_DEMO)
    assert app.text_area(key=k(f"recipe-text:{CPU_DEMO}")).value == CPU_DEMO.read_text()
    # Nothing to train on yet: the launch button waits for data.
    assert app.button(key=k("launch")).disabled
    assert not app.get("plotly_chart")


def test_a_bad_recipe_edit_shows_the_sentence_with_its_line(app):
    text = CPU_DEMO.read_text()
    lines = text.splitlines()
    line = next(n for n, value in enumerate(lines, start=1) if value.startswith("batch_size:"))
    lines[line - 1] = "batch_size: lots"
    app.text_area(key=k(f"recipe-text:{CPU_DEMO}")).set_value("\n".join(lines) + "\n").run()
    assert not app.exception, app.exception
    assert len(errors(app)) == 1, errors(app)
    assert errors(app)[0].startswith(f"cpu-demo.yaml (edited), line {line}: ")
    assert "batch size" in errors(app)[0] and "integer" in errors(app)[0]
    assert app.button(key=k("launch")).disabled
    # A DPO setting in the dpo: section is reported at its own line, and only for DPO.
    lines[line - 1] = "batch_size: 4"
    beta = next(n for n, value in enumerate(lines, start=1) if value.strip().startswith("beta:"))
    lines[beta - 1] = "  beta: -1"
    app.text_area(key=k(f"recipe-text:{CPU_DEMO}")).set_value("\n".join(lines) + "\n").run()
    assert not app.error
    app.radio(key=k("method")).set_value("dpo").run()
    assert len(errors(app)) == 1 and errors(app)[0].startswith(f"cpu-demo.yaml (edited), line {beta}: "), errors(app)
    app.button(key=k("reset_recipe")).click().run()
    assert not app.error
    assert app.text_area(key=k(f"recipe-text:{CPU_DEMO}")).value == CPU_DEMO.read_text()


def test_a_malformed_upload_names_its_lines_and_saves_nothing(app):
    good = json.loads(sft_lines(1))
    bad = "\n".join([json.dumps(good), '{"messages": oops}', json.dumps(good), json.dumps({"prompt": "no answer"})])
    app.file_uploader(key=k("upload")).set_value(("mine.jsonl", bad.encode(), "application/jsonl")).run()
    assert not app.exception, app.exception
    assert len(errors(app)) == 1, errors(app)
    assert errors(app)[0].startswith("mine.jsonl: 2 row(s) cannot be used for SFT (line 2, 4); line 2: ")
    assert not uploads_dir().exists() or not any(uploads_dir().iterdir())
    assert app.multiselect(key=k("data:sft")).value == []

    app.file_uploader(key=k("upload")).set_value(("mine.jsonl", sft_lines(5).encode(), "application/jsonl")).run()
    assert not app.exception and not app.error, errors(app)
    saved = uploads_dir() / "mine.jsonl"
    assert saved.is_file()
    assert app.multiselect(key=k("data:sft")).value == [str(saved)]
    assert any("Saved mine.jsonl: 5 SFT rows" in unescape(s.value) for s in app.success)
    assert not app.button(key=k("launch")).disabled
    # An SFT file is no DPO data: it is not offered there.
    app.radio(key=k("method")).set_value("dpo").run()
    assert str(saved) not in app.multiselect(key=k("data:dpo")).options


def test_launch_from_the_page_trains_and_the_same_name_is_refused(app, tiny_model_dir):
    app.file_uploader(key=k("upload")).set_value(("eggs.jsonl", sft_lines(12).encode(), "application/jsonl")).run()
    text = CPU_DEMO.read_text().replace("max_steps: 60", "max_steps: 4")
    app.text_area(key=k(f"recipe-text:{CPU_DEMO}")).set_value(text).run()
    app.text_input(key=k("name")).set_value("page-run").run()
    assert not app.error, errors(app)
    # With CAI_MODEL set, the run starts from the app's model; the command says so.
    assert shown(app.selectbox(key=k("start:sft"))).startswith("the app's model (CAI_MODEL): ")
    command = app.code[0].value
    assert command.startswith("cai train sft --recipe recipes/cpu-demo.yaml --data ")
    assert "--name page-run" in command and f"--from {tiny_model_dir}" in command
    assert app.code[1].value.endswith(f"-m cai_core.training {runs_dir() / 'page-run'}")

    app.button(key=k("launch")).click().run()
    assert not app.exception, app.exception
    assert not errors(app), errors(app)
    folder = runs_dir() / "page-run"
    assert app.session_state[k("selected")] == "page-run"
    run = wait_for_run(folder)
    assert run.spec.base_model == str(tiny_model_dir) and run.spec.max_steps == 4 and run.result["rows"] == 12

    app.run()
    assert not app.exception, app.exception
    assert badges(app) == [":green-badge[finished]"]
    # The same name again: start_run refuses before anything starts, and says so in one sentence.
    app.text_input(key=k("name")).set_value("page-run").run()
    app.button(key=k("launch")).click().run()
    assert not app.exception, app.exception
    assert errors(app) == ["A run named 'page-run' already exists; resume it or choose another name."]
    assert [r.name for r in list_runs()] == ["page-run"]
    assert (folder / "log.txt").read_text().count("--- started") == 1
    assert read_run(folder).state == "finished"


def test_finished_runs_show_progress_log_charts_and_downloads(with_runs, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    app = open_page()
    assert app.selectbox(key=k("selected")).value == "dpo-tiny"  # the newest run
    table = app.dataframe[0].value
    assert list(table["run"]) == ["dpo-tiny", "sft-tiny"] and list(table["state"]) == ["finished", "finished"]
    assert list(table["steps"]) == ["6 of 6", "6 of 6"]

    titles = chart_titles(app)
    assert titles == ["Loss and learning rate", "Reward margin and accuracy", "Chosen and rejected rewards",
                      "Gradient norm", "Loss by run"]
    assert badges(app) == [":green-badge[finished]"]
    (progress,) = app.get("progress")
    assert progress.proto.value == 100 and progress.proto.text == "step 6 of 6 · done"
    log = [c.value for c in app.code if "--- started" in c.value]
    assert log and "train_loss" in log[0]
    labels = [d.label for d in app.get("download_button")]
    assert labels == ["metrics.jsonl", "recipe.yaml", "log.txt", "LoRA adapter (.zip)"]
    # New run: DPO starts from the newest finished SFT run.
    app.radio(key=k("method")).set_value("dpo").run()
    assert shown(app.selectbox(key=k("start:dpo"))).startswith("run: sft-tiny (SFT on ")

    select_run(app, "sft-tiny")
    assert chart_titles(app)[:2] == ["Loss and learning rate", "Token accuracy and gradient norm"]
    assert len(app.get("plotly_chart")) == 3  # and the compare chart
    loss = json.loads(app.get("plotly_chart")[0].proto.spec)["data"][0]
    assert loss["name"] == "loss" and loss["x"] == [row["step"] for row in read_metrics(with_runs / "sft-tiny")]

    # Overlay: both runs' losses on one chart.
    app.multiselect(key=k("overlay")).set_value(["sft-tiny", "dpo-tiny"]).run()
    overlay = json.loads(app.get("plotly_chart")[-1].proto.spec)
    assert [trace["name"] for trace in overlay["data"]] == ["sft-tiny", "dpo-tiny"]
    app.selectbox(key=k("overlay_metric")).set_value("rewards/margins").run()
    overlay = json.loads(app.get("plotly_chart")[-1].proto.spec)
    assert [trace["name"] for trace in overlay["data"]] == ["dpo-tiny"]

    # DPO after SFT from the finished run's own panel.
    app.button(key=k("dpo_from")).click().run()
    assert not app.exception, app.exception
    assert app.radio(key=k("method")).value == "dpo"
    assert shown(app.selectbox(key=k("start:dpo"))).startswith("run: sft-tiny (SFT on ")


def test_compare_before_and_after_opens_the_playground(with_runs, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    app = open_page()
    app.button(key=k("compare")).click().run()
    assert not app.exception, app.exception
    assert app.title[0].value == "Playground"
    # The preset names the DPO run's starting model (the SFT run) and the DPO run; the Playground
    # takes the key as it draws itself, so it is found either still waiting or in the Playground's widgets.
    dpo, sft = read_run(with_runs / "dpo-tiny"), str(with_runs / "dpo-tiny")
    state = app.session_state.to_dict()
    if page_keys("playground")("preset") in state:
        assert state[page_keys("playground")("preset")] == {"models": [dpo.spec.base_model, sft]}
    else:
        shown = json.dumps(state, default=str)
        assert dpo.spec.base_model in shown and str(dpo.folder) in shown, state


def test_stop_saves_a_checkpoint_and_resume_carries_on(app, tiny_model_dir):
    data = runs_dir().parent / "long.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(sft_lines(32))
    spec = TrainingSpec(method="sft", base_model=str(tiny_model_dir), data=[str(data)], max_steps=400, batch_size=4,
                        save_steps=2, learning_rate=5e-3)
    folder = start_run(spec, name="long")
    wait_for_step(folder, 3)

    app.run()
    assert not app.exception, app.exception
    assert badges(app) == [":blue-badge[running]"]
    assert app.get("progress")[0].proto.text.endswith("of 400")
    app.button(key=k("stop")).click().run()
    assert not app.exception, app.exception
    run = wait_for_run(folder, "cancelled")
    checkpoint = last_checkpoint(folder)
    assert checkpoint is not None
    stopped_at = int(checkpoint.name.rsplit("-", 1)[-1])
    assert stopped_at >= 3 and run.job.progress["done"] <= stopped_at

    app.run()
    assert badges(app) == [":orange-badge[stopped]"]
    assert any(f"checkpoint {stopped_at}" in c.value for c in app.caption)
    app.button(key=k("resume")).click().run()
    assert not app.exception, app.exception
    assert not errors(app), errors(app)
    wait_for_step(folder, stopped_at + 2)
    assert f"resuming from checkpoint-{stopped_at}" in (folder / "log.txt").read_text()
    stop_run(folder)
    wait_for_run(folder, "cancelled")
    steps = [row["step"] for row in read_metrics(folder)]
    assert steps == sorted(set(steps)) and steps[-1] > stopped_at  # carried on, no step logged twice


def test_dpo_counts_best_of_n_pairs_of_a_dataset(app):
    """A dataset's best-of-N pairs are training data for DPO like the other pairs: choosing them
    counts them in the data's label instead of failing the page."""
    from cai_core.data import BEST_OF_N_PAIRS_FILE, datasets_dir

    folder = datasets_dir() / "best"
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps({"kind": "generate", "spec": {}}))
    (folder / BEST_OF_N_PAIRS_FILE).write_text(dpo_lines(3))
    app.radio(key=k("method")).set_value("dpo").run()
    pairs = next(m for m in app.multiselect if m.label == "Preference pairs")
    pairs.set_value(["best_of_n"]).run()
    assert not app.exception, app.exception
    data = app.multiselect(key=k("data:dpo"))
    assert "best · 3 best-of-N pairs" in data.options
