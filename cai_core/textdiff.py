"""Word-level diffs of model text, as plain data (rendering stays the caller's job)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

_TOKEN = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class DiffSegment:
    kind: str  # "same", "removed" or "added"
    text: str


def word_diff(old: str, new: str) -> list[DiffSegment]:
    """Segments that turn ``old`` into ``new``, splitting on words and keeping whitespace."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    segments: list[DiffSegment] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            segments.append(DiffSegment("same", "".join(a[i1:i2])))
            continue
        if tag in ("delete", "replace"):
            segments.append(DiffSegment("removed", "".join(a[i1:i2])))
        if tag in ("insert", "replace"):
            segments.append(DiffSegment("added", "".join(b[j1:j2])))
    return segments


def render_wdiff(segments: list[DiffSegment]) -> str:
    """The classic ``wdiff`` notation: ``[-removed-]{+added+}``; safe to show as plain text."""
    parts = []
    for segment in segments:
        if segment.kind == "same":
            parts.append(segment.text)
        elif segment.kind == "removed":
            parts.append(f"[-{segment.text}-]")
        else:
            parts.append(f"{{+{segment.text}+}}")
    return "".join(parts)


def diff_stats(segments: list[DiffSegment]) -> dict[str, int]:
    counts = {"same": 0, "removed": 0, "added": 0}
    for segment in segments:
        counts[segment.kind] += len(segment.text.split())
    return counts
