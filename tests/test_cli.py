"""The `cai` command: exit codes, one-sentence errors, never a traceback."""

import json
import subprocess
import sys

import pytest

from cai_core.cli import main


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cai_core.cli", *args], capture_output=True, text=True, timeout=120, env=env)


def test_validate_good_file_prints_warnings_and_exits_0(tmp_path, capsys):
    path = tmp_path / "vague.yaml"
    path.write_text("name: vague\nprinciples:\n  - name: a\n    critique_request: Is it good?\n    revision_request: Make it better.\n")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "valid constitution 'vague'" in out and "warning:" in out


@pytest.mark.parametrize("content, words", [
    ("name: x\nprinciples:\n  - name: a\n    critique_request: [oops\n", "line"),
    ("name: x\nprinciples:\n  - name: a\n    critique_request: q\n    revision_request: r\n    colour: red\n", "line 6: principle 1: unknown key 'colour'"),
    (b"\xff\xfe\x00junk", "not a text file"),
])
def test_validate_bad_file_exits_1_with_file_and_line(tmp_path, content, words):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    done = run_cli("validate", str(path))
    assert done.returncode == 1
    assert str(path) in done.stderr and words in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_validate_missing_file(capsys):
    assert main(["validate", "/no/such/file.yaml"]) == 1
    assert "file not found" in capsys.readouterr().err


def test_constitutions_lists_shipped_and_users(cai_home, capsys):
    (cai_home / "constitutions").mkdir(parents=True)
    (cai_home / "constitutions" / "broken.yaml").write_text("name: [")
    assert main(["constitutions"]) == 0
    out = capsys.readouterr().out
    assert "general-hhh" in out and "medical-qa" in out and "customer-service" in out
    assert "broken" in out and "BROKEN" in out


def test_preview_json_on_tiny_model(tiny_model_dir, capsys):
    code = main(["preview", "--constitution", "general-hhh", "--prompt", "hello", "--rounds", "2",
                 "--model", str(tiny_model_dir), "--max-new-tokens", "5", "--json"])
    assert code == 0
    trace = json.loads(capsys.readouterr().out)
    assert trace["prompt"] == "hello" and len(trace["steps"]) == 2
    assert set(trace["steps"][0]) >= {"principle", "critique", "revision"}


def test_preview_streams_steps_as_text(tiny_model_dir, capsys):
    assert main(["preview", "--constitution", "general-hhh", "--prompt", "hello", "--model", str(tiny_model_dir), "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "--- initial answer" in out and "round 1: critique" in out and "--- final answer" in out


@pytest.mark.parametrize("args, words", [
    (["--prompt", "   "], "prompt 1 is empty"),
    (["--prompt", "hi", "--model", "not a model"], "neither an existing local folder"),
    (["--prompt", "hi", "--constitution", "../etc/passwd"], "../etc/passwd: file not found"),  # clearly a path, so read as one: never a name
    (["--prompt", "hi", "--constitution", "nope"], "no constitution named 'nope'"),
])
def test_preview_bad_input_is_one_sentence(args, words):
    base = ["preview", "--constitution", "general-hhh"]
    done = run_cli(*base, *args)
    assert done.returncode == 1
    assert words in done.stderr and "Traceback" not in done.stderr


def test_generate_makes_a_dataset_and_running_it_again_resumes(tmp_path, tiny_model_dir):
    out = tmp_path / "ds"
    args = ["generate", "--constitution", "general-hhh", "--prompts", "red_team,benign", "--limit", "4",
            "--out", str(out), "--model", str(tiny_model_dir), "--max-new-tokens", "8", "--min-confidence", "0.5"]
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "4/4 prompts done" in done.stdout and "sft.jsonl 4" in done.stdout
    assert "%|" in done.stderr  # the progress bar
    again = run_cli("generate", "--out", str(out))
    assert again.returncode == 0 and "resuming" in again.stderr and "4/4 prompts done" in again.stdout
    changed = run_cli(*args, "--seed", "3")
    assert changed.returncode == 1 and "other settings (seed)" in changed.stderr
    assert changed.stderr.strip().startswith("error:") and "Traceback" not in changed.stderr


@pytest.mark.parametrize("args, words", [
    (["--constitution", "general-hhh", "--prompts", "no-such-set"], "neither a shipped or saved set"),
    (["--constitution", "nope", "--prompts", "red_team"], "no constitution named 'nope'"),
    (["--constitution", "general-hhh"], "give --prompts"),
    (["--constitution", "general-hhh", "--prompts", "red_team", "--label-band", "x"], "--label-band: Input should be a valid number"),
    (["--constitution", "general-hhh", "--prompts", "red_team", "--sample-temperature", "0"], "--sample-temperature: Input should be greater than 0"),
])
def test_generate_bad_arguments_get_one_sentence(tmp_path, args, words):
    done = run_cli("generate", "--out", str(tmp_path / "x"), *args)
    assert done.returncode == 1 and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "x" / "spec.json").exists()


def test_generate_reports_a_malformed_prompt_file_with_its_line(tmp_path):
    bad = tmp_path / "mine.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": }\n')
    done = run_cli("generate", "--out", str(tmp_path / "x"), "--constitution", "general-hhh", "--prompts", str(bad))
    assert done.returncode == 1 and f"{bad}, line 2: is not valid JSON" in done.stderr


