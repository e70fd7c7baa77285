"""The app's page list (ui/navigation.py): every page exists, and each page's address is the one
Streamlit's legacy pages/ mode derives from its file name, so a deep link served in that mode lands
on the same page once the app's own navigation takes over."""

from __future__ import annotations

from pathlib import Path

from streamlit.source_util import page_icon_and_name, page_sort_key

from ui.navigation import PAGES, page_path

ROOT = Path(__file__).resolve().parents[1]


def test_every_page_file_is_listed_once_in_the_folders_order():
    listed = [path for path, _, _, _ in PAGES]
    on_disk = [f"pages/{p.name}" for p in sorted((ROOT / "pages").glob("*.py"), key=page_sort_key)]
    assert listed == on_disk


def test_each_address_is_the_one_the_legacy_mode_derives_from_the_file():
    for path, _, _, url_path in PAGES:
        assert page_icon_and_name(ROOT / path)[1] == url_path
        assert page_path(url_path) == path
