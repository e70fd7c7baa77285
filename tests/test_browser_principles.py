"""Test this principle in a real browser: `streamlit run app.py` driven by headless Chromium.

An example is edited in the first principle's YAML box (a typo first, refused with its line), then
Test this principle answers it with the tiny random model and the page shows its verdict. The
assertion is one the random text cannot break, so the verdict is known beforehand.
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
EXAMPLE = 'examples:\n  - prompt: Say hello to the new team.\n    expect: [{not-contains: "zq-never-written"}]\n'
TYPO = EXAMPLE.replace("not-contains", "not-contain")

k = page_keys("constitution")


def type_into(page, box, text: str) -> None:
    """A text area sends its value on Ctrl+Enter (or blur)."""
    from playwright.sync_api import expect

    box.fill(text)
    box.press("Control+Enter")
    expect(box).to_have_value(text, timeout=RERUN_TIMEOUT_MS)
    wait_for_app_idle(page)


def test_edit_an_example_then_test_the_principle(app_server, page):
    from playwright.sync_api import expect

    base_url, home = app_server
    page.goto(f"{base_url}/Constitution")
    page.get_by_role("heading", name="Constitution", exact=True).wait_for()
    wait_for_app_idle(page)
    box = widget(page, k("tests_0")).locator("textarea")
    principle = page.get_by_test_id("stExpander").filter(has=box)
    principle.locator("summary").click()
    box.wait_for(state="visible")

    type_into(page, box, TYPO)
    # Under the box (the Edit tab's own summary above says it too).
    error = principle.get_by_test_id("stAlertContentError").filter(has_text="examples and checks, line 3")
    expect(error).to_have_count(1, timeout=RERUN_TIMEOUT_MS)
    expect(error).to_contain_text("unknown assertion 'not-contain'")

    type_into(page, box, EXAMPLE)
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0, timeout=RERUN_TIMEOUT_MS)
    expect(page.get_by_text("1. test: Say hello to the new team.")).to_be_visible(timeout=RERUN_TIMEOUT_MS)

    wait_for_app_idle(page)
    button = widget(page, k("test_0")).get_by_role("button", name="Test this principle")
    button.click()
    expect(page.get_by_text("1 of 1 example passed (test half 1 of 1)")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_text('not-contains "zq-never-written": it does not contain')).to_be_visible(timeout=RERUN_TIMEOUT_MS)
    expect(page.get_by_text("Say hello to the new team.", exact=True)).to_be_visible()  # the prompt, as text
    expect(button).to_be_enabled(timeout=RERUN_TIMEOUT_MS)  # the page reran once the test ended
    assert page.locator('[data-testid="stException"]').count() == 0
    assert not (home / "constitutions").exists()  # tested, not saved
