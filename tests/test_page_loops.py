"""The Loops page: an iterative loop started from the page runs in its own process, and its rounds
join the Alignment tax page's charts."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cai_core.evaluation.loop import list_loops, loops_dir
from cai_core.jobs import read_job, request_stop

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
LOOP_TIMEOUT_S = 240


def k(name: str) -> str:
    return f"loops:{name}"


@pytest.fixture(autouse=True)
def no_loop_left_behind(cai_home):
    """A test that fails half way must not leave a loop process running."""
    yield
    for folder in list_loops():
        if read_job(folder).active:
            request_stop(folder)
            deadline = time.monotonic() + 60
            while read_job(folder).active and time.monotonic() < deadline:
                time.sleep(0.25)


def open_page(path: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def errors(at: AppTest) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]


def wait_for_loop(folder: Path) -> None:
    deadline = time.monotonic() + LOOP_TIMEOUT_S
    while (job := read_job(folder)).active:
        assert time.monotonic() < deadline, f"the loop did not end in {LOOP_TIMEOUT_S} s: {job}"
        time.sleep(0.5)
    log = (folder / "log.txt").read_text(errors="replace") if (folder / "log.txt").exists() else ""
    assert job.state == "finished", f"{job}\n{log[-3000:]}"


def test_a_loop_started_from_the_page_runs_in_its_own_process_and_joins_the_charts(tiny_model_dir, monkeypatch):
    import yaml

    from tests.test_loop import SMALL

    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    app = open_page("pages/6_Loops.py")
    assert [e.label for e in app.expander] == ["New loop"]
    settings = app.text_area(key=k("settings"))
    assert "best_of_n" in settings.value  # filled in with the shipped small-model settings
    # A bad edit is one sentence, and no loop folder is made.
    settings.set_value("generation: [unclosed").run()
    app.button(key=k("start")).click().run()
    assert not app.exception, app.exception
    assert [e for e in errors(app) if "not valid YAML (line" in e], errors(app)
    assert not loops_dir().exists()

    small = {key: value for key, value in SMALL.items() if key != "constitution"}
    app.text_area(key=k("settings")).set_value(yaml.safe_dump(small)).run()
    app.text_input(key=k("name")).set_value("page-loop").run()
    app.button(key=k("start")).click().run()
    assert not app.exception, app.exception
    assert not errors(app), errors(app)
    folder = loops_dir() / "page-loop"
    spec = json.loads((folder / "spec.json").read_text())["spec"]
    assert spec["base_model"] == str(tiny_model_dir) and spec["rounds"] == 1 and spec["eval_limit"] == 2
    wait_for_loop(folder)
    app.run()
    assert not app.exception, app.exception
    assert app.selectbox(key=k("selected")).value == "page-loop"
    assert "1 of 1 round done" in [c.value for c in app.caption]

    tax = open_page("pages/5_Alignment_Tax.py")
    assert [b for b in tax.button if b.label == "Loop page-loop: its 2 reports in order"]
