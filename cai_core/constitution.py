"""The data model: a Principle, a Constitution, and what makes one valid.

Validation lives here (pydantic models with ``extra="forbid"``, so a misspelt key is an error
rather than a silently ignored field); turning files into these objects lives in ``store.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import CaiError

# Bounds keep a constitution small enough to read and to fit a prompt: a request longer than
# this would crowd the model's answer out of a small context window.
MAX_NAME_LENGTH = 64
MAX_REQUEST_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 1000
MAX_PRINCIPLES = 200
MAX_TAGS = 16
# Names become file names and widget labels: letters, digits, '-', '_', '.', spaces inside.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")


class ConstitutionError(CaiError):
    """A constitution that cannot be loaded, saved or used; the message is one sentence for the user.

    ``path`` and ``line`` say where, when known (see ``CaiError``).
    """


def _check_name(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{what} name must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} name is longer than {MAX_NAME_LENGTH} characters")
    if not NAME_PATTERN.match(value) or value.endswith((" ", ".")) or ".." in value:
        raise ValueError(
            f"{what} name {value!r} may use only letters, digits, spaces, '-', '_' and '.', "
            "and must start with a letter or digit"
        )
    return value


RequestText = Annotated[str, Field(min_length=1, max_length=MAX_REQUEST_LENGTH)]


class Principle(BaseModel):
    """One rule: how to critique an answer against it, and how to revise the answer after."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, validate_assignment=True)

    name: str
    critique_request: RequestText
    revision_request: RequestText
    # Phase 2's judge asks which of two answers follows the principle better; when absent a
    # default is built from the critique request (see prompts.default_comparison_request).
    comparison_request: str | None = Field(default=None, max_length=MAX_REQUEST_LENGTH)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_LENGTH)
    tags: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=MAX_TAGS
    )
    enabled: bool = True
    # Relative chance of being drawn when the chain samples principles at random.
    weight: float = Field(default=1.0, gt=0, le=100)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_name(value, "principle")

    @field_validator("critique_request", "revision_request")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("comparison_request")
    @classmethod
    def _blank_comparison_is_none(cls, value: str | None) -> str | None:
        return value or None


class Constitution(BaseModel):
    """A named, ordered set of principles."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, validate_assignment=True)

    name: str
    description: str = Field(default="", max_length=MAX_DESCRIPTION_LENGTH)
    principles: list[Principle] = Field(max_length=MAX_PRINCIPLES)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_name(value, "constitution")

    @model_validator(mode="after")
    def _principles_usable(self) -> "Constitution":
        if not self.principles:
            raise ValueError("a constitution needs at least one principle")
        seen: dict[str, int] = {}
        for index, principle in enumerate(self.principles):
            key = principle.name.casefold()
            if key in seen:
                raise ValueError(
                    f"principle {index + 1} is named {principle.name!r} like principle {seen[key] + 1}; names must be unique"
                )
            seen[key] = index
        return self

    @property
    def enabled_principles(self) -> list[Principle]:
        return [p for p in self.principles if p.enabled]

    def principle(self, name: str) -> Principle:
        for candidate in self.principles:
            if candidate.name == name:
                return candidate
        raise ConstitutionError(f"constitution {self.name!r} has no principle named {name!r}")

    def to_data(self) -> dict:
        """Plain data in file order, omitting fields left at their defaults to keep files short."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["principles"] = [p.model_dump(mode="json", exclude_defaults=True) for p in self.principles]
        return {"name": data["name"], "description": self.description, "principles": data["principles"]}

    def content_hash(self) -> str:
        """A short, stable fingerprint of the content (for lineage on generated data)."""
        canonical = json.dumps(self.to_data(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def first_error_message(error: ValidationError) -> tuple[str, tuple]:
    """One readable sentence for the first problem pydantic found, and where it was."""
    first = error.errors()[0]
    location = tuple(first.get("loc", ()))
    message = first.get("msg", "is not valid").removeprefix("Value error, ")
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        message, described = f"unknown key {location[-1]!r}", location[:-1]
    elif kind == "missing":
        message, described = f"required key {location[-1]!r} is missing", location[:-1]
    else:
        described = location
        if kind == "string_too_short" and first.get("ctx", {}).get("min_length") == 1:
            message = "must not be empty"
    duplicate = re.match(r"^principle (\d+) ", message)
    if not location and duplicate:  # raised by the model validator, which knows the index
        location = ("principles", int(duplicate.group(1)) - 1, "name")
        return message, location
    where = _describe_location(described)
    return (f"{where}: {message}" if where else message), location


def _describe_location(location: tuple) -> str:
    parts: list[str] = []
    for position, item in enumerate(location):
        if isinstance(item, int) and position and location[position - 1] == "principles":
            parts[-1] = f"principle {item + 1}"
        elif isinstance(item, int):
            parts.append(f"item {item + 1}")
        else:
            parts.append(str(item).replace("_", " "))  # "critique request" reads better than the key
    return " ".join(parts)


# The constitution every form starts with: the general helpful-honest-harmless baseline, shipped.
DEFAULT_CONSTITUTION = "general-hhh"


def preferred_constitution(names: list[str]) -> str:
    """The one of ``names`` a form starts with: the default constitution when there, else the first."""
    return DEFAULT_CONSTITUTION if DEFAULT_CONSTITUTION in names else names[0]
