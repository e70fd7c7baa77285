"""The alignment tax: what training for the constitution cost (or bought) on each benchmark.

Per benchmark, tax = (base - aligned) / base x 100, for scores where higher is better: a positive
tax is a regression, a negative one an improvement. For a benchmark where lower is better (the
over-refusal rate) the sign is turned round, so a positive tax always means "got worse".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

REGRESSION, IMPROVEMENT, NO_CHANGE = "regression", "improvement", "no change"


def tax_percent(base: float, aligned: float, higher_is_better: bool = True) -> float | None:
    """The tax in percent of the base score; None when the base score is 0 (no percentage of nothing)."""
    if base == 0:
        return None
    tax = (base - aligned) / abs(base) * 100.0
    return tax if higher_is_better else -tax


def direction(tax: float | None) -> str:
    if tax is None or abs(tax) < 1e-9:
        return NO_CHANGE
    return REGRESSION if tax > 0 else IMPROVEMENT


def describe(tax: float | None) -> str:
    """The tax in words: "2.1% regression", "35.3% improvement", "no change"."""
    if tax is None:
        return "undefined (the base score is 0)"
    if direction(tax) == NO_CHANGE:
        return NO_CHANGE
    return f"{abs(tax):.1f}% {direction(tax)}"


def alignment_tax(base_scores: Mapping[str, float], aligned_scores: Mapping[str, float],
                  lower_is_better: Iterable[str] = ()) -> dict:
    """The tax per benchmark both dicts score, and its average over the benchmarks where it is defined.

    >>> alignment_tax({"MMLU": 65.2}, {"MMLU": 63.8})["per_benchmark"]["MMLU"]["words"]
    '2.1% regression'
    """
    lower = set(lower_is_better)
    per_benchmark = {}
    for name in base_scores:
        if name not in aligned_scores:
            continue
        base, aligned = float(base_scores[name]), float(aligned_scores[name])
        higher_is_better = name not in lower
        tax = tax_percent(base, aligned, higher_is_better)
        change = aligned - base
        words, way = describe(tax), direction(tax)
        if tax is None:
            # A rate that starts at 0 (a base model's refusals) has no percentage, but its change is real.
            way = direction(-change if higher_is_better else change)
            words = NO_CHANGE if way == NO_CHANGE else f"{abs(change):.1f} points {way} (from a base of 0)"
        per_benchmark[name] = {"base": base, "aligned": aligned, "change": change, "tax_percent": tax,
                               "direction": way, "words": words, "higher_is_better": higher_is_better}
    defined = [entry["tax_percent"] for entry in per_benchmark.values() if entry["tax_percent"] is not None]
    average = sum(defined) / len(defined) if defined else None
    if not per_benchmark:
        words = "no benchmark in common"
    elif average is None:
        words = "undefined (every base score is 0)"
    else:
        # A benchmark that moved from a base of 0 has no percentage to average; name it, or a mean
        # of "improvements" hides it (over-refusal rising from 0 is the usual case).
        left_out = [name for name, entry in per_benchmark.items()
                    if entry["tax_percent"] is None and entry["direction"] != NO_CHANGE]
        words = describe(average) + (f" (without {', '.join(left_out)}: base 0)" if left_out else "")
    return {"per_benchmark": per_benchmark, "average_tax_percent": average, "average_words": words}
