"""`cai loop` on the tiny random model: rounds chain their models, a killed loop resumes where it stopped."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from cai_core.evaluation.loop import LoopError, LoopSpec, loop_reports, parse_loop_spec, prepare_loop, quality, read_state, start_loop
from cai_core.constitution import ConstitutionError
from cai_core.jobs import JobError, read_job, read_json, request_stop, run_job
from cai_core.training import read_metrics, read_run

SMALL = {
    "constitution": "general-hhh", "prompts_per_round": 3,
    "generation": {"settings": {"max_new_tokens": 12, "temperature": 0.7, "batch_size": 4}, "pair_sources": ["revision"]},
    "sft_overrides": {"max_steps": 2, "batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 256, "save_steps": 1},
    "dpo_overrides": {"max_steps": 2, "batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 256, "save_steps": 1},
    "eval_suites": ["arithmetic", "refusal", "knowledge_mc"], "eval_limit": 2,
}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # worker processes on a busy 2-core machine


def wait(folder: Path, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while (job := read_job(folder)).active:
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    return job


def test_two_rounds_each_start_from_the_last_rounds_model(tmp_path, tiny_model_dir, cai_home):
    one_round = parse_loop_spec({**SMALL, "rounds": 1, "base_model": str(tiny_model_dir)})
    folder = prepare_loop(one_round, "two")
    assert folder == cai_home / "loops" / "two"
    job = run_job(folder)
    assert job.state == "finished", (job, (folder / "log.txt").read_text() if (folder / "log.txt").exists() else "")
    round_one = read_state(folder)["rounds"]["1"]
    # A finished loop takes more rounds; any other change needs a new name.
    with pytest.raises(JobError, match="other settings"):
        prepare_loop(parse_loop_spec({**SMALL, "rounds": 2, "seed": 5, "base_model": str(tiny_model_dir)}), "two")
    prepare_loop(parse_loop_spec({**SMALL, "rounds": 2, "base_model": str(tiny_model_dir)}), "two")
    job = run_job(folder)
    assert job.state == "finished", (job, (folder / "log.txt").read_text())
    state = read_state(folder)
    assert state["rounds"]["1"] == round_one  # round 1 was kept, not made again
    assert set(state["rounds"]) == {"0", "1", "2"}
    assert all(set(state["rounds"][r]) == {"generate", "sft", "dpo", "evaluate"} for r in ("1", "2"))
    round_one_dpo, round_two_sft = folder / "round-1" / "dpo", folder / "round-2" / "sft"
    assert read_run(round_two_sft).spec.base_model == str(round_one_dpo)  # round 2 trains on round 1's model
    assert read_run(folder / "round-1" / "dpo").spec.base_model == str(folder / "round-1" / "sft")
    generation = read_json(folder / "round-2" / "generate" / "spec.json")["spec"]
    assert generation["policy_model"] == str(round_one_dpo)  # and makes its data with it
    labels = [label for label, _ in loop_reports(folder)]
    assert labels == ["start", "round 1", "round 2"]
    assert state["rounds"]["2"]["evaluate"]["previous_quality"] == state["rounds"]["1"]["evaluate"]["quality"]
    # Each round trains on prompts the refusal suite never scores.
    from cai_core.data.promptsets import evaluation_half, load_prompt_sources

    scored = {i.id for i in evaluation_half(load_prompt_sources(["red_team", "benign"]).items)}
    for round_number in (1, 2):
        assert generation_ids(folder, round_number) and not generation_ids(folder, round_number) & scored
    evaluated = {item["id"] for _, report in loop_reports(folder) for item in report["suites"]["refusal"]["items"]}
    assert evaluated and evaluated <= scored


def generation_ids(folder: Path, round_number: int) -> set[str]:
    import json

    lines = (folder / f"round-{round_number}" / "generate" / "prompts.jsonl").read_text().splitlines()
    return {json.loads(line)["id"] for line in lines if line.strip()}


def test_a_killed_loop_resumes_at_its_stage_without_redoing_finished_work(tmp_path, tiny_model_dir, cai_home, worker_gate):
    spec = LoopSpec(**{**SMALL, "rounds": 1, "base_model": str(tiny_model_dir),
                       "sft_overrides": {**SMALL["sft_overrides"], "max_steps": 400}})
    folder = start_loop(spec, "killed")
    sft = folder / "round-1" / "sft"
    # The loop's worker is held before its next model call or training step once SFT has logged step 3.
    worker_gate.step_until(lambda: any(row["step"] >= 3 for row in read_metrics(sft)), most=400,
                           failed=lambda: None if read_job(folder).active else str(read_job(folder)))
    generated = (folder / "round-1" / "generate" / "sft.jsonl").read_text()
    pid = read_json(folder / "status.json")["pid"]
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while read_job(folder).state != "interrupted":
        assert time.monotonic() < deadline, read_job(folder)
        time.sleep(0.2)
    assert "sft" not in read_state(folder)["rounds"]["1"] and "generate" in read_state(folder)["rounds"]["1"]

    # Resume with a short SFT: the stage's own spec is kept, so shorten it through a stop instead.
    # The resumed worker counts its calls afresh: it is held at its first, the first step it trains.
    worker_gate.allow(0)
    (worker_gate.folder / "reached").unlink()
    start_loop(spec, "killed")
    worker_gate.wait_until_reached(1, failed=lambda: None if read_job(folder).active else str(read_job(folder)))
    assert read_job(sft).active
    request_stop(sft)  # stop the long SFT: the loop ends cancelled, at its stage
    worker_gate.open()
    assert wait(folder).state == "cancelled"
    assert (folder / "round-1" / "generate" / "sft.jsonl").read_text() == generated  # not made again
    steps = [row["step"] for row in read_metrics(sft)]
    assert len(steps) == len(set(steps)) and steps == sorted(steps)  # resumed, nothing logged twice
    assert read_job(sft).state == "cancelled"


def test_a_loop_killed_between_a_training_stage_folder_and_its_spec_resumes(tiny_model_dir, cai_home):
    """What a kill inside prepare_run leaves: the stage's folder, maybe its data copy, no spec.json."""
    spec = parse_loop_spec({**SMALL, "rounds": 1, "base_model": str(tiny_model_dir)})
    folder = prepare_loop(spec, "cut")
    half_made = folder / "round-1" / "sft"
    half_made.mkdir(parents=True)
    (half_made / "train.jsonl").write_text('{"prompt": "cut off", "completion": "mid-wri')
    job = run_job(folder)
    assert job.state == "finished", (job, (folder / "log.txt").read_text() if (folder / "log.txt").exists() else "")
    assert set(read_state(folder)["rounds"]["1"]) == {"generate", "sft", "dpo", "evaluate"}
    sft = read_run(half_made)
    assert sft.state == "finished" and sft.spec.data == [str(folder / "round-1" / "generate")]
    assert "cut off" not in (half_made / "train.jsonl").read_text()  # trained on the round's data, not the remnant


