"""Reading hand-edited text files: size limits, UTF-8, safe YAML, and line numbers for errors.

Constitutions, example prompts and (later) prompt sets and recipes all go through here, so a bad
file gets the same kind of sentence wherever it is loaded: the file, the line, what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .constitution import ConstitutionError


def read_text_file(path: Path, max_bytes: int, what: str = "file") -> str:
    """The file's text, or a ConstitutionError saying why it cannot be used."""
    source = str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConstitutionError(f"is {size // 1024} KiB; a {what} may be at most {max_bytes // 1024} KiB", source)
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConstitutionError("file not found", source) from None
    except IsADirectoryError:
        raise ConstitutionError("is a folder, not a file", source) from None
    except OSError as error:
        raise ConstitutionError(f"cannot be read ({error.strerror})", source) from None
    return decode_text(data, source, max_bytes, what)


def decode_text(data: bytes, source: str, max_bytes: int, what: str = "file") -> str:
    """Bytes to text, or a sentence saying why this is not a UTF-8 text file."""
    if len(data) > max_bytes:
        raise ConstitutionError(f"is {len(data) // 1024} KiB; a {what} may be at most {max_bytes // 1024} KiB", source)
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ConstitutionError("is not a text file (it contains NUL bytes)", source, line)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConstitutionError(f"is not UTF-8 text (byte {error.start} cannot be decoded)", source, line) from None


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """Parse YAML (JSON is a subset) safely, keeping the node tree for line numbers.

    ``yaml.SafeLoader`` never runs tags such as ``!!python/object``; it rejects them.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = (error.problem or error.context or "is not valid YAML").strip()
        if "<stream end>" in problem:
            problem = "the file ends in the middle of a value (an unclosed bracket or quote?)"
        raise ConstitutionError(f"YAML syntax error: {problem}", source, mark.line + 1 if mark else None) from None
    except yaml.YAMLError as error:
        raise ConstitutionError(f"YAML syntax error: {error}", source) from None
    return data, node


def line_of(node: yaml.Node | None, location: tuple) -> int | None:
    """Walk the YAML node tree along a location (keys and list indexes) to the line it points at."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for key in location:
        if isinstance(node, yaml.MappingNode):
            match = next((pair for pair in node.value if getattr(pair[0], "value", None) == key), None)
            if match is None:
                return line
            key_node, node = match
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def child_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    """The value node under ``key`` of a mapping node, if there is one."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if getattr(key_node, "value", None) == key:
                return value_node
    return None
