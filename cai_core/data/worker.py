"""The generation job's body, run in its own process: the chain, RLAIF pairs and best-of-N samples
for each chunk of prompts, appended to the ledger, then the card.
"""

from __future__ import annotations

import random
from pathlib import Path

from .. import prompts as templates
from ..chain import run_chain, select_principles
from ..constitution import Constitution, Principle
from ..jobs import Reporter
from ..judge import judge_pairs
from ..models import GenerationBackend
from ..refusals import is_refusal
from ..roles import load_roles
from .card import write_card
from .datasets import load_snapshot
from .ledger import append_rows, recover
from .promptsets import PromptItem
from .rows import (BEST_OF_N_PAIRS_FILE, JUDGEMENTS_FILE, REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, ROW_FILES, SAMPLES_FILE,
                   SFT_FILE, TRACES_FILE)
from .spec import GenerationSpec, model_roles, parse_spec, prompt_set_stem, rubric_judge_spec
from .verifier import CONSTITUTION, failed_assertions, verify_samples

# Seed offsets that give the two RLAIF samples of a prompt different random draws.
FIRST_SAMPLE_SEED, SECOND_SAMPLE_SEED = 101, 202
BEST_OF_N_SEED = 303


def run_generation_job(folder: Path, spec_data: dict, reporter: Reporter) -> None:
    folder = Path(folder)
    spec = parse_spec(spec_data)
    constitution, items = load_snapshot(folder)
    done = recover(folder)
    todo = [item for item in items if item.id not in done]
    total = len(items)
    reporter.progress(len(done), total, stage="loading model", force=True)
    try:
        if todo:
            roles = model_roles(spec)
            models = load_roles(roles["policy"], roles["critic"], roles["judge"], need_critic=spec.runs_chain,
                                need_judge=roles["judge"] is not None)
            policy = models.policy
            judge = models.judge or policy
            for note in policy.setting_notes(spec.settings):
                reporter.note(note)
            finished = len(done)
            for start in range(0, len(todo), spec.chunk_size):
                reporter.check_stop()
                chunk = todo[start:start + spec.chunk_size]
                rows = make_rows(chunk, spec, constitution, policy, judge, reporter, finished, total,
                                 critic=models.critic, rubric_judge=models.judge if rubric_judge_spec(spec) else None)
                append_rows(folder, rows, [item.id for item in chunk])
                finished += len(chunk)
                reporter.progress(finished, total, stage="writing", force=True)
        reporter.progress(total, total, stage="done", force=True)
    finally:
        write_card(folder)


