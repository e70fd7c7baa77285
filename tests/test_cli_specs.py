"""Specs drive the command line: every setting of a spec is an option with the spec's own help,
default and bounds; a --config file and --set pairs reach the same fields; and every job is a
name under $CAI_HOME that the next command finds."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cai_core.cli import build_parser, main
from cai_core.cli_specs import add_spec_options, field_info, spec_data, spec_options, validate
from cai_core.data import GenerationSpec
from cai_core.errors import UsageError
from cai_core.evaluation.run import EvaluationSpec
from cai_core.models import GenerationSettings

ROOT = Path(__file__).resolve().parents[1]
SMALL_MODEL_SETTINGS = ROOT / "recipes" / "loops" / "small-model.yaml"


def one_line(text: str) -> bool:
    text = text.strip()
    return bool(text) and "\n" not in text and "Traceback" not in text


def subcommand(name: str) -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


# --------------------------------------------------------------------------- options from fields


@pytest.mark.parametrize("command, spec, skipped", [("generate", GenerationSpec, set()),
                                                    ("eval", EvaluationSpec, {"model"})])
def test_every_spec_field_is_an_option_with_the_fields_own_help(command, spec, skipped):
    parser = subcommand(command)
    options = option_strings(parser)
    help_text = " ".join(parser.format_help().split())
    for path, option in spec_options(spec).items():
        if ".".join(path) in skipped:
            continue
        assert f"--{option}" in options, f"{'.'.join(path)} has no option"
        info = field_info(spec, ".".join(path))
        assert info.help, f"{'.'.join(path)} has no description in the spec"
        assert " ".join(info.help.split()) in help_text


def test_the_options_the_readme_used_still_work_as_aliases():
    options = option_strings(subcommand("generate"))
    assert {"--prompts", "--pairs", "--principle", "--model", "--ensemble", "--phase", "--out", "--temperature",
            "--max-new-tokens", "--repetition-penalty", "--batch-size", "--label-band", "--chunk-size"} <= options


def test_the_fields_the_cli_lacked_are_options_now():
    options = option_strings(subcommand("generate"))
    assert {"--sft-source", "--best-of-n", "--refuse-sources", "--prompt-split", "--system-prompt", "--top-p",
            "--order", "--system-prompt-in-data", "--no-system-prompt-in-data", "--concurrency"} <= options


def test_field_info_gives_a_form_the_specs_limits_default_and_help():
    low, high, default, help_text = field_info(GenerationSpec, "temperature")  # the nested settings field
    assert (low, high, default) == (0.0, 5.0, 0.7) and "greedily" in help_text
    assert field_info(GenerationSpec, "settings.temperature") == field_info(GenerationSettings, "temperature")
    assert field_info(GenerationSpec, "best_of_n")[:3] == (2, 16, 4)
    assert field_info(GenerationSpec, "seed").help.startswith("seed for principle draws")  # the spec's own seed
    assert field_info(GenerationSpec, "limit")[:3] == (1, None, None)
    with pytest.raises(KeyError):
        field_info(GenerationSpec, "no_such_setting")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_spec_options(parser, GenerationSpec, aliases={"prompt_sources": ("prompts",)})
    return parser.parse_args(argv)


def test_config_then_options_then_set_and_nested_settings_merge(tmp_path):
    from cai_core.cli_specs import read_config

    config = tmp_path / "data.yaml"
    config.write_text("constitution: general-hhh\nprompt_sources: [red_team]\nbest_of_n: 6\n"
                      "settings:\n  temperature: 0.3\n  batch_size: 4\n")
    args = parse(["--temperature", "0.9", "--prompts", "benign,red_team"])
    data = spec_data(args, GenerationSpec, read_config(str(config)), ["settings.top_p=0.8", "best_of_n=3"])
    spec = validate(GenerationSpec, data)
    assert spec.prompt_sources == ["benign", "red_team"]
    assert (spec.settings.temperature, spec.settings.batch_size, spec.settings.top_p) == (0.9, 4, 0.8)
    assert spec.best_of_n == 3
    # Options left out stay out: the spec's defaults apply, not argparse's.
    assert spec.settings.max_new_tokens == GenerationSettings().max_new_tokens and spec.prompt_split == "train"


def test_a_bad_value_names_the_option_or_the_config_file_and_line(tmp_path):
    from cai_core.cli_specs import read_config

    with pytest.raises(UsageError, match=r"^--best-of-n: .*less than or equal to 16"):
        validate(GenerationSpec, spec_data(parse(["--best-of-n", "40", "--constitution", "x", "--prompts", "a"]),
                                           GenerationSpec))
    config = tmp_path / "data.yaml"
    config.write_text("constitution: general-hhh\nprompt_sources: [red_team]\nsettings:\n  temperature: 9\n  colour: red\n")
    loaded = read_config(str(config))
    with pytest.raises(UsageError) as caught:
        validate(GenerationSpec, spec_data(parse([]), GenerationSpec, loaded), loaded)
    assert str(caught.value).startswith(f"{config}, line 4: settings temperature: ")
    with pytest.raises(UsageError, match=r"line 5: .*unknown key 'colour'"):
        validate(GenerationSpec, spec_data(parse(["--temperature", "1"]), GenerationSpec, loaded), loaded)


def test_a_malformed_set_or_config_is_one_sentence(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("generation: [unclosed\n")
    for argv, words in ((["--set", "nokey"], "must look like key=value"),
                        (["--config", str(bad)], f"{bad}, line"),
                        (["--config", str(tmp_path / "missing.yaml")], "file not found"),
                        (["--set", "colour=red"], "unknown key 'colour'")):
        done = subprocess.run([sys.executable, "-m", "cai_core.cli", "generate", "--name", "x", "--constitution",
                               "general-hhh", "--prompts", "benign", *argv], capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and words in done.stderr and one_line(done.stderr), (argv, done.stderr)


# --------------------------------------------------------------------------- the loop's data by hand


def test_cai_generate_takes_the_small_model_loops_generation_block_as_it_is(tiny_model_dir, cai_home, capsys):
    """`cai generate --config recipes/loops/small-model.yaml` makes the data one round of that loop
    makes (the loop adds its prompt sets, limit, shuffle, seed and model, given here as options)."""
    from cai_core.evaluation.loop import parse_loop_settings

    argv = ["generate", "--name", "by-hand", "--config", str(SMALL_MODEL_SETTINGS), "--constitution", "general-hhh",
            "--prompts", "red_team,benign", "--limit", "2", "--shuffle", "--seed", "1", "--model", str(tiny_model_dir),
            "--set", "settings.max_new_tokens=4"]
    assert main(argv) == 0, capsys.readouterr().err
    block = parse_loop_settings(SMALL_MODEL_SETTINGS.read_text(), "small-model.yaml")["generation"]
    # As evaluation/loop.py builds a round's spec.
    expected = GenerationSpec.model_validate({
        "constitution": "general-hhh", "prompt_sources": ["red_team", "benign"], "limit": 2, "shuffle": True,
        "seed": 1, "policy_model": str(tiny_model_dir), **block, "prompt_split": "train"})
    expected.settings.max_new_tokens = 4
    stored = json.loads((cai_home / "datasets" / "by-hand" / "spec.json").read_text())["spec"]
    assert stored == expected.model_dump(mode="json")
    assert stored["sft_source"] == "best_of_n" and stored["system_prompt"].startswith("You are a helpful assistant")
    sampled = [json.loads(line) for line in (cai_home / "datasets" / "by-hand" / "samples.jsonl").read_text().splitlines()]
    assert {len(row["samples"]) for row in sampled} == {6}  # best_of_n: 6 from the block
    # The block's verifier is the constitution: its training-half examples join the two drawn prompts.
    from cai_core.constitution import TRAIN_HALF
    from cai_core.store import load_constitution

    examples = sum(len(p.examples_in(TRAIN_HALF)) for p in load_constitution("general-hhh").enabled_principles)
    assert sum(not row["example"] for row in sampled) == 2 and len(sampled) == 2 + examples


def test_the_held_out_split_is_the_cli_default(tiny_model_dir, cai_home):
    from cai_core.data.promptsets import evaluation_half, load_prompt_sources

    assert main(["generate", "--name", "split", "--constitution", "general-hhh", "--prompts", "red_team",
                 "--phase", "sft", "--model", str(tiny_model_dir), "--max-new-tokens", "2", "--limit", "6"]) == 0
    folder = cai_home / "datasets" / "split"
    assert json.loads((folder / "spec.json").read_text())["spec"]["prompt_split"] == "train"
    made = {json.loads(line)["prompt"] for line in (folder / "prompts.jsonl").read_text().splitlines()}
    scored = {item.prompt for item in evaluation_half(load_prompt_sources(["red_team"]).items)}
    assert len(made) == 6 and not made & scored


# --------------------------------------------------------------------------- names under CAI_HOME


def test_the_readmes_generate_then_train_by_name_connects(tiny_model_dir, cai_home, tmp_path, monkeypatch, capsys):
    """`cai generate --out data/run1` then `cai train --data run1`: the name finds the dataset."""
    from cai_core.training import TrainingSpec, data_files

    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--constitution", "general-hhh", "--prompts", "benign", "--limit", "2", "--phase", "sft",
                 "--model", str(tiny_model_dir), "--max-new-tokens", "2", "--out", "data/run1"]) == 0
    files = data_files(TrainingSpec(method="sft", data=["run1"]))
    assert files == [cai_home / "datasets" / "run1" / "sft.jsonl"]
    # --out is a copy of the finished dataset, byte for byte.
    assert (tmp_path / "data" / "run1" / "sft.jsonl").read_bytes() == files[0].read_bytes()
    assert "run1" in subprocess.run([sys.executable, "-m", "cai_core.cli", "datasets"], capture_output=True,
                                    text=True, timeout=120).stdout


def test_generate_without_a_name_or_out_says_so(capsys):
    assert main(["generate", "--constitution", "general-hhh", "--prompts", "benign"]) == 1
    err = capsys.readouterr().err
    assert one_line(err) and "--name" in err


def test_out_never_copies_over_another_dataset(cai_home, capsys):
    other = cai_home / "datasets" / "other"
    other.mkdir(parents=True)
    (other / "spec.json").write_text('{"kind": "generate", "spec": {}}')
    assert main(["generate", "--name", "mine", "--out", str(other), "--constitution", "general-hhh",
                 "--prompts", "benign"]) == 1
    assert one_line(capsys.readouterr().err) and list(other.iterdir()) == [other / "spec.json"]
    assert not (cai_home / "datasets" / "mine").exists()


def test_cai_eval_name_is_listed_and_out_is_a_copy(tiny_model_dir, cai_home, tmp_path, capsys):
    from cai_core.evaluation import list_evaluations, read_report

    copy = tmp_path / "base-copy.json"
    assert main(["eval", "base", "--model", str(tiny_model_dir), "--suites", "arithmetic", "--limit", "1",
                 "--out", str(copy)]) == 0
    folder = cai_home / "evaluations" / "base"
    assert list_evaluations() == [folder]
    assert read_report(copy) == read_report(folder)
    assert not list(tmp_path.glob(".*.work"))
    listed = subprocess.run([sys.executable, "-m", "cai_core.cli", "evaluations"], capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0 and listed.stdout.startswith("base ") and "finished" in listed.stdout
    # --name works as train and loop take it: the same evaluation again, nothing run twice.
    assert main(["eval", "--name", "base", "--model", str(tiny_model_dir), "--suites", "arithmetic", "--limit", "1"]) == 0
    # A name, not a path, reaches the report in `cai tax`.
    assert main(["tax", "base", "base"]) == 0
    assert "arithmetic" in capsys.readouterr().out


def make_adapter(folder: Path, base: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "peft_type": "LORA"}))
    return folder


def test_eval_refuses_a_model_that_is_not_the_adapters_base(tmp_path, cai_home, capsys):
    adapter = make_adapter(tmp_path / "adapter", "org/some-base")
    assert main(["eval", "mismatch", "--model", "default", "--adapter", str(adapter), "--suites", "arithmetic"]) == 1
    err = capsys.readouterr().err
    assert one_line(err) and "'org/some-base'" in err and "--model 'default'" in err
    assert not (cai_home / "evaluations" / "mismatch").exists()


def test_eval_with_the_adapters_own_base_or_no_model_uses_the_adapter(tmp_path):
    from cai_core.cli import _evaluated_model

    adapter = make_adapter(tmp_path / "adapter", "org/some-base")
    assert _evaluated_model(None, str(adapter)) == str(adapter)
    assert _evaluated_model("org/some-base", str(adapter)) == str(adapter)


def test_every_setting_of_every_spec_has_help_a_form_can_show():
    from cai_core.evaluation.loop import LoopSpec
    from cai_core.training.spec import TrainingSpec

    for spec in (GenerationSpec, EvaluationSpec, TrainingSpec, LoopSpec):
        undocumented = [".".join(path) for path in spec_options(spec) if not field_info(spec, ".".join(path)).help]
        assert undocumented == [], spec.__name__


# --------------------------------------------------------------------------- the command a form shows


def parsed_back(command: str) -> tuple[str, GenerationSpec]:
    """The dataset name and spec the CLI's own parser and merge make of a printed `cai generate` line."""
    import shlex

    words = shlex.split(command)
    assert words[:2] == ["cai", "generate"]
    args = build_parser().parse_args(words[1:])
    return args.name, validate(GenerationSpec, spec_data(args, GenerationSpec, None, args.set))


