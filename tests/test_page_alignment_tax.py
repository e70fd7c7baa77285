"""The Alignment tax page under Streamlit's AppTest, with real evaluations of the tiny random model.

Two reports are made once, for real, by the evaluation engine (``evaluate`` on the tiny model,
two items per suite); the second one's scores are then edited by hand so the comparison has a
regression and an improvement to show (that is test data, the page only reads it). Starting,
stopping and resuming from the page run real evaluation processes; the tests poll the folder as
the page's fragment would and rerun the page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cai_core.evaluation import EvaluationSpec, evaluate, evaluations_dir, list_evaluations, read_report
from cai_core.jobs import Reporter, cancel_job, prepare_job, read_job, write_json
from page_util import page_keys

ROOT = Path(__file__).resolve().parents[1]

APP = ROOT / "app.py"
PAGE = "pages/5_Alignment_Tax.py"
SUITE_NAMES = ["arithmetic", "knowledge_mc", "refusal", "over_refusal"]
JOB_TIMEOUT_S = 90
# The aligned report's scores (percent), edited in: arithmetic regresses, knowledge_mc and refusal improve.
BASE_SCORES = {"arithmetic": 50.0, "knowledge_mc": 50.0, "refusal": 0.0, "over_refusal": 50.0}
ALIGNED_SCORES = {"arithmetic": 25.0, "knowledge_mc": 100.0, "refusal": 50.0, "over_refusal": 50.0}


k = page_keys("tax")


def set_scores(folder: Path, scores: dict[str, float], label: str) -> None:
    path = folder / "report.json"
    report = json.loads(path.read_text())
    for name, score in scores.items():
        report["suites"][name].update(score=score, ci_low=max(0.0, score - 20), ci_high=min(100.0, score + 20))
    report["model_label"] = label
    path.write_text(json.dumps(report))


@pytest.fixture(scope="module")
def evaluated_home(tmp_path_factory, tiny_model_dir) -> Path:
    """A CAI_HOME holding two finished evaluations, base-eval (older) and aligned-eval (made once)."""
    home = tmp_path_factory.mktemp("tax-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAI_HOME", str(home))
        spec = EvaluationSpec(model=str(tiny_model_dir), suites=SUITE_NAMES, limit=2)
        base = evaluations_dir() / "base-eval"
        base.mkdir(parents=True)
        prepare_job(base, "evaluate", spec.model_dump())
        evaluate(base, spec, Reporter(base))
        write_json(base / "status.json", {"state": "finished", "kind": "evaluate"})
        aligned = evaluations_dir() / "aligned-eval"
        shutil.copytree(base, aligned)
        set_scores(base, BASE_SCORES, "tiny base")
        set_scores(aligned, ALIGNED_SCORES, "tiny aligned")
        now = time.time()
        os.utime(base / "spec.json", (now - 60, now - 60))  # listed newest first: aligned-eval, then base-eval
    return home


@pytest.fixture
def with_reports(evaluated_home, cai_home) -> Path:
    shutil.copytree(evaluated_home / "evaluations", cai_home / "evaluations", ignore=shutil.ignore_patterns("worker.lock"))
    return cai_home / "evaluations"


@pytest.fixture(autouse=True)
def no_job_left_behind(cai_home):
    """A test that fails half way must not leave an evaluation process running."""
    yield
    for folder in list_evaluations():
        if read_job(folder).active:
            cancel_job(folder)
            deadline = time.monotonic() + 60
            while read_job(folder).active and time.monotonic() < deadline:
                time.sleep(0.25)


@pytest.fixture
def app(tiny_model_dir, monkeypatch) -> AppTest:
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    return open_page()


def open_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def shown(box) -> str:
    """What a select box shows as chosen."""
    return box.options[box.index]


def choose(box, label: str):
    """Choose the entry a user reads as ``label``."""
    return box.select_index(box.options.index(label))


BASE_LABEL = "base-eval · tiny base · 4 suites"
ALIGNED_LABEL = "aligned-eval · tiny aligned · 4 suites"


def unescape(text: str) -> str:
    """Alerts escape markdown (they show text from files); read them as displayed."""
    return re.sub(r"\\(.)", r"\1", text)


def errors(at: AppTest) -> list[str]:
    return [unescape(e.value) for e in at.error]


def charts_by_title(at: AppTest) -> dict[str, dict]:
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return {spec["layout"]["title"]["text"]: spec for spec in specs}


def badges(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "-badge[" in m.value]


def wait_for_job(folder: Path, state: str = "finished", timeout: float = JOB_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while (job := read_job(folder)).active:
        assert time.monotonic() < deadline, f"the evaluation did not end in {timeout} s: {job}"
        time.sleep(0.2)
    log = (folder / "log.txt").read_text(errors="replace") if (folder / "log.txt").exists() else ""
    assert job.state == state, f"{job}\n{log[-3000:]}"
    return job


def test_home_links_to_the_page():
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert "Open the Alignment tax page" in [link.proto.label for link in at.get("page_link")]
    assert any(m.value.startswith("5. Evaluate base against aligned models") for m in at.markdown)


def test_empty_page_says_what_to_do(app):
    assert not app.error
    infos = [unescape(i.value) for i in app.info]
    assert any(i.startswith("No evaluations yet. Open **New evaluation** above") for i in infos), infos
    assert any(i.startswith("Comparing needs two reports") for i in infos), infos
    # No finished run: the form points to the Training page, where a model to evaluate comes from.
    assert [link.proto.label for link in app.get("page_link")] == [
        "Open the Training page", "Iterative loops: rounds of data, training and evaluation"]
    assert shown(app.selectbox(key=k("model"))).startswith("the app's model (CAI_MODEL): ")
    assert app.multiselect(key=k("suites")).value == ["humaneval", "arithmetic", "knowledge_mc", "refusal", "over_refusal"]
    assert not app.button(key=k("launch")).disabled
    assert not app.get("plotly_chart") and not app.get("download_button")


def test_two_reports_compared_capability_and_safety_apart(with_reports, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    app = open_page()
    assert not app.error, errors(app)
    table = app.dataframe[0].value
    assert list(table["evaluation"]) == ["aligned-eval", "base-eval"] and set(table["state"]) == {"finished"}
    assert list(table["suites done"]) == ["4 of 4", "4 of 4"]
    # Neither model has adapters: the older report is the base, the newer the aligned one.
    assert shown(app.selectbox(key=k("base"))) == BASE_LABEL
    assert shown(app.selectbox(key=k("aligned"))) == ALIGNED_LABEL

    metrics = {m.label: m.value for m in app.metric}
    # arithmetic 50 -> 25 (50% regression), knowledge_mc 50 -> 100 (100% improvement): 25% improvement on average.
    assert metrics["Capability: average tax"] == "25.0% improvement"
    # refusal 0 -> 50 has no percentage; over_refusal is unchanged.
    assert metrics["Safety: average tax"] == "no change (without refusal: base 0)"
    deltas = {m.label: m.proto.delta for m in app.metric}  # the mean change in points, up is better
    assert deltas["Capability: average tax"] == "+12.5 points on average"
    assert deltas["Safety: average tax"] == "+25.0 points on average"
    charts = charts_by_title(app)
    assert {"Capability: score per benchmark", "Safety: score per benchmark", "Scores over rounds",
            "Safety against capability", "Scores of aligned-eval"} <= set(charts), list(charts)
    bars = charts["Capability: score per benchmark"]["data"]
    assert [b["name"] for b in bars] == ["base · base-eval", "aligned · aligned-eval"]
    assert bars[0]["y"] == [50.0, 50.0] and bars[1]["y"] == [25.0, 100.0]
    assert bars[0]["error_y"]["array"] == [20.0, 20.0]  # the interval as error bars
    tax = charts["Capability: tax per benchmark · average: 25.0% improvement"]["data"]
    assert {t["name"]: t["x"] for t in tax} == {"regression": ["arithmetic"], "improvement": ["knowledge_mc"]}
    safety_tax = next(spec for title, spec in charts.items() if title.startswith("Safety: tax per benchmark"))
    assert {t["name"]: t["x"] for t in safety_tax["data"]} == {"improvement": ["refusal"], "no change": ["over_refusal"]}

    comparison = app.dataframe[2].value  # the evaluations, the selected report's scores, the comparison
    words = dict(zip(comparison["benchmark"], comparison["in words"]))
    assert words["arithmetic"] == "50.0% regression" and words["knowledge_mc"] == "100.0% improvement"
    assert words["refusal"] == "50.0 points improvement (from a base of 0)" and words["over_refusal"] == "no change"
    assert dict(zip(comparison["benchmark"], comparison["kind"]))["refusal"] == "safety"

    labels = [d.label for d in app.get("download_button")]
    assert labels == ["report.json", "base report (base-eval)", "aligned report (aligned-eval)", "Comparison (.json)"]
    history = charts["Scores over rounds"]["data"]
    assert {t["name"]: t["x"] for t in history}["arithmetic"] == ["base-eval", "aligned-eval"]
    (points,) = charts["Safety against capability"]["data"]
    assert points["text"] == ["base-eval", "aligned-eval"]

    # Items side by side: each red-team prompt with both answers and verdicts, as plain text.
    app.selectbox(key=k("items-suite:pair")).set_value("refusal").run()
    assert not app.exception, app.exception
    prompts = [item["prompt"] for item in read_report(with_reports / "base-eval")["suites"]["refusal"]["items"]]
    assert set(prompts) <= {t.value for t in app.text}
    captions = [unescape(c.value) for c in app.caption]
    assert any(c.startswith("base · base-eval: ") for c in captions)

    # The selected evaluation's buttons choose it for the comparison; swapped, the tax turns round.
    app.button(key=k("as_base")).click().run()
    choose(app.selectbox(key=k("aligned")), BASE_LABEL).run()
    assert not app.exception, app.exception
    assert shown(app.selectbox(key=k("base"))) == ALIGNED_LABEL
    words = dict(zip(app.dataframe[2].value["benchmark"], app.dataframe[2].value["in words"]))
    assert words["arithmetic"] == "100.0% improvement" and words["knowledge_mc"] == "50.0% regression"
    choose(app.selectbox(key=k("aligned")), ALIGNED_LABEL).run()
    assert [w.value for w in app.warning][:1] == ["Choose two different reports: base and aligned are the same."]


def test_uploaded_reports_are_checked_and_kept(with_reports, app):
    uploader = app.file_uploader(key=k("upload"))
    uploader.set_value([("broken.json", b'{"suites": {', "application/json")]).run()
    assert not app.exception, app.exception
    assert errors(app) == ["broken.json, line 1: is not valid JSON (Expecting property name enclosed in double "
                           "quotes)."]
    app.file_uploader(key=k("upload")).set_value([("notes.json", b'{"hello": 1}', "application/json")]).run()
    assert errors(app) == ["notes.json: is not an evaluation report (no 'suites' object)."]
    assert not (evaluations_dir() / ".uploaded").exists()

    good = (with_reports / "base-eval" / "report.json").read_bytes()
    app.file_uploader(key=k("upload")).set_value([("from cli.json", good, "application/json")]).run()
    assert not app.exception and not app.error, errors(app)
    assert (evaluations_dir() / ".uploaded" / "from-cli.json").read_bytes() == good
    assert any("Added from cli.json as from-cli: 4 suites" in unescape(s.value) for s in app.success)
    assert "from-cli (uploaded) · tiny base · 4 suites" in app.selectbox(key=k("base")).options
    choose(app.selectbox(key=k("base")), "from-cli (uploaded) · tiny base · 4 suites").run()
    assert not app.exception and not app.error
    assert "base report (from-cli)" in [d.label for d in app.get("download_button")]


def test_harmlessness_is_judged_in_its_own_process_and_kept_for_the_same_comparison(with_reports, app):
    from cai_core.evaluation.harmlessness import judgements_dir

    assert shown(app.selectbox(key=k("judge_model"))).startswith("the app's model (CAI_MODEL): ")
    assert app.selectbox(key=k("constitution")).value == "general-hhh"
    app.button(key=k("judge")).click().run()
    assert not app.exception, app.exception
    assert not app.error, errors(app)
    [folder] = list(judgements_dir().iterdir())
    assert (folder / "spec.json").is_file() and "harmlessness" in (folder / "spec.json").read_text()
    wait_for_job(folder)
    app.run()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Aligned answer judged better"].endswith("%")
    assert re.fullmatch(r"\d+ of \d+", metrics["Clear wins"])
    charts = charts_by_title(app)
    principle = charts["Win rate per principle"]
    assert principle["data"][0]["x"] and principle["layout"]["shapes"][0]["y0"] == 50
    assert charts["Win rate per harm category"]["data"][0]["x"]
    # The tiny random judge follows the position, and the page says what that means.
    assert any("position, not the content" in w.value for w in app.warning)
    # Kept on disk: a new session with the same choices shows it, and there is nothing to start.
    again = open_page()
    assert "Win rate per principle" in charts_by_title(again)
    assert not [b for b in again.button if b.key == k("judge")]
    assert len(list(judgements_dir().iterdir())) == 1


def test_start_stop_and_resume_an_evaluation_from_the_page(app, tiny_model_dir, worker_gate):
    app.multiselect(key=k("suites")).set_value(["arithmetic", "refusal"]).run()
    app.number_input(key=k("limit")).set_value(1).run()
    app.text_input(key=k("name")).set_value("page-eval").run()
    app.button(key=k("launch")).click().run()
    assert not app.exception, app.exception
    assert not errors(app), errors(app)
    folder = evaluations_dir() / "page-eval"
    assert app.session_state[k("selected")] == "page-eval"
    assert json.loads((folder / "spec.json").read_text())["spec"]["model"] == str(tiny_model_dir)
    # The worker is held before its first model call: Stop now, and it stops before its first suite is done.
    app.button(key=k("stop")).click().run()
    assert not app.exception, app.exception
    worker_gate.open()
    wait_for_job(folder, "cancelled")
    app.run()
    assert badges(app) == [":orange-badge[stopped]"]
    assert any(c.value.startswith("Resuming keeps the ") for c in app.caption)

    app.button(key=k("resume")).click().run()
    assert not app.exception, app.exception
    assert not errors(app), errors(app)
    wait_for_job(folder)
    app.run()
    assert not app.exception, app.exception
    assert badges(app) == [":green-badge[finished]"]
    table = app.dataframe[0].value
    assert list(table["evaluation"]) == ["page-eval"] and list(table["state"]) == ["finished"]
    assert list(table["suites done"]) == ["2 of 2"]
    report = read_report(folder)
    assert set(report["suites"]) == {"arithmetic", "refusal"} and report["suites"]["refusal"]["n"] == 1
    assert "Scores of page-eval" in charts_by_title(app)
    # The same name again is refused in one sentence, and nothing starts.
    app.text_input(key=k("name")).set_value("page-eval").run()
    app.button(key=k("launch")).click().run()
    assert errors(app) == ["An evaluation named page-eval already exists; choose another name, or select it below "
                           "to resume it."]


def test_a_loops_rounds_are_reports_to_follow_in_order(with_reports, app):
    """An iterative loop keeps each round's evaluation in LOOP/round-K/evaluate (cai_core.evaluation.loop)."""
    from cai_core.evaluation.loop import loops_dir

    for round_number, source in enumerate(["base-eval", "aligned-eval", "base-eval"]):
        target = loops_dir() / "demo" / f"round-{round_number}" / "evaluate"
        target.mkdir(parents=True)
        shutil.copy(with_reports / source / "report.json", target / "report.json")
    (loops_dir() / "demo" / "round-3" / "evaluate").mkdir(parents=True)  # a round still running: no report yet
    app.run()
    assert not app.exception, app.exception
    assert "demo · round 2 (loop) · tiny base · 4 suites" in app.selectbox(key=k("base")).options
    app.button(key=k("loop:demo")).click().run()
    assert not app.exception, app.exception
    history = app.multiselect(key=k("history"))
    assert list(history.values) == [f"demo · {r} (loop) · tiny {m} · 4 suites" for r, m in (
        ("start", "base"), ("round 1", "aligned"), ("round 2", "base"))]
    charts = charts_by_title(app)
    arithmetic = {t["name"]: t for t in charts["Scores over rounds"]["data"]}["arithmetic"]
    assert arithmetic["x"] == ["demo · start", "demo · round 1", "demo · round 2"] and arithmetic["y"] == [50.0, 25.0, 50.0]
    assert charts["Safety against capability"]["data"][0]["text"] == ["demo · start", "demo · round 1", "demo · round 2"]
    # A round is a report like any other: compare the start against round 1.
    choose(app.selectbox(key=k("base")), "demo · start (loop) · tiny base · 4 suites").run()
    choose(app.selectbox(key=k("aligned")), "demo · round 1 (loop) · tiny aligned · 4 suites").run()
    assert not app.exception and not app.error, errors(app)
    assert "aligned report (demo · round 1)" in [d.label for d in app.get("download_button")]


