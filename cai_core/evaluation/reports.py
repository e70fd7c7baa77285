"""The reports that can be compared, and what a comparison shows of them.

A report is named by a ``ReportRef``: an evaluation's ``report.json`` (id ``eval:NAME``), a round of
an iterative loop (``loop:NAME/K``, round 0 being its starting model) or a report uploaded from
elsewhere, say from ``cai eval --out`` (``file:STEM``). The id is what a page keeps in its state;
the path is where the report is; the label is how a reader knows it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..atomic import write_bytes_atomic
from ..training.runs import model_label
from .loop import loops_dir, round_numbers, round_report_path
from .report_model import REPORT_FILE, read_report
from .run import evaluations_dir
from .suites import EvaluationError
from .tax import alignment_tax

EVALUATION, LOOP, UPLOAD = "eval", "loop", "file"
KINDS = ("capability", "safety")
# What every comparison (compare_reports) holds, so `cai tax --json` knows one it may replace.
COMPARISON_KEYS = frozenset({"base", "aligned", "all", "capability", "safety"})


@dataclass(frozen=True)
class ReportRef:
    """One report that can be compared: where it is and how it is called."""

    id: str
    path: Path
    label: str
    origin: str  # EVALUATION, LOOP or UPLOAD
    loop: str | None = None
    round: int | None = None

    @property
    def slug(self) -> str:
        """The report's name in a downloaded file's name."""
        return f"{self.loop}-round-{self.round}" if self.origin == LOOP else self.id.split(":", 1)[1]

    @property
    def where(self) -> str:
        return {UPLOAD: " (uploaded)", LOOP: " (loop)"}.get(self.origin, "")


def uploaded_reports_dir() -> Path:
    """Uploaded reports are kept here; with no spec.json it is not an evaluation."""
    return evaluations_dir() / ".uploaded"


def evaluation_report(name: str) -> ReportRef:
    return ReportRef(f"{EVALUATION}:{name}", evaluations_dir() / name / REPORT_FILE, name, EVALUATION)


def loop_round_report(loop: str, round_number: int) -> ReportRef:
    label = f"{loop} · {'start' if round_number == 0 else f'round {round_number}'}"
    return ReportRef(f"{LOOP}:{loop}/{round_number}", round_report_path(loops_dir() / loop, round_number), label,
                     LOOP, loop, round_number)


def uploaded_report(stem: str) -> ReportRef:
    return ReportRef(f"{UPLOAD}:{stem}", uploaded_reports_dir() / f"{stem}.json", stem, UPLOAD)


def report_ref(ref_id: str) -> ReportRef:
    """The report an id names (``eval:NAME``, ``loop:NAME/K`` or ``file:STEM``)."""
    origin, _, rest = ref_id.partition(":")
    if origin == EVALUATION and rest:
        return evaluation_report(rest)
    if origin == UPLOAD and rest:
        return uploaded_report(rest)
    loop, _, number = rest.rpartition("/")
    if origin == LOOP and loop and number.isdigit():
        return loop_round_report(loop, int(number))
    raise EvaluationError(f"{ref_id!r} names no report; use eval:NAME, loop:NAME/ROUND or file:NAME")


def loop_round_reports() -> list[ReportRef]:
    """Every round of every loop that has its evaluation report, loop by loop and round by round."""
    root = loops_dir()
    # Every loop folder, even one whose spec.json is gone: its rounds' reports are still reports.
    folders = sorted(path for path in root.iterdir() if path.is_dir()) if root.is_dir() else []
    return [ref for folder in folders
            for ref in (loop_round_report(folder.name, number) for number in round_numbers(folder))
            if ref.path.is_file()]


def list_reports(evaluations: Iterable[Path], ended: Callable[[Path], bool]) -> list[ReportRef]:
    """The reports that can be compared: the evaluations (in the order given) that wrote one and
    have ended, the rounds of iterative loops, then the uploads."""
    refs = [evaluation_report(folder.name) for folder in evaluations
            if (folder / REPORT_FILE).is_file() and ended(folder)]
    refs += sorted(loop_round_reports(), key=lambda ref: (ref.loop, ref.round))
    uploads = uploaded_reports_dir()
    if uploads.is_dir():
        refs += [uploaded_report(path.stem) for path in sorted(uploads.glob("*.json"))]
    return refs


def reports_by_loop(refs: Iterable[ReportRef]) -> dict[str, list[ReportRef]]:
    """Each loop's reports in round order (the start, round 0, first)."""
    found: dict[str, list[ReportRef]] = {}
    for ref in refs:
        if ref.origin == LOOP:
            found.setdefault(ref.loop, []).append(ref)
    return {loop: sorted(rounds, key=lambda ref: ref.round) for loop, rounds in found.items()}


