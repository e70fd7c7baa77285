"""The harmlessness win rate as a job: the constitution's judge compares two reports' red-team answers.

Judging every red-team answer under every principle in both orders takes minutes on a CPU, so it
runs in its own process like any long work (cai_core.jobs) and the page polls it. The job folder
is named by a hash of what it judges (both reports' contents, the constitution, the judge model),
so asking again for the same comparison finds the finished result instead of judging twice, and
a changed report or constitution is judged afresh. The inputs are copied into the folder before
the worker starts, so a resumed job judges exactly what was asked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..atomic import write_text_atomic
from ..constitution import ConstitutionError
from ..errors import CaiError
from ..jobs import FINISHED, Reporter, read_job, read_json, start_job, write_json
from ..paths import cai_home
from .run import NO_SHARED_REFUSAL, judge_harmlessness, read_report, shared_refusal_ids
from .suites import EvaluationError

RESULT_FILE = "harmlessness.json"
# Each principle's verdicts as soon as it is judged, so a stopped or killed job resumes at the next.
JUDGED_FILE = "judged_principles.json"
BASE_FILE, ALIGNED_FILE, CONSTITUTION_FILE = "base_report.json", "aligned_report.json", "constitution.yaml"


class HarmlessnessSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_report: str
    aligned_report: str
    constitution: str
    judge_model: str = "default"
    batch_size: int = Field(default=16, ge=1, le=1024)


def judgements_dir() -> Path:
    return cai_home() / "harmlessness"


def _inputs(spec: HarmlessnessSpec) -> tuple[dict, dict, str, Path]:
    """(base report, aligned report, constitution YAML, the job folder for exactly these inputs)."""
    from ..store import constitution_to_yaml, load_constitution

    base, aligned = read_report(spec.base_report), read_report(spec.aligned_report)
    try:
        constitution = load_constitution(spec.constitution)
    except ConstitutionError as error:
        raise EvaluationError(str(error)) from None
    constitution_text = constitution_to_yaml(constitution)
    key = json.dumps([base, aligned, constitution_text, spec.judge_model, spec.batch_size], sort_keys=True)
    return base, aligned, constitution_text, judgements_dir() / hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def harmlessness_folder(spec: HarmlessnessSpec) -> Path:
    """Where this comparison's judgement is (or would be) kept; nothing is written."""
    return _inputs(spec)[3]


def start_harmlessness(spec: HarmlessnessSpec) -> Path:
    """Check the inputs, snapshot them, and start the judge in its own process (unless this exact
    comparison was judged already or is being judged); returns the job folder. Bad inputs are one
    sentence, and nothing is written for them."""
    from ..data import GenerationSpec, check_model_specs
    from ..store import parse_constitution

    base, aligned, constitution_text, folder = _inputs(spec)
    if not shared_refusal_ids(base, aligned):
        raise EvaluationError(NO_SHARED_REFUSAL)
    if not any(p.enabled for p in parse_constitution(constitution_text, spec.constitution).principles):
        raise EvaluationError(f"the constitution {spec.constitution!r} has no enabled principle to judge by")
    try:
        check_model_specs(GenerationSpec(constitution=spec.constitution, prompt_sources=["red_team"],
                                         policy_model=spec.judge_model))
    except CaiError as error:  # a missing constitution, a model that cannot exist
        raise EvaluationError(str(error)) from None
    state = read_job(folder) if (folder / "spec.json").is_file() else None
    if state is not None and (state.state == FINISHED or state.active):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / BASE_FILE, base)
    write_json(folder / ALIGNED_FILE, aligned)
    write_text_atomic(folder / CONSTITUTION_FILE, constitution_text)
    start_job(folder, "harmlessness", spec.model_dump())
    return folder


def run_harmlessness_job(folder: Path, spec_data: dict, reporter: Reporter) -> None:
    """The job runner (see cai_core.jobs)."""
    from ..models import load_model
    from ..store import parse_constitution

    folder = Path(folder)
    spec = HarmlessnessSpec.model_validate(spec_data)
    base, aligned = read_json(folder / BASE_FILE), read_json(folder / ALIGNED_FILE)
    constitution = parse_constitution((folder / CONSTITUTION_FILE).read_text(encoding="utf-8"), str(folder / CONSTITUTION_FILE))
    reporter.progress(0, 0, "loading the judge", force=True)
    judge = load_model(spec.judge_model)

    def progress(done: int, total: int, principle: str) -> None:
        reporter.progress(done, total, f"judging under {principle}" if done < total else "done", force=True)
        reporter.check_stop()

    judged = read_json(folder / JUDGED_FILE) or {}
    if judged:
        reporter.note(f"resuming: {len(judged)} principle(s) judged before are kept")

    def keep(principle: str, verdicts: list) -> None:
        judged[principle] = verdicts
        write_json(folder / JUDGED_FILE, judged)

    result = judge_harmlessness(judge, constitution, base, aligned, spec.batch_size, on_progress=progress,
                                judged_before=judged, on_principle_judged=keep)
    result["base_model"] = base.get("model", {})
    result["aligned_model"] = aligned.get("model", {})
    write_json(folder / RESULT_FILE, result)


def read_harmlessness(folder: Path) -> dict | None:
    """The finished result, or None while there is none."""
    return read_json(Path(folder) / RESULT_FILE)
