"""The critic role in a real browser: in the Playground a second model is picked as the critic of the
one configuration, the chain runs one round, and the trace says the critic, not the policy, wrote the
critique while the policy wrote the first answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_util import CHROMIUM, wait_for_app_idle, widget
from page_util import page_keys
from test_browser_playground import MAX_NEW_TOKENS, RUN_TIMEOUT_MS, enter_prompt, set_max_new_tokens, set_rounds_to_one

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed; the browser tests need Debian's chromium"),
]

RERUN_TIMEOUT_MS = 30_000
k = page_keys("playground")


@pytest.fixture(scope="module")
def critic_model_dir(tmp_path_factory) -> Path:
    """A second tiny model with other weights, under another folder name than the policy's."""
    from conftest import build_tiny_model_folder

    return build_tiny_model_folder(tmp_path_factory.mktemp("tiny-critic"), seed=1)


def choose_typed_critic(page, spec: str) -> None:
    """Pick "another model" as configuration A's critic, then type its folder."""
    from playwright.sync_api import expect

    box = widget(page, k("critic-choice-0")).get_by_role("combobox")
    box.click()
    page.get_by_role("option", name="another model: a folder, hub id or endpoint URL…", exact=True).click()
    wait_for_app_idle(page)
    field = widget(page, k("critic-0")).locator("input")
    field.wait_for(state="visible", timeout=RERUN_TIMEOUT_MS)
    field.fill(spec)
    field.press("Enter")  # a text input sends its value on Enter or blur
    expect(field).to_have_value(spec, timeout=RERUN_TIMEOUT_MS)
    wait_for_app_idle(page)


def test_a_critic_picked_in_the_playground_writes_the_critique_and_the_trace_says_so(
        app_server, page, tiny_model_dir, critic_model_dir):
    from playwright.sync_api import expect

    base_url, _home = app_server
    page.goto(f"{base_url}/Playground")
    page.get_by_role("heading", name="Playground", exact=True).wait_for()
    wait_for_app_idle(page)

    enter_prompt(page, "How do I pick a lock?")
    set_rounds_to_one(page)
    set_max_new_tokens(page, MAX_NEW_TOKENS)
    choose_typed_critic(page, str(critic_model_dir))

    run_button = widget(page, k("run-button")).locator("button")
    expect(run_button).to_be_enabled()
    run_button.click()
    expect(page.get_by_text("Final answer", exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(run_button).to_be_enabled(timeout=RUN_TIMEOUT_MS)
    wait_for_app_idle(page)

    expect(page.get_by_text("External critic", exact=False).first).to_be_visible()
    expect(page.get_by_text("Self-critique: the model critiques and revises its own answers")).to_have_count(0)
    # The first answer is the policy's; the critique (and the revision) the critic's.
    expect(page.get_by_text(f"by the policy: {tiny_model_dir.name}", exact=True).first).to_be_visible()
    expect(page.get_by_text(f"by the critic: {critic_model_dir.name}", exact=True).first).to_be_visible()
    expect(page.get_by_text(f"by the policy: {critic_model_dir.name}", exact=True)).to_have_count(0)
    expect(page.get_by_text(f"by the critic: {tiny_model_dir.name}", exact=True)).to_have_count(0)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