def report_model(report: dict | None) -> str:
    """The model a report scored, as a reader knows it."""
    model = (report or {}).get("model") or {}
    return str(model.get("label") or (report or {}).get("model_label") or model_label(model.get("spec")))


def has_adapters(report: dict | None) -> bool:
    return bool(((report or {}).get("model") or {}).get("adapters"))


def default_pair(refs: list[ReportRef], read: Callable[[ReportRef], dict | None]) -> tuple[ReportRef, ReportRef]:
    """(base, aligned) to compare first, of at least two reports. Aligned: the newest report of a
    model with adapters (else the newest); base: the newest without. Evaluations come newest first
    and a loop's rounds in round order, so its last round is its newest."""
    ordered = ([ref for ref in refs if ref.origin != LOOP] + [ref for ref in reversed(refs) if ref.origin == LOOP])
    reports = {ref: read(ref) for ref in ordered}
    aligned = next((ref for ref in ordered if has_adapters(reports[ref])), ordered[0])
    others = [ref for ref in ordered if ref != aligned]
    base = next((ref for ref in others if not has_adapters(reports[ref])), others[0])
    return base, aligned


def upload_stem(file_name: str) -> str:
    """The name an uploaded report is kept under: the file's stem, in letters, digits, '-', '_', '.'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(file_name).stem).strip("-.") or "report"


def keep_uploaded_report(folder: Path, stem: str, data: bytes) -> Path:
    """Save an uploaded report as ``STEM.json``, or ``STEM-2.json``...: a report already kept
    under that name with other content is never replaced (the same content again reuses its file).

    Each name is claimed with an exclusive hard link, so two uploads at the same moment cannot
    take the same name either.
    """
    folder = Path(folder)
    staged = folder / f".staged-{os.getpid()}-{time.time_ns()}.upload"
    write_bytes_atomic(staged, data)
    try:
        for number in range(1, 1000):
            target = folder / (f"{stem}.json" if number == 1 else f"{stem}-{number}.json")
            try:
                os.link(staged, target)
                return target
            except FileExistsError:
                if target.is_file() and target.read_bytes() == data:
                    return target
    finally:
        staged.unlink(missing_ok=True)
    raise EvaluationError(f"too many uploaded reports are named {stem}.json; rename the file")


def save_uploaded_report(file_name: str, data: bytes) -> tuple[ReportRef, dict]:
    """Keep an uploaded file that reads as a report; otherwise one EvaluationError sentence that
    names the file as the user called it."""
    file_name = Path(file_name).name
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / file_name
        path.write_bytes(data)
        try:
            report = read_report(path)
        except EvaluationError as error:
            text = str(error).replace(str(path), file_name)
            problem = EvaluationError(text if text.endswith(".") else text + ".")
            problem.path = file_name  # the sentence starts with the file's name, as the user wrote it
            raise problem from None
    kept = keep_uploaded_report(uploaded_reports_dir(), upload_stem(file_name), data)
    return uploaded_report(kept.stem), report


# ---------------------------------------------------------------- items of a report


def item_prompts() -> dict[str, str]:
    """The question of each item whose report does not keep it (multiple choice, HumanEval), by id."""
    from .suites import humaneval_problems, knowledge_items

    prompts = {}
    try:
        for item in knowledge_items():
            choices = "\n".join(f"{letter}. {text}" for letter, text in zip("ABCD", item.get("choices", [])))
            prompts[item["id"]] = f"{item['question']}\n{choices}"
    except (EvaluationError, KeyError, TypeError):
        pass
    try:
        prompts.update({problem["task_id"]: problem["prompt"] for problem in humaneval_problems()})
    except EvaluationError:
        pass
    return prompts


def item_verdict(item: dict) -> str:
    """What the suite made of one answer, in words."""
    if "correct" in item:
        got = item.get("extracted", item.get("predicted"))
        detail = f" (expected {item.get('expected')}, got {got if got is not None else 'nothing'})"
        return ("correct" if item["correct"] else "wrong") + detail
    if "passed" in item and "principle" in item:  # the principles suite: its checks and expectations, with the reason
        return f"{'passed' if item['passed'] else 'failed'} · {item.get('principle')}: {item.get('reason') or '—'}"
    if "passed" in item:
        return "passed its tests" if item["passed"] else f"failed ({item.get('status', '?')})"
    if "refused" in item:
        return "refused" if item["refused"] else "answered"
    return "—"


def item_answer(item: dict) -> str:
    if "answer" in item:
        return item["answer"]
    if "predicted" in item:
        return f"option {item['predicted']}"
    return ""


def common_items(reports: list[dict], suite: str) -> tuple[list[dict], list]:
    """Each report's items of ``suite`` by id, and the ids every report has, in the first one's order."""
    by_id = [{item.get("id", index): item for index, item in enumerate(report["suites"][suite].get("items") or [])}
             for report in reports]
    return by_id, [item_id for item_id in by_id[0] if all(item_id in items for items in by_id)]


# ---------------------------------------------------------------- tables of a report and a comparison


def suite_row(name: str, suite: dict) -> dict:
    """One suite's score as a table row."""
    low, high = suite.get("ci_low"), suite.get("ci_high")
    return {"suite": name, "kind": suite.get("kind", "?"), "score (%)": round(float(suite["score"]), 1),
            "95% interval": f"{low:.1f}–{high:.1f}" if isinstance(low, (int, float)) and isinstance(high, (int, float))
            else "—", "n": suite.get("n", "?"), "metric": suite.get("metric", "?"),
            "better": "higher" if suite.get("higher_is_better", True) else "lower", "version": suite.get("version", "?")}


