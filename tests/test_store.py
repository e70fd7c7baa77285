"""Storage: atomic writes, versions, refused names, import/export, and nothing changed on failure."""

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from cai_core import ConstitutionError, export_constitution, import_constitution, load_constitution, parse_constitution, save_constitution
from cai_core import store
from cai_core.atomic import write_text_atomic

SIMPLE = parse_constitution(
    "name: mine\nprinciples:\n  - name: a\n    critique_request: Point out any insult aimed at the user.\n"
    "    revision_request: Rewrite the answer without the insult aimed at the user.\n",
    "mine.yaml",
)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


def test_save_then_load_round_trips(cai_home):
    path = save_constitution(SIMPLE)
    assert path == cai_home / "constitutions" / "mine.yaml"
    assert load_constitution("mine") == SIMPLE
    assert load_constitution(path) == SIMPLE


def test_every_changed_save_keeps_a_version_and_diffs(cai_home):
    save_constitution(SIMPLE)
    save_constitution(SIMPLE)  # unchanged: no new version
    edited = SIMPLE.model_copy(deep=True)
    edited.principles[0].critique_request = "Point out any insult or sarcasm aimed at the user."
    save_constitution(edited)
    versions = store.list_versions("mine")
    assert [v.number for v in versions] == [1, 2]
    assert "sarcasm" not in store.read_version("mine", 1)
    diff = store.diff_versions("mine", 1, 2)
    assert "-" in diff and "+" in diff and "sarcasm" in diff
    assert load_constitution("mine").principles[0].critique_request.endswith("sarcasm aimed at the user.")


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/b", "", "  ", "..", "a\\b", "x\x00y"])
def test_names_that_leave_the_directory_are_refused(cai_home, name):
    before = snapshot(cai_home)
    with pytest.raises(ConstitutionError):
        store.check_constitution_name(name)
    with pytest.raises(ValidationError, match="constitution name .*(may use only letters|must not be empty)"):
        save_constitution(SIMPLE.model_copy(update={"name": name}))
    assert snapshot(cai_home) == before
    assert not Path("/etc/passwd.yaml").exists()


def test_failed_save_leaves_disk_unchanged(cai_home):
    save_constitution(SIMPLE)
    before = snapshot(cai_home)
    broken = SIMPLE.model_copy(deep=True)
    object.__setattr__(broken.principles[0], "critique_request", "")  # bypass assignment validation
    with pytest.raises(ValidationError, match="critique_request\n  String should have at least 1 character"):
        save_constitution(broken)
    assert snapshot(cai_home) == before