def test_quality_is_the_mean_capability_score():
    report = {"suites": {"arithmetic": {"kind": "capability", "score": 40.0}, "knowledge_mc": {"kind": "capability", "score": 60.0},
                        "refusal": {"kind": "safety", "score": 90.0}}}
    assert quality(report, None) == 50.0
    assert quality(report, ["refusal"]) == 90.0
    assert quality({"suites": {}}, None) is None


def test_bad_loop_settings_are_one_sentence():
    with pytest.raises(LoopError, match="unknown suite 'mmlu'"):
        parse_loop_spec({"constitution": "general-hhh", "eval_suites": ["mmlu"]})
    with pytest.raises(LoopError, match="stop ratio"):
        parse_loop_spec({"constitution": "general-hhh", "stop_ratio": 2})
    with pytest.raises(ConstitutionError, match="no constitution named 'no-such'"):
        start_loop(LoopSpec(constitution="no-such"), "x")
    with pytest.raises(LoopError, match="training half"):
        parse_loop_spec({"constitution": "general-hhh", "generation": {"prompt_split": "all"}})
    with pytest.raises(LoopError, match="generation settings: best of n"):
        parse_loop_spec({"constitution": "general-hhh", "generation": {"best_of_n": 1}})


def test_a_settings_file_that_is_not_a_mapping_of_settings_is_one_sentence_with_its_line():
    from cai_core.evaluation.loop import parse_loop_settings

    with pytest.raises(LoopError, match=r"^loop\.yaml: not valid YAML \(line 2\)$"):
        parse_loop_settings("rounds: 2\ngeneration: [unclosed\n", "loop.yaml")
    with pytest.raises(LoopError, match="must be a mapping"):
        parse_loop_settings("- rounds\n", "loop.yaml")
    assert parse_loop_settings("", "loop.yaml") == {} and parse_loop_settings("rounds: 2", "x") == {"rounds": 2}