def comparison_rows(comparison: dict, base: dict, aligned: dict) -> list[dict]:
    """The tax per benchmark, as table rows."""
    from .. import charts

    rows = []
    for name, entry in comparison["all"]["per_benchmark"].items():
        before, after = base["suites"][name], aligned["suites"][name]
        rows.append({
            "benchmark": name, "kind": before.get("kind", "?"), "base": round(entry["base"], 1),
            "aligned": round(entry["aligned"], 1), "change (points)": round(entry["change"], 1),
            "tax (%)": None if entry["tax_percent"] is None else round(entry["tax_percent"], 1),
            "in words": charts.tax_words(entry), "better": "higher" if entry["higher_is_better"] else "lower",
            "base 95% interval": f"{before.get('ci_low', 0):.1f}–{before.get('ci_high', 0):.1f}",
            "aligned 95% interval": f"{after.get('ci_low', 0):.1f}–{after.get('ci_high', 0):.1f}",
            "n (base / aligned)": f"{before.get('n', '?')} / {after.get('n', '?')}",
        })
    return rows


def average_words(part: dict, kind: str) -> str:
    """A part of a comparison's average tax in words."""
    if not part["per_benchmark"]:
        return f"no {kind} suite in both reports"
    if part["average_tax_percent"] is None:
        return "no percentage (base 0)"
    return part["average_words"]


def average_gain(part: dict) -> float | None:
    """The mean change in points, turned round where lower is better, so that above 0 is better."""
    changes = [e["change"] if e["higher_is_better"] else -e["change"] for e in part["per_benchmark"].values()]
    return sum(changes) / len(changes) if changes else None


def direction_counts(part: dict) -> str:
    """How many benchmarks of a part got worse, better or stayed, in words."""
    from .. import charts

    directions = [charts.tax_direction(entry) for entry in part["per_benchmark"].values()]
    counts = [f"{directions.count(d)} {d}{'' if directions.count(d) == 1 else 's'}"
              for d in ("regression", "improvement") if directions.count(d)]
    same = directions.count("no change")
    return ", ".join(counts + ([f"{same} unchanged"] if same else [])) or "nothing to compare"


def settings_differ(base: dict, aligned: dict) -> list[tuple[str, object, object]]:
    """(setting, base's, aligned's) for each setting (limit, seed) the two reports were scored with
    differently: they may not score the same items."""
    settings = [report.get("settings") or {} for report in (base, aligned)]
    return [(name, settings[0].get(name), settings[1].get(name))
            for name in ("limit", "seed") if settings[0].get(name) != settings[1].get(name)]


# ---------------------------------------------------------------- the comparison (the alignment tax, `cai tax`)


def scores(report: dict, kind: str | None = None) -> dict[str, float]:
    return {name: suite["score"] for name, suite in report["suites"].items() if kind is None or suite.get("kind") == kind}


def compare_reports(base: dict, aligned: dict) -> dict:
    """The alignment tax between two reports: all suites, and capability and safety apart, so
    one large safety gain cannot hide capability losses in the average."""
    lower = [name for name, suite in {**base["suites"], **aligned["suites"]}.items() if not suite.get("higher_is_better", True)]
    return {
        "base": base.get("model_label") or base.get("model", {}).get("spec"),
        "aligned": aligned.get("model_label") or aligned.get("model", {}).get("spec"),
        "all": alignment_tax(scores(base), scores(aligned), lower),
        "capability": alignment_tax(scores(base, "capability"), scores(aligned, "capability"), lower),
        "safety": alignment_tax(scores(base, "safety"), scores(aligned, "safety"), lower),
    }


def check_comparison_path(path: Path) -> None:
    """A file ``cai tax --json`` would replace: only a comparison this tool wrote, never another file."""
    path = Path(path)
    if path.is_dir():
        raise EvaluationError(f"{path} is a folder; give a file name for the comparison")
    if not path.exists():
        return
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        existing = None
    if not isinstance(existing, dict) or not COMPARISON_KEYS <= set(existing):
        raise EvaluationError(f"{path} already exists and is not a comparison this tool wrote, so it was left as it is; "
                              "give a new file name")
