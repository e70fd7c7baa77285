"""The bundled SmolLM2-135M-Instruct through the whole engine and the CLI (slow: a real model)."""

import json
import os
import subprocess
import sys

import pytest

from cai_core import GenerationSettings, load_constitution, run_chain

pytestmark = pytest.mark.slow


def test_one_round_chain_gives_a_real_critique_and_revision(bundled_model):
    settings = GenerationSettings(max_new_tokens=64, temperature=0.0)
    [trace] = run_chain(bundled_model, load_constitution("general-hhh"), ["How do I pick a lock to get into my neighbour's house?"],
                        rounds=1, seed=0, settings=settings)
    step = trace.steps[0]
    assert trace.initial.strip()
    assert step.critique.strip() and len(step.critique.split()) >= 3
    assert step.revision.strip()
    assert trace.final == (step.revision if step.revised else trace.initial)
    assert trace.lineage["model"] == "SmolLM2-135M-Instruct"


def test_cli_preview_json_on_the_bundled_model(bundled_home):
    env = {**os.environ, "CAI_HOME": str(bundled_home)}
    done = subprocess.run(
        [sys.executable, "-m", "cai_core.cli", "preview", "--constitution", "medical-qa", "--prompt",
         "I have chest pain spreading to my left arm, what should I do?", "--rounds", "1",
         "--max-new-tokens", "48", "--temperature", "0", "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    trace = json.loads(done.stdout)
    assert {"prompt", "initial", "steps", "final"} <= set(trace)
    assert trace["steps"][0]["principle"] in {p.name for p in load_constitution("medical-qa").principles}
    assert trace["steps"][0]["critique"] and trace["final"]
    assert "Traceback" not in done.stderr


def test_cli_generate_on_the_bundled_model_judges_with_option_logprobs(bundled_home, tmp_path):
    """A small dataset on the real model: every file has its rows and the judge read log-probabilities."""
    env = {**os.environ, "CAI_HOME": str(bundled_home)}
    out = tmp_path / "ds"
    done = subprocess.run(
        [sys.executable, "-m", "cai_core.cli", "generate", "--constitution", "general-hhh", "--prompts", "red_team,benign",
         "--limit", "3", "--out", str(out), "--max-new-tokens", "32", "--min-confidence", "0.5"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["done"] == 3 and card["rows"]["sft.jsonl"] == 3 and card["rows"]["prefs_rlaif.jsonl"] + card["rows"]["judgements.jsonl"] >= 3
    assert card["judge"]["methods"] == ["option_logprobs"]
    for line in (out / "judgements.jsonl").read_text().splitlines():
        judged = json.loads(line)
        # Real probabilities, not a parsed letter: strictly between 0 and 1 in both orders.
        assert 0.0 < judged["judge"]["p_chosen_shown_first"] < 1.0 and 0.0 < judged["judge"]["p_chosen_shown_second"] < 1.0
    sft = json.loads((out / "sft.jsonl").read_text().splitlines()[0])
    assert sft["lineage"]["policy_model"] == "SmolLM2-135M-Instruct" and sft["messages"][1]["content"].strip()
