"""Every place that writes where the user points it leaves the user's own files as they were.

A job folder is this tool's when its ``spec.json`` names one of its job kinds; a non-empty folder
without it is refused in one sentence before anything is written. Report files, comparison files,
exported models and uploaded reports never replace a file this tool did not write for the same
purpose.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cai_core.cli import main
from cai_core.evaluation import read_report

ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE = "http://127.0.0.1:9/v1"  # the discard port: nothing answers there


def one_sentence(text: str) -> bool:
    text = text.strip()
    return bool(text) and "\n" not in text and "Traceback" not in text


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def users_folder(tmp_path) -> Path:
    """A folder of the user's own work that happens to use the names a dataset uses."""
    folder = tmp_path / "my-project"
    folder.mkdir()
    (folder / "sft.jsonl").write_text(json.dumps({"id": "mine-1", "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "my hand-written answer"}]}) + "\n")
    (folder / "README.md").write_text("# My project\n\nNotes I wrote myself.\n")
    (folder / "prompts.jsonl").write_text(json.dumps({"id": "p1", "prompt": "my own prompt"}) + "\n")
    return folder


def generate_args(out: Path, model: str) -> list[str]:
    return ["generate", "--constitution", "general-hhh", "--prompts", "benign", "--limit", "2", "--phase", "sft",
            "--model", model, "--max-new-tokens", "4", "--temperature", "0", "--chunk-size", "1", "--out", str(out)]


# --------------------------------------------------------------------------- cai generate --out


@pytest.mark.parametrize("background", [False, True])
def test_generate_refuses_a_folder_it_did_not_make_and_writes_nothing_there(users_folder, tmp_path, background, capsys):
    before = snapshot(users_folder)
    code = main(generate_args(users_folder, UNREACHABLE) + (["--background"] if background else []))
    err = capsys.readouterr().err
    assert code == 1
    assert one_sentence(err) and str(users_folder) in err and "did not make" in err
    assert snapshot(users_folder) == before  # byte for byte, and no file added


def test_generate_resume_without_settings_in_someone_elses_folder_is_one_sentence(users_folder, capsys):
    """A spec.json the user wrote is not this tool's marker: no resume is tried from it."""
    (users_folder / "spec.json").write_text('{"name": "my own settings"}\n')
    before = snapshot(users_folder)
    code = main(["generate", "--out", str(users_folder)])
    err = capsys.readouterr().err
    assert code == 1 and one_sentence(err) and "did not make" in err
    assert snapshot(users_folder) == before


def test_generate_works_in_an_empty_folder_and_resumes_in_its_own_but_not_in_a_users(users_folder, tmp_path,
                                                                                      tiny_model_dir, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(generate_args(empty, str(tiny_model_dir))) == 0
    assert "2/2 prompts done" in capsys.readouterr().out
    assert len((empty / "sft.jsonl").read_text().splitlines()) == 2

    # The same --out again, without the settings: this tool's own folder resumes (nothing left to do).
    made = snapshot(empty)
    assert main(["generate", "--out", str(empty)]) == 0
    assert "resuming the dataset 'empty'" in capsys.readouterr().err
    assert {k: v for k, v in snapshot(empty).items() if k.endswith(".jsonl")} == {
        k: v for k, v in made.items() if k.endswith(".jsonl")}

    # A working model changes nothing for a folder that is not the tool's.
    before = snapshot(users_folder)
    assert main(generate_args(users_folder, str(tiny_model_dir))) == 1
    assert one_sentence(capsys.readouterr().err)
    assert snapshot(users_folder) == before


def test_the_data_page_engine_refuses_a_users_folder_too(users_folder):
    """start_generation (the Data page's way in) goes through the same check."""
    from cai_core.data import parse_spec, start_generation
    from cai_core.jobs import JobError

    before = snapshot(users_folder)
    spec = parse_spec({"constitution": "general-hhh", "prompt_sources": ["benign"], "limit": 2,
                       "policy_model": UNREACHABLE, "phases": ["sft"]})
    with pytest.raises(JobError, match="did not make"):
        start_generation(users_folder, spec)
    assert snapshot(users_folder) == before


# --------------------------------------------------------------------------- cai eval --out


def eval_args(out: Path, model: Path, limit: int = 1) -> list[str]:
    return ["eval", "--model", str(model), "--suites", "arithmetic", "--limit", str(limit), "--batch-size", "1",
            "--out", str(out)]


def test_eval_out_never_replaces_a_file_it_did_not_write(tmp_path, tiny_model_dir, cai_home, capsys):
    """Decision: the file at --out is replaced only by the same evaluation run again (its resume);
    any other file, another evaluation's report included, is refused before any work."""
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}\n')
    before = snapshot(tmp_path)
    assert main(eval_args(notes, tiny_model_dir)) == 1
    err = capsys.readouterr().err
    assert one_sentence(err) and str(notes) in err and "not a report this tool wrote" in err
    assert snapshot(tmp_path) == before and not (tmp_path / ".notes.json.work").exists()

    # This tool's report of the same evaluation: the same command again resumes and rewrites it.
    report = tmp_path / "base.json"
    assert main(eval_args(report, tiny_model_dir)) == 0
    assert main(eval_args(report, tiny_model_dir)) == 0
    first = report.read_bytes()

    # Another evaluation's report whose evaluation folder is gone is still someone's result.
    import shutil

    work = cai_home / "evaluations" / "base"
    shutil.rmtree(work)
    capsys.readouterr()
    assert main(eval_args(report, tiny_model_dir, limit=2)) == 1
    err = capsys.readouterr().err
    assert one_sentence(err) and "other settings (limit)" in err
    assert report.read_bytes() == first and not work.exists()


def test_eval_out_on_a_folder_is_refused_before_any_work(tmp_path, tiny_model_dir, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    assert main(eval_args(folder, tiny_model_dir)) == 1
    err = capsys.readouterr().err
    assert one_sentence(err) and "is a folder" in err
    assert snapshot(tmp_path) == before and not (tmp_path / ".results.work").exists()


def test_eval_refuses_an_evaluation_folder_it_did_not_make(tmp_path, tiny_model_dir, cai_home, capsys):
    work = cai_home / "evaluations" / "r"
    (work / "suites").mkdir(parents=True)
    (work / "suites" / "arithmetic.json").write_text('{"mine": 1}\n')
    before = snapshot(cai_home)
    assert main(eval_args(tmp_path / "r.json", tiny_model_dir)) == 1
    err = capsys.readouterr().err
    assert one_sentence(err) and "did not make" in err
    assert snapshot(cai_home) == before and not (tmp_path / "r.json").exists()


# --------------------------------------------------------------------------- cai tax --json


def small_report(label: str, score: float) -> dict:
    suite = {"name": "arithmetic", "kind": "capability", "version": "v1", "metric": "m", "higher_is_better": True,
             "score": score, "ci_low": score, "ci_high": score, "n": 1, "items": []}
    return {"report_version": 1, "model": {"spec": label}, "model_label": label, "suites": {"arithmetic": suite}}


def test_tax_json_replaces_only_a_comparison_it_wrote(tmp_path, capsys):
    base, aligned = tmp_path / "b.json", tmp_path / "a.json"
    base.write_text(json.dumps(small_report("base", 50.0)))
    aligned.write_text(json.dumps(small_report("aligned", 40.0)))
    mine = tmp_path / "summary.json"
    mine.write_text('{"my": "notes"}\n')
    assert main(["tax", str(base), str(aligned), "--json", str(mine)]) == 1
    err = capsys.readouterr().err
    assert one_sentence(err) and "not a comparison this tool wrote" in err
    assert mine.read_text() == '{"my": "notes"}\n'

    fresh = tmp_path / "c.json"
    assert main(["tax", str(base), str(aligned), "--json", str(fresh)]) == 0
    aligned.write_text(json.dumps(small_report("aligned", 25.0)))
    assert main(["tax", str(base), str(aligned), "--json", str(fresh)]) == 0  # its own file: written again
    assert json.loads(fresh.read_text())["all"]["per_benchmark"]["arithmetic"]["aligned"] == 25.0


# --------------------------------------------------------------------------- cai export --out


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A standard PEFT LoRA folder on the tiny model, as any trainer would save it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("adapter")
    network = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    peft_model = get_peft_model(network, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(str(folder))
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)
    return folder


def test_export_writes_into_an_empty_folder_and_never_over_anything_else(tmp_path, adapter_dir, users_folder, capsys):
    before = snapshot(users_folder)
    assert main(["export", str(adapter_dir), "--out", str(users_folder)]) == 1
    err = capsys.readouterr().err
    assert one_sentence(err) and "not an empty folder" in err
    assert snapshot(users_folder) == before

    a_file = tmp_path / "model.bin"
    a_file.write_bytes(b"mine")
    assert main(["export", str(adapter_dir), "--out", str(a_file)]) == 1
    assert one_sentence(capsys.readouterr().err) and a_file.read_bytes() == b"mine"

    # A folder made beforehand (mkdir) and still empty is where the user wants the model.
    empty = tmp_path / "merged"
    empty.mkdir()
    assert main(["export", str(adapter_dir), "--out", str(empty)]) == 0
    assert (empty / "config.json").is_file() and (empty / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".merged.")]  # no staging folder left


# --------------------------------------------------------------------------- uploads on the pages


def test_an_uploaded_report_never_replaces_an_earlier_upload_of_the_same_name(tiny_model_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from cai_core.evaluation import evaluations_dir
    from ui.common import page_key

    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    app.switch_page("pages/5_Alignment_Tax.py").run()
    first = json.dumps(small_report("first model", 50.0)).encode()
    second = json.dumps(small_report("second model", 20.0)).encode()

    app.file_uploader(key=page_key("tax", "upload")).set_value([("report.json", first, "application/json")]).run()
    app.file_uploader(key=page_key("tax", "upload")).set_value([("report.json", second, "application/json")]).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    kept = evaluations_dir() / ".uploaded"
    assert (kept / "report.json").read_bytes() == first
    assert (kept / "report-2.json").read_bytes() == second
    assert any("as report-2" in re.sub(r"\\(.)", r"\1", s.value) for s in app.success)
    assert read_report(kept / "report-2.json")["model_label"] == "second model"

    # The same content again is the same report: no third copy.
    app.file_uploader(key=page_key("tax", "upload")).set_value([("report.json", first, "application/json")]).run()
    assert sorted(p.name for p in kept.iterdir()) == ["report-2.json", "report.json"]