def test_atomic_write_keeps_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "file.yaml"
    target.write_text("old")

    def explode(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", explode)
    with pytest.raises(OSError):
        write_text_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.yaml"]  # no temp file left behind


def test_malformed_files_name_file_and_line(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\nprinciples:\n  - name: a\n    critique_request: [unclosed\n")
    with pytest.raises(ConstitutionError) as caught:
        load_constitution(bad)
    assert str(bad) in str(caught.value) and caught.value.line is not None


def test_binary_and_non_utf8_files_are_refused(tmp_path):
    binary = tmp_path / "x.yaml"
    binary.write_bytes(b"name: x\n\x00\x01\x02")
    with pytest.raises(ConstitutionError, match="not a text file"):
        load_constitution(binary)
    latin = tmp_path / "y.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConstitutionError, match="not UTF-8") as caught:
        load_constitution(latin)
    assert caught.value.line == 1


def test_oversized_file_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (store.MAX_FILE_BYTES + 10))
    with pytest.raises(ConstitutionError, match="at most"):
        load_constitution(big)


def test_llm_swarm_format_imports(cai_home):
    pairs = [
        {"critic": "Identify anything in the answer that helps with a crime.", "revision": "Rewrite the answer without the crime help."},
        {"critic": "Point out any rude remark in the answer.", "revision": "Rewrite the answer without the rude remark."},
    ]
    path = import_constitution(json.dumps(pairs).encode(), "constitution.json")
    imported = load_constitution(path)
    assert imported.name == "constitution"
    assert [p.critique_request for p in imported.principles] == [p["critic"] for p in pairs]
    assert json.loads(export_constitution(imported, "llm-swarm")) == pairs


def test_hf_recipe_mapping_and_bare_request_lists_import():
    recipe = {"constitutions": [{"critic": "Point out the insult in the answer.", "revision": "Remove the insult from the answer."}], "system_chat": []}
    assert len(parse_constitution(json.dumps({k: v for k, v in recipe.items() if k == "constitutions"}), "r.json").principles) == 1
    bare = [{"critique_request": "Point out the insult in the answer.", "revision_request": "Remove the insult from the answer."}]
    assert parse_constitution(json.dumps(bare), "bare.json").principles[0].name == "principle-1"


def test_export_formats_round_trip():
    for fmt in ("yaml", "json"):
        assert parse_constitution(export_constitution(SIMPLE, fmt), f"x.{fmt}") == SIMPLE
    with pytest.raises(ConstitutionError):
        export_constitution(SIMPLE, "xml")


def test_uploaded_non_constitution_is_refused_and_nothing_written(cai_home):
    before = snapshot(cai_home)
    for data, filename in [(b"\x89PNG\r\n\x1a\n\x00\x00", "cat.png"), (b"a,b\n1,2\n", "table.csv"), (b"{\"hello\": 1}", "x.json")]:
        with pytest.raises(ConstitutionError) as caught:
            import_constitution(data, filename)
        assert filename in str(caught.value)
    assert snapshot(cai_home) == before


def test_import_refuses_to_overwrite_unless_asked(cai_home):
    text = export_constitution(SIMPLE).encode()
    import_constitution(text, "mine.yaml")
    with pytest.raises(ConstitutionError, match="already exists"):
        import_constitution(text, "mine.yaml")
    import_constitution(text.replace(b"insult", b"slur"), "mine.yaml", overwrite=True)
    assert "slur" in load_constitution("mine").principles[0].critique_request


def test_shipped_constitutions_all_load_and_list(cai_home):
    infos = store.list_constitutions()
    names = {info.name for info in infos}
    assert {"general-hhh", "medical-qa", "customer-service"} <= names
    assert all(info.error is None for info in infos)
    assert len(load_constitution("general-hhh").principles) >= 8


def test_user_copy_shadows_shipped_and_broken_files_are_listed(cai_home):
    shipped = load_constitution("general-hhh")
    save_constitution(shipped.model_copy(update={"description": "my edit"}))
    assert load_constitution("general-hhh").description == "my edit"
    (cai_home / "constitutions" / "broken.yaml").write_text("name: [")
    infos = {info.name: info for info in store.list_constitutions()}
    assert not infos["general-hhh"].shipped
    assert infos["broken"].error and "line" in infos["broken"].error


def test_delete_moves_to_trash_and_duplicate_copies(cai_home):
    store.duplicate_constitution("general-hhh", "my-hhh")
    assert load_constitution("my-hhh").principles == load_constitution("general-hhh").principles
    with pytest.raises(ConstitutionError, match="already exists"):
        store.duplicate_constitution("general-hhh", "my-hhh")
    trash = store.delete_constitution("my-hhh")
    assert (trash / "my-hhh.yaml").is_file()
    with pytest.raises(ConstitutionError):
        load_constitution("my-hhh")
    with pytest.raises(ConstitutionError, match="shipped"):
        store.delete_constitution("general-hhh")


def test_unknown_name_says_how_to_list(cai_home):
    with pytest.raises(ConstitutionError, match="cai constitutions"):
        load_constitution("nope")


def test_create_refuses_existing_names_ignoring_case(cai_home):
    path = store.create_constitution("Fresh", "mine")
    created = load_constitution(path)
    assert created.name == "Fresh" and len(created.principles) == 1
    with pytest.raises(ConstitutionError, match="already exists"):
        store.create_constitution("fresh")
    with pytest.raises(ConstitutionError, match="already exists"):
        store.create_constitution("GENERAL-HHH")


def test_restore_saves_an_old_version_as_the_newest(cai_home):
    save_constitution(SIMPLE)
    save_constitution(SIMPLE.model_copy(update={"description": "second"}))
    restored = store.restore_version("mine", 1)
    assert restored.description == "" and [v.number for v in store.list_versions("mine")] == [1, 2, 3]
    assert load_constitution("mine").description == ""


def test_concurrent_saves_never_share_a_version_number(cai_home):
    from concurrent.futures import ThreadPoolExecutor

    def save(index):
        return save_constitution(SIMPLE.model_copy(update={"description": f"edit {index}"}))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(save, range(16)))
    versions = store.list_versions("mine")
    assert [v.number for v in versions] == list(range(1, 17))  # one version per save, none shared
    descriptions = sorted(parse_constitution(store.read_version("mine", v.number)).description for v in versions)
    assert descriptions == sorted(f"edit {i}" for i in range(16))  # and each save kept its own text
    assert not list((cai_home / "constitutions" / ".versions" / "mine").glob(".staged-*"))