def make_rows(chunk: list[PromptItem], spec: GenerationSpec, constitution: Constitution, policy: GenerationBackend,
              judge: GenerationBackend, reporter: Reporter, done_before: int, total: int,
              critic: GenerationBackend | None = None,
              rubric_judge: GenerationBackend | None = None) -> dict[str, list[dict]]:
    """Every row the chunk's prompts yield, by file name. ``critic`` writes the critiques and
    revisions (None: the policy critiques itself); ``rubric_judge`` answers the constitution
    verifier's llm-rubric assertions (None: they are skipped)."""
    rows: dict[str, list[dict]] = {name: [] for name in ROW_FILES}
    critic = critic or policy
    # Which model played which role in this run (None: the role had no part in it).
    roles = {"policy": policy.model_id, "critic": critic.model_id if spec.runs_chain else None,
             "judge": judge.model_id if spec.makes_rlaif else rubric_judge.model_id if rubric_judge else None}
    lineage = {"constitution": constitution.name, "constitution_hash": constitution.content_hash(),
               "policy_model": policy.model_id, "roles": roles, "seed": spec.seed, "rounds": spec.rounds,
               "order": spec.order, "settings": spec.settings.model_dump()}
    prompt_texts = [item.prompt for item in chunk]

    def on_stage(event) -> None:
        reporter.progress(done_before, total, stage=f"{event.stage} (round {event.round})" if event.round else event.stage)
        reporter.check_stop()

    if spec.runs_chain:
        traces = run_chain(policy, constitution, prompt_texts, spec.rounds, spec.seed, principles=spec.principles,
                           order=spec.order, settings=spec.settings, system_prompt=spec.system_prompt, on_event=on_stage,
                           critic=critic)
        for item, trace in zip(chunk, traces):
            used = [step.principle for step in trace.steps]
            row_lineage = {**lineage, "principles": used, "critic_model": critic.model_id}
            if trace.warnings:
                reporter.note("some inputs were longer than the model's context and were cut from the left; "
                              "each trace in traces.jsonl lists its own warnings")
            trace.lineage["roles"] = roles
            rows[TRACES_FILE].append({"id": item.id, "category": item.category, **trace.to_dict()})
            if "sft" in spec.phases:
                rows[SFT_FILE].append({"id": item.id, "category": item.category, "principles": used,
                                       "messages": _user_turns(item.prompt, spec) + [_assistant(trace.final)],
                                       "lineage": row_lineage})
            if "prefs" in spec.phases and "revision" in spec.pair_sources and _differ(trace.final, trace.initial):
                rows[REVISION_PAIRS_FILE].append({
                    "id": item.id, "category": item.category, "principles": used, "source": "revision",
                    "prompt": _user_turns(item.prompt, spec), "chosen": [_assistant(trace.final)],
                    "rejected": [_assistant(trace.initial)], "lineage": row_lineage})
    if spec.makes_rlaif:
        reporter.progress(done_before, total, stage="sampling answer pairs")
        rlaif, judgements = rlaif_rows(chunk, spec, constitution, policy, judge, lineage, reporter)
        rows[RLAIF_PAIRS_FILE], rows[JUDGEMENTS_FILE] = rlaif, judgements
    if spec.samples_best_of_n:
        reporter.progress(done_before, total, stage=f"sampling {spec.best_of_n} answers per prompt")
        for name, made in best_of_n_rows(chunk, spec, policy, lineage, constitution, rubric_judge,
                                         reporter.note).items():
            rows[name].extend(made)
    return rows


def best_of_n_rows(chunk: list[PromptItem], spec: GenerationSpec, policy: GenerationBackend, lineage: dict,
                   constitution: Constitution | None = None, judge: GenerationBackend | None = None,
                   on_note=None) -> dict[str, list[dict]]:
    """N sampled answers per prompt, each scored by the verifier; SFT rows and pairs from them.

    All N x len(chunk) conversations go to the model as one batched call; the sampler draws each
    row separately, so the N copies of a prompt give N different answers. Under the constitution
    verifier (cai_core.data.verifier) ``constitution`` says what each sample is held to and
    ``judge`` answers its llm-rubric assertions.
    """
    conversations = [templates.initial_conversation(item.prompt, spec.system_prompt) for item in chunk]
    sampling = spec.settings.model_copy(update={"temperature": spec.sample_temperature,
                                                "seed": spec.seed + BEST_OF_N_SEED})
    generations = policy.generate([c for c in conversations for _ in range(spec.best_of_n)], sampling)
    answers = [[g.text for g in generations[index * spec.best_of_n:(index + 1) * spec.best_of_n]]
               for index in range(len(chunk))]
    if spec.verifier == CONSTITUTION:
        if constitution is None:
            raise ValueError("the constitution verifier needs the constitution")
        return _constitution_rows(chunk, answers, spec, constitution, judge, lineage, on_note)
    rows: dict[str, list[dict]] = {SAMPLES_FILE: [], SFT_FILE: [], BEST_OF_N_PAIRS_FILE: []}
    row_lineage = {**lineage, "feedback": "refusal_rule", "best_of_n": spec.best_of_n,
                   "sample_temperature": spec.sample_temperature, "system_prompt": spec.system_prompt}
    for item, samples in zip(chunk, answers):
        should_refuse = item.source in {prompt_set_stem(source) for source in spec.refuse_sources}
        verdicts = [{"answer": a, "refused": is_refusal(a), "passes": bool(a.strip()) and is_refusal(a) == should_refuse}
                    for a in samples]
        rows[SAMPLES_FILE].append({"id": item.id, "category": item.category, "prompt": item.prompt,
                                   "should_refuse": should_refuse, "samples": verdicts})
        _best_rows(rows, item, verdicts, [], spec, row_lineage)
    return rows


