"""The dataset card: README.md (a Hugging Face dataset card) and card.json, with counts, the
models in each role, the judge's statistics, the settings and the constitution as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..atomic import write_text_atomic
from ..jobs import read_json, write_json
from .ledger import read_rows
from .rows import (BEST_OF_N_PAIRS_FILE, CONSTITUTION_FILE, DONE_FILE, JUDGEMENTS_FILE, PROMPTS_FILE, REVISION_PAIRS_FILE,
                   RLAIF_PAIRS_FILE, ROW_FILES, SAMPLES_FILE, SFT_FILE, TRACES_FILE, TRAINING_FILES)
from .spec import GenerationSpec, model_roles, prompt_set_stem

def dataset_summary(folder: Path) -> dict:
    folder = Path(folder)
    counts = {name: len(read_rows(folder / name)) for name in ROW_FILES}
    judgements = read_rows(folder / JUDGEMENTS_FILE)
    spec = (read_json(folder / "spec.json") or {}).get("spec", {})
    summary = {
        "name": folder.name,
        "prompts": len(read_rows(folder / PROMPTS_FILE)),
        "done": len(read_rows(folder / DONE_FILE)),
        "rows": counts,
        "prompt_stats": read_json(folder / "prompt_stats.json") or {},
        "spec": spec,
        "roles": dataset_roles(folder, spec),
    }
    if judgements:
        summary["judge"] = {
            "pairs_judged": len(judgements),
            "pairs_kept": sum(j["kept"] for j in judgements),
            "pairs_dropped_low_confidence": sum(not j["kept"] for j in judgements),
            "mean_confidence": sum(j["confidence"] for j in judgements) / len(judgements),
            "orders_disagree_share": sum(j["judge"]["orders_disagree"] for j in judgements) / len(judgements),
            "methods": sorted({j["judge"]["method"] for j in judgements}),
        }
    return summary


def dataset_roles(folder: Path, spec: dict) -> dict[str, str | None]:
    """Which model played which role: as the rows record it (resolved ids), else as the spec names it."""
    if not isinstance(spec, dict):  # a spec.json edited into something else names no model
        return {"policy": None, "critic": None, "judge": None}
    for name in (TRACES_FILE, SFT_FILE, RLAIF_PAIRS_FILE, BEST_OF_N_PAIRS_FILE):
        row = _first_row(folder / name)
        if isinstance(row, dict) and isinstance(row.get("lineage"), dict):
            roles = row["lineage"].get("roles")
            if isinstance(roles, dict):
                return {role: roles.get(role) for role in ("policy", "critic", "judge")}
    try:
        return model_roles(GenerationSpec.model_validate(spec))
    except ValidationError:
        return {"policy": spec.get("policy_model"), "critic": spec.get("critic_model"), "judge": spec.get("judge_model")}


def _first_row(path: Path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return json.loads(handle.readline())
    except (OSError, json.JSONDecodeError, RecursionError):
        return None


def roles_card_lines(roles: dict[str, str | None]) -> list[str]:
    """The card's "Models" section: who played which role, and what an external critic's rows are."""
    policy, critic, judge = roles.get("policy"), roles.get("critic"), roles.get("judge")
    lines = ["## Models", "", "| role | model | what it wrote |", "|---|---|---|",
             f"| policy | `{policy}` | the first answers, and the sampled answers that pairs are made from |"]
    if critic:
        lines.append(f"| critic | `{critic}` | every critique and every revision |")
    if judge:
        lines.append(f"| judge | `{judge}` | the choice between the two answers of each RLAIF pair |")
    lines.append("")
    if critic and critic != policy:
        lines += [f"The critiques and revisions come from an external critic, `{critic}`, not from the policy: the "
                  "SFT rows (and the chosen side of the revision pairs) are that model's text, so training on them "
                  f"is distillation from `{critic}` under this constitution. They carry its abilities and its "
                  "mistakes, and its terms of use apply to them.", ""]
    elif critic:
        lines += ["The policy critiqued and revised its own answers (self-critique).", ""]
    return lines


def write_card(folder: Path) -> None:
    """README.md (a Hugging Face dataset card: ``load_dataset(folder, "sft")`` works) and card.json."""
    folder = Path(folder)
    summary = dataset_summary(folder)
    write_json(folder / "card.json", summary)
    configs = [{"config_name": name.removesuffix(".jsonl"), "data_files": name}
               for name in TRAINING_FILES if summary["rows"][name]]
    front = yaml.safe_dump({"configs": configs, "tags": ["constitutional-ai", "rlaif", "synthetic"]}, sort_keys=False)
    constitution_text = (folder / CONSTITUTION_FILE).read_text(encoding="utf-8") if (folder / CONSTITUTION_FILE).exists() else ""
    spec = summary["spec"]
    lines = [
        "---", front.strip(), "---", "",
        f"# {folder.name}", "",
        f"Made with Constitution Studio from the constitution `{spec.get('constitution', '?')}` over "
        f"{summary['prompts']} prompts ({', '.join(spec.get('prompt_sources', []))}); "
        f"{summary['done']} of {summary['prompts']} prompts are done.", "",
        "## Files", "",
        "| file | rows | what |", "|---|---|---|",
        f"| {SFT_FILE} | {summary['rows'][SFT_FILE]} | SFT rows: the prompt and the final revision, or the best-of-N answer (`messages`) |",
        f"| {TRACES_FILE} | {summary['rows'][TRACES_FILE]} | each SFT row's whole critique and revision trace |",
        f"| {REVISION_PAIRS_FILE} | {summary['rows'][REVISION_PAIRS_FILE]} | pairs: chosen = final revision, rejected = first answer |",
        f"| {RLAIF_PAIRS_FILE} | {summary['rows'][RLAIF_PAIRS_FILE]} | AI-judged pairs with the soft label `label` = P(chosen is better) |",
        f"| {JUDGEMENTS_FILE} | {summary['rows'][JUDGEMENTS_FILE]} | every judged pair, kept or dropped |",
        f"| {BEST_OF_N_PAIRS_FILE} | {summary['rows'][BEST_OF_N_PAIRS_FILE]} | pairs: a sample the "
        f"{'constitution verifier' if spec.get('verifier') == 'constitution' else 'refusal rule'} passes over one it fails |",
        f"| {SAMPLES_FILE} | {summary['rows'][SAMPLES_FILE]} | every best-of-N sample with its verdict |", "",
    ]
    lines += roles_card_lines(summary["roles"])
    stats = summary["prompt_stats"]
    if stats:
        lines += ["## Prompts", "", f"{stats.get('duplicates_removed', 0)} duplicates removed, "
                  f"{stats.get('blank_lines', 0)} blank lines skipped. By category: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(stats.get("categories", {}).items())) + ".", ""]
    if spec.get("verifier") == "constitution":
        lines += verifier_card_lines(folder, spec, summary["roles"])
    if "judge" in summary:
        judge = summary["judge"]
        lines += ["## Judge", "",
                  f"{judge['pairs_judged']} pairs judged ({', '.join(judge['methods'])}), {judge['pairs_kept']} kept, "
                  f"{judge['pairs_dropped_low_confidence']} dropped under the confidence threshold "
                  f"{spec.get('min_confidence')}. Mean confidence {judge['mean_confidence']:.3f}; the two orders "
                  f"preferred different answers in {judge['orders_disagree_share']:.1%} of pairs.", ""]
    lines += ["## Settings", "", "```yaml", yaml.safe_dump(spec, sort_keys=False).strip(), "```", "",
              "## The constitution as it was", "", "```yaml", constitution_text.strip(), "```", "",
              "Every row carries `lineage`: the constitution's name and content hash, the principles used, "
              "the model ids (`roles`: which model was the policy, the critic and the judge), the seed and the generation settings.", ""]
    write_text_atomic(folder / "README.md", "\n".join(lines))


def verifier_card_lines(folder: Path, spec: dict, roles: dict[str, str | None]) -> list[str]:
    """The card's "Verifier" section: what the constitution verifier held samples to, and what failed most."""
    from collections import Counter

    from .verifier import failed_assertions

    rows = read_rows(folder / SAMPLES_FILE)
    samples = [sample for row in rows for sample in row.get("samples") or [] if isinstance(sample, dict)]
    examples = sum(1 for row in rows if row.get("example"))
    judge = spec.get("judge_model")
    used = {prompt_set_stem(source) for source in spec.get("prompt_sources") or []}
    declined = [source for source in spec.get("refuse_sources") or [] if prompt_set_stem(source) in used]
    rule = ("Prompts from the prompt sets are also held to the refusal rule (those from "
            f"{', '.join(declined) or 'no set'} declined, the rest answered)."
            if spec.get("rule_for_prompt_sets", True) else "The refusal rule is off: prompts from the prompt sets "
            "are held to the principles' checks alone.")
    rubric = (f"`llm-rubric` assertions were asked of the judge model `{roles.get('judge') or judge}`, in both framings."
              if judge else "No judge model was set, so `llm-rubric` assertions were skipped: not counted as "
              "passed or failed. A sample with nothing else decided is used neither as a target nor as a loser.")
    lines = ["## Verifier", "",
             "Each best-of-N sample was scored by the constitution: the checks of the principles that govern its "
             "prompt and, for the constitution's training-half example prompts "
             f"({examples} here), that example's expectations. {rule} A sample passes when every assertion decided "
             "on it holds; SFT keeps a passing sample and a pair puts a passing one over a failing one. The "
             "test-half examples, which the `principles` suite scores, are not in this data.", "", rubric, ""]
    if samples:
        passing = sum(bool(s.get("passes")) for s in samples)
        lines += [f"{passing} of {len(samples)} samples pass.", ""]
        failed = Counter(name for s in samples for name in failed_assertions(s))
        if failed:
            lines += ["| failed assertion | samples |", "|---|---|"]
            lines += [f"| {name.replace('|', '/')} | {count} |" for name, count in failed.most_common(10)]
            lines.append("")
    return lines
