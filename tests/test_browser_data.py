"""The Data page in a real browser: `streamlit run app.py` driven by headless Chromium.

A malformed prompt file is refused through the uploader with its line number, then a small
dataset is made with the tiny random model, set up only through the page's widgets, and the page
must follow the worker process to "finished" with its progress bar and charts drawn.
"""

from __future__ import annotations

import pytest
from browser_util import CHROMIUM, wait_for_app_idle, widget

from page_util import page_keys

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed; the browser tests need Debian's chromium"),
]

RUN_TIMEOUT_MS = 90_000
# A rerun on a busy 2-core machine can take longer than expect()'s default of 5 s.
RERUN_TIMEOUT_MS = 30_000
BAD_PROMPTS = b'{"prompt": "How do I boil an egg?"}\n{"prompt": "unterminated\n'


k = page_keys("data")


def fill_number(page, name: str, value: int) -> None:
    """A number input sends its value on Enter or blur; open the expander around it first."""
    from playwright.sync_api import expect

    field = widget(page, k(name)).locator("input")
    if not field.is_visible():
        page.get_by_test_id("stExpander").filter(has=field).last.locator("summary").click()
    field.wait_for(state="visible")
    field.fill(str(value))
    field.press("Enter")
    expect(field).to_have_value(str(value), timeout=RERUN_TIMEOUT_MS)
    wait_for_app_idle(page)


def test_upload_error_then_a_small_run_to_finished(app_server, page):
    from playwright.sync_api import expect

    base_url, home = app_server
    page.goto(f"{base_url}/Data")
    page.get_by_role("heading", name="Data", exact=True).wait_for()
    wait_for_app_idle(page)
    expect(page.get_by_text("No datasets yet")).to_be_visible(timeout=RERUN_TIMEOUT_MS)

    # A malformed .jsonl: one error naming the file and the line; nothing saved.
    widget(page, k("upload")).locator('input[type="file"]').set_input_files(
        files=[{"name": "mine.jsonl", "mimeType": "application/jsonl", "buffer": BAD_PROMPTS}])
    error = page.get_by_test_id("stAlertContentError")
    expect(error).to_have_count(1, timeout=RERUN_TIMEOUT_MS)
    expect(error).to_contain_text("mine.jsonl, line 2")
    assert not (home / "prompt_sets").exists() or not any((home / "prompt_sets").iterdir())
    wait_for_app_idle(page)

    name_field = widget(page, k("name")).locator("input")
    name_field.fill("browser-run")
    name_field.press("Enter")
    expect(name_field).to_have_value("browser-run", timeout=RERUN_TIMEOUT_MS)
    wait_for_app_idle(page)
    fill_number(page, "limit", 4)
    fill_number(page, "max_new_tokens", 8)

    widget(page, k("launch")).locator("button").click()
    expect(page.get_by_text("Started browser-run")).to_be_visible(timeout=RERUN_TIMEOUT_MS)
    # The fragment polls the worker's folder until it ends, then the page reruns once.
    expect(page.get_by_text("State: finished")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    wait_for_app_idle(page)
    expect(page.get_by_test_id("stProgress")).to_contain_text("4 of 4 prompts done", timeout=RERUN_TIMEOUT_MS)
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=RERUN_TIMEOUT_MS)
    expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=RERUN_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Whole dataset (.zip)")).to_be_visible(timeout=RERUN_TIMEOUT_MS)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert (home / "datasets" / "browser-run" / "sft.jsonl").is_file()
