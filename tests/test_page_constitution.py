"""The Constitution page driven through Streamlit's AppTest: real widgets, real files under CAI_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cai_core.paths import SHIPPED_CONSTITUTIONS_DIR
from cai_core.store import list_versions, load_constitution
from page_util import page_keys, shown
from ui.common import page_key

REPO = Path(__file__).resolve().parent.parent
PAGE = str(REPO / "pages" / "1_Constitution.py")


k = page_keys("constitution")


@pytest.fixture
def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.run()
    assert not at.exception
    return at


def run_ok(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def pick(at: AppTest, name: str) -> None:
    at.selectbox(key=k("selected")).select(name)
    run_ok(at)


def set_critique(at: AppTest, text: str, index: int = 0) -> None:
    at.text_area(key=k(f"critique_{index}")).input(text)
    run_ok(at)


def save(at: AppTest) -> None:
    at.button(key=k("save")).click()
    run_ok(at)


def principle_names(at: AppTest) -> list[str]:
    names, index = [], 0
    while True:
        try:
            names.append(at.text_input(key=k(f"name_{index}")).value)
        except KeyError:
            return names
        index += 1


def user_file(cai_home: Path, name: str) -> Path:
    return cai_home / "constitutions" / f"{name}.yaml"


# Short enough that the YAML writer keeps each on one line, so the file and the diff hold them verbatim.
NEW_CRITIQUE = "List any exact quantities for making explosives in your answer."
SECOND_CRITIQUE = "List any weapon suppliers or ways to evade police in your answer."


def test_page_renders_with_shipped_constitutions(page):
    assert {"general-hhh", "medical-qa", "customer-service"} <= set(page.selectbox(key=k("selected")).options)
    assert page.selectbox(key=k("selected")).value == "general-hhh"
    assert page.title[0].value == "Constitution"
    assert not page.error
    assert {"Save", "Add principle"} <= {b.label for b in page.button}
    assert {d.label for d in page.get("download_button")} == {"Download YAML", "Download JSON", "Download llm-swarm JSON"}


def test_home_page_renders(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Constitution Studio"
    text = " ".join(m.value for m in at.markdown)
    assert "3 constitutions available" in text
    assert str(tiny_model_dir) in [c.value for c in at.code]
    at.button(key=page_key("home", "load_model")).click()
    run_ok(at)
    assert at.success and not at.error
    assert any(tiny_model_dir.name in t.value for t in at.text)


def test_save_writes_user_copy_and_first_version(page, cai_home):
    shipped_before = (SHIPPED_CONSTITUTIONS_DIR / "general-hhh.yaml").read_bytes()
    pick(page, "general-hhh")
    set_critique(page, NEW_CRITIQUE)
    save(page)
    assert shown(page.success[0].value) == "Saved version 1 of general-hhh."
    assert not any(c.value == "You have unsaved changes." for c in page.sidebar.caption)
    assert page.sidebar.caption[0].value.startswith("Yours")
    target = user_file(cai_home, "general-hhh")
    assert NEW_CRITIQUE in target.read_text(encoding="utf-8")
    assert [v.number for v in list_versions("general-hhh")] == [1]
    assert (SHIPPED_CONSTITUTIONS_DIR / "general-hhh.yaml").read_bytes() == shipped_before
    # The user's copy now shadows the shipped one, and the page shows it as theirs.
    assert "general-hhh" in page.selectbox(key=k("selected")).options
    assert page.text_area(key=k("critique_0")).value == NEW_CRITIQUE


def test_second_save_makes_version_two_and_diff_shows_change(page):
    pick(page, "general-hhh")
    set_critique(page, NEW_CRITIQUE)
    save(page)
    set_critique(page, SECOND_CRITIQUE)
    save(page)
    assert [v.number for v in list_versions("general-hhh")] == [1, 2]
    # The viewer follows the newest save even though version 1 was showing before it.
    assert page.selectbox(key=k("version")).value == 2
    assert SECOND_CRITIQUE in [c.value for c in page.code if c.language == "yaml"][0]
    page.selectbox(key=k("diff_old")).select(1)
    page.selectbox(key=k("diff_new")).select(2)
    run_ok(page)
    diffs = [c.value for c in page.code if c.language == "diff"]
    assert any(f"-  critique_request: {NEW_CRITIQUE}" in d and f"+  critique_request: {SECOND_CRITIQUE}" in d for d in diffs), diffs


def test_invalid_edit_shows_error_and_leaves_file_alone(page, cai_home):
    pick(page, "general-hhh")
    set_critique(page, NEW_CRITIQUE)
    save(page)
    before = user_file(cai_home, "general-hhh").read_bytes()
    set_critique(page, "   ")
    assert any("principle 1" in shown(e.value) and "must not be empty" in shown(e.value) for e in page.error)
    save(page)
    assert any(shown(e.value).startswith("Not saved:") for e in page.error)
    assert user_file(cai_home, "general-hhh").read_bytes() == before
    assert [v.number for v in list_versions("general-hhh")] == [1]
    assert all(d.disabled for d in page.get("download_button"))


def test_duplicate_principle_names_are_an_error(page):
    pick(page, "general-hhh")
    page.text_input(key=k("name_1")).input("avoid-harmful-help")
    run_ok(page)
    assert any("names must be unique" in e.value for e in page.error)


def test_add_move_and_delete_principles_then_save(page, cai_home):
    pick(page, "medical-qa")
    original = principle_names(page)
    page.button(key=k("add")).click()
    run_ok(page)
    assert principle_names(page) == original + ["new-principle"]
    last = len(original)
    assert page.expander[-1].proto.expanded  # a new principle opens for editing
    new_key = page.expander[-1].key
    page.text_input(key=k(f"name_{last}")).input("my-rule")
    run_ok(page)
    page.button(key=k(f"up_{last}")).click()
    run_ok(page)
    assert principle_names(page)[last - 1:] == ["my-rule", original[-1]]
    # The expander is keyed by principle, not position, so the browser keeps the renamed and
    # moved principle open, and a second "Move up" moves the same principle.
    assert [e.key for e in page.expander][-2] == new_key
    page.text_input(key=k(f"name_{last - 1}")).input("new-principle")
    run_ok(page)
    page.button(key=k(f"down_{last - 1}")).click()
    run_ok(page)
    page.button(key=k("down_0")).click()
    run_ok(page)
    assert principle_names(page)[:2] == [original[1], original[0]]
    # Texts travel with their principle when the order changes.
    assert page.text_area(key=k("critique_1")).value == load_constitution("medical-qa").principles[0].critique_request
    page.button(key=k(f"delete_{len(original)}")).click()
    run_ok(page)
    page.toggle(key=k("enabled_2")).set_value(False)
    run_ok(page)
    save(page)
    saved = load_constitution(user_file(cai_home, "medical-qa"))
    assert [p.name for p in saved.principles] == [original[1], original[0]] + original[2:]
    assert saved.principles[2].enabled is False


def test_switching_constitution_discards_unsaved_edits(page):
    pick(page, "general-hhh")
    original = page.text_area(key=k("critique_0")).value
    set_critique(page, NEW_CRITIQUE)
    assert any(c.value == "You have unsaved changes." for c in page.sidebar.caption)
    pick(page, "medical-qa")
    pick(page, "general-hhh")
    assert page.text_area(key=k("critique_0")).value == original


def test_restore_an_old_version(page, cai_home):
    pick(page, "general-hhh")
    set_critique(page, NEW_CRITIQUE)
    save(page)
    set_critique(page, SECOND_CRITIQUE)
    save(page)
    page.selectbox(key=k("version")).select(1)
    run_ok(page)
    page.button(key=k("restore")).click()
    run_ok(page)
    assert [v.number for v in list_versions("general-hhh")] == [1, 2, 3]
    assert NEW_CRITIQUE in user_file(cai_home, "general-hhh").read_text(encoding="utf-8")
    assert page.text_area(key=k("critique_0")).value == NEW_CRITIQUE


def test_create_duplicate_and_delete(page, cai_home):
    page.text_input(key=k("new_name")).input("clinic rules")
    page.text_input(key=k("new_description")).input("Rules for a clinic's assistant.")
    page.button(key=k("create")).click()
    run_ok(page)
    assert page.selectbox(key=k("selected")).value == "clinic rules"
    assert principle_names(page) == ["new-principle"]
    page.text_input(key=k("dup_name")).input("clinic copy")
    page.button(key=k("duplicate")).click()
    run_ok(page)
    assert page.selectbox(key=k("selected")).value == "clinic copy"
    assert user_file(cai_home, "clinic copy").is_file()
    assert page.button(key=k("delete")).disabled
    page.checkbox(key=k("delete_confirm")).check()
    run_ok(page)
    page.button(key=k("delete")).click()
    run_ok(page)
    assert not user_file(cai_home, "clinic copy").exists()
    assert any((cai_home / "constitutions" / ".trash").glob("clinic copy-*/clinic copy.yaml"))
    assert any("trash" in s.value for s in page.success)


def test_creating_an_existing_name_is_one_sentence(page):
    page.text_input(key=k("new_name")).input("general-hhh")
    page.button(key=k("create")).click()
    run_ok(page)
    assert [shown(e.value) for e in page.error] == ["a constitution named 'general-hhh' already exists; pick another name"]


def test_upload_llm_swarm_json(page, cai_home):
    pairs = [{"critic": "Identify any instructions for building weapons in your previous answer.",
              "revision": "Rewrite the answer to remove the weapons instructions identified above."}]
    page.file_uploader(key=k("upload")).set_value(("swarm.json", json.dumps(pairs).encode(), "application/json"))
    run_ok(page)
    page.button(key=k("import")).click()
    run_ok(page)
    assert page.selectbox(key=k("selected")).value == "swarm"
    assert user_file(cai_home, "swarm").is_file()
    assert page.text_area(key=k("critique_0")).value == pairs[0]["critic"]


def test_bad_upload_is_one_sentence_and_writes_nothing(page, cai_home):
    bad = b"name: broken\nprinciples:\n  - name: a\n    critique_request: [unclosed\n"
    page.file_uploader(key=k("upload")).set_value(("broken.yaml", bad, "application/x-yaml"))
    run_ok(page)
    page.button(key=k("import")).click()
    run_ok(page)
    errors = [shown(e.value) for e in page.error]
    assert len(errors) == 1 and errors[0].startswith("broken.yaml, line ") and "\n" not in errors[0]
    assert not (cai_home / "constitutions").exists() or not list((cai_home / "constitutions").iterdir())


def test_broken_file_is_listed_with_its_error(cai_home):
    folder = cai_home / "constitutions"
    folder.mkdir(parents=True)
    (folder / "mangled.yaml").write_text("name: mangled\nprinciples: [\n", encoding="utf-8")
    at = AppTest.from_file(PAGE, default_timeout=30)
    run_ok(at)
    assert any("mangled.yaml" in t.value and "line" in t.value for t in at.text)
    assert "mangled" not in at.selectbox(key=k("selected")).options
    pick(at, "medical-qa")
    at.button(key=k("trash_mangled")).click()
    run_ok(at)
    assert not (folder / "mangled.yaml").exists()
    assert at.selectbox(key=k("selected")).value == "medical-qa"  # trashing it leaves the choice alone


def test_unsaved_edits_survive_visiting_another_page():
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    run_ok(at)
    at.switch_page("pages/1_Constitution.py")
    run_ok(at)
    set_critique(at, NEW_CRITIQUE)
    at.switch_page("app.py")
    run_ok(at)
    assert k("critique_0") not in at.session_state  # Streamlit drops widgets a page did not draw
    at.switch_page("pages/1_Constitution.py")
    run_ok(at)
    assert at.text_area(key=k("critique_0")).value == NEW_CRITIQUE


def test_the_page_opens_the_guide_for_writing_principles(page):
    guide = (REPO / "docs" / "writing-principles.md").read_text(encoding="utf-8")
    expander = next(e for e in page.expander if "docs/writing-principles.md" in e.label)
    assert guide.strip() in [m.value.strip() for m in expander.markdown]
