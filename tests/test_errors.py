"""One base error: every exception cai_core raises for a user is a CaiError, and the CLI turns any
CaiError into one line on stderr and exit code 1."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import cai_core
from cai_core import cli
from cai_core.errors import CaiError, Cancelled, DatasetError


def cai_core_exception_classes() -> dict[str, type]:
    """Every exception class defined in a cai_core module, by its qualified name."""
    found = {}
    for module_info in pkgutil.walk_packages(cai_core.__path__, "cai_core."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_class_in_cai_core_is_a_cai_error_or_a_stop():
    classes = cai_core_exception_classes()
    assert len(classes) >= 15  # the walk found the modules
    strays = [name for name, cls in classes.items() if not issubclass(cls, (CaiError, Cancelled))]
    assert strays == []
    stops = sorted(name.rsplit(".", 1)[1] for name, cls in classes.items() if issubclass(cls, Cancelled))
    assert stops == ["Cancelled", "ChainCancelled", "JobCancelled", "PrincipleTestCancelled"]  # a stop asked for is not an error


def test_prompt_files_recipes_and_dataset_names_are_not_constitution_errors():
    from cai_core.constitution import ConstitutionError
    from cai_core.data import check_dataset_name, parse_spec
    from cai_core.data.promptsets import PromptFileError
    from cai_core.training.spec import RecipeError

    assert not issubclass(PromptFileError, ConstitutionError) and not issubclass(RecipeError, ConstitutionError)
    for bad in (lambda: check_dataset_name("no spaces allowed"), lambda: parse_spec({"constitution": "x"})):
        with pytest.raises(DatasetError) as caught:
            bad()
        assert not isinstance(caught.value, ConstitutionError)


def test_a_job_names_message_names_its_kind_without_patching():
    from cai_core.evaluation import EvaluationError, EvaluationSpec, start_evaluation

    with pytest.raises(EvaluationError, match=r"^evaluation name 'bad name!' must start"):
        start_evaluation(EvaluationSpec(suites=["arithmetic"]), "bad name!")


def test_the_cli_turns_any_cai_error_into_one_line_and_exit_1(monkeypatch, capsys):
    class NovelError(CaiError):
        """A domain the CLI has never heard of."""

    def fails(args):
        raise NovelError("the thing is wrong", "some/file.yaml", 3)

    monkeypatch.setattr(cli, "_cmd_datasets", fails)
    assert cli.main(["datasets"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "error: some/file.yaml, line 3: the thing is wrong\n" and captured.out == ""


@pytest.mark.parametrize("argv, words", [
    (["generate", "--name", "bad name!", "--constitution", "general-hhh", "--prompts", "benign"], "dataset name"),
    (["generate", "--name", "x", "--constitution", "general-hhh"], "give --prompts"),
    (["eval", "bad name!"], "evaluation name"),
    (["train", "sft"], "give --recipe"),
    (["tax", "nope-1", "nope-2"], "no such report"),
    (["stop", "nope"], "there is no run 'nope'"),
])
def test_each_domain_error_reaches_the_user_as_one_line(argv, words):
    done = subprocess.run([sys.executable, "-m", "cai_core.cli", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_failed_job_shows_a_cai_errors_sentence_as_it_is_and_anything_else_with_its_type():
    from cai_core.jobs import one_sentence

    class Elsewhere(CaiError):
        pass

    Elsewhere.__module__ = "someone_elses_plugin"  # the base decides, not where the class lives
    assert one_sentence(Elsewhere("the file is empty")) == "the file is empty"
    assert one_sentence(ValueError("boom")) == "ValueError: boom (details in log.txt)"
