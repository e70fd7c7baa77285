"""Command-line options and form limits read from a pydantic spec, so neither restates it.

A spec's fields hold each setting's default, bounds and help once (``Field(description=...)``).
``add_spec_options`` turns them into argparse options; ``spec_data`` merges a YAML ``--config``
file, those options and ``--set key=value`` pairs into plain data for the spec to validate, as
TRL's configs drive its scripts. ``field_info`` gives a form the same bounds, default and help::

    low, high, default, help = field_info(GenerationSpec, "settings.temperature")

Option names: a field ``best_of_n`` is ``--best-of-n``; a field of a nested settings model
(``settings.temperature``) is ``--temperature`` when no other field has that name, else
``--settings-seed``. Options left out on the command line stay out of the data, so the config
file's value, then the spec's default, applies.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ValidationError

from .errors import UsageError

# The destination prefix of spec options in the argparse namespace, apart from the command's own.
_DEST = "spec__"


class SettingInfo(NamedTuple):
    """A setting's limits for a form: ``min``/``max`` are None when unbounded; an exclusive bound
    (``gt=0``) is given as the bound itself, which the spec still refuses."""

    min: float | None
    max: float | None
    default: Any
    help: str


def field_info(model: type[BaseModel], name: str) -> SettingInfo:
    """The bounds, default and help of ``name`` (``"seed"``, ``"settings.temperature"``, or a nested
    field's own name such as ``"temperature"`` when only one field is called that)."""
    field = _field(model, _find_field(model, name))
    low = high = None
    for constraint in field.metadata:
        for attribute in ("ge", "gt"):
            if getattr(constraint, attribute, None) is not None:
                low = getattr(constraint, attribute)
        for attribute in ("le", "lt"):
            if getattr(constraint, attribute, None) is not None:
                high = getattr(constraint, attribute)
    default = None if field.is_required() else field.get_default(call_default_factory=True)
    return SettingInfo(low, high, default, field.description or "")


def spec_options(model: type[BaseModel]) -> dict[tuple[str, ...], str]:
    """Every settable field of ``model`` (nested settings flattened) -> its option name without ``--``."""
    paths = list(_leaf_paths(model))
    leaf_counts: dict[str, int] = {}
    for path in paths:
        leaf_counts[path[-1]] = leaf_counts.get(path[-1], 0) + 1
    return {path: ("-".join(path) if len(path) > 1 and leaf_counts[path[-1]] > 1 else path[-1]).replace("_", "-")
            for path in paths}


def add_spec_options(parser: argparse.ArgumentParser, model: type[BaseModel], *,
                     aliases: dict[str, tuple[str, ...]] | None = None, skip: tuple[str, ...] = ()) -> None:
    """An option for each field of ``model``; ``aliases`` maps a dotted field name to more option
    names (the ones a README already uses); ``skip`` leaves fields out (the command sets them)."""
    aliases = aliases or {}
    group = parser.add_argument_group(f"settings ({model.__name__}; also in --config or as --set key=value)")
    for path, option in spec_options(model).items():
        dotted = ".".join(path)
        if dotted in skip:
            continue
        field = _field(model, path)
        names = [f"--{option}", *(f"--{alias}" for alias in aliases.get(dotted, ()) if alias != option)]
        kind, choices = _shape(field.annotation)
        help_text = _help(model, dotted)
        common = {"dest": _DEST + "__".join(path), "default": argparse.SUPPRESS, "help": help_text}
        if kind == "bool":
            group.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
        elif kind == "list":
            group.add_argument(*names, action="append", metavar="A,B", **common)
        else:
            group.add_argument(*names, choices=choices, metavar=None if choices else path[-1].upper(), **common)


def spec_data(args: argparse.Namespace, model: type[BaseModel], config: Config | None = None,
              overrides: list[str] | None = None) -> dict:
    """The data for ``model``: the config file's, then the options given, then ``--set`` pairs."""
    data = _deep_copy(config.data if config else {})
    options = spec_options(model)
    for path in options:
        value = getattr(args, _DEST + "__".join(path), None)
        if value is None:
            continue
        kind, _ = _shape(_field(model, path).annotation)
        if kind == "list":
            value = [part.strip() for item in value for part in item.split(",") if part.strip()]
        _put(data, path, value)
    for key, value in parse_overrides(overrides).items():
        _put(data, tuple(key.split(".")), value)
    return data


def spec_arguments(spec: BaseModel) -> list[str]:
    """The options that give ``spec`` back through ``spec_data``: each field that differs from its
    default (and each required one) as ``--option=value``, ``--flag``/``--no-flag`` or ``--list a,b``;
    what an option cannot carry (None, an empty list, an item with a comma) as ``--set key=value``."""
    import yaml
    from pydantic_core import to_jsonable_python

    model, data, arguments = type(spec), spec.model_dump(mode="json"), []
    for path, option in spec_options(model).items():
        field, value = _field(model, path), _get(data, path)
        if not field.is_required() and value == to_jsonable_python(field.get_default(call_default_factory=True)):
            continue
        kind, _ = _shape(field.annotation)
        if kind == "bool" and isinstance(value, bool):
            arguments.append(f"--{option}" if value else f"--no-{option}")
        elif kind == "list" and value and all(isinstance(item, (str, int, float)) and "," not in str(item)
                                              for item in value):
            arguments.append(f"--{option}={','.join(map(str, value))}")
        elif kind == "scalar" and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            arguments.append(f"--{option}={value}")  # "=": a value that starts with "-" is still the value
        else:
            flow = yaml.safe_dump(value, default_flow_style=True, width=float("inf")).strip().removesuffix("...").strip()
            arguments += ["--set", f"{'.'.join(path)}={flow}"]
    return arguments


class Config(NamedTuple):
    """A --config file's settings, with where each came from (for a line number in an error)."""

    data: dict
    source: str
    root: Any  # the YAML node tree
    section: tuple[str, ...] = ()


def validate(model: type[BaseModel], data: dict, config: Config | None = None,
             error_type: type[Exception] = UsageError) -> BaseModel:
    """``model`` from ``data``, or one sentence naming the option (``--temperature``), or the config
    file and line, that holds the wrong value."""
    from .constitution import first_error_message
    from .textfiles import line_of

    try:
        return model.model_validate(data)
    except ValidationError as error:
        message, location = first_error_message(error)
        path = tuple(part for part in location if isinstance(part, str))
        option = spec_options(model).get(path)
        kind = error.errors()[0].get("type")
        if config is not None and _get(config.data, location) is not _MISSING \
                and _get(data, location) == _get(config.data, location):
            raise error_type(message, config.source, line_of(config.root, config.section + location)) from None
        if option and kind not in ("extra_forbidden", "missing"):
            message = f"--{option}: {message.split(': ', 1)[-1]}"
        raise error_type(message) from None


def read_config(path: str, section: str | None = None) -> Config:
    """A YAML mapping of settings; a file whose top level holds ``section`` (a loop settings file's
    ``generation:`` block) gives that block. A bad file is one sentence with its line."""
    from .errors import CaiError
    from .textfiles import parse_yaml, read_text_file

    file = Path(path).expanduser()
    try:
        data, root = parse_yaml(read_text_file(file, 1_000_000, "config file"), str(file))
    except CaiError as error:
        raise UsageError(error.message, error.path, error.line) from None
    if data is None:
        return Config({}, str(file), root)
    if not isinstance(data, dict):
        raise UsageError("must be a mapping of settings (key: value lines)", str(file))
    if section and isinstance(data.get(section), dict):
        return Config(data[section], str(file), root, (section,))
    return Config(data, str(file), root)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``--set key=value`` pairs; the value is read as YAML, so 1e-4, true and [q_proj, v_proj] work,
    and a dotted key (``lora.r``, ``settings.top_p``) reaches a nested setting."""
    import yaml

    overrides: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {pair!r} must look like key=value, e.g. --set learning_rate=1e-4")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            raise UsageError(f"--set {pair!r}: the value is not valid YAML; quote it") from None
        overrides[key.strip()] = _number_or(parsed, value)
    return overrides


def nest(flat: dict[str, Any]) -> dict:
    """``{"lora.r": 8}`` -> ``{"lora": {"r": 8}}``."""
    data: dict = {}
    for key, value in flat.items():
        _put(data, tuple(key.split(".")), value)
    return data


# --------------------------------------------------------------------------- helpers


def _number_or(parsed: Any, text: str) -> Any:
    # YAML 1.1 reads "1e-4" (no dot) as a string; a user means the number.
    if isinstance(parsed, str) and text.strip() and any(c in text for c in ".eE"):
        try:
            return float(text)
        except ValueError:
            return parsed
    return parsed


def _help(model: type[BaseModel], dotted: str) -> str:
    info = field_info(model, dotted)
    parts = [info.help.rstrip(".") if info.help else dotted]
    if info.default not in (None, [], ()) and not isinstance(info.default, BaseModel):
        shown = ",".join(map(str, info.default)) if isinstance(info.default, (list, tuple)) else info.default
        parts.append(f"default {str(shown).lower() if isinstance(shown, bool) else shown}")
    bounds = _bounds(model, dotted)
    if bounds:
        parts.append(bounds)
    return "; ".join(str(p) for p in parts).replace("%", "%%")  # argparse expands % in help


def _bounds(model: type[BaseModel], dotted: str) -> str:
    """"0 to 5", "at least 1", "above 0 up to 1" from the field's ge/gt/le/lt."""
    found = {}
    for constraint in _field(model, _find_field(model, dotted)).metadata:
        for attribute in ("ge", "gt", "le", "lt"):
            if getattr(constraint, attribute, None) is not None:
                found[attribute] = getattr(constraint, attribute)
    low = f"at least {found['ge']}" if "ge" in found else f"above {found['gt']}" if "gt" in found else ""
    high = f"at most {found['le']}" if "le" in found else f"below {found['lt']}" if "lt" in found else ""
    if "ge" in found and "le" in found:
        return f"{found['ge']} to {found['le']}"
    return ", ".join(part for part in (low, high) if part)


def _find_field(model: type[BaseModel], name: str) -> tuple[str, ...]:
    path = tuple(name.split("."))
    paths = list(_leaf_paths(model))
    if path in paths:
        return path
    matches = [p for p in paths if p[-1] == name]
    if len(matches) == 1:
        return matches[0]
    raise KeyError(f"{model.__name__} has {'more than one field' if matches else 'no field'} named {name!r}")


def _leaf_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()):
    for name, field in model.model_fields.items():
        nested = _nested_model(field.annotation)
        if nested is not None:
            yield from _leaf_paths(nested, prefix + (name,))
        else:
            yield prefix + (name,)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _field(model: type[BaseModel], path: tuple[str, ...]):
    """The pydantic field at ``path`` (through nested settings models)."""
    owner = model
    for part in path[:-1]:
        owner = _nested_model(owner.model_fields[part].annotation)
    return owner.model_fields[path[-1]]


def _shape(annotation: Any) -> tuple[str, list | None]:
    """"bool", "list" or "scalar", and the choices of a Literal."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _shape(args[0])
    if annotation is bool:
        return "bool", None
    if origin in (list, tuple):
        return "list", None
    if origin is Literal:
        return "scalar", list(typing.get_args(annotation))
    return "scalar", None


_MISSING = object()


def _get(data: Any, location: tuple) -> Any:
    for part in location:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, (list, tuple)) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return _MISSING
    return data


def _put(data: dict, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        child = data.get(part)
        if not isinstance(child, dict):
            child = data[part] = {}
        data = child
    data[path[-1]] = value


def _deep_copy(data: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}
