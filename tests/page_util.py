"""What a page shows a user: Streamlit renders the bodies of alerts, captions and st.markdown as
markdown, so a test reads them rendered, as a reader sees them, rather than as the escaped source."""

from __future__ import annotations

import functools
import html
import re
from typing import Callable

from markdown_it import MarkdownIt

from ui.common import page_key

# CommonMark with GitHub's strikethrough and tables, as Streamlit's renderer has; raw HTML is not
# rendered, as Streamlit renders none without unsafe_allow_html.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])


def rendered(body: str) -> str:
    """The HTML a markdown body becomes."""
    return _MARKDOWN.render(body)


def shown(body: str) -> str:
    """The text a markdown body shows: its HTML without tags, entities read, white space as one space."""
    text = html.unescape(re.sub(r"<[^>]+>", "", rendered(body)))
    return re.sub(r"\s+", " ", text).strip()


def page_keys(page: str) -> Callable[[str], str]:
    """Finds a page's widgets by the keys the page itself gives them (``ui.common.page_key``), so no
    test spells out how a key is made."""
    return functools.partial(page_key, page)
