"""Constitutions on disk: YAML files, versions, safe names, import and export.

The files are the truth. The shipped starters live in ``constitutions/`` (read-only); the user's
own live in ``$CAI_HOME/constitutions``, one ``NAME.yaml`` each, and every save also keeps a copy
under ``.versions/NAME/`` so any two versions can be viewed and diffed. Every write is atomic and
every failed load or save leaves the disk exactly as it was.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from .atomic import write_text_atomic
from .constitution import (
    NAME_PATTERN,
    Constitution,
    ConstitutionError,
    Principle,
    first_error_message,
)
from . import textfiles
from .paths import SHIPPED_CONSTITUTIONS_DIR, is_explicit_path, user_constitutions_dir
from .textfiles import child_node, dump_yaml, line_of, one_line, parse_yaml, read_text_file

MAX_FILE_BYTES = 256 * 1024
VERSIONS_DIRNAME = ".versions"
TRASH_DIRNAME = ".trash"
CONSTITUTION_SUFFIXES = (".yaml", ".yml", ".json")


# ---------------------------------------------------------------- safe names


def check_constitution_name(name: str) -> str:
    """Refuse any name that could leave the constitutions directory or is not a plain name."""
    if not isinstance(name, str) or not name.strip():
        raise ConstitutionError("a constitution name must not be empty")
    name = name.strip()
    if "/" in name or "\\" in name or name in (".", "..") or ".." in name or "\x00" in name:
        raise ConstitutionError(f"constitution name {name!r} must not contain path separators or '..'")
    if not NAME_PATTERN.match(name) or len(name) > 64:
        raise ConstitutionError(
            f"constitution name {name!r} may use only letters, digits, spaces, '-', '_' and '.'"
        )
    return name


# ---------------------------------------------------------------- parsing


def _read_text(path: Path) -> str:
    return read_text_file(path, MAX_FILE_BYTES, "constitution file")


def decode_text(data: bytes, source: str) -> str:
    return textfiles.decode_text(data, source, MAX_FILE_BYTES, "constitution file")


def _principles_from_pairs(items: list, source: str, node: yaml.Node | None) -> list[dict]:
    """llm-swarm's ``{"critic", "revision"}`` and bare ``{critique_request, revision_request}`` lists."""
    principles = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConstitutionError(f"entry {index + 1} should be a mapping with a critique and a revision request", source, line_of(node, (index,)))
        if "critic" in item or "revision" in item:
            unknown = set(item) - {"critic", "revision"}
            critique, revision = item.get("critic"), item.get("revision")
        else:
            unknown = set(item) - set(Principle.model_fields)
            critique, revision = item.get("critique_request"), item.get("revision_request")
        if unknown:
            first = sorted(unknown, key=str)[0]  # keys may mix text and numbers, which do not sort together
            raise ConstitutionError(f"entry {index + 1} has unknown key {first!r}", source, line_of(node, (index, first)))
        if not isinstance(critique, str) or not isinstance(revision, str):
            raise ConstitutionError(f"entry {index + 1} needs both a critique and a revision request as text", source, line_of(node, (index,)))
        principle = {k: v for k, v in item.items() if k not in ("critic", "revision")}
        principle.update(critique_request=critique, revision_request=revision)
        principle.setdefault("name", f"principle-{index + 1}")
        principles.append(principle)
    return principles


def _default_name(source: str) -> str:
    stem = Path(source).stem if source else "imported"
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem).strip("-_") or "imported"
    return cleaned[:64]


def parse_constitution(text: str, source: str = "<text>", default_name: str | None = None) -> Constitution:
    """Text of any supported format to a validated Constitution, or one-sentence ConstitutionError.

    Formats: our own YAML or JSON (``name``, ``description``, ``principles``); llm-swarm's
    ``constitution.json`` (a list of ``{"critic", "revision"}``, or a mapping whose
    ``constitutions`` key holds that list, as in Hugging Face's CAI recipe); and a bare list of
    ``{critique_request, revision_request}``.
    """
    data, node = parse_yaml(text, source)
    name = default_name or _default_name(source)
    if data is None:
        raise ConstitutionError("is empty; expected a constitution with 'name' and 'principles'", source)
    if isinstance(data, list):
        data = {"name": name, "principles": _principles_from_pairs(data, source, node)}
    elif isinstance(data, dict) and "constitutions" in data and "principles" not in data:
        items = data["constitutions"]
        if not isinstance(items, list):
            raise ConstitutionError("'constitutions' should be a list of critic/revision pairs", source, line_of(node, ("constitutions",)))
        inner = child_node(node, "constitutions")
        data = {"name": name, "principles": _principles_from_pairs(items, source, inner)}
    elif not isinstance(data, dict):
        raise ConstitutionError("is not a constitution: expected a mapping with 'name' and 'principles'", source, 1)
    elif "name" not in data and "principles" in data:
        data = {"name": name, **data}
    try:
        return Constitution.model_validate(data)
    except ValidationError as error:
        message, location = first_error_message(error)
        raise ConstitutionError(message, source, line_of(node, location)) from None


# ---------------------------------------------------------------- dumping


