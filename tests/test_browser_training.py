"""The Training page in a real browser: `streamlit run app.py` driven by headless Chromium.

An SFT file is uploaded, the cpu-demo recipe is edited down to a short run on the tiny random
model (chosen as "another model"), and Launch starts the training process. Without a reload the
page must follow it: the step count advances, the loss chart appears, and the run ends finished.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from browser_util import CHROMIUM, wait_for_app_idle, widget

from page_util import page_keys

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed; the browser tests need Debian's chromium"),
]

REPO = Path(__file__).resolve().parent.parent
CPU_DEMO = REPO / "recipes" / "cpu-demo.yaml"
RUN_NAME = "browser-sft"
UPLOAD_NAME = "browser-eggs.jsonl"
ROWS = 16
# The run is held between steps while the test looks (see the worker_gate fixture), so a short run is
# seen training however fast the machine is.
MAX_STEPS = 30
RUN_TIMEOUT_MS = 90_000
# A rerun on a busy 2-core machine can take longer than expect()'s default of 5 s.
RERUN_TIMEOUT_MS = 30_000


k = page_keys("training")


def sft_rows(count: int = ROWS) -> bytes:
    return "".join(json.dumps({"messages": [{"role": "user", "content": f"How do I boil egg number {i}?"},
                                            {"role": "assistant", "content": f"Put egg {i} in boiling water."}]}) + "\n"
                   for i in range(count)).encode()


def short_recipe() -> str:
    """cpu-demo with a short SFT run: MAX_STEPS steps of 2 rows, a checkpoint every 10 steps (as shipped)."""
    text = CPU_DEMO.read_text(encoding="utf-8")
    edits = [(r"(?m)^batch_size: 4\b", "batch_size: 2"),
             (r"(?m)^gradient_accumulation_steps: 2\b", "gradient_accumulation_steps: 1"),
             (r"(?m)^save_steps: 10\b", "save_steps: 10"),  # kept; asserts the shipped value
             (r"(?m)^(sft:\n(?:  .*\n)*?)  max_steps: 60\b", rf"\g<1>  max_steps: {MAX_STEPS}")]
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text)
        assert count == 1, f"cpu-demo.yaml changed: {pattern!r} matched {count} times"
    return text


@pytest.fixture(autouse=True)
def no_run_left_behind(cai_home):
    """The training process has a session of its own, so ending the server does not end it: a test
    that fails half way stops its run here."""
    yield
    from cai_core.training import list_runs, read_run, stop_run

    for run in list_runs():
        if run.job.active:
            stop_run(run.folder)
            deadline = time.monotonic() + 60
            while read_run(run.folder).job.active and time.monotonic() < deadline:
                time.sleep(0.25)


def choose(page, name: str, option: str) -> None:
    """Pick ``option`` in the selectbox with key ``name``."""
    from playwright.sync_api import expect

    box = widget(page, k(name)).get_by_role("combobox")
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(box).to_have_value(option, timeout=RERUN_TIMEOUT_MS)
    wait_for_app_idle(page)


def fill_text(page, name: str, value: str) -> None:
    from playwright.sync_api import expect

    field = widget(page, k(name)).locator("input")
    field.fill(value)
    field.press("Enter")  # a text input sends its value on Enter or blur
    expect(field).to_have_value(value, timeout=RERUN_TIMEOUT_MS)
    wait_for_app_idle(page)


def written_step(folder: Path) -> int:
    """The step the run last wrote to its progress file (the file the page reads)."""
    try:
        return int(json.loads((folder / "progress.json").read_text()).get("done") or 0)
    except (FileNotFoundError, ValueError):
        return 0


def loss_points(page) -> int:
    """Points on the loss curve of the first plotly chart (0 while it is not drawn, or drawn empty)."""
    return page.evaluate(
        """() => {
            const plot = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
            if (!plot || !plot.data || !plot.getBoundingClientRect().height) return 0;
            const loss = plot.data.find(trace => /loss/i.test(trace.name || '')) || plot.data[0];
            return loss && loss.x ? loss.x.length : 0;
        }"""
    )


def full_page_screenshot(page, path) -> None:
    """Streamlit scrolls inside its own container, so grow the viewport to the content first."""
    height = page.evaluate(
        """() => Math.max(document.documentElement.scrollHeight,
            ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')]
                .map(element => element.scrollHeight))"""
    )
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 8000)})
    page.mouse.move(0, 0)  # no hover effects (a heading's anchor link) where the last click was
    wait_for_app_idle(page)
    page.screenshot(path=str(path), full_page=True)


def test_upload_edit_recipe_launch_and_follow_the_run_to_finished(worker_gate, app_server, page, tiny_model_dir, tmp_path):
    # worker_gate comes first: the server, and the training process it starts, inherit its settings.
    from playwright.sync_api import expect

    base_url, home = app_server
    page.goto(f"{base_url}/Training")
    page.get_by_role("heading", name="Training", exact=True).wait_for()
    wait_for_app_idle(page)
    expect(page.get_by_text("No training runs yet")).to_be_visible(timeout=RERUN_TIMEOUT_MS)

    # The SFT file through the uploader: checked, saved and added to the chosen training data.
    widget(page, k("upload")).locator('input[type="file"]').set_input_files(
        files=[{"name": UPLOAD_NAME, "mimeType": "application/jsonl", "buffer": sft_rows()}])
    expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text(
        f"Saved {UPLOAD_NAME}: {ROWS} SFT rows", timeout=RERUN_TIMEOUT_MS)
    wait_for_app_idle(page)
    expect(widget(page, k("data:sft"))).to_contain_text(f"{UPLOAD_NAME} (uploaded) · {ROWS} rows")
    assert (home / "uploads" / UPLOAD_NAME).is_file() or any(home.rglob(UPLOAD_NAME))

    choose(page, "recipe", "cpu-demo (shipped)")
    choose(page, "start:sft", "another model: a folder, hub id…")
    fill_text(page, "other_model", str(tiny_model_dir))
    fill_text(page, "name", RUN_NAME)

    box = widget(page, k(f"recipe-text:{CPU_DEMO}")).locator("textarea")
    box.fill(short_recipe())
    box.press("Control+Enter")  # Streamlit sends a text area's value on Ctrl+Enter or blur
    expect(page.get_by_text("Edited: these settings are used by a launch from this page")).to_be_visible(
        timeout=RERUN_TIMEOUT_MS)
    wait_for_app_idle(page)
    assert page.get_by_test_id("stAlertContentError").count() == 0
    # The summary reads the edited recipe and the chosen model.
    summary = {metric.get_by_test_id("stMetricLabel").inner_text().strip():
               metric.get_by_test_id("stMetricValue").inner_text().strip()
               for metric in page.get_by_test_id("stMetric").all()}
    assert summary["Rows"] == str(ROWS) and summary["Steps"] == str(MAX_STEPS), summary
    assert summary["Effective batch"] == "2", summary
    expect(page.get_by_text(f"Starting model: {tiny_model_dir.name}")).to_be_visible()
    expect(page.get_by_text(f"--from {tiny_model_dir}").first).to_be_visible()
    full_page_screenshot(page, tmp_path / "training-1-form.png")

    # A marker in the window: it would be gone after any reload or navigation.
    page.evaluate("() => { window.__noReload = 'kept'; }")
    launch = widget(page, k("launch")).locator("button")
    expect(launch).to_be_enabled()
    started = time.monotonic()
    launch.click()
    expect(page.get_by_text(f"Started {RUN_NAME}")).to_be_visible(timeout=RERUN_TIMEOUT_MS)

    # The fragment polls the run folder every 2 s: the step count moves on while the page stands. The
    # run is held before a step until the page has shown the progress the run last wrote to disk.
    folder = home / "runs" / RUN_NAME
    progress = page.get_by_test_id("stProgress").first
    seen, running_chart = [], 0
    for _ in range(2):
        done_before = seen[-1] if seen else 0
        worker_gate.step_until(lambda: written_step(folder) > done_before, most=MAX_STEPS - 1,
                               failed=lambda: None if json.loads((folder / "status.json").read_text())["state"]
                               in ("queued", "running") else (folder / "log.txt").read_text()[-2000:])
        step, held_after = written_step(folder), worker_gate.reached() - 1  # steps done while it waits
        expect(progress).to_contain_text(f"step {step} of {MAX_STEPS}", timeout=RERUN_TIMEOUT_MS)
        seen.append(step)
        if not running_chart:
            chart_deadline = time.monotonic() + RERUN_TIMEOUT_MS / 1000
            while not (running_chart := loss_points(page)):
                assert time.monotonic() < chart_deadline, f"no loss curve while the run stood at step {step}"
                page.wait_for_timeout(200)
            chart_steps = held_after
            full_page_screenshot(page, tmp_path / "training-2-running.png")
    screenshot_at = seen[0]
    worker_gate.open()
    assert seen[0] < seen[1] < MAX_STEPS, f"the step count did not move: {seen}"
    # The loss chart is drawn while the run trains, with the steps logged so far.
    assert 0 < running_chart <= chart_steps, f"{running_chart} loss points while the run stood after step {chart_steps}"

    remaining_ms = max(5_000, RUN_TIMEOUT_MS - (time.monotonic() - started) * 1000)
    expect(page.get_by_test_id("stProgress").first).to_contain_text(f"step {MAX_STEPS} of {MAX_STEPS} · done",
                                                                    timeout=remaining_ms)
    # The end of the run reruns the whole page once: result, downloads, no more Stop button.
    expect(page.get_by_role("heading", name="Result")).to_be_visible(timeout=RERUN_TIMEOUT_MS)
    wait_for_app_idle(page)
    elapsed = time.monotonic() - started
    # A loaded machine may still be drawing the rerun: the same bound as the heading above.
    expect(page.get_by_text("finished", exact=True).first).to_be_visible(timeout=RERUN_TIMEOUT_MS)
    expect(page.get_by_role("button", name="LoRA adapter (.zip)")).to_be_visible(timeout=RERUN_TIMEOUT_MS)
    expect(widget(page, k("stop"))).to_have_count(0)
    assert page.locator(".js-plotly-plot").count() >= 2
    assert page.evaluate("() => window.__noReload") == "kept", "the page was reloaded"
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_test_id("stAlertContentError").count() == 0

    status = json.loads((folder / "status.json").read_text()) if (folder / "status.json").is_file() else {}
    assert (folder / "adapter").is_dir(), status
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert any("loss" in row for row in metrics)
    final_points = loss_points(page)
    print(f"\nsteps seen while the run was held: {seen}; "
          f"loss points {running_chart} at step {screenshot_at}, {final_points} at the end; "
          f"launch to finished {elapsed:.1f} s")
    assert final_points == MAX_STEPS, final_points
    full_page_screenshot(page, tmp_path / "training-3-finished.png")
