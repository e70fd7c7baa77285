"""`cai train`, `cai runs`, `cai stop` and `cai export` on the tiny random model: real runs, real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cai_core.cli import main
from cai_core.training import read_metrics, read_run, runs_dir

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "cpu-demo.yaml"


@pytest.fixture
def data(tmp_path) -> tuple[Path, Path]:
    sft, pairs = tmp_path / "sft.jsonl", tmp_path / "pairs.jsonl"
    sft.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"greet me {i}"},
                                                    {"role": "assistant", "content": "hello friend"}]}) + "\n"
                           for i in range(8)))
    pairs.write_text("".join(json.dumps({"prompt": f"greet me {i}", "chosen": "hello friend", "rejected": "no"}) + "\n"
                             for i in range(8)))
    return sft, pairs


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cai_core.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ})


def test_train_sft_then_dpo_from_it_then_list_and_export(tmp_path, tiny_model_dir, data, capsys):
    sft, pairs = data
    small = ["--set", "max_steps=3", "--set", "batch_size=4", "--set", "gradient_accumulation_steps=1", "--set", "lora.r=4"]
    assert main(["train", "sft", "--recipe", str(RECIPE), "--data", str(sft), "--from", str(tiny_model_dir),
                 "--name", "cli-sft", *small]) == 0
    assert "finished 3 steps" in capsys.readouterr().out
    sft_run = read_run(runs_dir() / "cli-sft")
    assert sft_run.spec.lora.r == 4 and sft_run.spec.lora.alpha == 32  # --set lora.r kept the recipe's other LoRA keys
    assert [row["step"] for row in read_metrics(sft_run.folder)] == [1, 2, 3]

    # --from a run name: DPO starts from the SFT model (base + SFT adapter merged).
    assert main(["train", "dpo", "--recipe", str(RECIPE), "--data", str(pairs), "--from", "cli-sft", "--name", "cli-dpo", *small]) == 0
    dpo_run = read_run(runs_dir() / "cli-dpo")
    assert dpo_run.spec.base_model == str(sft_run.folder) and dpo_run.state == "finished"
    capsys.readouterr()

    assert main(["runs"]) == 0
    listing = capsys.readouterr().out
    assert "cli-sft" in listing and "cli-dpo" in listing and "finished" in listing and "adapter" in listing

    out = tmp_path / "merged"
    assert main(["export", "cli-dpo", "--out", str(out)]) == 0
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert main(["export", "cli-dpo", "--out", str(out)]) == 1  # never overwrites
    assert "already exists" in capsys.readouterr().err

    assert main(["train", "sft", "--resume", "cli-sft"]) == 1
    assert "has finished" in capsys.readouterr().err


def test_a_run_name_means_the_run_under_cai_home_not_a_folder_here(tmp_path, monkeypatch):
    from cai_core.cli import _model_or_run, _run_folder

    (runs_dir() / "mine").mkdir(parents=True)
    here = tmp_path / "elsewhere"
    (here / "mine").mkdir(parents=True)
    monkeypatch.chdir(here)
    assert _run_folder("mine") == runs_dir() / "mine"
    assert _model_or_run("mine") == str(runs_dir() / "mine")
    assert _run_folder("./mine") == Path("./mine")  # written as a path, it is the folder here
    assert _model_or_run("./mine") == "./mine"
    assert _model_or_run("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.parametrize("extra, words", [
    (["--set", "lora.r=0"], "lora r"),
    (["--set", "learning_rate"], "must look like key=value"),
    (["--set", "colour=red"], "unknown key 'colour'"),
    (["--data", "no-such-dataset"], "no dataset named 'no-such-dataset'"),
])
def test_train_bad_arguments_get_one_sentence_and_start_nothing(tiny_model_dir, data, extra, words):
    done = run_cli("train", "sft", "--recipe", str(RECIPE), "--data", str(data[0]), "--from", str(tiny_model_dir), *extra)
    assert done.returncode == 1, done.stdout
    assert words in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not runs_dir().exists() or not [p for p in runs_dir().iterdir() if not p.name.startswith(".")]


def test_train_bad_recipe_names_its_line(tmp_path, data):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("base_model: default\nsft:\n  learning_rate: fast\n")
    done = run_cli("train", "sft", "--recipe", str(recipe), "--data", str(data[0]))
    assert done.returncode == 1
    assert f"{recipe}, line 3: learning rate" in done.stderr and "Traceback" not in done.stderr


def test_train_malformed_data_names_the_lines(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                   "not json\n" '{"prompt": "only a prompt"}\n')
    done = run_cli("train", "sft", "--recipe", str(RECIPE), "--data", str(bad), "--from", str(tiny_model_dir))
    assert done.returncode == 1
    assert str(bad) in done.stderr and "line 2, 3" in done.stderr


def test_stop_a_run_that_is_not_running(capsys):
    assert main(["stop", "nothing-here"]) == 1
    assert "there is no run 'nothing-here'" in capsys.readouterr().err
