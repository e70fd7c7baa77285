"""Training runs end to end: real TRL SFT and DPO on the tiny random Llama, in real worker processes.

Nothing is mocked. The runs are a few dozen optimiser steps on a tiny, repetitive dataset with a
high learning rate, so a change in the adapter and a fall in the loss are certain, and each run
takes seconds. Two finished runs (SFT, then DPO on top of it) are shared by the tests that only
look at what a finished run left behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cai_core.jobs import is_stopping, read_json, run_job
from cai_core.training import (LoraSettings, RecipeError, TrainingDataError, TrainingError, TrainingSpec, delete_run,
                               last_checkpoint, list_recipes, load_recipe, parse_recipe, read_metrics, read_run,
                               recipe_text, resume_run, runs_dir, save_upload, start_run, stop_run, training_rows,
                               uploads_dir)
from cai_core.training.runs import checkpoint_step

LN2 = math.log(2)
# Dropout off: the runs are deterministic, so a resumed step can be compared with the same step
# before the kill.
TINY_LORA = LoraSettings(r=8, alpha=16, dropout=0.0)
GREETING = "Hello there, friend. I am glad to help you today."
SFT_ROWS = [{"messages": [{"role": "user", "content": f"Please greet me, number {i % 2}."},
                          {"role": "assistant", "content": GREETING}]} for i in range(16)]
DPO_ROWS = [{"prompt": f"Question {i % 4}: may I ask you something?",
             "chosen": "Yes, here is a careful and safe answer.", "rejected": "No."} for i in range(16)]
# Longer rows for the runs that must still be training when the test stops or kills them.
LONG_SFT_ROWS = [{"messages": [{"role": "user", "content": f"Tell me a long story, number {i}. " * 6},
                               {"role": "assistant", "content": GREETING * 6}]} for i in range(16)]


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def make_spec(model_dir: Path, data_file: Path, **changes) -> TrainingSpec:
    values = dict(method="sft", base_model=str(model_dir), data=[str(data_file)], max_steps=12, batch_size=4,
                  learning_rate=5e-3, max_length=64, save_steps=1000, lora=TINY_LORA, seed=0)
    values.update(changes)
    return TrainingSpec(**values)


def run_ended(folder: Path):
    """Why a run that a test holds mid-training is no longer running (None while it runs)."""
    def reason() -> str | None:
        run = read_run(folder)
        return None if run.job.active else f"{run.state}: {run.job.error}"
    return reason


def wait_until_ended(folder: Path, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = read_run(folder)
        if not run.job.active:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run in {folder} still {read_run(folder).state} after {timeout} s")


def finished(folder: Path, timeout: float = 180.0):
    run = wait_until_ended(folder, timeout)
    assert run.state == "finished", f"{run.state}: {run.job.error}\n{(folder / 'log.txt').read_text()[-3000:]}"
    return run


def logged_steps(folder: Path) -> list[int]:
    return [int(row["step"]) for row in read_metrics(folder)]


def wait_for_step(folder: Path, step: int, timeout: float = 120.0) -> None:
    """Until metrics.jsonl holds ``step`` (the run is training, past loading)."""
    deadline = time.time() + timeout
    while max(logged_steps(folder), default=0) < step:
        assert time.time() < deadline, f"no step {step} after {timeout} s: {read_run(folder).state}"
        assert read_run(folder).state in ("queued", "running"), f"the run ended before step {step}"
        time.sleep(0.01)


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def lora_b_matrices(adapter: Path) -> dict:
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    return {name: tensor for name, tensor in weights.items() if "lora_B" in name}


def logits_of(network, tokenizer, text: str = "<|im_start|>user\nPlease greet me, number 1.<|im_end|>\n"):
    import torch

    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return network(input_ids=ids).logits.float()


# On a busy 2-core machine torch's default of one thread per core in each training process makes
# the threads wait on each other: a 5 s run took 130 s while other tests ran. One thread each keeps
# the runs at their quiet-machine speed (the tiny model gains nothing from a second thread).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    import torch

    for name, value in ONE_THREAD.items():
        monkeypatch.setenv(name, value)  # the worker processes
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the runs this test process trains in the foreground
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- two finished runs, shared


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """A CAI_HOME of its own for the module's shared runs (the per-test one changes every test)."""
    home = tmp_path_factory.mktemp("trained-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAI_HOME", str(home))
        for name, value in ONE_THREAD.items():
            patch.setenv(name, value)
        yield home