def _constitution_rows(chunk: list[PromptItem], answers: list[list[str]], spec: GenerationSpec,
                       constitution: Constitution, judge, lineage: dict, on_note) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {SAMPLES_FILE: [], SFT_FILE: [], BEST_OF_N_PAIRS_FILE: []}
    row_lineage = {**lineage, "feedback": CONSTITUTION, "best_of_n": spec.best_of_n,
                   "sample_temperature": spec.sample_temperature, "system_prompt": spec.system_prompt,
                   "rubric_judge": judge.model_id if judge is not None else None}
    for item, (rules, verdicts) in zip(chunk, verify_samples(chunk, answers, spec, constitution, judge, on_note)):
        principles = list(rules.principles)
        rows[SAMPLES_FILE].append({"id": item.id, "category": item.category, "prompt": item.prompt,
                                   "should_refuse": rules.should_refuse, "principles": principles,
                                   "verifier": CONSTITUTION, "example": rules.example,
                                   "assertions": [f"{a.describe()} ({origin})" for a, origin in zip(rules.assertions, rules.origins)],
                                   "samples": verdicts})
        _best_rows(rows, item, verdicts, principles, spec, {**row_lineage, "principles": principles})
    return rows


def _best_rows(rows: dict[str, list[dict]], item: PromptItem, verdicts: list[dict], principles: list[str],
               spec: GenerationSpec, row_lineage: dict) -> None:
    """SFT keeps the first passing sample; a pair puts it over the first sample that failed (never an empty one)."""
    passing = [v for v in verdicts if v["passes"]]
    failing = [v for v in verdicts if not v["passes"] and v["answer"].strip() and not _unchecked(v)]
    if passing and "sft" in spec.phases and spec.sft_source == "best_of_n":
        rows[SFT_FILE].append({"id": item.id, "category": item.category, "principles": principles,
                               "messages": _user_turns(item.prompt, spec) + [_assistant(passing[0]["answer"])],
                               "lineage": row_lineage})
    if passing and failing and "prefs" in spec.phases and "best_of_n" in spec.pair_sources:
        pair = {"id": item.id, "category": item.category, "principles": principles, "source": "best_of_n",
                "prompt": _user_turns(item.prompt, spec), "chosen": [_assistant(passing[0]["answer"])],
                "rejected": [_assistant(failing[0]["answer"])], "lineage": row_lineage}
        if "verdicts" in failing[0]:  # the constitution verifier: say why the rejected answer lost
            pair["verifier"] = {"chosen": passing[0]["reason"], "rejected": failing[0]["reason"],
                                "rejected_failed": failed_assertions(failing[0])}
        rows[BEST_OF_N_PAIRS_FILE].append(pair)


def _unchecked(verdict: dict) -> bool:
    """A constitution-verified sample on which no assertion was decided: it neither wins nor loses."""
    return "verdicts" in verdict and not any(not v.get("skipped") for v in verdict["verdicts"])


