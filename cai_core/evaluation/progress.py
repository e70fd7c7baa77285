"""How far a running evaluation has got, from its folder: the suites it wrote and its progress.json."""

from __future__ import annotations

from pathlib import Path

from ..jobs import read_json


def suites_done(folder: Path) -> int:
    """How many suites the evaluation in ``folder`` has finished (each writes suites/NAME.json)."""
    suites = Path(folder) / "suites"
    return sum(1 for _ in suites.glob("*.json")) if suites.is_dir() else 0


def finished_suites(folder: Path) -> list[dict]:
    """The suites the evaluation in ``folder`` has scored so far (each its suites/NAME.json), by name;
    a file without a numeric score is left out."""
    found = []
    suites = Path(folder) / "suites"
    for path in sorted(suites.glob("*.json")) if suites.is_dir() else []:
        data = read_json(path)
        if data and isinstance(data.get("score"), (int, float)):
            found.append({**data, "name": str(data.get("name") or path.stem)})
    return found


def current_suite(spec: dict, done_suites: int) -> str | None:
    """The suite being scored: suites run in order, so the first not finished."""
    planned = spec.get("suites") or []
    return planned[done_suites] if done_suites < len(planned) else None


def live_progress(spec: dict, progress: dict, done_suites: int) -> tuple[float, str]:
    """(fraction, text) of a running evaluation. progress.json names the suite being scored only
    after its first batch, so until then it is shown as starting rather than as the finished suite
    before it at 100%."""
    planned = spec.get("suites") or []
    if not planned or done_suites >= len(planned):
        return 1.0 if planned else 0.0, progress.get("stage") or "writing the report…"
    current = planned[done_suites]
    stage, done, total = progress.get("stage") or "", progress.get("done", 0), progress.get("total", 0)
    where = f"{current} (suite {done_suites + 1} of {len(planned)})"
    if stage.startswith(f"{current} (") and total:
        items = f"{total} item{'' if total == 1 else 's'}"
        return (done_suites + min(1.0, done / total)) / len(planned), f"{where} · {done} of {items}"
    if stage == "loading the model" or not stage:
        return done_suites / len(planned), f"{where} · {stage or 'starting the evaluation process'}…"
    return done_suites / len(planned), f"{where} · generating the first batch…"


def scoring_current_suite(spec: dict, progress: dict, done_suites: int) -> bool:
    """True once progress.json speaks of the suite being scored (its times are that suite's)."""
    current = current_suite(spec, done_suites)
    return bool(current) and (progress.get("stage") or "").startswith(f"{current} (")