@pytest.fixture(scope="module")
def sft_run(trained_home, tiny_model_dir) -> Path:
    data = write_jsonl(trained_home / "sft.jsonl", SFT_ROWS)
    folder = start_run(make_spec(tiny_model_dir, data, max_steps=24, learning_rate=1e-2), name="sft-run")
    finished(folder)
    return folder


@pytest.fixture(scope="module")
def dpo_run(trained_home, sft_run) -> Path:
    data = write_jsonl(trained_home / "dpo.jsonl", DPO_ROWS)
    spec = make_spec(sft_run, data, method="dpo", base_model=str(sft_run), max_steps=16, learning_rate=5e-3)
    folder = start_run(spec, name="dpo-run")
    finished(folder)
    return folder


def test_sft_changes_the_adapter_and_lowers_the_loss(sft_run):
    run = read_run(sft_run)
    assert run.has_adapter and run.spec.method == "sft"
    b_matrices = lora_b_matrices(sft_run / "adapter")
    assert b_matrices, "the adapter holds no LoRA B matrices"
    untouched = [name for name, tensor in b_matrices.items() if not tensor.abs().sum() > 0]
    assert not untouched, f"LoRA B starts at zero and these never moved: {untouched}"
    rows = read_metrics(sft_run)
    assert [row["step"] for row in rows] == list(range(1, 25))
    losses = [row["loss"] for row in rows]
    assert mean(losses[-4:]) < mean(losses[:4]) - 0.1, losses
    assert rows[-1]["mean_token_accuracy"] > rows[0]["mean_token_accuracy"]
    assert run.result["steps"] == 24 and run.result["rows"] == 16 and run.result["resumed_from_step"] is None
    assert (sft_run / "train.jsonl").is_file() and (sft_run / "recipe.yaml").is_file()


def test_dpo_starts_at_ln2_then_its_rewards_separate(dpo_run):
    b_matrices = lora_b_matrices(dpo_run / "adapter")
    assert b_matrices and all(tensor.abs().sum() > 0 for tensor in b_matrices.values())
    rows = read_metrics(dpo_run)
    assert [row["step"] for row in rows] == list(range(1, 17))
    # The reference is the starting policy (LoRA B is zero), so every pair starts at -log sigmoid(0).
    assert rows[0]["loss"] == pytest.approx(LN2, abs=1e-3)
    assert rows[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-4)
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.05
    assert mean(r["rewards/accuracies"] for r in rows[-4:]) > max(0.5, rows[0]["rewards/accuracies"])
    assert mean(r["rewards/margins"] for r in rows[-4:]) > max(0.1, mean(r["rewards/margins"] for r in rows[:4]))
    assert rows[-1]["rewards/chosen"] > rows[-1]["rewards/rejected"]


