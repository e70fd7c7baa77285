"""The data model: a Principle, a Constitution, and what makes one valid.

Validation lives here (pydantic models with ``extra="forbid"``, so a misspelt key is an error
rather than a silently ignored field); turning files into these objects lives in ``store.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import CaiError
from .checks import Assertion, contradiction

# Bounds keep a constitution small enough to read and to fit a prompt: a request longer than
# this would crowd the model's answer out of a small context window.
MAX_NAME_LENGTH = 64
MAX_REQUEST_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 1000
MAX_PRINCIPLES = 200
MAX_TAGS = 16
# A principle's test cases: enough to measure it, few enough to read and run on a laptop.
MAX_EXAMPLES = 100
MAX_ASSERTIONS = 20  # per example's expect list, and for a principle's checks
MAX_EXAMPLE_PROMPT_CHARS = 4000
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


def _without_contradiction(assertions: list[Assertion]) -> list[Assertion]:
    problem = contradiction(assertions)
    if problem:
        raise ValueError(problem)
    return assertions


# An example's expectations and a principle's checks are both refused when they contradict each other.
ConsistentAssertions = Annotated[list[Assertion], AfterValidator(_without_contradiction)]


class Example(BaseModel):
    """A prompt this principle governs, and what a good answer to it does."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    prompt: str = Field(min_length=1, max_length=MAX_EXAMPLE_PROMPT_CHARS)
    expect: ConsistentAssertions = Field(default_factory=list, max_length=MAX_ASSERTIONS)


# Examples are split in two halves, alternating in file order within each principle as the shipped
# prompt sets are (see promptsets.py): scores use the test half, training may use the other, so a
# trained model is measured on prompts it never trained on, and both halves mix the principle's
# kinds of example as the author ordered them.
TEST_HALF, TRAIN_HALF = "test", "train"


def example_half(index: int) -> str:
    """Which half the principle's example at position ``index`` (from 0) is in: the first is a test example."""
    return TEST_HALF if index % 2 == 0 else TRAIN_HALF


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
    # Checks hold for every answer this principle governs; each example adds its own expectations.
    checks: ConsistentAssertions = Field(default_factory=list, max_length=MAX_ASSERTIONS)
    examples: list[Example] = Field(default_factory=list, max_length=MAX_EXAMPLES)

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

    @model_validator(mode="after")
    def _examples_testable(self) -> "Principle":
        for number, example in enumerate(self.examples, start=1):
            if not example.expect and not self.checks:
                raise ValueError(f"example {number} has nothing to check: give it an expect list, or give the principle checks")
            problem = contradiction([*self.checks, *example.expect])
            if problem:
                raise ValueError(f"example {number} with the principle's checks {problem}")
        return self

    def expectations(self, example: Example) -> list[Assertion]:
        """What an answer to ``example`` must do: the principle's checks, then the example's own."""
        return [*self.checks, *example.expect]

    def examples_in(self, half: str) -> list[tuple[int, Example]]:
        """(position, example) of each example in ``half`` (TEST_HALF or TRAIN_HALF), in file order."""
        if half not in (TEST_HALF, TRAIN_HALF):
            raise ValueError(f"half must be {TEST_HALF!r} or {TRAIN_HALF!r}, not {half!r}")
        return [(index, example) for index, example in enumerate(self.examples) if example_half(index) == half]


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
    example = re.match(r"^example (\d+) ", message)
    if example and (not location or (location[0] == "principles" and len(location) == 2)):
        location = (*location, "examples", int(example.group(1)) - 1)  # the line of that example
    where = _describe_location(described)
    return (f"{where}: {message}" if where else message), location


# A list's key -> how one of its items is named in a message ("principle 2 example 3 expectation 1").
_ITEM_NAMES = {"principles": "principle", "examples": "example", "checks": "check", "expect": "expectation"}


def _describe_location(location: tuple) -> str:
    parts: list[str] = []
    for position, item in enumerate(location):
        if isinstance(item, int) and position and location[position - 1] in _ITEM_NAMES:
            parts[-1] = f"{_ITEM_NAMES[location[position - 1]]} {item + 1}"
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
