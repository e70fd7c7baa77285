"""Atomic writes keep what a plain write keeps: the file's mode, a symlink, and the new name on disk."""

from __future__ import annotations

import os
import stat

import pytest

from cai_core.atomic import write_text_atomic


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_file_gets_the_mode_open_would_give_it(tmp_path, umask_022):
    (tmp_path / "plain.txt").write_text("x")
    write_text_atomic(tmp_path / "atomic.txt", "x")
    assert mode(tmp_path / "atomic.txt") == mode(tmp_path / "plain.txt") == 0o644


def test_a_new_file_honours_a_strict_umask(tmp_path):
    previous = os.umask(0o077)
    try:
        write_text_atomic(tmp_path / "private.txt", "x")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "private.txt") == 0o600


@pytest.mark.parametrize("before", [0o644, 0o640, 0o664, 0o600])
def test_rewriting_a_file_keeps_its_mode(tmp_path, umask_022, before):
    target = tmp_path / "shared.yaml"
    target.write_text("old")
    target.chmod(before)
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and mode(target) == before


def test_a_symlink_is_written_through_to_its_target_and_stays_a_link(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real = elsewhere / "settings.yaml"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "settings.yaml"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new" and mode(real) == 0o640
    # The temp file lived beside the target (one file system), and none is left anywhere.
    assert sorted(p.name for p in elsewhere.iterdir()) == ["settings.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "settings.yaml"]


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "made.txt")
    write_text_atomic(link, "new")
    assert link.is_symlink() and (tmp_path / "made.txt").read_text() == "new"


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    """The rename is only durable once the folder is synced; record what each fsync synced."""
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        info = os.fstat(fd)
        synced.append(("folder" if stat.S_ISDIR(info.st_mode) else "file", info.st_ino))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    target = tmp_path / "sub" / "data.json"
    write_text_atomic(target, "{}")
    assert synced == [("file", target.stat().st_ino), ("folder", target.parent.stat().st_ino)]
