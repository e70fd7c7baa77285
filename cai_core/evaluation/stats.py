"""Confidence intervals for suite scores: a percentile bootstrap over the items."""

from __future__ import annotations

import random
from collections.abc import Sequence


def bootstrap_interval(values: Sequence[float], confidence: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """The (low, high) interval of the mean of ``values``; (mean, mean) for fewer than two items.

    Resampling the items (not assuming a normal score) is what lm-evaluation-harness does for
    metrics without a closed form, and it stays honest for the small N of a quick run.
    """
    if not values:
        return (0.0, 0.0)
    mean = sum(values) / len(values)
    if len(values) < 2:
        return (mean, mean)
    rng = random.Random(seed)
    size = len(values)
    means = sorted(sum(rng.choices(values, k=size)) / size for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    return (means[int(tail * (resamples - 1))], means[int((1.0 - tail) * (resamples - 1))])


def stratified_bootstrap_interval(groups: Sequence[Sequence[float]], confidence: float = 0.95, resamples: int = 2000,
                                  seed: int = 0) -> tuple[float, float]:
    """The (low, high) interval of the mean of the groups' means, each group resampled on its own.

    For a score that averages per-group rates (the mean per-principle pass rate), so a principle
    with many examples counts once, as in the score, and each bootstrap draw keeps every group.
    """
    groups = [list(group) for group in groups if group]
    if not groups:
        return (0.0, 0.0)
    mean = sum(sum(g) / len(g) for g in groups) / len(groups)
    if all(len(g) < 2 for g in groups):
        return (mean, mean)
    rng = random.Random(seed)
    means = sorted(sum(sum(rng.choices(g, k=len(g))) / len(g) for g in groups) / len(groups)
                   for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    return (means[int(tail * (resamples - 1))], means[int((1.0 - tail) * (resamples - 1))])