def constitution_to_yaml(constitution: Constitution) -> str:
    return dump_yaml(constitution.to_data())


def export_constitution(constitution: Constitution, fmt: str = "yaml") -> str:
    """Text of the constitution in ``yaml``, ``json`` (ours) or ``llm-swarm`` (critic/revision list).

    llm-swarm drops examples and checks; ``export_warning`` says so in one sentence to show beside it.
    """
    if fmt == "yaml":
        return constitution_to_yaml(constitution)
    if fmt == "json":
        return json.dumps(constitution.to_data(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "llm-swarm":
        pairs = [{"critic": p.critique_request, "revision": p.revision_request} for p in constitution.enabled_principles]
        return json.dumps(pairs, indent=2, ensure_ascii=False) + "\n"
    raise ConstitutionError(f"unknown export format {fmt!r}; choose yaml, json or llm-swarm")


# Export formats that carry only each principle's critique and revision requests.
FORMATS_WITHOUT_TESTS = ("llm-swarm",)


def export_warning(constitution: Constitution, fmt: str) -> str | None:
    """One sentence saying what an export to ``fmt`` leaves out of the principles' tests, or None.

    llm-swarm's critic/revision list has no place for examples or checks, so they are dropped;
    the user should hear so before sharing a file that has lost its test cases.
    """
    if fmt not in FORMATS_WITHOUT_TESTS:
        return None
    principles = constitution.enabled_principles
    examples = sum(len(p.examples) for p in principles)
    checks = sum(len(p.checks) for p in principles)
    if not examples and not checks:
        return None
    parts = [f"{count} {noun}{'' if count == 1 else 's'}" for count, noun in ((examples, "example"), (checks, "check")) if count]
    return f"{fmt}'s format cannot carry examples or checks, so this file leaves out {' and '.join(parts)}; export as YAML or JSON to keep them"


# ---------------------------------------------------------------- the store


@dataclass(frozen=True)
class ConstitutionInfo:
    name: str
    path: Path
    shipped: bool
    description: str = ""
    principle_count: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Version:
    number: int
    path: Path
    saved_at: float


def _directory(directory: Path | str | None) -> Path:
    return Path(directory) if directory is not None else user_constitutions_dir()


def _find_file(folder: Path, name: str) -> Path | None:
    for suffix in CONSTITUTION_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def resolve_constitution_path(path_or_name: str | Path, directory: Path | str | None = None) -> Path:
    """The file for a constitution name (the user's store first, then the shipped ones) or a path.

    A name never reads the current directory: ``general-hhh`` is the store's or the shipped one
    even where a file of that name lies about. Only what is clearly a path is read as one (see
    ``paths.is_explicit_path``: a separator, a leading ``.`` or ``~``, or a ``Path`` object).
    Whatever ``check_constitution_name`` accepts at save is found here: ``v1.yaml`` is first the
    constitution named ``v1.yaml`` (saved as ``v1.yaml.yaml``), then the one saved as ``v1.yaml``.
    """
    if is_explicit_path(path_or_name):
        candidate = Path(path_or_name).expanduser()
        if not candidate.is_file():
            raise ConstitutionError("file not found" if not candidate.exists() else "is not a file", str(candidate))
        return candidate
    name = check_constitution_name(str(path_or_name))
    with_suffix = Path(name).suffix.lower() in CONSTITUTION_SUFFIXES
    for folder in (_directory(directory), SHIPPED_CONSTITUTIONS_DIR):
        found = _find_file(folder, name) or (folder / name if with_suffix and (folder / name).is_file() else None)
        if found:
            return found
    hint = f", and a file in this folder is given as ./{name}" if with_suffix else ""
    raise ConstitutionError(f"no constitution named {name!r}; `cai constitutions` lists what is available{hint}")


def load_constitution(path_or_name: str | Path, directory: Path | str | None = None) -> Constitution:
    """Load and validate a constitution by name (user's store first, then shipped) or by clear path."""
    path = resolve_constitution_path(path_or_name, directory)
    return parse_constitution(_read_text(path), str(path))


def save_constitution(constitution: Constitution, directory: Path | str | None = None) -> Path:
    """Write ``NAME.yaml`` atomically and keep this content as a new version (unless unchanged)."""
    constitution = Constitution.model_validate(constitution.model_dump())  # re-check edits
    name = check_constitution_name(constitution.name)
    folder = _directory(directory)
    text = constitution_to_yaml(constitution)
    target = folder / f"{name}.yaml"
    history = list_versions(name, folder)
    if not history or history[-1].path.read_text(encoding="utf-8") != text:
        _write_next_version(folder / VERSIONS_DIRNAME / name, history[-1].number + 1 if history else 1, text)
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        write_text_atomic(target, text)
    return target


def _write_next_version(folder: Path, number: int, text: str) -> int:
    """Claim the next free version number with an exclusive hard link, so two sessions saving
    at the same moment each get their own version instead of overwriting one."""
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / f".staged-{os.getpid()}-{time.time_ns()}.yaml"
    write_text_atomic(staged, text)
    try:
        while True:
            try:
                os.link(staged, folder / f"{number:04d}.yaml")
                return number
            except FileExistsError:
                number += 1
    finally:
        staged.unlink(missing_ok=True)


def create_constitution(name: str, description: str = "", directory: Path | str | None = None) -> Path:
    """A new constitution holding one valid placeholder principle, saved as version 1.

    Names are compared without case: on a case-insensitive disk "Mine" and "mine" are one file.
    """
    from .editing import placeholder_principle

    name = check_constitution_name(name)
    taken = {info.name.casefold() for info in list_constitutions(directory)}
    if name.casefold() in taken:
        raise ConstitutionError(f"a constitution named {name!r} already exists; pick another name")
    return save_constitution(Constitution(name=name, description=description, principles=[placeholder_principle(set())]), directory)


def restore_version(name: str, number: int, directory: Path | str | None = None) -> Constitution:
    """Save an old version's content again as the newest version (a no-op if it already is)."""
    restored = parse_constitution(read_version(name, number, directory), f"{name} v{number}")
    restored = restored.model_copy(update={"name": check_constitution_name(name)})
    save_constitution(restored, directory)
    return restored


def list_versions(name: str, directory: Path | str | None = None) -> list[Version]:
    name = check_constitution_name(name)
    folder = _directory(directory) / VERSIONS_DIRNAME / name
    versions = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        if path.stem.isdigit():
            versions.append(Version(int(path.stem), path, path.stat().st_mtime))
    return sorted(versions, key=lambda v: v.number)


def read_version(name: str, number: int, directory: Path | str | None = None) -> str:
    for version in list_versions(name, directory):
        if version.number == number:
            return version.path.read_text(encoding="utf-8")
    raise ConstitutionError(f"constitution {name!r} has no version {number}")


def diff_texts(old: str, new: str, old_label: str = "old", new_label: str = "new") -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), old_label, new_label))


