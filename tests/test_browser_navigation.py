"""Deep links: a fresh server whose very first request is a page's own address draws the app's
navigation (labels, icons, the wide layout), not Streamlit's legacy view of the pages/ folder."""

from __future__ import annotations

import pytest

from browser_util import CHROMIUM, wait_for_app_idle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed; the browser tests need Debian's chromium"),
]

SIDEBAR_LABELS = ["Home", "Constitution", "Playground", "Data", "Training", "Alignment tax", "Loops"]
# Streamlit's centred layout keeps the page at most 736 px wide; the wide one fills the window.
CENTRED_MAX_WIDTH = 736


def test_first_request_to_a_page_draws_the_app_navigation(app_server, page, tmp_path):
    base_url, _ = app_server
    page.goto(f"{base_url}/Training")  # nothing has opened "/" on this server yet
    page.get_by_role("heading", name="Training", exact=True).wait_for()
    wait_for_app_idle(page)
    page.screenshot(path=str(tmp_path / "training-deep-link.png"))

    nav = page.get_by_test_id("stSidebarNav")
    labels = [text.strip() for text in nav.get_by_test_id("stSidebarNavLink").all_inner_texts()]
    assert [label.splitlines()[-1] for label in labels] == SIDEBAR_LABELS
    assert nav.get_by_text("app", exact=True).count() == 0
    # The icons are Material Symbols drawn in the links: one per page.
    assert nav.get_by_test_id("stIconMaterial").count() == len(SIDEBAR_LABELS)
    width = page.get_by_test_id("stMainBlockContainer").bounding_box()["width"]
    assert width > CENTRED_MAX_WIDTH + 100
    assert page.url.rstrip("/").endswith("/Training")
    assert page.locator("[data-testid='stException']").count() == 0