def test_prompt_sets_lists_the_shipped_sets():
    done = run_cli("prompt-sets")
    assert done.returncode == 0 and "red_team" in done.stdout and "borderline-benign" in done.stdout


def test_generate_in_the_background_then_list_the_datasets(tmp_path, tiny_model_dir):
    import os
    import time

    from cai_core.jobs import read_job

    env = {**os.environ, "CAI_HOME": str(tmp_path / "home")}
    out = tmp_path / "home" / "datasets" / "bg"
    done = run_cli("generate", "--constitution", "general-hhh", "--prompts", "benign", "--limit", "3", "--out", str(out),
                   "--model", str(tiny_model_dir), "--max-new-tokens", "8", "--background", env=env)
    assert done.returncode == 0 and "started in its own process" in done.stdout, done.stderr
    deadline = time.time() + 120
    while read_job(out).active:
        assert time.time() < deadline
        time.sleep(0.2)
    listed = run_cli("datasets", env=env)
    assert listed.returncode == 0 and "bg" in listed.stdout and "finished" in listed.stdout and "3/3" in listed.stdout
    assert "sft 3" in listed.stdout


# --------------------------------------------------------------------------- an external critic


@pytest.fixture(scope="module")
def critic_model_dir(tmp_path_factory):
    """A second tiny model with other weights, so the critic's text is not the policy's."""
    from conftest import build_tiny_model_folder

    return build_tiny_model_folder(tmp_path_factory.mktemp("tiny-critic"), seed=1)


def test_generate_with_a_critic_model_puts_the_critics_text_in_the_sft_rows(tmp_path, tiny_model_dir, critic_model_dir):
    from cai_core import load_constitution, load_model
    from cai_core import prompts as templates
    from cai_core.data import read_rows
    from cai_core.models import GenerationSettings

    out = tmp_path / "ds"
    done = run_cli("generate", "--name", "critic", "--out", str(out), "--constitution", "general-hhh", "--prompts", "benign",
                   "--limit", "1", "--phase", "sft", "--model", str(tiny_model_dir), "--critic-model", str(critic_model_dir),
                   "--max-new-tokens", "8", "--temperature", "0.8", "--seed", "4", "--order", "sequential",
                   "--principle", "avoid-harmful-help")
    assert done.returncode == 0, done.stderr
    critic, policy = load_model(str(critic_model_dir)), load_model(str(tiny_model_dir))
    principle = load_constitution("general-hhh").principle("avoid-harmful-help")
    # Sampled and seeded: greedy, the random tiny models both repeat one token that decodes to nothing.
    # The critique is the chain's second stage, so it is drawn with seed + 1.
    sampled = GenerationSettings(max_new_tokens=8, temperature=0.8, seed=4 + 1)
    traces, sft = read_rows(out / "traces.jsonl"), read_rows(out / "sft.jsonl")
    assert len(traces) == len(sft) == 1
    for trace, row in zip(traces, sft):
        step = trace["steps"][0]
        asked = templates.critique_conversation(templates.initial_conversation(trace["prompt"]), trace["initial"],
                                                principle.critique_request)
        # The critique is the critic's answer, not the policy's; the SFT row learns the final revision.
        assert step["critique"] == critic.generate([asked], sampled)[0].text
        assert step["critique"] != policy.generate([asked], sampled)[0].text
        assert step["critique_model"] == critic_model_dir.name and trace["models"]["initial"] == tiny_model_dir.name
        assert row["messages"][-1] == {"role": "assistant", "content": trace["final"]}
        assert step["revision_model"] == (critic_model_dir.name if step["revised"] else tiny_model_dir.name)
        assert row["lineage"]["roles"] == {"policy": tiny_model_dir.name, "critic": critic_model_dir.name, "judge": None}
    spec = json.loads((out / "spec.json").read_text())["spec"]
    assert spec["critic_model"] == str(critic_model_dir)
    assert f"distillation from `{critic_model_dir.name}`" in (out / "README.md").read_text()


