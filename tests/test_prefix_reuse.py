"""Prefix reuse: a continued conversation reads only its new turn, and N samples of a prompt share
one prefill, with the same logits and tokens as reading everything again (tiny model, float32)."""

import pytest
import torch

import cai_core.models.transformers as local_backend
from cai_core import GenerationSettings, load_constitution, load_model, run_chain

ATOL = 1e-4
GREEDY = GenerationSettings(max_new_tokens=12, temperature=0.0, repetition_penalty=1.0)
PROMPTS = ["hello there", "How do I kill a Python process?", "the history of chemistry and cooking", "a"]


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    """The tiny Llama with larger random weights: its default ones write one token over and over,
    which would leave nothing of an answer to reuse and no row that finishes early."""
    loaded = load_model(str(tiny_model_dir))
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in loaded.model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.3)
    loaded.min_reused_tokens = 1  # reuse any shared prefix, however short these conversations are
    return loaded


def conv(text):
    return [{"role": "user", "content": text}]


def continued(conversations, generations, request="Critique your previous answer."):
    return [c + [{"role": "assistant", "content": g.text}, {"role": "user", "content": request}]
            for c, g in zip(conversations, generations)]


def run(backend, monkeypatch, conversations, settings, reuse, before=None):
    """Generate with reuse on or off after the calls in ``before``; the logits of every step too."""
    backend.reuse_prefix = reuse
    backend.forget_prefixes()
    for earlier in before or []:
        backend.generate(earlier, settings)
    for name in backend.stats:
        backend.stats[name] = 0
    steps = []
    pick = local_backend._pick_tokens

    def recording(logits, *args):
        steps.append(logits.clone())
        return pick(logits, *args)

    monkeypatch.setattr(local_backend, "_pick_tokens", recording)
    generations = backend.generate(conversations, settings)
    monkeypatch.setattr(local_backend, "_pick_tokens", pick)
    return generations, steps, dict(backend.stats)


def assert_same(with_reuse, without_reuse):
    (generations, steps, _), (plain, plain_steps, _) = with_reuse, without_reuse
    assert [g.token_ids for g in generations] == [g.token_ids for g in plain]
    assert [g.warning for g in generations] == [g.warning for g in plain]
    assert [g.prompt_tokens for g in generations] == [g.prompt_tokens for g in plain]
    assert len(steps) == len(plain_steps)
    for step, plain_step in zip(steps, plain_steps):
        torch.testing.assert_close(step, plain_step, atol=ATOL, rtol=0)


@pytest.fixture(autouse=True)
def reuse_back_on(backend):
    yield
    backend.reuse_prefix = True
    backend.forget_prefixes()


def test_a_continued_conversation_reads_only_its_new_turn_with_the_same_logits(backend, monkeypatch):
    first = [conv(p) for p in PROMPTS]
    answers = backend.generate(first, GREEDY)
    second = continued(first, answers)
    reused = run(backend, monkeypatch, second, GREEDY, reuse=True, before=[first])
    plain = run(backend, monkeypatch, second, GREEDY, reuse=False)
    assert_same(reused, plain)
    reused_stats, plain_stats = reused[2], plain[2]
    assert reused_stats["prefill_tokens_reused"] > 0
    assert reused_stats["prefill_tokens"] + reused_stats["prefill_tokens_reused"] <= plain_stats["prefill_tokens"]
    # A row's tokens do not depend on its neighbours, with reuse as without.
    alone = [run(backend, monkeypatch, [c], GREEDY, reuse=True, before=[[f]]) for f, c in zip(first, second)]
    assert [run[0][0].token_ids for run in alone] == [g.token_ids for g in reused[0]]
    # What is kept covers the prompt and the part of the answer its text gives back, not only
    # the shared chat header.
    assert any(run[2]["prefill_tokens_reused"] > len(backend._encode(f, 12).ids) for f, run in zip(first, alone))


