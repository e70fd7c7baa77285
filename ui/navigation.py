"""The app's pages, and how each page starts.

``app.py`` hands this list to ``st.navigation``: titles, icons and addresses live here once.

Streamlit keeps a legacy mode for apps with a ``pages/`` folder: until some session of a server has
called ``st.navigation``, a request for a page's own address runs that page file alone, with the
sidebar built from file names ("app", no icons) and without ``app.py``. Opening ``/Training`` as the
first request of a fresh server did exactly that. ``start_page`` notices the legacy mode and reruns
through ``app.py``: a page's address is derived from its url_path in both modes, so the rerun lands
on the same page, now with the app's own navigation.
"""

from __future__ import annotations

from typing import Callable

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

# (file, sidebar title, icon, url path). The url path is also the name the legacy mode derives from the
# file ("4_Training.py" -> "Training"), which is what lets a deep link land on the same page.
LEGACY_MODE_LEFT = "navigation:legacy-mode-left"  # session state: this session has left the legacy mode
PAGES = (
    ("pages/1_Constitution.py", "Constitution", ":material/gavel:", "Constitution"),
    ("pages/2_Playground.py", "Playground", ":material/science:", "Playground"),
    ("pages/3_Data.py", "Data", ":material/dataset:", "Data"),
    ("pages/4_Training.py", "Training", ":material/model_training:", "Training"),
    ("pages/5_Alignment_Tax.py", "Alignment tax", ":material/balance:", "Alignment_Tax"),
    ("pages/6_Loops.py", "Loops", ":material/autorenew:", "Loops"),
)


def app_navigation(home: Callable[[], None]):
    """The app's navigation (Home first); ``app.py`` runs the page it returns."""
    return st.navigation([
        st.Page(home, title="Home", icon=":material/home:", default=True),
        *(st.Page(path, title=title, icon=icon, url_path=url_path) for path, title, icon, url_path in PAGES),
    ])


def page_path(url_path: str) -> str:
    """The file of the page at ``url_path`` (for st.page_link and st.switch_page)."""
    return next(path for path, _, _, url in PAGES if url == url_path)


def start_page(title: str) -> None:
    """A page's first call: leave Streamlit's legacy pages/ mode if the server is still in it, then
    the browser tab's title and the wide layout."""
    if getattr(PagesManager, "uses_pages_directory", False) and not st.session_state.get(LEGACY_MODE_LEFT):
        # What st.navigation itself does on its first call; app.py then routes this rerun. Once per
        # session: a rerun drops the click that started a run, and only a session's first run can be
        # a deep link (Streamlit's AppTest starts every run in the legacy mode).
        st.session_state[LEGACY_MODE_LEFT] = True
        PagesManager.uses_pages_directory = False
        st.rerun()
    st.set_page_config(page_title=f"{title} · Constitution Studio", layout="wide")
