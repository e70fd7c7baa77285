"""The commands the Alignment tax page shows are ones the CLI reads back to the same work."""

from __future__ import annotations

import json
import shlex

import pytest

from cai_core.cli import _report_path, build_parser, evaluation_spec_from_args
from cai_core.evaluation import EvaluationSpec, evaluations_dir, read_report
from cai_core.evaluation.commands import eval_command, tax_command
from cai_core.evaluation.loop import loops_dir
from cai_core.evaluation.reports import evaluation_report, loop_round_report, uploaded_report, uploaded_reports_dir
from principle_reports import BASE_OUTCOMES, principles_report


def parsed(command: str):
    argv = shlex.split(command)
    assert argv[0] == "cai"
    return build_parser().parse_args(argv[1:])


@pytest.mark.parametrize("spec", [
    EvaluationSpec(model="/models/my model", suites=["principles", "refusal"], limit=3, seed=7, batch_size=4,
                   constitution="customer-service", judge_model="http://localhost:8000/v1"),
    EvaluationSpec(model="default"),
    EvaluationSpec(model="org/model-id", suites=["arithmetic", "lm-eval:gsm8k"], seed=0),
    EvaluationSpec(model="default", suites=["principles"], constitution="medical-qa"),
])
def test_the_eval_command_reads_back_to_the_same_spec(spec):
    command = eval_command(spec, "my-eval")
    args = parsed(command)
    assert args.name == "my-eval"
    assert evaluation_spec_from_args(args) == spec


def test_the_eval_command_names_the_model_suites_and_constitution_but_not_defaults():
    spec = EvaluationSpec(model="default", suites=["principles"], constitution="medical-qa")
    assert eval_command(spec, "e") == "cai eval e --model default --suites principles --constitution medical-qa"
    assert eval_command(spec, " ").startswith("cai eval NAME ")  # a name still to be chosen


def test_the_tax_command_names_each_report_so_the_cli_finds_it():
    report = json.dumps(principles_report("m", BASE_OUTCOMES))
    (evaluations_dir() / "base-eval").mkdir(parents=True)
    (evaluations_dir() / "base-eval" / "report.json").write_text(report)
    uploaded_reports_dir().mkdir(parents=True)
    (uploaded_reports_dir() / "from cli.json").write_text(report)
    round_path = loop_round_report("demo", 2).path
    round_path.parent.mkdir(parents=True)
    round_path.write_text(report)
    assert round_path.is_relative_to(loops_dir())
    refs = [evaluation_report("base-eval"), uploaded_report("from cli"), loop_round_report("demo", 2)]
    for base in refs:
        for aligned in refs:
            args = parsed(tax_command(base, aligned))
            assert args.handler.__name__ == "_cmd_tax"
            for given, ref in ((args.base, base), (args.aligned, aligned)):
                found = _report_path(given)
                assert (found if found.is_file() else found / "report.json") == ref.path
                assert read_report(found)["model_label"] == "m"
    assert tax_command(refs[0], refs[1]).startswith("cai tax base-eval ")
