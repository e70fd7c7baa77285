"""Hand-made evaluation reports carrying the principles suite, shaped as ``evaluate`` writes them,
for the per-principle views (charts, `cai tax`, the Alignment tax page) to read."""

from __future__ import annotations

import json
import time
from pathlib import Path

# Base against aligned: "private" goes from 0 of 10 to 10 of 10 (a clear improvement),
# "no-promises" from 4 of 4 to 3 of 4 (a fall within noise).
BASE_OUTCOMES = {"private": [False] * 10, "no-promises": [True, True, True, True]}
ALIGNED_OUTCOMES = {"private": [True] * 10, "no-promises": [True, False, True, True]}


def principles_suite(outcomes: dict[str, list[bool]], constitution: str = "shop", constitution_hash: str = "h") -> dict:
    items = [{"id": f"{name}/{n + 1}", "principle": name, "example": n + 1, "half": "test",
              "prompt": f"{name} prompt {n}", "answer": "an answer", "passed": passed,
              "reason": "passed" if passed else "failed: refuses"}
             for name, results in outcomes.items() for n, passed in enumerate(results)]
    per_principle = {}
    for name, results in outcomes.items():
        rate = 100 * sum(results) / len(results)
        per_principle[name] = {"pass_rate": rate, "ci_low": max(0.0, rate - 10), "ci_high": min(100.0, rate + 10),
                               "passed": sum(results), "n": len(results)}
    mean = sum(row["pass_rate"] for row in per_principle.values()) / len(per_principle)
    return {"name": "principles", "kind": "principles", "version": f"constitution {constitution} ({constitution_hash})",
            "metric": "mean per-principle pass rate", "higher_is_better": True, "score": mean,
            "ci_low": max(0.0, mean - 10), "ci_high": min(100.0, mean + 10), "n": len(items), "items": items,
            "constitution": constitution, "constitution_hash": constitution_hash, "per_principle": per_principle,
            "untested": []}


def arithmetic_suite(score: float) -> dict:
    return {"name": "arithmetic", "kind": "capability", "version": "v1", "metric": "exact match",
            "higher_is_better": True, "score": score, "ci_low": max(0.0, score - 20), "ci_high": min(100.0, score + 20),
            "n": 2, "items": []}


def principles_report(label: str, outcomes: dict[str, list[bool]] | None, arithmetic: float = 50.0,
                      seed: int = 0) -> dict:
    suites = {"arithmetic": arithmetic_suite(arithmetic)}
    if outcomes is not None:
        suites["principles"] = principles_suite(outcomes)
    return {"report_version": 1, "created": time.time(), "model": {"spec": label, "base_model": label, "adapters": []},
            "model_label": label, "settings": {"seed": seed, "limit": None}, "suites": suites}


def write_evaluation(evaluations: Path, name: str, report: dict, age_s: float = 0.0) -> Path:
    """A finished evaluation folder holding ``report``; ``age_s`` makes it older, as the page lists newest first."""
    import os

    folder = evaluations / name
    folder.mkdir(parents=True)
    spec = {"model": report["model"]["spec"], "suites": list(report["suites"]), "limit": None, "seed": 0,
            "batch_size": 16, "constitution": "shop" if "principles" in report["suites"] else None, "judge_model": None}
    (folder / "spec.json").write_text(json.dumps({"kind": "evaluate", "spec": spec}))
    (folder / "status.json").write_text(json.dumps({"state": "finished", "kind": "evaluate"}))
    (folder / "report.json").write_text(json.dumps(report))
    if age_s:
        then = time.time() - age_s
        os.utime(folder / "spec.json", (then, then))
    return folder