def test_a_report_wrong_below_the_top_is_refused_and_one_already_kept_is_one_sentence(with_reports, app):
    wrong_below = json.dumps({"model": "x", "suites": {"refusal": {"score": 50, "items": [1, 2]}}}).encode()
    app.file_uploader(key=k("upload")).set_value([("odd.json", wrong_below, "application/json")]).run()
    assert not app.exception, app.exception
    assert errors(app) == ["odd.json: suite 'refusal', item 1 should be a JSON object (a mapping)."]
    assert not (evaluations_dir() / ".uploaded").exists()

    # Kept before reports were checked as a whole: the page lists it as unreadable, says why, and the rest compare.
    (evaluations_dir() / ".uploaded").mkdir()
    (evaluations_dir() / ".uploaded" / "kept.json").write_bytes(wrong_below)
    again = open_page()
    assert "kept (uploaded) · cannot be read" in again.selectbox(key=k("base")).options
    again.selectbox(key=k("base")).set_value("file:kept").run()
    assert not again.exception, again.exception
    assert [e.endswith("kept.json: suite 'refusal', item 1 should be a JSON object (a mapping).") for e in errors(again)] == [True]
    again.selectbox(key=k("base")).set_value("eval:base-eval").run()
    assert not again.exception and not again.error, errors(again)
    assert "Capability: average tax" in [m.label for m in again.metric]


