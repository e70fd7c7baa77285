"""The report catalogue (cai_core.evaluation.reports): ids, listing, uploads, the default pair, items."""

from __future__ import annotations

import json

import pytest

from cai_core.evaluation import EvaluationError
from cai_core.evaluation.loop import loops_dir
from cai_core.evaluation.reports import (common_items, default_pair, evaluation_report, item_verdict, list_reports,
                                         report_ref, reports_by_loop, save_uploaded_report, uploaded_reports_dir)
from cai_core.evaluation.run import evaluations_dir


def report(adapters: bool = False, label: str = "m") -> dict:
    suite = {"score": 50.0, "kind": "capability", "n": 2, "metric": "accuracy", "higher_is_better": True,
             "items": [{"id": "a", "correct": True, "expected": 1, "extracted": 1},
                       {"id": "b", "correct": False, "expected": 2, "extracted": None}]}
    return {"suites": {"arithmetic": suite}, "model": {"label": label, "adapters": ["x"] if adapters else []},
            "settings": {"limit": 2, "seed": 0}}


def write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_ids_name_the_same_report_both_ways():
    for ref in (evaluation_report("base"), report_ref("loop:demo/2"), report_ref("file:from-cli")):
        assert report_ref(ref.id) == ref
    loop_round = report_ref("loop:demo/0")
    assert loop_round.path == loops_dir() / "demo" / "round-0" / "evaluate" / "report.json"
    assert (loop_round.label, loop_round.slug, loop_round.where) == ("demo · start", "demo-round-0", " (loop)")
    with pytest.raises(EvaluationError, match="names no report"):
        report_ref("loop:demo")


def test_listing_keeps_ended_evaluations_then_loop_rounds_in_order_then_uploads():
    write(evaluations_dir() / "done" / "report.json", report())
    write(evaluations_dir() / "running" / "report.json", report())
    for number in (10, 2, 0):
        write(loops_dir() / "demo" / f"round-{number}" / "evaluate" / "report.json", report())
    (loops_dir() / "demo" / "round-11" / "evaluate").mkdir(parents=True)  # still running: no report yet
    write(uploaded_reports_dir() / "mine.json", report())
    folders = [evaluations_dir() / "running", evaluations_dir() / "done"]
    refs = list_reports(folders, ended=lambda folder: folder.name != "running")
    assert [ref.id for ref in refs] == ["eval:done", "loop:demo/0", "loop:demo/2", "loop:demo/10", "file:mine"]
    assert [ref.id for ref in reports_by_loop(refs)["demo"]] == ["loop:demo/0", "loop:demo/2", "loop:demo/10"]


def test_default_pair_is_the_newest_model_without_adapters_against_the_newest_with():
    refs = [report_ref(i) for i in ("eval:new-base", "eval:aligned", "eval:old-base", "loop:l/0", "loop:l/1")]
    reports = {"eval:new-base": report(), "eval:aligned": report(adapters=True), "eval:old-base": report(),
               "loop:l/0": report(), "loop:l/1": report(adapters=True)}
    base, aligned = default_pair(refs, lambda ref: reports[ref.id])
    assert (base.id, aligned.id) == ("eval:new-base", "eval:aligned")
    # With no adapters anywhere, the newest is the aligned one and the next the base.
    base, aligned = default_pair(refs[:3], lambda ref: report())
    assert (base.id, aligned.id) == ("eval:aligned", "eval:new-base")


def test_an_upload_is_kept_under_a_safe_name_and_a_bad_one_is_named_as_uploaded():
    ref, kept = save_uploaded_report("../from cli.json", json.dumps(report()).encode())
    assert ref.id == "file:from-cli" and ref.path.is_file() and kept["suites"]
    again, _ = save_uploaded_report("from cli.json", json.dumps(report(label="other")).encode())
    assert again.id == "file:from-cli-2"  # another report never replaces one kept under that name
    with pytest.raises(EvaluationError) as caught:
        save_uploaded_report("notes.json", b"{not json")
    assert str(caught.value).startswith("notes.json, line 1: ") and caught.value.path == "notes.json"
    assert sorted(p.name for p in uploaded_reports_dir().iterdir()) == ["from-cli-2.json", "from-cli.json"]


def test_items_in_common_and_their_verdicts():
    by_id, ids = common_items([report(), report()], "arithmetic")
    assert ids == ["a", "b"]
    assert [item_verdict(by_id[0][i]) for i in ids] == ["correct (expected 1, got 1)", "wrong (expected 2, got nothing)"]