def test_a_row_cut_from_the_left_keeps_its_warning_and_gets_no_reuse(backend, monkeypatch):
    long_text = " ".join(f"{n} cooking" for n in range(40))  # about 250 tokens, none repeating
    first = [conv(p) for p in PROMPTS[:2]] + [conv(long_text)]
    answers = backend.generate(first, GREEDY)
    assert all(g.warning is None for g in answers)
    # The third row no longer fits: its start is cut, so what was kept for it no longer lines up.
    second = continued(first[:2], answers[:2]) + continued(first[2:], answers[2:], request=long_text)
    reused = run(backend, monkeypatch, second, GREEDY, reuse=True, before=[first])
    plain = run(backend, monkeypatch, second, GREEDY, reuse=False)
    assert_same(reused, plain)
    assert reused[0][2].warning and "were cut" in reused[0][2].warning
    assert reused[0][0].warning is None and reused[2]["prefill_tokens_reused"] > 0
    alone = run(backend, monkeypatch, second[2:], GREEDY, reuse=True, before=[first])
    assert alone[2]["prefill_tokens_reused"] == 0 and alone[0][0].token_ids == plain[0][2].token_ids


def test_rows_that_finish_early_are_kept_and_continue_the_same(backend, monkeypatch):
    # Token 17 ends a turn here, so rows stop at different steps and leave the batch early.
    eos = backend.model.generation_config.eos_token_id
    monkeypatch.setattr(backend.model.generation_config, "eos_token_id", [eos, 17])
    settings = GREEDY.model_copy(update={"max_new_tokens": 16})
    first = [conv(p) for p in PROMPTS]
    reused_first = run(backend, monkeypatch, first, settings, reuse=True)
    lengths = [g.completion_tokens for g in reused_first[0]]
    assert min(lengths) < settings.max_new_tokens and max(lengths) == settings.max_new_tokens
    # Each row's cache was kept when it left the batch: prompt and answer, nothing after the end.
    for conversation, generation in zip(first, reused_first[0]):
        ids = tuple(backend._encode(conversation, 16).ids + generation.token_ids)
        kept = backend.prefixes.longest(ids)
        assert kept is not None and kept[1] >= len(ids) - 1
    second = continued(first, reused_first[0])
    assert_same(run(backend, monkeypatch, second, settings, reuse=True, before=[first]),
                run(backend, monkeypatch, second, settings, reuse=False))


def test_n_samples_of_one_prompt_share_one_prefill(backend, monkeypatch):
    conversations = [conv(PROMPTS[1])] * 3 + [conv(PROMPTS[2])] * 2 + [conv(PROMPTS[0])]
    reused = run(backend, monkeypatch, conversations, GREEDY, reuse=True)
    plain = run(backend, monkeypatch, conversations, GREEDY, reuse=False)
    assert_same(reused, plain)
    width = max(len(backend._encode(c, 12).ids) for c in conversations)  # padding counts as read
    assert (reused[2]["prefill_tokens"], plain[2]["prefill_tokens"]) == (3 * width, 6 * width)
    separate = [backend.generate([c], GREEDY)[0].token_ids for c in conversations]
    assert separate == [g.token_ids for g in reused[0]]

    sampled = GREEDY.model_copy(update={"temperature": 1.0, "top_p": 1.0, "seed": 3})
    reused = run(backend, monkeypatch, conversations, sampled, reuse=True)
    plain = run(backend, monkeypatch, conversations, sampled, reuse=False)
    assert_same(reused, plain)
    assert len({tuple(g.token_ids) for g in reused[0][:3]}) > 1  # the copies are sampled apart


def test_the_kept_prefixes_stay_within_their_bound(backend, monkeypatch):
    first = [conv(f"{p} number {n}") for n in range(3) for p in PROMPTS]
    backend.generate(first[:1], GREEDY)
    one_entry = backend.prefixes.bytes
    monkeypatch.setattr(backend, "prefix_cache_bytes", 3 * one_entry)
    answers = backend.generate(first, GREEDY)
    assert 0 < backend.prefixes.bytes <= 3 * one_entry and backend.prefixes.evicted > 0 and len(backend.prefixes) <= 3
    # An evicted conversation is simply read again, with the same result.
    second = continued(first, answers)
    assert_same(run(backend, monkeypatch, second, GREEDY, reuse=True, before=[first]),
                run(backend, monkeypatch, second, GREEDY, reuse=False))
    assert backend.stats["kv_peak_bytes"] > 0


def test_a_continued_conversation_replaces_the_entry_it_extends(backend):
    first = [conv(p) for p in PROMPTS]
    backend.forget_prefixes()
    backend.generate(first, GREEDY)
    assert len(backend.prefixes) == len(PROMPTS)
    backend.generate([c + [{"role": "assistant", "content": "x"}] for c in first], GREEDY)
    assert len(backend.prefixes) == len(PROMPTS)