def test_generate_refuses_a_policy_and_critic_that_do_not_fit_in_one_sentence(tmp_path, tiny_model_dir, critic_model_dir):
    import os

    out = tmp_path / "ds"
    env = {**os.environ, "CAI_MEMORY_AVAILABLE": "1M"}
    done = run_cli("generate", "--out", str(out), "--constitution", "general-hhh", "--prompts", "benign", "--limit", "1",
                   "--model", str(tiny_model_dir), "--critic-model", str(critic_model_dir), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    message = done.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and "working room" in message
    assert str(critic_model_dir) in message and "endpoint URL" in message
    assert not (out / "spec.json").exists()


def test_loop_critic_model_reaches_each_rounds_generation_spec(tmp_path):
    """`cai loop --critic-model` writes the loop's spec, whose rounds make their data with that critic.
    The starting model does not exist, so the loop stops at once, after its spec is written."""
    import os

    from cai_core.evaluation.loop import parse_loop_spec, round_generation_spec

    home, url = tmp_path / "home", "http://127.0.0.1:9/v1"
    settings = tmp_path / "loop.yaml"
    settings.write_text("generation:\n  rounds: 2\n")
    done = run_cli("loop", "--constitution", "general-hhh", "--base-model", str(tmp_path / "no-model"), "--name", "x",
                   "--settings", str(settings), "--critic-model", url, env={**os.environ, "CAI_HOME": str(home)})
    assert done.returncode == 1 and "neither an existing local folder" in done.stderr
    spec = parse_loop_spec(json.loads((home / "loops" / "x" / "spec.json").read_text())["spec"])
    generation = round_generation_spec(spec, 1, "round-model")
    assert generation.critic_model == url and generation.rounds == 2 and generation.policy_model == "round-model"


def test_preview_with_a_critic_model_says_the_critic_wrote_each_step(tiny_model_dir, critic_model_dir, capsys,
                                                                     monkeypatch):
    base = ["preview", "--constitution", "general-hhh", "--prompt", "hello", "--model", str(tiny_model_dir),
            "--critic-model", str(critic_model_dir), "--max-new-tokens", "4"]
    assert main([*base, "--json"]) == 0
    trace = json.loads(capsys.readouterr().out)
    assert trace["models"] == {"initial": tiny_model_dir.name, "critique": critic_model_dir.name,
                               "revision": critic_model_dir.name}
    assert trace["steps"][0]["critique_model"] == critic_model_dir.name
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "round 1: critique under" in out and f"(by the critic, {critic_model_dir.name})\n" in out
    monkeypatch.setenv("CAI_MEMORY_AVAILABLE", "1M")  # the two models no longer fit: one sentence, nothing run
    assert main(base) == 1
    printed = capsys.readouterr()
    assert not printed.out and printed.err.count("\n") == 1 and "working room" in printed.err


def test_a_background_job_reads_relative_paths_from_where_it_was_started(tmp_path, tiny_model_dir):
    """The worker runs in the folder the command ran in, as the foreground does, not in the project's."""
    import os
    import time

    from cai_core.jobs import read_job

    (tmp_path / "mine.yaml").write_text(
        "name: my-rules\nprinciples:\n  - name: plain\n    critique_request: Is anything in the answer unclear?\n"
        "    revision_request: Rewrite the answer so that it is clear.\n")
    env = {**os.environ, "CAI_HOME": str(tmp_path / "home")}
    out = tmp_path / "home" / "datasets" / "relative"
    done = subprocess.run([sys.executable, "-m", "cai_core.cli", "generate", "--constitution", "./mine.yaml",
                           "--prompts", "benign", "--limit", "1", "--phase", "sft", "--out", str(out),
                           "--model", os.path.relpath(tiny_model_dir, tmp_path), "--max-new-tokens", "4", "--background"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0 and "started in its own process" in done.stdout, done.stderr
    deadline = time.time() + 120
    while read_job(out).active:
        assert time.time() < deadline
        time.sleep(0.2)
    assert read_job(out).state == "finished", (out / "log.txt").read_text()
    assert "my-rules" in (out / "constitution.yaml").read_text()
