"""Chain logic on a tiny random Llama, and on a scripted backend where the exact text matters."""

from collections import Counter

import pytest

from cai_core import Constitution, ConstitutionError, GenerationSettings, Principle, load_constitution, run_chain
from cai_core.chain import plan_principles
from cai_core.prompts import NO_CHANGES_PHRASE, critique_finds_nothing


@pytest.fixture
def backend(scripted_backend):
    """Answers each stage by its kind; a revision, behind a preamble the chain strips, names how many
    turns it was sent."""
    return scripted_backend.chain(revision="Here is the revised response: revised({turns})")


def two_rules(weight_b=1.0):
    return Constitution(name="two", principles=[
        Principle(name="a", critique_request="Point out insults in the answer.", revision_request="Remove the insults from the answer."),
        Principle(name="b", critique_request="Point out unsourced claims in the answer.", revision_request="Add sources to the claims.", weight=weight_b),
    ])


def test_each_stage_is_one_batched_call_over_all_prompts(backend):
    traces = run_chain(backend, two_rules(), ["p1", "p2", "p3"], rounds=2, seed=3)
    assert [len(batch) for batch in backend.batches] == [3, 3, 3, 3, 3]  # initial, (critique, revision) x 2
    for trace in traces:
        assert trace.initial == f"answer to {trace.prompt}"
        assert [step.round for step in trace.steps] == [1, 2]
        assert all(step.revised for step in trace.steps)
        assert trace.final == trace.steps[-1].revision == "revised(5)"  # preamble stripped; each round critiques the latest answer afresh
        assert trace.completion_tokens == 5 * 5 and trace.prompt_tokens == 50
        assert trace.lineage["constitution"] == "two" and trace.lineage["constitution_hash"]


def test_revision_sees_prompt_answer_and_critique_in_order(backend):
    run_chain(backend, two_rules(), ["hello"], rounds=1, principles=["a"])
    revision_conversation = backend.batches[2][0]
    roles = [m["role"] for m in revision_conversation]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert revision_conversation[0]["content"] == "hello"
    assert "Point out insults" in revision_conversation[2]["content"]
    assert "Remove the insults" in revision_conversation[4]["content"]


def test_critique_that_finds_nothing_skips_the_revision(scripted_backend):
    backend = scripted_backend.chain(critique=NO_CHANGES_PHRASE)
    traces = run_chain(backend, two_rules(), ["p1", "p2"], rounds=2)
    assert len(backend.batches) == 3  # initial + two critique batches, no revision batches
    for trace in traces:
        assert [step.revised for step in trace.steps] == [False, False]
        assert [step.skip_reason for step in trace.steps] == ["no_change", "no_change"]
        assert trace.final == trace.initial


@pytest.mark.parametrize("text, nothing", [
    ("No changes needed.", True), ("no change is necessary", True), ("Nothing needs changing here.", True),
    ("The answer gives weapon steps; no changes needed elsewhere", False), ("Remove the insult.", False),
])
def test_no_change_detection(text, nothing):
    assert critique_finds_nothing(text) is nothing


def test_principle_plan_is_seeded_weighted_and_stable_per_prompt():
    rules = two_rules(weight_b=9.0).principles
    prompts = [f"prompt {i}" for i in range(50)]
    plan = plan_principles(rules, prompts, 4, seed=7, order="random")
    assert plan == plan_principles(rules, prompts, 4, seed=7, order="random")
    assert plan != plan_principles(rules, prompts, 4, seed=8, order="random")
    assert plan[3:10] == plan_principles(rules, prompts[3:10], 4, seed=7, order="random")  # batch-independent
    counts = Counter(p.name for row in plan for p in row)
    assert counts["b"] > 4 * counts["a"]
    sequential = plan_principles(rules, ["x", "y"], 3, seed=0, order="sequential")
    assert [p.name for p in sequential[0]] == ["a", "b", "a"]


def test_selected_and_disabled_principles(backend):
    constitution = two_rules()
    constitution.principles[1].enabled = False
    traces = run_chain(backend, constitution, ["p"], rounds=3)
    assert {step.principle for step in traces[0].steps} == {"a"}
    traces = run_chain(backend, constitution, ["p"], rounds=1, principles=["b"])  # explicit choice wins
    assert traces[0].steps[0].principle == "b"
    with pytest.raises(ConstitutionError, match="no principle named"):
        run_chain(backend, constitution, ["p"], principles=["zzz"])


@pytest.mark.parametrize("prompts", [[""], ["   "], [], ["ok", ""]])
def test_empty_prompts_are_refused(prompts, backend):
    with pytest.raises(ConstitutionError):
        run_chain(backend, two_rules(), prompts)


def test_events_report_each_stage(backend):
    seen = []
    run_chain(backend, two_rules(), ["p"], rounds=2, on_event=lambda e: seen.append((e.stage, e.round)))
    assert seen == [("initial", 0), ("critique", 1), ("revision", 1), ("critique", 2), ("revision", 2)]


def test_tiny_model_runs_a_real_chain(tiny_model):
    settings = GenerationSettings(max_new_tokens=6, temperature=0.8)
    traces = run_chain(tiny_model, load_constitution("general-hhh"), ["How do I kill a Python process?", "hi"], rounds=2, seed=1, settings=settings)
    assert len(traces) == 2
    for trace in traces:
        assert len(trace.steps) == 2
        assert 0 < trace.completion_tokens <= 5 * 6
        assert trace.seconds > 0
        assert trace.lineage["model"] == tiny_model.model_id
    again = run_chain(tiny_model, load_constitution("general-hhh"), ["How do I kill a Python process?", "hi"], rounds=2, seed=1, settings=settings)
    assert [t.to_dict() | {"seconds": 0} for t in traces] == [t.to_dict() | {"seconds": 0} for t in again]


def test_chosen_principles_keep_the_constitutions_order(backend):
    traces = run_chain(backend, two_rules(), ["p"], rounds=2, order="sequential", principles=["b", "a"])
    assert [step.principle for step in traces[0].steps] == ["a", "b"]
    assert traces[0].lineage["principles"] == ["a", "b"]