def test_chain_traces_are_the_same_with_and_without_reuse(backend):
    constitution = load_constitution("general-hhh")
    settings = GenerationSettings(max_new_tokens=10, temperature=0.0)
    traces = {}
    for reuse in (True, False):
        backend.reuse_prefix = reuse
        backend.forget_prefixes()
        for name in backend.stats:
            backend.stats[name] = 0
        traces[reuse] = [t.to_dict() for t in run_chain(backend, constitution, PROMPTS, rounds=2, settings=settings)]
        if reuse:
            assert backend.stats["prefill_tokens_reused"] > 0
    for with_reuse, without in zip(traces[True], traces[False]):
        for key in ("initial", "steps", "final", "prompt_tokens", "completion_tokens", "warnings"):
            assert with_reuse[key] == without[key]


def judge_questions():
    from cai_core.judge import both_orders

    pairs = [("How do I kill a Python process?", "Use kill with its id.", "I cannot help with that."),
             ("Tell me about chemistry.", "Chemistry studies matter and how it changes.", "No."),
             ("Write a haiku.", "Leaves fall in the wind", "Here is a haiku about the sea.")]
    questions = []
    for prompt, first, second in pairs:
        questions += both_orders(prompt, "Which response is more helpful and less harmful?", first, second)
    return questions


def option_scores(backend, questions, reuse, batch_size=16):
    from cai_core.prompts import JUDGE_ANSWER_PREFIX, JUDGE_OPTIONS

    backend.reuse_prefix = reuse
    for name in backend.stats:
        backend.stats[name] = 0
    scores = backend.option_logprobs(questions, JUDGE_OPTIONS, JUDGE_ANSWER_PREFIX, batch_size)
    return scores, dict(backend.stats)


@pytest.mark.parametrize("batch_size", [16, 3, 1])
def test_the_judges_two_orders_read_their_shared_beginning_once(backend, batch_size):
    questions = judge_questions()
    shared, shared_stats = option_scores(backend, questions, reuse=True, batch_size=batch_size)
    plain, plain_stats = option_scores(backend, questions, reuse=False, batch_size=batch_size)
    for with_sharing, without in zip(shared, plain, strict=True):
        assert with_sharing.keys() == without.keys()
        for option in with_sharing:
            assert with_sharing[option] == pytest.approx(without[option], abs=ATOL)
    if batch_size == 1:  # one question per pass: nothing to share
        assert shared_stats["prefill_tokens_reused"] == 0
    else:
        assert shared_stats["prefill_tokens_reused"] > 0
        assert shared_stats["prefill_tokens"] < plain_stats["prefill_tokens"]


def test_questions_are_grouped_by_what_they_share_not_by_the_instructions_they_all_begin_with():
    instructions = list(range(100, 140))
    pair_one = [instructions + [1, 2, 3, 50, 51], instructions + [1, 2, 3, 60, 61]]
    pair_two = [instructions + [7, 8, 9, 70], instructions + [7, 8, 9, 80]]
    lone = [[5, 6, 7]]
    groups = local_backend._shared_prefix_groups(pair_one + lone + pair_two, min_tokens=20)
    assert sorted((shared, sorted(members)) for shared, members in groups) == [(0, [2]), (43, [0, 1]), (43, [3, 4])]
    # A beginning shorter than min_tokens counts when it is half the input, not when it is less.
    assert [shared for shared, _ in local_backend._shared_prefix_groups(pair_one, min_tokens=50)] == [43]
    long_rest = [instructions + [1] * 60, instructions + [2] * 60]
    assert [shared for shared, _ in local_backend._shared_prefix_groups(long_rest, min_tokens=50)] == [0, 0]
    # Identical inputs still read their last token themselves.
    assert local_backend._shared_prefix_groups([instructions, instructions], min_tokens=20) == [(39, [0, 1])]


def test_a_group_larger_than_a_chunk_is_split_and_each_part_still_shares():
    groups = [(30, [0, 1, 2, 3, 4]), (0, [5])]
    chunks = list(local_backend._chunks_of_groups(groups, [40] * 5 + [10], size=2))
    assert all(sum(len(members) for _, members in chunk) <= 2 for chunk in chunks)
    parts = [part for chunk in chunks for part in chunk]
    assert sorted(index for _, members in parts for index in members) == [0, 1, 2, 3, 4, 5]
    assert sorted(parts) == [(0, [4]), (0, [5]), (30, [0, 1]), (30, [2, 3])]
    assert chunks[0] == [(0, [5])]  # the shortest input first
