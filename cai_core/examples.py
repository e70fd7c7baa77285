"""The playground's example prompts: a small shipped YAML list of ``{id, category, prompt}``.

The file is edited by hand, so a mistake in it becomes one sentence naming the file and the line
(like a constitution file) instead of a traceback in the page.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .chain import MAX_PROMPT_CHARS
from .constitution import ConstitutionError, first_error_message
from .paths import SHIPPED_PROMPTS_DIR
from .textfiles import line_of, parse_yaml, read_text_file

EXAMPLES_FILE = "playground_examples.yaml"
# The list is read on every page rerun; a file this large is a mistake, not a prompt set.
MAX_EXAMPLES_BYTES = 256 * 1024
# Ids and categories are shown as labels and used as keys: keep them plain slugs.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_\-]*$"


class PlaygroundExample(BaseModel):
    """One example prompt for the playground picker."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=64, pattern=SLUG_PATTERN)
    category: str = Field(min_length=1, max_length=40, pattern=SLUG_PATTERN)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)

    @property
    def label(self) -> str:
        """How the picker shows it: ``[category] first words of the prompt…``."""
        text = " ".join(self.prompt.split())
        short = text if len(text) <= 80 else text[:79].rstrip() + "…"
        return f"[{self.category}] {short}"


def default_examples_path() -> Path:
    return SHIPPED_PROMPTS_DIR / EXAMPLES_FILE


def parse_playground_examples(text: str, source: str = "<text>") -> list[PlaygroundExample]:
    """YAML text to validated examples, or a one-sentence ConstitutionError naming source and line."""
    data, node = parse_yaml(text, source)
    if data is None:
        raise ConstitutionError("is empty; expected a list of examples with id, category and prompt", source)
    if not isinstance(data, list):
        raise ConstitutionError("should be a list of examples, each with id, category and prompt", source, 1)

    examples: list[PlaygroundExample] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise ConstitutionError(f"example {index + 1} should be a mapping with id, category and prompt", source, line_of(node, (index,)))
        try:
            example = PlaygroundExample.model_validate(item)
        except ValidationError as error:
            message, location = first_error_message(error)
            if error.errors()[0].get("type") == "string_pattern_mismatch":
                message = f"{location[0]} must be lower-case letters, digits, '-' or '_'"
            key = location[0] if location else None
            raise ConstitutionError(f"example {index + 1}: {message}", source, line_of(node, (index, key) if key is not None else (index,))) from None
        if example.id in seen:
            raise ConstitutionError(
                f"example {index + 1} has the id {example.id!r} like example {seen[example.id] + 1}; ids must be unique",
                source, line_of(node, (index, "id")),
            )
        seen[example.id] = index
        examples.append(example)
    if not examples:
        raise ConstitutionError("has no examples; add at least one with id, category and prompt", source)
    return examples


def load_playground_examples(path: str | Path | None = None) -> list[PlaygroundExample]:
    """The examples in ``path`` (default: the shipped ``prompts/playground_examples.yaml``), in file order."""
    path = Path(path) if path is not None else default_examples_path()
    return parse_playground_examples(read_text_file(path, MAX_EXAMPLES_BYTES, "examples file"), str(path))


def examples_by_category(examples: list[PlaygroundExample]) -> dict[str, list[PlaygroundExample]]:
    """Examples grouped by category, categories in order of first appearance."""
    groups: dict[str, list[PlaygroundExample]] = {}
    for example in examples:
        groups.setdefault(example.category, []).append(example)
    return groups
