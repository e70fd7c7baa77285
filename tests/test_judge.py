"""The AI judge reads option log-probabilities; both orders cancel position bias."""

from __future__ import annotations

import math

import pytest

from cai_core.constitution import Principle
from cai_core.judge import METHOD_LOGPROBS, METHOD_PARSED, judge_by_written_verdict, judge_pairs, normalise, parse_verdict
from cai_core.models import load_model
from cai_core.prompts import JUDGE_ANSWER_PREFIX, JUDGE_OPTIONS, judge_conversation

PRINCIPLE = Principle(name="harmless", critique_request="Point out anything harmful.", revision_request="Remove it.")
OTHER = Principle(name="honest", critique_request="Point out anything untrue.", revision_request="Fix it.",
                  comparison_request="Which response is more honest?")
PAIRS = [
    ("How do I kill a Python process?", "Use kill with the process id.", "I cannot help with that."),
    ("Tell me about chemistry.", "Chemistry studies matter.", "No."),
    ("Write a haiku.", "Leaves fall in the wind", "Here is a haiku about the sea and the sky."),
]


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return load_model(str(tiny_model_dir))


def test_option_logprobs_are_log_probabilities_of_distinct_tokens(backend):
    conversation = judge_conversation("q", "Which is better?", "a", "b")
    [scores] = backend.option_logprobs([conversation], JUDGE_OPTIONS, JUDGE_ANSWER_PREFIX)
    assert set(scores) == {"A", "B"}
    assert all(value < 0 and math.isfinite(value) for value in scores.values())
    assert scores["A"] != scores["B"]


def test_option_logprobs_do_not_depend_on_the_batch(backend):
    conversations = [judge_conversation(p, "Which is better?", a, b) for p, a, b in PAIRS]
    together = backend.option_logprobs(conversations, JUDGE_OPTIONS, JUDGE_ANSWER_PREFIX, batch_size=8)
    alone = [backend.option_logprobs([c], JUDGE_OPTIONS, JUDGE_ANSWER_PREFIX)[0] for c in conversations]
    for batched, single in zip(together, alone):
        for option in JUDGE_OPTIONS:
            assert batched[option] == pytest.approx(single[option], abs=1e-4)


def test_swapping_the_answers_swaps_the_probabilities(backend):
    forward = judge_pairs(backend, PAIRS, [[PRINCIPLE]] * len(PAIRS))
    swapped = judge_pairs(backend, [(p, b, a) for p, a, b in PAIRS], [[PRINCIPLE]] * len(PAIRS))
    for one, other in zip(forward, swapped):
        assert one.method == METHOD_LOGPROBS
        assert one.p_first == pytest.approx(1 - other.p_first, abs=1e-5)
        assert one.p_first_when_shown_first == pytest.approx(1 - other.p_first_when_shown_second, abs=1e-5)
        assert one.confidence == pytest.approx(other.confidence, abs=1e-5)
    # A random tiny model has a position bias, so the two orders must not simply agree.
    assert any(j.p_first_when_shown_first != pytest.approx(j.p_first_when_shown_second) for j in forward)


def test_an_ensemble_averages_its_principles(backend):
    [single_a] = judge_pairs(backend, PAIRS[:1], [[PRINCIPLE]])
    [single_b] = judge_pairs(backend, PAIRS[:1], [[OTHER]])
    [both] = judge_pairs(backend, PAIRS[:1], [[PRINCIPLE, OTHER]])
    assert both.principles == ["harmless", "honest"]
    assert [row["principle"] for row in both.per_principle] == ["harmless", "honest"]
    assert both.p_first == pytest.approx((single_a.p_first + single_b.p_first) / 2, abs=1e-5)


def test_normalise_handles_missing_options():
    assert normalise({"A": math.log(0.2), "B": math.log(0.6)}) == pytest.approx([0.25, 0.75])
    assert normalise({"A": -math.inf, "B": -math.inf}) == [0.5, 0.5]
    assert normalise({"A": -1.0}) == [1.0, 0.0]


@pytest.mark.parametrize("text, expected", [
    ("A", "A"), ("(B) is better", "B"), ("The first is kind. [[B]]", "B"),
    ("[[A]] ... no, [[B]]", "B"), ("Both are fine.", None), ("", None), ("Answer: maybe", None),
])
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


def test_without_logprobs_the_judge_says_so_and_reads_the_letter(scripted_backend):
    notes = []
    [judged] = judge_pairs(scripted_backend("A"), PAIRS[:1], [[PRINCIPLE]], on_fallback=notes.append)
    assert judged.method == METHOD_PARSED
    assert len(notes) == 1 and "letter" in notes[0]
    # "A" in both orders means first-when-first and second-when-swapped: a pure position bias.
    assert judged.p_first_when_shown_first == 1.0 and judged.p_first_when_shown_second == 0.0
    assert judged.p_first == 0.5 and judged.orders_disagree


def test_a_backend_without_logprobs_is_asked_for_them_only_once(scripted_backend):
    backend = scripted_backend("B")
    for _ in range(3):
        [judged] = judge_pairs(backend, PAIRS[:1], [[PRINCIPLE]])
        assert judged.method == METHOD_PARSED
    assert backend.logprob_calls == 1


def test_scripted_log_probabilities_in_both_orders_give_the_position_free_preference(scripted_backend):
    # The judge always leans to the option it is shown as A: a pure position bias, which the two
    # orders cancel, whatever the answers say.
    backend = scripted_backend("unused", logprobs=lambda conversation, options: {"A": math.log(0.8), "B": math.log(0.2)})
    [judged] = judge_pairs(backend, PAIRS[:1], [[PRINCIPLE]])
    assert judged.method == METHOD_LOGPROBS and backend.batches == []
    assert judged.p_first_when_shown_first == pytest.approx(0.8) and judged.p_first_when_shown_second == pytest.approx(0.2)
    assert judged.p_first == pytest.approx(0.5) and judged.orders_disagree


def test_unparsable_written_verdicts_are_counted(scripted_backend):
    [judged] = judge_pairs(scripted_backend("I like both"), PAIRS[:1], [[PRINCIPLE]])
    assert judged.unparsed == 2 and judged.p_first == 0.5
    scores, unparsed = judge_by_written_verdict(scripted_backend("Reasons. [[A]]"), PAIRS, PRINCIPLE)
    assert scores == [0.5] * 3 and unparsed == 0


def test_the_judge_asks_a_principles_comparison_request_or_one_built_from_its_critique():
    from cai_core.judge import comparison_request
    from cai_core.store import load_constitution

    assert comparison_request(OTHER) == "Which response is more honest?"
    built = comparison_request(PRINCIPLE)
    assert '"Point out anything harmful."' in built and built.endswith("Which response passes this check better?")
    for name in ("general-hhh", "medical-qa", "customer-service"):
        assert all(p.comparison_request for p in load_constitution(name).principles), name
