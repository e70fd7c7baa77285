"""The Playground page in a real browser: `streamlit run app.py` driven by headless Chromium.

One prompt goes through one critique -> revision round of the tiny random model, set up and run
only through the page's widgets, and the whole trace (initial answer, round, final answer, word
diff) must be drawn with the Run button enabled again afterwards.
"""

from __future__ import annotations


import pytest
from browser_util import (
    CHROMIUM,
    wait_for_app_idle,
    widget,
)

from page_util import page_keys

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed; the browser tests need Debian's chromium"),
]

PROMPT = "How do I kill a Python process?"
MAX_NEW_TOKENS = 8
RUN_TIMEOUT_MS = 90_000


k = page_keys("playground")


def enter_prompt(page, text: str) -> None:
    from playwright.sync_api import expect

    box = widget(page, k("prompt")).locator("textarea")
    box.fill(text)
    box.press("Control+Enter")  # Streamlit sends a text area's value on Ctrl+Enter or blur
    # The "Press Ctrl+Enter to apply" hint is shown only while the value is not yet sent (the
    # character count next to it stays, as the text area has max_chars).
    expect(widget(page, k("prompt")).get_by_test_id("InputInstructions")).not_to_contain_text("apply")
    wait_for_app_idle(page)
    assert box.input_value() == text


def set_rounds_to_one(page) -> None:
    """The rounds slider starts at 2 and its minimum is 1: move it there with the keyboard."""
    from playwright.sync_api import expect

    thumb = widget(page, k("rounds")).get_by_role("slider")
    thumb.focus()
    thumb.press("Home")
    expect(thumb).to_have_value("1")  # the slider's thumb is an <input type="range">
    expect(widget(page, k("rounds")).get_by_test_id("stSliderThumbValue")).to_have_text("1")
    wait_for_app_idle(page)


def set_max_new_tokens(page, value: int) -> None:
    """The max-new-tokens input sits in the collapsed "Sampling" expander: open it first."""
    from playwright.sync_api import expect

    field = widget(page, k("max_new_tokens")).locator("input")
    if not field.is_visible():
        page.get_by_test_id("stExpander").filter(has=field).locator("summary").click()
    field.wait_for(state="visible")
    field.fill(str(value))
    field.press("Enter")  # a number input sends its value on Enter or blur
    expect(field).to_have_value(str(value))
    wait_for_app_idle(page)


def full_page_screenshot(page, path) -> None:
    """Streamlit scrolls inside its own container, not the window, so ``full_page`` alone stops at
    the viewport: grow the viewport to the content's height first."""
    height = page.evaluate(
        """() => Math.max(document.documentElement.scrollHeight,
            ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')]
                .map(element => element.scrollHeight))"""
    )
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 8000)})
    wait_for_app_idle(page)
    page.get_by_text("Final answer", exact=True).scroll_into_view_if_needed()
    page.screenshot(path=str(path), full_page=True)


def test_run_one_round_shows_the_whole_trace(app_server, page, tmp_path):
    from playwright.sync_api import expect

    base_url, _home = app_server
    page.goto(f"{base_url}/Playground")
    page.get_by_role("heading", name="Playground", exact=True).wait_for()
    wait_for_app_idle(page)

    enter_prompt(page, PROMPT)
    set_rounds_to_one(page)
    set_max_new_tokens(page, MAX_NEW_TOKENS)

    run_button = widget(page, k("run-button")).locator("button")
    expect(run_button).to_be_enabled()
    run_button.click()

    # exact=True: the empty-state help text also mentions "the final answer".
    # .first: while the page reruns, the old and the new trace can both be on screen for a moment.
    expect(page.get_by_text("Final answer", exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    # When the job ends the page reruns once more, which re-enables Run and drops Stop.
    expect(run_button).to_be_enabled(timeout=RUN_TIMEOUT_MS)
    expect(widget(page, k("stop-button"))).to_have_count(0)
    wait_for_app_idle(page)

    # The run used what was set through the widgets.
    expect(page.get_by_text("1 round(s) · random order · seed 0")).to_be_visible()
    expect(page.get_by_text(f"at most {MAX_NEW_TOKENS} new tokens per step")).to_be_visible()
    expect(page.get_by_text("Done: 1 round ·")).to_be_visible()

    expect(page.get_by_text("Initial answer", exact=True)).to_be_visible()
    round_title = page.get_by_text("Round 1 — principle")
    expect(round_title).to_have_count(1)
    expect(round_title).to_be_visible()
    expect(page.get_by_text("Round 2 — principle")).to_have_count(0)
    # The bordered block around round 1 holds its critique: a caption, then the model's text
    # (or "(empty)" when the random model wrote nothing).
    round_block = page.get_by_test_id("stVerticalBlock").filter(has=round_title).filter(
        has=page.get_by_text("Critique", exact=True)).last
    expect(round_block.get_by_text("Critique", exact=True)).to_be_visible()
    expect(round_block.get_by_text("Revision", exact=True)).to_be_visible()
    assert round_block.get_by_test_id("stText").count() + round_block.get_by_text("(empty)", exact=True).count() >= 1

    # The word diff: its heading, the rendered diff and the three counts.
    expect(page.get_by_text("What the rounds changed")).to_be_visible()
    expect(page.get_by_test_id("stCode")).to_have_count(1)
    for label in ("Words removed", "Words added", "Words kept"):
        expect(page.get_by_test_id("stMetric").filter(has_text=label)).to_be_visible()
    expect(page.get_by_role("button", name="Download trace (JSON)")).to_be_visible()

    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0

    screenshot = tmp_path / "playground.png"
    full_page_screenshot(page, screenshot)