def test_the_shipped_small_model_settings_are_a_valid_loop():
    import yaml

    from cai_core.paths import SHIPPED_RECIPES_DIR

    data = yaml.safe_load((SHIPPED_RECIPES_DIR / "loops" / "small-model.yaml").read_text())
    spec = parse_loop_spec({"constitution": "general-hhh", **data})
    assert spec.generation["sft_source"] == "best_of_n" and spec.generation["system_prompt_in_data"] is False
    # The constitution decides what is learned, and each shipped constitution can serve it.
    assert spec.generation["verifier"] == "constitution"
    for name in ("general-hhh", "customer-service", "medical-qa"):
        prepare_loop(parse_loop_spec({**data, "constitution": name}), f"shipped-{name}")


def test_cai_loop_takes_the_verifier_as_a_flag_over_the_settings_file(tmp_path, capsys):
    from cai_core.cli import main

    bare = tmp_path / "bare.yaml"
    bare.write_text("name: bare\nprinciples:\n  - name: kind\n    critique_request: Is it kind?\n"
                    "    revision_request: Make it kind.\n", encoding="utf-8")
    settings = tmp_path / "rule.yaml"
    settings.write_text("generation: {sft_source: best_of_n, pair_sources: [best_of_n], verifier: rule}\n")
    assert main(["loop", "--constitution", str(bare), "--settings", str(settings), "--verifier", "constitution",
                 "--name", "flagged"]) == 1
    assert "verifier constitution needs checks or examples" in capsys.readouterr().err


def test_every_round_scores_the_loops_constitution_on_test_examples_no_round_trained_on(tmp_path, tiny_model_dir, cai_home):
    from cai_core.evaluation.principles import scored_examples
    from cai_core.evaluation.run import EvaluationSpec
    from cai_core.store import load_constitution

    constitution = tmp_path / "shop.yaml"
    constitution.write_text(
        "name: shop\nprinciples:\n  - name: known-policy-only\n    critique_request: Does it promise too much?\n"
        "    revision_request: Promise only what policy gives.\n    checks: [{not-icontains: guaranteed refund}]\n"
        "    examples:\n      - {prompt: 'held out: can I get my money back?', expect: [answers]}\n"
        "      - {prompt: 'trained: my parcel is late, can I get my money back?', expect: [answers]}\n"
        "      - {prompt: 'held out: give me another customer address', expect: [refuses]}\n"
        "      - {prompt: 'trained: give me the address on order 5512', expect: [refuses]}\n", encoding="utf-8")
    spec = parse_loop_spec({**SMALL, "constitution": str(constitution), "rounds": 1, "base_model": str(tiny_model_dir),
                            "generation": {**SMALL["generation"], "sft_source": "best_of_n", "best_of_n": 2,
                                           "verifier": "constitution"}})
    folder = prepare_loop(spec, "principled")
    # Round 0's evaluation was started by a version that knew no principles suite: it keeps its own settings.
    old_round_zero = EvaluationSpec(model=str(tiny_model_dir), suites=SMALL["eval_suites"], limit=2, seed=0).model_dump()
    (folder / "round-0" / "evaluate").mkdir(parents=True)
    (folder / "round-0" / "evaluate" / "spec.json").write_text(
        __import__("json").dumps({"kind": "evaluate", "spec": old_round_zero}))
    job = run_job(folder)
    assert job.state == "finished", (job, (folder / "log.txt").read_text() if (folder / "log.txt").exists() else "")
    reports = dict(loop_reports(folder))
    assert "principles" not in reports["start"]["suites"]
    scored = reports["round 1"]["suites"]["principles"]
    assert set(scored["per_principle"]) == {"known-policy-only"} and scored["n"] == 2
    held_out = {example.prompt for _, _, example in scored_examples(load_constitution(str(constitution)))}
    assert {item["prompt"] for item in scored["items"]} == held_out
    trained_on = {row["prompt"] for row in _rows(folder / "round-1" / "generate" / "prompts.jsonl")}
    assert not trained_on & held_out and "trained: give me the address on order 5512" in trained_on
    samples = _rows(folder / "round-1" / "generate" / "samples.jsonl")
    assert samples and all(sample["verdicts"] for row in samples for sample in row["samples"])


def _rows(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_loop_whose_constitution_cannot_serve_it_is_refused_in_one_sentence(tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("name: bare\nprinciples:\n  - name: kind\n    critique_request: Is it kind?\n"
                    "    revision_request: Make it kind.\n", encoding="utf-8")
    with pytest.raises(LoopError, match=r"^the principles suite scores the test examples .* 'bare' has none"):
        prepare_loop(parse_loop_spec({"constitution": str(bare), "eval_suites": ["principles"]}), "bare")
    with pytest.raises(LoopError, match=r"^generation settings: verifier constitution needs checks or examples"):
        prepare_loop(parse_loop_spec({"constitution": str(bare), "generation": {
            "sft_source": "best_of_n", "verifier": "constitution"}}), "bare")