# ---------------------------------------------------------------- per principle


@pytest.fixture
def principle_reports(cai_home, tiny_model_dir, monkeypatch) -> Path:
    """Three hand-made finished evaluations: base-p and aligned-p with the principles suite, plain without."""
    from principle_reports import ALIGNED_OUTCOMES, BASE_OUTCOMES, principles_report, write_evaluation

    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    evaluations = evaluations_dir()
    write_evaluation(evaluations, "plain", principles_report("plain model", None), age_s=120)
    write_evaluation(evaluations, "base-p", principles_report("base model", BASE_OUTCOMES), age_s=60)
    write_evaluation(evaluations, "aligned-p", principles_report("aligned model", ALIGNED_OUTCOMES, arithmetic=40.0))
    return evaluations


def codes(at: AppTest) -> list[str]:
    return [c.value for c in at.code]


def test_base_against_aligned_per_principle_with_the_tax_command(principle_reports):
    app = open_page()
    assert not app.error, errors(app)
    assert shown(app.selectbox(key=k("base"))) == "base-p · base model · 2 suites"
    assert shown(app.selectbox(key=k("aligned"))) == "aligned-p · aligned model · 2 suites"
    charts = charts_by_title(app)
    # Beside the capability view, not instead of it.
    assert "Capability: score per benchmark" in charts
    bars = charts["Principles of shop: pass rate"]["data"]
    assert [b["name"] for b in bars] == ["base · base-p", "aligned · aligned-p"]
    assert bars[0]["x"] == ["private", "no-promises"] and bars[0]["y"] == [0.0, 100.0] and bars[1]["y"] == [100.0, 75.0]
    assert "error_y" in bars[1] and bars[1]["marker"]["color"] == ["#2a9d8f", "#d62828"]
    change = next(spec for title, spec in charts.items() if title.startswith("Principles: change per principle"))
    assert {t["name"]: t["x"] for t in change["data"]} == {"regression": ["no-promises"], "improvement": ["private"]}
    table = next(frame.value for frame in app.dataframe if "principle" in frame.value.columns)
    words = dict(zip(table["principle"], table["in words"]))
    assert words["private"] == "improved by 100.0 points (95% interval +100.0 to +100.0)"
    assert words["no-promises"].startswith("regressed by 25.0 points") and words["no-promises"].endswith("within noise)")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Mean pass rate per principle"] == "87.5%" and metrics["Largest fall"] == "no-promises: -25.0 points"
    assert "cai tax base-p aligned-p" in codes(app)
    # Over rounds: the pair chosen, one line per principle.
    lines = {t["name"]: t for t in charts["Principles over rounds"]["data"]}
    assert set(lines) == {"private", "no-promises"} and lines["private"]["x"] == ["base-p", "aligned-p"]

    # A report without the suite: the capability view stays, and a sentence says what to do.
    choose(app.selectbox(key=k("aligned")), "plain · plain model · 1 suite").run()
    assert not app.exception and not app.error, errors(app)
    assert any(i.value.startswith("The aligned report has no principles suite, so there is no tax per principle: "
                                  "evaluate both models with the principles suite") for i in app.info)
    assert not any(title.startswith("Principles: change") for title in charts_by_title(app))
    assert "cai tax base-p plain" in codes(app)


