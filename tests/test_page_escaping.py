"""Names and error texts that come from files or from the user show literally on the pages: markdown
and HTML in them are text, never formatting, links or tags."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from page_util import rendered, shown
from ui.common import md, page_key

REPO = Path(__file__).resolve().parent.parent
HOSTILE = "**x** [a](http:e) <b>y</b> :red[z] $m$"


def assert_literal(body: str, text: str) -> None:
    assert text in shown(body), (body, shown(body))
    html = rendered(body)
    assert "<strong>" not in html and "<a " not in html and "<b>" not in html and "<em>" not in html, html


def test_md_keeps_every_character_literal():
    for text in [HOSTILE, "a_b_c & d &lt; e", "# heading\n- item\n1. one\ntitle\n===", "C:\\folder\\file.yaml", "`code`"]:
        assert shown(md(text)) == " ".join(text.split())


def test_an_imported_file_name_with_markdown_is_shown_as_typed(cai_home):
    at = AppTest.from_file(str(REPO / "pages" / "1_Constitution.py"), default_timeout=30).run()
    upload = at.file_uploader(key=page_key("constitution", "upload"))
    good = (b"name: from-upload\nprinciples:\n  - name: p\n    critique_request: Is anything wrong?\n"
            b"    revision_request: Fix it.\n")
    upload.set_value((f"{HOSTILE}.yaml", good, "application/x-yaml")).run()
    at.button(key=page_key("constitution", "import")).click().run()
    assert not at.exception and len(at.success) == 1
    assert_literal(at.success[0].value, f"Imported {HOSTILE}.yaml as from-upload")

    upload = at.file_uploader(key=page_key("constitution", "upload"))  # the page was drawn again
    upload.set_value((f"{HOSTILE}.yaml", b"principles: [unclosed\n", "application/x-yaml")).run()
    at.button(key=page_key("constitution", "import")).click().run()
    assert not at.exception and len(at.error) == 1
    assert_literal(at.error[0].value, f"{HOSTILE}.yaml, line ")


def test_a_model_error_naming_a_folder_with_markdown_is_shown_as_typed(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    folder = tmp_path / HOSTILE.replace("/", "")
    folder.mkdir()
    at = AppTest.from_file(str(REPO / "pages" / "2_Playground.py"), default_timeout=60).run()
    at.text_area(key=page_key("playground", "prompt")).set_value("Hello?")
    at.selectbox(key=page_key("playground", "model-choice-0")).set_value(":other").run()
    at.text_input(key=page_key("playground", "model-0")).set_value(str(folder))
    at.button(key=page_key("playground", "run-button")).click().run()
    assert not at.exception and len(at.error) == 1
    assert_literal(at.error[0].value, str(folder))
