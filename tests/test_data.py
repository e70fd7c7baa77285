"""Dataset generation: the files TRL reads, lineage, the card, and resuming without loss or duplicates."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from cai_core.constitution import ConstitutionError
from cai_core.data import (
    DONE_FILE, JUDGEMENTS_FILE, REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, ROW_FILES, SFT_FILE, TRACES_FILE,
    GenerationSpec, dataset_summary, read_rows, recover, run_generation, start_generation,
)
from cai_core.jobs import CANCELLED, FINISHED, INTERRUPTED, JobError, cancel_job, read_job, read_json
from cai_core.data.promptsets import PromptFileError
from cai_core.models import GenerationSettings


def make_spec(model_dir: Path, **changes) -> GenerationSpec:
    values = dict(constitution="general-hhh", prompt_sources=["red_team", "benign"], limit=6,
                  policy_model=str(model_dir), settings=GenerationSettings(max_new_tokens=8, batch_size=4),
                  min_confidence=0.5, chunk_size=3)
    values.update(changes)
    return GenerationSpec(**values)


def ids_of(folder: Path, name: str) -> list[str]:
    return [row["id"] for row in read_rows(folder / name)]


def wait_until_ended(folder: Path, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_job(folder)
        if not state.active:
            return state
        time.sleep(0.2)
    raise AssertionError(f"job in {folder} still {read_job(folder).state} after {timeout} s")


@pytest.fixture
def finished_dataset(tmp_path, tiny_model_dir):
    folder = tmp_path / "ds"
    state = run_generation(folder, make_spec(tiny_model_dir, label_band=(0.5, 0.9)))
    assert state.state == FINISHED, state.error
    return folder


def test_every_prompt_gets_one_row_in_each_file_with_lineage(finished_dataset, tiny_model_dir):
    prompts = ids_of(finished_dataset, "prompts.jsonl")
    assert len(prompts) == 6
    for name in (SFT_FILE, TRACES_FILE, RLAIF_PAIRS_FILE, JUDGEMENTS_FILE, DONE_FILE):
        assert ids_of(finished_dataset, name) == prompts, name
    # A random model's revision can equal its first answer only by chance; such pairs are skipped.
    assert set(ids_of(finished_dataset, REVISION_PAIRS_FILE)) <= set(prompts)
    sft = read_rows(finished_dataset / SFT_FILE)[0]
    assert [m["role"] for m in sft["messages"]] == ["user", "assistant"]
    lineage = sft["lineage"]
    assert lineage["constitution"] == "general-hhh" and len(lineage["constitution_hash"]) == 16
    assert lineage["principles"] == sft["principles"] and lineage["policy_model"] == tiny_model_dir.name
    assert lineage["settings"]["max_new_tokens"] == 8 and lineage["seed"] == 0
    pair = read_rows(finished_dataset / RLAIF_PAIRS_FILE)[0]
    assert 0.5 <= pair["label"] <= 0.9 and pair["label"] == min(pair["label_raw"], 0.9)
    assert pair["lineage"]["judge_model"] and pair["lineage"]["sample_seeds"] == [101, 202]
    assert set(pair["judge"]) >= {"p_chosen_shown_first", "p_chosen_shown_second", "orders_disagree", "per_principle"}


def test_the_rlaif_label_is_the_judges_probability_for_the_chosen_answer(finished_dataset):
    for judged in read_rows(finished_dataset / JUDGEMENTS_FILE):
        p_first = judged["p_answer_1"]
        assert judged["confidence"] == pytest.approx(max(p_first, 1 - p_first))
        assert judged["chosen_is_answer_1"] == (p_first >= 0.5)
        record = judged["judge"]
        assert (record["p_chosen_shown_first"] + record["p_chosen_shown_second"]) / 2 == pytest.approx(judged["confidence"])


def test_files_load_with_datasets_and_pass_trl_preparation(finished_dataset, tiny_model_dir, tmp_path):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    sft = load_dataset("json", data_files=str(finished_dataset / SFT_FILE), split="train")
    assert sft.num_rows == 6
    trainer = SFTTrainer(model=model, train_dataset=sft, processing_class=tokenizer,
                         args=SFTConfig(output_dir=str(tmp_path / "sft"), use_cpu=True, bf16=False, max_steps=1,
                                        report_to=[], max_length=128))
    assert "input_ids" in trainer.train_dataset.column_names and trainer.train_dataset.num_rows == 6
    prefs = load_dataset("json", data_files=str(finished_dataset / RLAIF_PAIRS_FILE), split="train")
    dpo = DPOTrainer(model=model, train_dataset=prefs, processing_class=tokenizer,
                     args=DPOConfig(output_dir=str(tmp_path / "dpo"), use_cpu=True, bf16=False, max_steps=1,
                                    report_to=[], max_length=128))
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(dpo.train_dataset.column_names)
    # The card's front matter names the files, so the folder itself loads by config name.
    card_loaded = load_dataset(str(finished_dataset), "sft", split="train")
    assert card_loaded.num_rows == 6


def test_the_card_records_counts_settings_and_the_constitution(finished_dataset):
    card = (finished_dataset / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "config_name: sft" in card
    assert "general-hhh" in card and "critique_request" in card and "min_confidence: 0.5" in card
    summary = json.loads((finished_dataset / "card.json").read_text())
    assert summary["done"] == 6 and summary["rows"][SFT_FILE] == 6
    assert summary["judge"]["pairs_judged"] == 6 and 0 <= summary["judge"]["orders_disagree_share"] <= 1


def test_a_threshold_drops_pairs_but_keeps_their_judgement(tmp_path, tiny_model_dir):
    folder = tmp_path / "strict"
    run_generation(folder, make_spec(tiny_model_dir, min_confidence=0.99, phases=["prefs"], pair_sources=["rlaif"]))
    assert read_rows(folder / RLAIF_PAIRS_FILE) == []
    judged = read_rows(folder / JUDGEMENTS_FILE)
    assert len(judged) == 6 and not any(j["kept"] for j in judged)
    assert not (folder / SFT_FILE).exists() and not (folder / TRACES_FILE).exists()
    assert dataset_summary(folder)["judge"]["pairs_dropped_low_confidence"] == 6


def test_recover_drops_unfinished_rows_duplicates_and_torn_lines(tmp_path):
    folder = tmp_path / "torn"
    folder.mkdir()
    (folder / DONE_FILE).write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c"')
    (folder / SFT_FILE).write_text('{"id": "a", "x": 1}\n{"id": "b", "x": 2}\n{"id": "a", "x": 3}\n{"id": "c", "x": 4}\n{"id": "d", "x"')
    assert recover(folder) == {"a", "b"}
    assert read_rows(folder / SFT_FILE) == [{"id": "a", "x": 1}, {"id": "b", "x": 2}]
    assert (folder / DONE_FILE).read_text() == '{"id": "a"}\n{"id": "b"}\n'
    assert recover(folder) == {"a", "b"}  # a second recovery changes nothing


def ended_early(folder: Path):
    """Why a job that a test holds mid-run is no longer running (None while it runs)."""
    def reason() -> str | None:
        state = read_job(folder)
        return None if state.active else f"{state.state}: {state.error}"
    return reason


def test_a_killed_worker_resumes_with_one_row_per_prompt(tmp_path, tiny_model_dir, worker_gate):
    folder = tmp_path / "killed"
    spec = make_spec(tiny_model_dir, limit=24, chunk_size=2, settings=GenerationSettings(max_new_tokens=24, batch_size=2))
    start_generation(folder, spec)
    # Two chunks written, and the worker held before its next model call: more is to come.
    worker_gate.step_until(lambda: len(read_rows(folder / DONE_FILE)) >= 4, failed=ended_early(folder))
    worker = read_json(folder / "status.json")["pid"]
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while read_job(folder).state != INTERRUPTED:
        assert time.monotonic() < deadline, f"the killed job still reads {read_job(folder).state}"
        time.sleep(0.05)
    assert len(read_rows(folder / DONE_FILE)) == 4
    worker_gate.open()
    start_generation(folder, spec)
    assert wait_until_ended(folder).state == FINISHED, read_job(folder).error
    prompts = ids_of(folder, "prompts.jsonl")
    for name in (SFT_FILE, TRACES_FILE, RLAIF_PAIRS_FILE, JUDGEMENTS_FILE, DONE_FILE):
        assert sorted(ids_of(folder, name)) == sorted(prompts), name
    assert "started" in (folder / "log.txt").read_text()


def test_cancel_stops_keeps_finished_rows_and_resume_completes(tmp_path, tiny_model_dir, worker_gate):
    folder = tmp_path / "cancelled"
    spec = make_spec(tiny_model_dir, limit=30, chunk_size=2, settings=GenerationSettings(max_new_tokens=24, batch_size=2))
    start_generation(folder, spec)
    worker_gate.step_until(lambda: bool(read_rows(folder / DONE_FILE)), failed=ended_early(folder))
    cancel_job(folder)
    worker_gate.open()
    state = wait_until_ended(folder)
    assert state.state == CANCELLED
    done = ids_of(folder, DONE_FILE)
    # The worker was held at the first model call of the second chunk; it stops at that stage's end.
    assert len(done) == 2 and ids_of(folder, SFT_FILE) == done
    with pytest.raises(JobError, match="other settings"):
        start_generation(folder, make_spec(tiny_model_dir, limit=30, chunk_size=2, seed=7))
    start_generation(folder, spec)
    assert wait_until_ended(folder).state == FINISHED
    assert sorted(ids_of(folder, SFT_FILE)) == sorted(ids_of(folder, "prompts.jsonl"))


def test_bad_inputs_fail_before_anything_is_written(tmp_path, tiny_model_dir):
    with pytest.raises(ConstitutionError, match="no constitution named"):
        start_generation(tmp_path / "a", make_spec(tiny_model_dir, constitution="missing"))
    with pytest.raises(PromptFileError, match="neither a shipped"):
        start_generation(tmp_path / "b", make_spec(tiny_model_dir, prompt_sources=["nope"]))
    with pytest.raises(ConstitutionError, match="no principle named"):
        start_generation(tmp_path / "c", make_spec(tiny_model_dir, principles=["not-a-principle"]))
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_model_folder_that_does_not_exist_is_refused_before_anything_is_written(tmp_path):
    from cai_core.models import ModelLoadError

    folder = tmp_path / "nomodel"
    with pytest.raises(ModelLoadError, match="neither an existing local folder"):
        run_generation(folder, make_spec(tmp_path / "no-such-model"))
    assert not folder.exists()


def test_a_model_that_fails_in_the_worker_fails_the_job_with_one_sentence(tmp_path):
    folder = tmp_path / "broken"
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # passes the cheap check, fails to load
    state = run_generation(folder, make_spec(broken))
    assert state.state == "failed" and "could not be loaded" in state.error and "\n" not in state.error
    assert "Traceback" in (folder / "log.txt").read_text()
    assert all(not (folder / name).exists() for name in ROW_FILES)


def test_checked_rows_keep_good_rows_and_name_the_lines_of_bad_ones(finished_dataset):
    from cai_core.data import read_checked_rows

    path = finished_dataset / SFT_FILE
    good = path.read_text().splitlines()
    path.write_text("\n".join([good[0], '{"id": "x", "messages": []}', "not json", good[1]]) + "\n" + '{"id": "half')
    rows, bad = read_checked_rows(path)
    assert [row["id"] for row in rows] == [json.loads(good[0])["id"], json.loads(good[1])["id"]]
    assert bad == [2, 3]  # the torn last line is being written, not wrong
    rows, bad = read_checked_rows(finished_dataset / RLAIF_PAIRS_FILE)
    assert bad == [] and all(isinstance(row["judge"]["orders_disagree"], bool) for row in rows)


def test_a_run_is_never_worked_on_by_two_processes(tmp_path, tiny_model_dir, worker_gate):
    import subprocess
    import sys

    folder = tmp_path / "once"
    spec = make_spec(tiny_model_dir, limit=12, chunk_size=2, settings=GenerationSettings(max_new_tokens=24, batch_size=2))
    start_generation(folder, spec)
    with pytest.raises(JobError, match="already"):
        start_generation(folder, spec)  # a second click while it is queued or running
    worker_gate.wait_until_reached(1, failed=ended_early(folder))  # the first worker holds the model
    assert read_job(folder).state == "running"
    second = subprocess.run([sys.executable, "-m", "cai_core.jobs", str(folder)], capture_output=True, text=True, timeout=60)
    assert second.returncode == 1 and "already being worked on" in second.stderr
    worker_gate.open()
    assert wait_until_ended(folder).state == FINISHED
    for name in (SFT_FILE, DONE_FILE):
        assert sorted(ids_of(folder, name)) == sorted(ids_of(folder, "prompts.jsonl"))