@pytest.mark.parametrize("fields", [
    {"constitution": "general-hhh", "prompt_sources": ["benign"]},
    {"constitution": "my constitution.yaml", "prompt_sources": ["red_team", "/data/my prompts, v2.jsonl", "benign"],
     "limit": 40, "shuffle": True, "prompt_split": "all", "phases": ["prefs"], "pair_sources": ["best_of_n"],
     "sft_source": "best_of_n", "best_of_n": 6, "refuse_sources": [], "system_prompt_in_data": False, "rounds": 3,
     "principles": ["harmless", "honest"], "order": "sequential", "system_prompt": "-- Be kind; say \"no\" to harm.",
     "policy_model": "/models/small", "critic_model": "http://127.0.0.1:8000/v1#big", "judge_model": "org/judge",
     "settings": {"max_new_tokens": 64, "temperature": 0.7000000000000001, "top_p": 0.5, "repetition_penalty": 1.0,
                  "seed": 9, "batch_size": 4, "concurrency": 32},
     "sample_temperature": 1.25, "judge_ensemble": 3, "min_confidence": 0.5, "label_band": [0.55, 0.9], "seed": 9,
     "chunk_size": 2},
    {"constitution": "c", "prompt_sources": ["benign"], "principles": [], "settings": {"temperature": 0.0}},
], ids=["defaults", "every-field", "empty-principles"])
def test_the_printed_generate_command_parses_back_to_the_same_spec(fields):
    from cai_core.data import generation_command

    spec = GenerationSpec.model_validate(fields)
    command = generation_command(spec, "my-data")
    assert "\n" not in command
    assert parsed_back(command) == ("my-data", spec)
    if fields == {"constitution": "general-hhh", "prompt_sources": ["benign"]}:  # defaults stay off the line
        assert command == "cai generate --name my-data --constitution=general-hhh --prompt-sources=benign"