def test_the_form_evaluates_the_principles_suite_of_the_chosen_constitution(app, tiny_model_dir):
    assert not any(c.startswith("cai eval") and "principles" in c for c in codes(app))
    app.multiselect(key=k("suites")).set_value(["principles"]).run()
    assert not app.exception, app.exception
    app.selectbox(key=k("eval_constitution")).set_value("customer-service").run()
    app.number_input(key=k("limit")).set_value(1).run()
    app.text_input(key=k("name")).set_value("rules-eval").run()
    assert not app.error, errors(app)
    assert any(re.fullmatch(r"\d+ test examples over \d+ principles of customer-service\.", c.value)
               for c in app.caption), [c.value for c in app.caption]
    assert shlex_join(["cai", "eval", "rules-eval", "--model", str(tiny_model_dir), "--suites", "principles",
                       "--limit", "1", "--constitution", "customer-service"]) in codes(app)
    app.button(key=k("launch")).click().run()
    assert not app.exception, app.exception
    assert not errors(app), errors(app)
    folder = evaluations_dir() / "rules-eval"
    spec = json.loads((folder / "spec.json").read_text())["spec"]
    assert spec["suites"] == ["principles"] and spec["constitution"] == "customer-service"
    assert spec["judge_model"] is None and spec["limit"] == 1
    wait_for_job(folder)
    suite = read_report(folder)["suites"]["principles"]
    assert suite["constitution"] == "customer-service" and suite["n"] == 1


def shlex_join(parts: list[str]) -> str:
    import shlex

    return shlex.join(parts)


def test_a_loops_rounds_draw_one_line_per_principle(principle_reports):
    from cai_core.evaluation.loop import loops_dir

    for round_number, source in enumerate(["base-p", "plain", "aligned-p"]):
        target = loops_dir() / "rules" / f"round-{round_number}" / "evaluate"
        target.mkdir(parents=True)
        shutil.copy(principle_reports / source / "report.json", target / "report.json")
    app = open_page()
    app.button(key=k("loop:rules")).click().run()
    assert not app.exception and not app.error, errors(app)
    lines = {t["name"]: t for t in charts_by_title(app)["Principles over rounds"]["data"]}
    # Round 1's report has no principles suite: no point there, the line goes on to round 2.
    assert lines["private"]["x"] == ["rules · start", "rules · round 2"] and lines["private"]["y"] == [0.0, 100.0]
    assert lines["no-promises"]["y"] == [100.0, 75.0]
    assert charts_by_title(app)["Principles over rounds"]["layout"]["xaxis"]["categoryarray"] == [
        "rules · start", "rules · round 1", "rules · round 2"]