def test_dpo_after_sft_stacks_loads_generates_and_exports(dpo_run, sft_run, tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cai_core.models.adapters import AdapterError, export_merged
    from cai_core.models import GenerationSettings, load_model

    record = json.loads((dpo_run / "adapter" / "cai_adapter.json").read_text())
    assert record["merged_first"] == [str((sft_run / "adapter").resolve())]
    assert record["base_model"] == str(tiny_model_dir) and record["method"] == "dpo"

    # A standard PEFT folder: it loads with PeftModel onto the base with the SFT adapter merged in.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    base_logits = logits_of(base, tokenizer)
    with_sft = PeftModel.from_pretrained(base, str(sft_run / "adapter")).merge_and_unload()
    stacked = PeftModel.from_pretrained(with_sft, str(dpo_run / "adapter")).eval()
    stacked_logits = logits_of(stacked, tokenizer)

    backend = load_model(str(dpo_run))
    assert "sft-run" in backend.model_id and "dpo-run" in backend.model_id
    answer = backend.generate([[{"role": "user", "content": "Question 1: may I ask you something?"}]],
                              GenerationSettings(max_new_tokens=8, temperature=0.0))[0]
    assert answer.completion_tokens >= 1 and answer.text.strip()
    run_logits = logits_of(backend.model, backend.tokenizer)
    assert torch.allclose(run_logits, stacked_logits, atol=1e-4)
    assert not torch.allclose(run_logits, base_logits, atol=1e-3), "the adapters did not change the model"

    exported = export_merged(str(dpo_run), tmp_path / "merged")
    assert not (exported / "adapter_config.json").exists() and (exported / "config.json").is_file()
    plain = AutoModelForCausalLM.from_pretrained(exported, dtype=torch.float32)
    plain_tokenizer = AutoTokenizer.from_pretrained(exported)
    assert torch.allclose(logits_of(plain, plain_tokenizer), run_logits, atol=1e-5)
    with pytest.raises(AdapterError, match="already exists"):
        export_merged(str(dpo_run), exported)


# --------------------------------------------------------------------------- kill, stop, resume


def test_a_killed_run_resumes_from_its_last_checkpoint_with_one_metrics_row_per_step(tmp_path, tiny_model_dir, worker_gate):
    data = write_jsonl(tmp_path / "long.jsonl", LONG_SFT_ROWS)
    # Four forward passes a step, so the run is still training when the test kills it.
    spec = make_spec(tiny_model_dir, data, max_steps=40, save_steps=5, max_length=256, learning_rate=1e-3,
                     gradient_accumulation_steps=4)
    folder = start_run(spec, name="killed")

    def checkpoint_and_two_steps_after_it() -> bool:
        checkpoint = last_checkpoint(folder)
        return checkpoint is not None and max(logged_steps(folder), default=0) >= checkpoint_step(checkpoint) + 2

    # The worker is held at the start of the next step, so the kill lands mid-training.
    worker_gate.step_until(checkpoint_and_two_steps_after_it, failed=run_ended(folder))
    pid = read_json(folder / "status.json")["pid"]
    os.killpg(pid, signal.SIGKILL)  # the worker leads its own session (start_new_session)
    deadline = time.time() + 10
    while read_run(folder).state != "interrupted":
        assert time.time() < deadline, f"a killed run shows as {read_run(folder).state}"
        time.sleep(0.05)
    before = {row["step"]: row for row in read_metrics(folder)}
    resumed_from = checkpoint_step(last_checkpoint(folder))
    assert resumed_from == 5 and max(before) == 7

    worker_gate.open()
    resume_run(folder)
    run = finished(folder)
    log = (folder / "log.txt").read_text()
    assert f"resuming from checkpoint-{resumed_from} (step {resumed_from})" in log
    assert run.result["resumed_from_step"] == resumed_from and run.result["steps"] == 40
    rows = read_metrics(folder)
    assert [row["step"] for row in rows] == list(range(1, 41)), "steps duplicated or missing after the resume"
    for row in rows[:resumed_from]:  # what was logged up to the checkpoint is kept as it was
        assert row == before[row["step"]]
    # Optimiser, scheduler, RNG and data order carry on: the step after the checkpoint repeats exactly.
    again = rows[resumed_from]
    assert again["loss"] == pytest.approx(before[resumed_from + 1]["loss"], rel=1e-4)
    assert again["learning_rate"] == pytest.approx(before[resumed_from + 1]["learning_rate"])
    state = json.loads((last_checkpoint(folder) / "trainer_state.json").read_text())
    assert state["global_step"] == 40 and last_checkpoint(folder).name == "checkpoint-40"
    assert run.has_adapter


def test_stop_saves_a_checkpoint_where_it_stopped_and_a_foreground_resume_finishes(tmp_path, tiny_model_dir, capsys):
    data = write_jsonl(tmp_path / "long.jsonl", LONG_SFT_ROWS)
    # save_steps above max_steps: the only checkpoint a run can have is the one the stop makes.
    spec = make_spec(tiny_model_dir, data, max_steps=30, save_steps=1000, max_length=256, learning_rate=1e-3,
                     gradient_accumulation_steps=4)
    folder = start_run(spec, name="stopped")
    wait_for_step(folder, 3)
    stop_run(folder)
    run = wait_until_ended(folder)
    assert run.state == "cancelled", f"{run.state}: {run.job.error}"
    assert not run.has_adapter and run.result is None
    checkpoints = sorted((folder / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1 and checkpoints[0] == last_checkpoint(folder), checkpoints
    stopped_at = checkpoint_step(checkpoints[0])
    assert 3 <= stopped_at < 30
    assert logged_steps(folder) == list(range(1, stopped_at + 1))
    assert json.loads((checkpoints[0] / "trainer_state.json").read_text())["global_step"] == stopped_at
    assert not is_stopping(folder)  # a resumed run must not stop at once

    # The CLI-independent way to resume: the job folder run in this process, in the foreground.
    state = run_job(folder)
    assert state.state == "finished", state.error
    run = read_run(folder)
    assert run.result["resumed_from_step"] == stopped_at and run.result["steps"] == 30
    assert logged_steps(folder) == list(range(1, 31))
    assert f"resuming from checkpoint-{stopped_at} (step {stopped_at})" in capsys.readouterr().out
    assert run.has_adapter


def test_a_run_is_launched_once_and_trained_by_one_process(tmp_path, tiny_model_dir, worker_gate):
    data = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    spec = make_spec(tiny_model_dir, data, max_steps=10)
    folder = start_run(spec, name="x")
    # A second worker on the same folder, started at the same moment as the first.
    manual = subprocess.Popen([sys.executable, "-m", "cai_core.training", str(folder)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    with pytest.raises(TrainingError, match="already exists"):
        start_run(spec, name="x")  # a double click
    with pytest.raises(TrainingError, match="already"):
        resume_run(folder)  # queued or running: not started twice
    with pytest.raises(TrainingError, match="still running"):
        delete_run(folder)
    # Whichever worker won the folder waits at its first step until the other has been turned away,
    # so the winner cannot finish before the loser even tries.
    worker_gate.wait_until_reached(1, failed=run_ended(folder))
    deadline = time.monotonic() + 120
    while manual.poll() is None and "already being worked on" not in (folder / "log.txt").read_text():
        assert time.monotonic() < deadline, "the second worker was neither turned away nor ended"
        time.sleep(0.05)
    worker_gate.open()
    out, err = manual.communicate(timeout=180)
    finished(folder)
    log = (folder / "log.txt").read_text()
    refused = log.count("already being worked on") + err.count("already being worked on")
    assert refused == 1, f"exactly one of the two workers must be turned away:\n{err}\n{log[-2000:]}"
    if "already being worked on" in err:
        assert manual.returncode == 1
    else:
        assert manual.returncode == 0  # the hand-started worker won the lock and trained
    assert logged_steps(folder) == list(range(1, 11))
    assert (out + log).count("train_runtime") == 1, "the run was trained twice"
    assert [p.name for p in runs_dir().iterdir() if not p.name.startswith(".")] == ["x"]


def test_a_second_run_waits_queued_while_the_first_trains(tmp_path, tiny_model_dir, worker_gate):
    data = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    spec = make_spec(tiny_model_dir, data, max_steps=16, gradient_accumulation_steps=2)
    folders = [start_run(spec, name="first"), start_run(spec, name="second")]

    def one_trains_while_the_other_waits() -> bool:
        runs = [read_run(f) for f in folders]
        return any(waiting.state == "queued" and waiting.job.progress.get("stage", "").startswith("waiting")
                   and training.state == "running" and read_metrics(training.folder)
                   for waiting, training in ((runs[0], runs[1]), (runs[1], runs[0])))

    # The training run is held before each step until the test has looked at both.
    worker_gate.step_until(one_trains_while_the_other_waits, most=16, failed=lambda: next(
        (f"{f.name} {read_run(f).state}: {read_run(f).job.error}" for f in folders if not read_run(f).job.active), None))
    worker_gate.open()
    for folder in folders:
        wait_until_ended(folder)
    for folder in folders:
        finished(folder, timeout=1)
        assert logged_steps(folder) == list(range(1, 17))
    spans = sorted((read_metrics(f)[0]["time"], read_metrics(f)[-1]["time"]) for f in folders)
    assert spans[0][1] < spans[1][0], f"the two runs trained at the same time: {spans}"
    # The one that waited chose its share of the cores again once the other had finished training.
    logs = [(f / "log.txt").read_text() for f in folders]
    assert sum("after waiting its turn: using " in log for log in logs) == 1, logs


def test_a_run_killed_after_its_final_checkpoint_resumes_without_training_past_max_steps(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    folder = start_run(make_spec(tiny_model_dir, data, max_steps=6), name="last")
    finished(folder)
    assert last_checkpoint(folder).name == "checkpoint-6"  # the Trainer always saves the last step
    # What a kill while the final adapter is being written leaves: the last checkpoint, no adapter,
    # no result, and status.json still saying "running" with no worker holding the lock.
    shutil.rmtree(folder / "adapter")
    (folder / "result.json").unlink()
    status = read_json(folder / "status.json")
    (folder / "status.json").write_text(json.dumps({**status, "state": "running", "ended": None}))
    assert read_run(folder).state == "interrupted"
    state = run_job(folder)
    assert state.state == "finished", state.error
    run = read_run(folder)
    assert run.has_adapter and run.result["resumed_from_step"] == 6
    assert logged_steps(folder) == list(range(1, 7)) and run.result["steps"] == 6, (
        f"a resume from the final checkpoint trained on to step {run.result['steps']} (max_steps is 6)")


def test_rows_whose_answers_all_lie_beyond_max_length_give_a_sentence_that_names_max_length(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "long.jsonl", LONG_SFT_ROWS)  # prompts of ~150 tokens
    spec = make_spec(tiny_model_dir, data, max_length=32)
    try:
        folder = start_run(spec, name="too-long")
    except (TrainingDataError, TrainingError) as refused:  # refused before launch is as good
        message = str(refused)
    else:
        run = wait_until_ended(folder)
        assert run.state == "failed"
        message = run.job.error
    assert "max_length" in message and "32" in message and not message.startswith("ValueError"), message


# --------------------------------------------------------------------------- refused before launch


def test_bad_data_and_bad_models_are_refused_before_anything_is_written(tmp_path, tiny_model_dir):
    good = json.dumps(SFT_ROWS[0])
    bad = write_jsonl(tmp_path / "bad.jsonl", [good, "{not json", good, '{"messages": []}', good])
    with pytest.raises(TrainingDataError) as caught:
        start_run(make_spec(tiny_model_dir, bad), name="bad")
    message = str(caught.value)
    assert str(bad) in message and "line 2, 4" in message and "\n" not in message
    assert "2 row(s)" in message and "line 2: is not valid JSON" in message

    sft_rows = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS[:7])
    with pytest.raises(TrainingDataError, match=r"7 row\(s\) cannot be used for DPO \(line 1, 2, 3, 4, 5 and 2 more\)"):
        start_run(make_spec(tiny_model_dir, sft_rows, method="dpo"), name="shape")
    empty = write_jsonl(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(TrainingDataError, match="holds no rows to train on"):
        start_run(make_spec(tiny_model_dir, empty), name="empty")
    with pytest.raises(TrainingDataError, match="no dataset named 'no-such-dataset'"):
        start_run(make_spec(tiny_model_dir, sft_rows, data=["no-such-dataset"]), name="missing")
    with pytest.raises(TrainingDataError, match="no training data chosen"):
        start_run(make_spec(tiny_model_dir, sft_rows, data=[]), name="none")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(good.encode() + b"\n\x00\x01")
    with pytest.raises(TrainingDataError, match="line 2: is not a text file"):
        start_run(make_spec(tiny_model_dir, binary), name="binary")

    for base, expected in ((str(tmp_path / "no-such-model"), "neither an existing local folder"),
                           (str(tmp_path), "has no config.json"),
                           (str(sft_rows), "is a file"),
                           ("http://localhost:8000/v1", "endpoint URL")):
        with pytest.raises(TrainingError, match=expected) as caught:
            start_run(make_spec(tiny_model_dir, sft_rows, base_model=base), name="model")
        assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)
    assert not runs_dir().exists() or not [p for p in runs_dir().iterdir() if not p.name.startswith(".")]


def test_dataset_names_resolve_to_the_right_files_for_each_method(tiny_model_dir):
    from cai_core.data import REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, SFT_FILE, datasets_dir

    folder = datasets_dir() / "mine"
    write_jsonl(folder / SFT_FILE, SFT_ROWS[:3])
    write_jsonl(folder / RLAIF_PAIRS_FILE, DPO_ROWS[:2])
    write_jsonl(folder / REVISION_PAIRS_FILE, DPO_ROWS[:5])
    spec = make_spec(tiny_model_dir, folder, data=["mine"])
    assert len(training_rows(spec)) == 3
    assert len(training_rows(spec.model_copy(update={"method": "dpo"}))) == 7
    assert len(training_rows(spec.model_copy(update={"method": "dpo", "pairs": ["rlaif"]}))) == 2
    (folder / RLAIF_PAIRS_FILE).unlink()
    (folder / REVISION_PAIRS_FILE).unlink()
    with pytest.raises(TrainingDataError, match="holds no preference pairs"):
        training_rows(spec.model_copy(update={"method": "dpo"}))


# --------------------------------------------------------------------------- recipes


def test_every_shipped_recipe_reads_for_both_methods():
    shipped = list_recipes()
    assert {p.name for p in shipped} >= {"cpu-demo.yaml", "gpu-7b.yaml"}
    for path in shipped:
        for method in ("sft", "dpo"):
            spec = load_recipe(path, method)
            assert spec.method == method
            assert parse_recipe(recipe_text(spec), method) == spec  # a run's recipe.yaml reads back unchanged
    demo = Path(shipped[0]).parent / "cpu-demo.yaml"
    assert load_recipe(demo, "sft").max_steps == 60 and load_recipe(demo, "dpo").max_steps == 40
    assert load_recipe(demo, "dpo").learning_rate == 5e-5 and load_recipe(demo, "sft").learning_rate == 2e-4


@pytest.mark.parametrize("text, method, line, words", [
    ("base_model: default\nlearning_rate: -1\ndpo:\n  beta: 0.1\n", "dpo", 2, "learning rate"),
    ("batch_size: 4\ndpo:\n  max_steps: 10\n  beta: 50\n", "dpo", 4, "beta"),
    ("seed: 0\nlerning_rate: 1.0e-4\n", "sft", 2, "unknown key 'lerning_rate'"),
    ("seed: 0\nsft:\n  max_steps: 3\n  warmup: 0.1\n", "sft", 4, "unknown key 'warmup'"),
    ("seed: 0\nmax_steps: many\n", "sft", 2, "max steps"),
    ("seed: 0\ndpo:\n  precompute_ref_log_probs: [1]\n", "dpo", 3, "precompute ref log probs"),
    ("seed: 0\nbatch_size: 2: 3\n", "sft", 2, "YAML syntax error"),
    ("lora:\n  r: 16\n  target_modules: attention\n", "sft", 3, "target modules"),
    ("seed: 1\ndpo:\n  lora:\n    dropout: 3\n", "dpo", 4, "lora dropout"),
    ("method: sft\n", "dpo", 1, "for 'sft', not 'dpo'"),
    ("dpo: 3\n", "dpo", 1, "section must be a mapping"),
], ids=["top-level value", "dpo value", "unknown top-level key", "unknown sft key", "wrong type", "wrong type in dpo",
        "syntax", "lora value", "lora value in dpo", "other method", "section not a mapping"])
def test_a_bad_recipe_names_the_line(text, method, line, words):
    with pytest.raises(RecipeError) as caught:
        parse_recipe(text, method, "my-recipe.yaml")
    assert caught.value.line == line and words in str(caught.value)
    assert str(caught.value).startswith(f"my-recipe.yaml, line {line}: ") and "\n" not in str(caught.value)


def test_a_bad_top_level_lora_value_names_its_own_line_when_the_section_has_a_lora_too():
    text = "lora:\n  r: 0\n  alpha: 8\ndpo:\n  lora:\n    alpha: 4\n"
    with pytest.raises(RecipeError) as caught:
        parse_recipe(text, "dpo", "my-recipe.yaml")
    assert "lora r" in str(caught.value)
    assert caught.value.line == 2, f"points at line {caught.value.line}, not at 'r: 0' on line 2"


def test_sections_override_the_top_level_and_overrides_win_over_the_file():
    text = ("learning_rate: 1.0e-4\nmax_steps: 60\nlora:\n  r: 16\n  alpha: 32\n"
            "sft:\n  learning_rate: 2.0e-4\ndpo:\n  beta: 0.2\n  lora:\n    r: 4\n")
    sft = parse_recipe(text, "sft")
    assert (sft.learning_rate, sft.max_steps, sft.beta, sft.lora.r, sft.lora.alpha) == (2e-4, 60, 0.1, 16, 32)
    dpo = parse_recipe(text, "dpo")
    assert (dpo.learning_rate, dpo.beta, dpo.lora.r, dpo.lora.alpha) == (1e-4, 0.2, 4, 32)
    chosen = parse_recipe(text, "sft", overrides={"max_steps": 7, "learning_rate": 3e-3, "data": ["a.jsonl"]})
    assert (chosen.max_steps, chosen.learning_rate, chosen.data) == (7, 3e-3, ["a.jsonl"])
    with pytest.raises(RecipeError) as caught:
        parse_recipe(text, "sft", "my-recipe.yaml", overrides={"max_steps": 0})
    assert caught.value.line is None and "max steps" in str(caught.value)  # not the file's line 2
    with pytest.raises(RecipeError, match="method must be one of"):
        parse_recipe(text, "ppo")


# --------------------------------------------------------------------------- rows


def test_rows_take_the_one_shape_trl_trains_on(tmp_path, tiny_model_dir):
    system = {"role": "system", "content": "Be kind."}
    sft = write_jsonl(tmp_path / "sft.jsonl", [
        {"messages": [system, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
         "lineage": {"seed": 1}},
        {"prompt": "Plain prompt", "completion": "Plain answer"},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                      {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]},
    ])
    rows = training_rows(make_spec(tiny_model_dir, sft))
    assert rows[0] == {"prompt": [system, {"role": "user", "content": "Hi"}],
                       "completion": [{"role": "assistant", "content": "Hello"}]}
    assert rows[1] == {"prompt": [{"role": "user", "content": "Plain prompt"}],
                       "completion": [{"role": "assistant", "content": "Plain answer"}]}
    assert [m["content"] for m in rows[2]["prompt"]] == ["a", "b", "c"] and rows[2]["completion"][0]["content"] == "d"

    pairs = write_jsonl(tmp_path / "pairs.jsonl", [DPO_ROWS[0], {**DPO_ROWS[1], "label": 0.8}])
    rows = training_rows(make_spec(tiny_model_dir, pairs, method="dpo"))
    assert rows[0] == {"prompt": [{"role": "user", "content": DPO_ROWS[0]["prompt"]}],
                       "chosen": [{"role": "assistant", "content": DPO_ROWS[0]["chosen"]}],
                       "rejected": [{"role": "assistant", "content": DPO_ROWS[0]["rejected"]}]}
    assert set(rows[1]) == {"prompt", "chosen", "rejected"}

    same = write_jsonl(tmp_path / "same.jsonl", [DPO_ROWS[0], {**DPO_ROWS[0], "rejected": DPO_ROWS[0]["chosen"]}])
    with pytest.raises(TrainingDataError, match=r"line 2\); line 2: 'chosen' and 'rejected' are the same answer"):
        training_rows(make_spec(tiny_model_dir, same, method="dpo"))
    no_answer = write_jsonl(tmp_path / "no-answer.jsonl", [{"messages": [{"role": "user", "content": "only a question"}]}])
    with pytest.raises(TrainingDataError, match="end with the assistant's answer"):
        training_rows(make_spec(tiny_model_dir, no_answer))

    more = write_jsonl(tmp_path / "more.jsonl", SFT_ROWS[:4])
    limited = training_rows(make_spec(tiny_model_dir, sft, data=[str(sft), str(more)], limit=4))
    assert len(limited) == 4 and limited[3]["completion"][0]["content"] == GREETING  # file order, then cut
    assert len(training_rows(make_spec(tiny_model_dir, sft, data=[str(sft), str(more)]))) == 7


# --------------------------------------------------------------------------- uploads


def test_save_upload_checks_first_and_keeps_one_file_per_content():
    bad = (json.dumps(SFT_ROWS[0]) + "\n" + "oops\n").encode()
    with pytest.raises(TrainingDataError) as caught:
        save_upload("mine.jsonl", bad, "sft")
    assert str(caught.value).startswith("mine.jsonl: ") and "line 2" in str(caught.value)
    assert not uploads_dir().exists() or not list(uploads_dir().iterdir())

    data = "".join(json.dumps(row) + "\n" for row in SFT_ROWS[:3]).encode()
    first = save_upload("mine.jsonl", data, "sft")
    assert first == uploads_dir() / "mine.jsonl" and first.read_bytes() == data
    assert save_upload("mine.jsonl", data, "sft") == first  # the same upload again
    other = "".join(json.dumps(row) + "\n" for row in SFT_ROWS[:5]).encode()
    second = save_upload("mine.jsonl", other, "sft")
    assert second == uploads_dir() / "mine-1.jsonl" and second.read_bytes() == other and first.read_bytes() == data
    assert save_upload("../../escape.jsonl", data, "sft").parent == uploads_dir()
    with pytest.raises(TrainingDataError, match="cannot be used for DPO"):
        save_upload("pairs.jsonl", data, "dpo")
    assert sorted(p.name for p in uploads_dir().iterdir()) == ["escape.jsonl", "mine-1.jsonl", "mine.jsonl"]


# --------------------------------------------------------------------------- several processes


def _accelerate_starts_two_cpu_processes(tmp_path: Path) -> str | None:
    """None when ``accelerate launch`` can run 2 CPU processes here; else what went wrong."""
    probe = tmp_path / "probe.py"
    probe.write_text("import sys\nfrom pathlib import Path\nfrom accelerate import PartialState\ns = PartialState(cpu=True)\n"
                     "Path(sys.argv[1], f'rank-{s.process_index}').write_text(f'rank {s.process_index} of {s.num_processes}')\n")
    try:
        done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu",
                               str(probe), str(tmp_path)], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "accelerate launch with 2 CPU processes did not finish in 120 s"
    # Each rank writes its own file: two processes printing to one pipe interleave their lines.
    ranks = sorted(path.read_text() for path in tmp_path.glob("rank-*"))
    if ranks != ["rank 0 of 2", "rank 1 of 2"]:
        return f"accelerate could not start 2 CPU processes here: {ranks} {done.stderr[-500:]}"
    return None


@pytest.mark.slow
def test_a_two_process_cpu_run_finishes_with_one_metrics_row_per_step(tmp_path, tiny_model_dir):
    why_not = _accelerate_starts_two_cpu_processes(tmp_path)
    if why_not:
        pytest.skip(why_not)
    data = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    spec = make_spec(tiny_model_dir, data, max_steps=6, batch_size=2, save_steps=3, num_processes=2)
    folder = start_run(spec, name="two")
    run = finished(folder, timeout=300)
    rows = read_metrics(folder)
    assert [row["step"] for row in rows] == list(range(1, 7))
    assert run.result["steps"] == 6 and run.has_adapter
    # Each step takes batch_size rows in each process: 4 of the 16 rows, a quarter of an epoch.
    # One process alone would take 2 rows a step (an eighth).
    assert rows[0]["epoch"] == pytest.approx(0.25), (
        f"epoch {rows[0]['epoch']} after one step: the run trained in one process, not 2")
    # The job's share of the cores is split between its two processes, and each says what it uses.
    from cai_core.threads import available_cores, choose_threads
    log = (folder / "log.txt").read_text()
    per_rank = max(1, choose_threads(available_cores(), 0) // 2)
    assert f"each of the 2 processes uses {per_rank} threads" in log
    for rank in (0, 1):
        assert f"rank {rank}: using {per_rank} of {available_cores()} cores" in log, log[-2000:]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ranks are tied to their worker by the Linux kernel")
def test_the_ranks_of_a_two_process_run_die_when_its_worker_is_killed(tmp_path, tiny_model_dir):
    from cai_core.training.runs import rank_processes

    (tmp_path / "probe").mkdir()
    why_not = _accelerate_starts_two_cpu_processes(tmp_path / "probe")
    if why_not:
        pytest.skip(why_not)
    data = write_jsonl(tmp_path / "sft.jsonl", LONG_SFT_ROWS)
    spec = make_spec(tiny_model_dir, data, max_steps=2000, batch_size=2, max_length=256, num_processes=2)
    folder = start_run(spec, name="two-killed")
    ranks: list[int] = []
    try:
        wait_for_step(folder, 1, timeout=240)  # the ranks write metrics.jsonl: they exist and train
        ranks = rank_processes(folder)
        assert len(ranks) >= 3, ranks  # accelerate's launcher and its 2 ranks
        os.kill(read_json(folder / "status.json")["pid"], signal.SIGKILL)  # the worker alone
        deadline = time.monotonic() + 30
        while [pid for pid in ranks if _alive(pid)]:
            assert time.monotonic() < deadline, f"still running 30 s after their worker was killed: {ranks}"
            time.sleep(0.1)
        assert rank_processes(folder) == []
    finally:
        for pid in ranks:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_resumed_run_first_ends_what_is_left_of_its_earlier_processes(tmp_path, tiny_model_dir):
    """A rank left from before (here a process under a rank's command line) is killed before training."""
    from cai_core.training.runs import prepare_run

    data = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    folder = prepare_run(make_spec(tiny_model_dir, data, max_steps=2), name="leftover")
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "-m", "cai_core.training",
                                 "--rank", str(folder)])
    try:
        deadline = time.monotonic() + 30
        while b"--rank" not in Path(f"/proc/{leftover.pid}/cmdline").read_bytes():  # until it has exec'd
            assert time.monotonic() < deadline
            time.sleep(0.05)
        run = run_job(folder)
        assert run.state == "finished", run
        assert leftover.wait(timeout=10) == -signal.SIGKILL
    finally:
        leftover.kill()
        leftover.wait(timeout=10)