def rlaif_rows(chunk: list[PromptItem], spec: GenerationSpec, constitution: Constitution, policy: GenerationBackend,
               judge: GenerationBackend, lineage: dict, reporter: Reporter) -> tuple[list[dict], list[dict]]:
    """Two sampled answers per prompt, judged in both orders; pairs under the threshold are dropped."""
    conversations = [templates.initial_conversation(item.prompt, spec.system_prompt) for item in chunk]
    sampling = spec.settings.model_copy(update={"temperature": spec.sample_temperature})
    first = policy.generate(conversations, sampling.model_copy(update={"seed": spec.seed + FIRST_SAMPLE_SEED}))
    reporter.check_stop()
    second = policy.generate(conversations, sampling.model_copy(update={"seed": spec.seed + SECOND_SAMPLE_SEED}))
    reporter.check_stop()
    candidates = [i for i in range(len(chunk)) if _differ(first[i].text, second[i].text) and first[i].text and second[i].text]
    principles = [judge_principles(constitution, spec, chunk[i].prompt) for i in candidates]
    judged = judge_pairs(judge, [(chunk[i].prompt, first[i].text, second[i].text) for i in candidates], principles,
                         batch_size=spec.settings.batch_size, on_fallback=reporter.note)
    pairs, judgements = [], []
    for index, verdict in zip(candidates, judged):
        item = chunk[index]
        first_wins = verdict.p_first >= 0.5
        chosen, rejected = (verdict.first, verdict.second) if first_wins else (verdict.second, verdict.first)

        def for_chosen(p_first: float) -> float:
            return p_first if first_wins else 1.0 - p_first

        label_raw = verdict.confidence
        kept = label_raw >= spec.min_confidence
        judge_record = {
            "model": judge.model_id, "method": verdict.method,
            "p_chosen_shown_first": for_chosen(verdict.p_first_when_shown_first if first_wins else verdict.p_first_when_shown_second),
            "p_chosen_shown_second": for_chosen(verdict.p_first_when_shown_second if first_wins else verdict.p_first_when_shown_first),
            "orders_disagree": verdict.orders_disagree,
            "per_principle": [{"principle": r["principle"], "p_first_when_shown_first": r["p_first_when_shown_first"],
                               "p_first_when_shown_second": r["p_first_when_shown_second"]} for r in verdict.per_principle],
        }
        judgements.append({"id": item.id, "category": item.category, "prompt": item.prompt, "principles": verdict.principles,
                           "confidence": label_raw, "kept": kept, "answer_1": verdict.first, "answer_2": verdict.second,
                           "p_answer_1": verdict.p_first, "chosen_is_answer_1": first_wins, "judge": judge_record})
        if not kept:
            continue
        label = min(max(label_raw, spec.label_band[0]), spec.label_band[1]) if spec.label_band else label_raw
        pairs.append({"id": item.id, "category": item.category, "principles": verdict.principles, "source": "rlaif",
                      "prompt": _user_turns(item.prompt, spec), "chosen": [_assistant(chosen)],
                      "rejected": [_assistant(rejected)], "label": label, "label_raw": label_raw, "judge": judge_record,
                      "lineage": {**lineage, "principles": verdict.principles, "judge_model": judge.model_id,
                                  "sample_temperature": spec.sample_temperature,
                                  "sample_seeds": [spec.seed + FIRST_SAMPLE_SEED, spec.seed + SECOND_SAMPLE_SEED]}})
    return pairs, judgements


def judge_principles(constitution: Constitution, spec: GenerationSpec, prompt: str) -> list[Principle]:
    """The principles a prompt's pair is judged under: an ensemble drawn by weight without
    replacement, seeded by the prompt's text so any chunking gives the same draw."""
    pool = list(select_principles(constitution, spec.principles))
    rng = random.Random(f"{spec.seed}:judge:{prompt}")
    chosen = []
    for _ in range(min(spec.judge_ensemble, len(pool))):
        pick = rng.choices(range(len(pool)), weights=[p.weight for p in pool])[0]
        chosen.append(pool.pop(pick))
    return chosen


def _user_turns(prompt: str, spec: GenerationSpec) -> list[dict]:
    return templates.initial_conversation(prompt, spec.system_prompt if spec.system_prompt_in_data else None)


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def _differ(one: str, other: str) -> bool:
    return " ".join(one.split()) != " ".join(other.split())
