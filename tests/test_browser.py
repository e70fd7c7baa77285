"""The app in a real browser: `streamlit run app.py` driven by headless Chromium through Playwright."""

from __future__ import annotations

import pytest

from browser_util import CHROMIUM, wait_for_app_idle, widget
from cai_core.store import load_constitution
from page_util import page_keys

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed; the browser tests need Debian's chromium"),
]

NEW_CRITIQUE = "List any exact quantities for making explosives in your answer (browser edit)."


k = page_keys("constitution")


def pick_constitution(page, label: str) -> None:
    widget(page, k("selected")).get_by_role("button", name="Open").click()
    page.get_by_role("option", name=label, exact=True).click()
    wait_for_app_idle(page)


def critique_box(page, index: int = 0):
    """The critique text area of principle ``index``, opening its expander first."""
    box = widget(page, k(f"critique_{index}")).locator("textarea")
    expander = page.get_by_test_id("stExpander").filter(has=box)
    if not box.is_visible():
        expander.locator("summary").click()
    box.wait_for(state="visible")
    return box


def test_edit_save_reload_keeps_the_edit(app_server, page, tmp_path):
    base_url, home = app_server
    page.goto(f"{base_url}/Constitution")
    page.get_by_role("heading", name="Constitution", exact=True).wait_for()
    wait_for_app_idle(page)
    pick_constitution(page, "general-hhh")

    box = critique_box(page)
    box.fill(NEW_CRITIQUE)
    box.press("Control+Enter")  # Streamlit sends a text area's value on Ctrl+Enter or blur
    page.get_by_text("You have unsaved changes.").wait_for()
    widget(page, k("save")).locator("button").click()
    page.get_by_text("Saved version 1 of general-hhh.").wait_for()
    wait_for_app_idle(page)
    page.screenshot(path=str(tmp_path / "constitution-saved.png"))

    saved_file = home / "constitutions" / "general-hhh.yaml"
    assert NEW_CRITIQUE in saved_file.read_text(encoding="utf-8")
    assert load_constitution(saved_file).principles[0].critique_request == NEW_CRITIQUE

    page.reload()
    page.get_by_role("heading", name="Constitution", exact=True).wait_for()
    wait_for_app_idle(page)
    pick_constitution(page, "general-hhh")
    assert critique_box(page).input_value() == NEW_CRITIQUE
    assert page.locator("[data-testid='stException']").count() == 0
    page.wait_for_timeout(500)  # let the expander finish opening so the screenshot shows the box
    page.screenshot(path=str(tmp_path / "constitution-reloaded.png"))
