"""Reading hand-edited text files: size limits, UTF-8, safe YAML, and line numbers for errors.

Constitutions, example prompts and (later) prompt sets and recipes all go through here, so a bad
file gets the same kind of sentence wherever it is loaded: the file, the line, what is wrong.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from .constitution import ConstitutionError

# Said of a file whose brackets or indentation nest deeper than the parser's stack (a few KB of "[").
TOO_DEEP = "nests lists or mappings too deeply to be read"
# PyYAML's scanner does work for every open bracket at every token, so a file of nothing but "["
# takes time that grows with the square of its size (minutes for a few hundred KB) before its
# stack overflows; a depth no real file comes near is refused before PyYAML sees the text.
MAX_BRACKET_DEPTH = 100
_BRACKETS = re.compile(r"[\[\]{}]")
# YAML aliases share one value in memory, so a small file can stand for billions of values (or
# refer to itself); whatever walks the data afterwards (validation, JSON) would expand them all.
MAX_VALUES = 100_000
TOO_MANY_VALUES = (f"holds more than {MAX_VALUES:,} values once its YAML aliases are expanded "
                   "(or an alias refers to itself)")


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


# JSON may spell half of a surrogate pair as an escape; Python keeps it, and the text then fails
# when it is written as UTF-8 (a dataset, a log) long after the file was accepted.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json_line(line: str) -> Any:
    """One line of JSONL; a ValueError (JSONDecodeError for syntax) says why it cannot be used."""
    try:
        value = json.loads(line)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    if _SURROGATE_ESCAPE.search(line):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("holds a \\u escape of half a character (a lone surrogate), which is not text") from None
    return value


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """Parse YAML (JSON is a subset) safely, keeping the node tree for line numbers.

    ``yaml.SafeLoader`` never runs tags such as ``!!python/object``; it rejects them.
    """
    too_deep_at = bracket_depth_exceeded(text)
    if too_deep_at is not None:
        raise ConstitutionError(TOO_DEEP, source, text[:too_deep_at].count("\n") + 1)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = (error.problem or error.context or "is not valid YAML").strip()
        if "<stream end>" in problem:
            problem = "the file ends in the middle of a value (an unclosed bracket or quote?)"
        raise ConstitutionError(f"YAML syntax error: {problem}", source, mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as error:  # a control character YAML does not allow in text
        line = text[: error.position].count("\n") + 1
        character = f"U+{error.character:04X}" if isinstance(error.character, int) else repr(error.character)
        raise ConstitutionError(f"holds the control character {character}, which YAML does not allow", source, line) from None
    except yaml.YAMLError as error:
        raise ConstitutionError(f"YAML syntax error: {one_line(error)}", source) from None
    except RecursionError:
        raise ConstitutionError(TOO_DEEP, source) from None
    except (ValueError, TypeError, OverflowError) as error:
        # A scalar that PyYAML recognises but cannot build, such as the date 2020-13-45.
        raise ConstitutionError(f"holds a YAML value that cannot be read ({one_line(error)})", source) from None
    if too_many_values(data):
        raise ConstitutionError(TOO_MANY_VALUES, source)
    return data, node


def bracket_depth_exceeded(text: str) -> int | None:
    """Where open brackets first nest deeper than MAX_BRACKET_DEPTH (counted without regard to quotes,
    which only makes it stricter about text full of unclosed brackets), or None."""
    depth = 0
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_BRACKET_DEPTH:
                return match.start()
        elif depth:
            depth -= 1
    return None


def too_many_values(data: Any) -> bool:
    """Whether the data, with shared (aliased) values counted each time they appear, exceeds MAX_VALUES."""
    pending, count = [data], 0
    while pending:
        value = pending.pop()
        count += 1
        if count > MAX_VALUES:
            return True
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, (list, tuple, set)):
            pending.extend(value)
    return False


def one_line(error: BaseException, limit: int = 200) -> str:
    """An exception's text as one short line, for the middle of a sentence."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


class _BlockDumper(yaml.SafeDumper):
    """Long requests as folded-free block scalars, so files diff line by line and read well."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def dump_yaml(data) -> str:
    """Plain data as YAML the way constitution files are written (key order kept, block text)."""
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)