def diff_versions(name: str, old: int, new: int, directory: Path | str | None = None) -> str:
    return diff_texts(read_version(name, old, directory), read_version(name, new, directory), f"{name} v{old}", f"{name} v{new}")


def list_constitutions(directory: Path | str | None = None) -> list[ConstitutionInfo]:
    """The user's constitutions, then shipped ones not shadowed by a user's file of the same name.

    A broken file is listed with its error instead of hiding it or failing the whole list.
    """
    seen: set[str] = set()
    infos: list[ConstitutionInfo] = []
    for folder, shipped in ((_directory(directory), False), (SHIPPED_CONSTITUTIONS_DIR, True)):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in CONSTITUTION_SUFFIXES or path.name.startswith(".") or path.stem in seen:
                continue
            seen.add(path.stem)
            try:
                constitution = parse_constitution(_read_text(path), str(path))
                infos.append(ConstitutionInfo(path.stem, path, shipped, constitution.description, len(constitution.principles)))
            except ConstitutionError as error:
                infos.append(ConstitutionInfo(path.stem, path, shipped, error=str(error)))
            except Exception as error:  # noqa: BLE001 - one odd file must not hide the others or break the page
                infos.append(ConstitutionInfo(path.stem, path, shipped, error=str(ConstitutionError(
                    f"cannot be read ({type(error).__name__}: {one_line(error)})", str(path)))))
    return infos


def delete_constitution(name: str, directory: Path | str | None = None) -> Path:
    """Move a user's constitution and its versions into ``.trash`` (shipped ones cannot be deleted)."""
    name = check_constitution_name(name)
    folder = _directory(directory)
    target = _find_file(folder, name)
    if target is None:
        if _find_file(SHIPPED_CONSTITUTIONS_DIR, name):
            raise ConstitutionError(f"{name!r} is a shipped constitution and cannot be deleted; duplicate it to make your own")
        raise ConstitutionError(f"no constitution named {name!r} in {folder}")
    trash = folder / TRASH_DIRNAME / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1_000_000:06d}"
    trash.mkdir(parents=True)
    versions = folder / VERSIONS_DIRNAME / name
    if versions.is_dir():
        shutil.move(str(versions), str(trash / "versions"))
    target.replace(trash / target.name)
    return trash


def duplicate_constitution(source: str, new_name: str, directory: Path | str | None = None) -> Path:
    new_name = check_constitution_name(new_name)
    if _find_file(_directory(directory), new_name) or _find_file(SHIPPED_CONSTITUTIONS_DIR, new_name):
        raise ConstitutionError(f"a constitution named {new_name!r} already exists")
    copy = load_constitution(source, directory).model_copy(update={"name": new_name})
    return save_constitution(copy, directory)


def import_constitution(data: bytes, filename: str, directory: Path | str | None = None, name: str | None = None, overwrite: bool = False) -> Path:
    """Validate an uploaded file of any supported format and save it into the user's store."""
    text = decode_text(data, filename)
    constitution = parse_constitution(text, filename, default_name=name)
    if name:
        constitution = constitution.model_copy(update={"name": check_constitution_name(name)})
    if not overwrite and _find_file(_directory(directory), constitution.name):
        raise ConstitutionError(f"a constitution named {constitution.name!r} already exists; rename it or choose to overwrite")
    return save_constitution(constitution, directory)
