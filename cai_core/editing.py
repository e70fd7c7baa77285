"""Editing forms <-> constitutions: the pure part of the Constitution page.

A form keeps each principle in widget shape (tags as one comma-separated string, a missing
comparison request as ""), so seeding a widget is a plain copy and the page holds no conversion
logic of its own.
"""

from __future__ import annotations

from pydantic import ValidationError

from .constitution import Constitution, ConstitutionError, Principle, first_error_message
from .textfiles import dump_yaml

FORM_FIELDS = (
    "name", "description", "tags", "enabled", "weight", "critique_request", "revision_request", "comparison_request",
    "checks", "examples",
)
# The form key of a principle's checks and examples as the YAML text the editor shows; when present
# it is what is saved (``checks`` and ``examples`` then only seed it).
TESTS_TEXT = "tests"
# A new principle must already be valid (a new constitution is saved at once), so the
# placeholder is a usable generic rule that tells the author what to replace.
PLACEHOLDER_NAME = "new-principle"
PLACEHOLDER_CRITIQUE = (
    "Describe the specific behaviour this principle should catch in your previous answer, and quote each instance you find."
)
PLACEHOLDER_REVISION = (
    "Rewrite the answer to remove each instance quoted in the critique, keeping everything else the user asked for."
)


def principle_to_form(principle: Principle) -> dict:
    form = {
        "name": principle.name, "description": principle.description, "tags": ", ".join(principle.tags),
        "enabled": principle.enabled, "weight": float(principle.weight),
        "critique_request": principle.critique_request, "revision_request": principle.revision_request,
        "comparison_request": principle.comparison_request or "",
        # Kept as file data (the YAML shapes), so a form without widgets for them still saves them.
        "checks": [check.model_dump() for check in principle.checks],
        "examples": [example.model_dump(exclude_defaults=True) for example in principle.examples],
    }
    form[TESTS_TEXT] = tests_to_text(form)
    return form


def constitution_to_form(constitution: Constitution) -> dict:
    return {"description": constitution.description, "principles": [principle_to_form(p) for p in constitution.principles]}


def form_to_constitution(name: str, form: dict) -> tuple[Constitution | None, str | None]:
    """The edited constitution, or None and one sentence saying what is wrong."""
    principles = []
    for position, item in enumerate(form["principles"], start=1):
        principle, problem = _principle_data(item, position)
        if problem:
            return None, problem
        principles.append(principle)
    try:
        data = {"name": name, "description": form["description"], "principles": principles}
        return Constitution.model_validate(data), None
    except ValidationError as error:
        return None, first_error_message(error)[0]


def form_to_principle(item: dict, position: int) -> tuple[Principle | None, str | None]:
    """One principle of a form (``position`` counts from 1), or None and one sentence saying what is
    wrong: what "Test this principle" runs, unsaved edits included, while other principles may be unfinished."""
    data, problem = _principle_data(item, position)
    if problem:
        return None, problem
    try:
        return Principle.model_validate(data), None
    except ValidationError as error:
        return None, f"principle {position} {first_error_message(error)[0]}"


def _principle_data(item: dict, position: int) -> tuple[dict | None, str | None]:
    """A form principle as file data; the typed checks and examples are checked first, so their
    error names the line of the text typed."""
    principle = {field: item[field] for field in FORM_FIELDS if field in item}
    principle["tags"] = [tag.strip() for tag in str(item.get("tags", "")).split(",") if tag.strip()]
    principle["comparison_request"] = str(item.get("comparison_request") or "").strip() or None
    if TESTS_TEXT in item:
        tests, problem = tests_from_text(str(item[TESTS_TEXT] or ""), tests_source(position))
        if problem:
            return None, problem
        principle.update(tests)
    return principle, None


def tests_source(position: int) -> str:
    """How an error in principle ``position``'s typed checks and examples names where it is."""
    return f"principle {position} examples and checks"


def unused_principle_name(taken: set[str], base: str = PLACEHOLDER_NAME) -> str:
    taken_folded = {name.strip().casefold() for name in taken}
    candidate, number = base, 1
    while candidate.casefold() in taken_folded:
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def placeholder_principle(taken: set[str]) -> Principle:
    return Principle(name=unused_principle_name(taken), critique_request=PLACEHOLDER_CRITIQUE, revision_request=PLACEHOLDER_REVISION)


# ---------------------------------------------------------------- examples and checks, edited as YAML

# Placeholder requests: a principle's tests are validated on their own, before its other fields are.
_TESTS_ONLY = {"name": "tests", "critique_request": "-", "revision_request": "-"}


def tests_to_text(form_principle: dict) -> str:
    """A principle's ``checks`` and ``examples`` (form data) as the YAML block the editor shows; "" when none."""
    data = {key: form_principle[key] for key in ("checks", "examples") if form_principle.get(key)}
    return dump_yaml(data) if data else ""


def tests_from_text(text: str, source: str = "examples and checks") -> tuple[dict | None, str | None]:
    """The checks and examples typed in the editor, as form data ``{"checks": [...], "examples": [...]}``,
    or None and one sentence naming the line (of the text typed) and what is wrong."""
    try:
        return parse_tests(text, source), None
    except ConstitutionError as error:
        return None, str(error)


def parse_tests(text: str, source: str = "examples and checks") -> dict:
    """tests_from_text's data, or a ConstitutionError whose ``line`` is the line of the text typed."""
    from .textfiles import line_of, parse_yaml

    data, node = parse_yaml(text, source)
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConstitutionError("should be a mapping with 'checks' and 'examples' lists", source, 1)
    unknown = sorted(set(map(str, data)) - {"checks", "examples"})
    if unknown:
        raise ConstitutionError(f"unknown key {unknown[0]!r}; only checks and examples go here", source,
                                line_of(node, (unknown[0],)))
    try:
        principle = Principle.model_validate({**_TESTS_ONLY, **data})
    except ValidationError as error:
        message, location = first_error_message(error)
        raise ConstitutionError(message, source, line_of(node, location)) from None
    return {"checks": [c.model_dump() for c in principle.checks],
            "examples": [e.model_dump(exclude_defaults=True) for e in principle.examples]}
