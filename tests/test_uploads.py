"""Upload limits agree: the server takes the largest upload any page takes, and each uploader says
and checks its own limit, so no upload a page invites ends in a bare HTTP 413."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from page_util import shown
from ui.common import MB, SERVER_MAX_UPLOAD_MB, UPLOAD_LIMITS, page_key, upload_limit_words, upload_max_mb

REPO = Path(__file__).resolve().parent.parent
# page, the uploader's session key, the kind of upload (ui.common.UPLOAD_LIMITS)
UPLOADERS = [("1_Constitution.py", page_key("constitution", "upload"), "constitution"),
             ("3_Data.py", page_key("data", "upload"), "prompts"),
             ("4_Training.py", page_key("training", "upload"), "training"),
             ("5_Alignment_Tax.py", page_key("tax", "upload"), "reports")]


def server_max_upload_mb() -> int:
    return tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]


def test_the_server_takes_the_largest_upload_a_page_takes():
    assert server_max_upload_mb() == SERVER_MAX_UPLOAD_MB == max(upload_max_mb(kind) for kind in UPLOAD_LIMITS)


@pytest.mark.parametrize("page, key, kind", UPLOADERS, ids=[kind for _, _, kind in UPLOADERS])
def test_each_uploader_says_and_sets_its_limit(page, key, kind, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    at = AppTest.from_file(str(REPO / "pages" / page), default_timeout=60).run()
    assert not at.exception, at.exception
    uploader = at.file_uploader(key=key)
    assert uploader.proto.max_upload_size_mb == upload_max_mb(kind) <= server_max_upload_mb()
    assert shown(uploader.help).endswith(upload_limit_words(kind))
    assert UPLOAD_LIMITS[kind] <= upload_max_mb(kind) * MB


def test_a_report_over_the_limit_is_one_sentence_and_not_kept(tiny_model_dir, monkeypatch, cai_home):
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    at = AppTest.from_file(str(REPO / "pages" / "5_Alignment_Tax.py"), default_timeout=60).run()
    too_big = b'{"suites": {}, "padding": "' + b"x" * UPLOAD_LIMITS["reports"] + b'"}'
    at.file_uploader(key=page_key("tax", "upload")).set_value([("big [1].json", too_big, "application/json")]).run()
    assert not at.exception, at.exception
    assert [shown(e.value) for e in at.error] == ["big [1].json is larger than 50 MB, the most this upload takes."]
    assert not (cai_home / "evaluations" / ".uploaded").exists()
