"""The transformers backend: batching, left padding, truncation, streaming, and load errors."""

import time

import pytest

from cai_core import GenerationSettings, ModelLoadError, load_model
from cai_core.models import resolve_model_path

GREEDY = GenerationSettings(max_new_tokens=10, temperature=0.0)


def conv(text):
    return [{"role": "user", "content": text}]


def test_batched_greedy_matches_one_at_a_time(tiny_model):
    prompts = ["hello", "How do I kill a Python process that hangs forever?", "the history of chemistry", "a"]
    batched = tiny_model.generate([conv(p) for p in prompts], GREEDY)
    single = [tiny_model.generate([conv(p)], GREEDY)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in single]
    assert any(g.completion_tokens for g in batched)
    assert [g.prompt_tokens for g in batched] == [g.prompt_tokens for g in single]


def test_outputs_come_back_in_input_order_across_chunks(tiny_model):
    prompts = ["x" * n for n in (40, 1, 25, 3, 60)]
    settings = GREEDY.model_copy(update={"batch_size": 2})
    chunked = tiny_model.generate([conv(p) for p in prompts], settings)
    whole = tiny_model.generate([conv(p) for p in prompts], GREEDY)
    assert [g.text for g in chunked] == [g.text for g in whole]
    lengths = [g.prompt_tokens for g in chunked]
    assert lengths.index(max(lengths)) == 4 and lengths.index(min(lengths)) == 1  # input order, not sorted order


def test_sampling_is_reproducible_with_a_seed(tiny_model):
    settings = GenerationSettings(max_new_tokens=8, temperature=1.0, seed=5)
    first = tiny_model.generate([conv("hello"), conv("bye")], settings)
    second = tiny_model.generate([conv("hello"), conv("bye")], settings)
    assert [g.text for g in first] == [g.text for g in second]


def test_too_long_input_is_cut_from_the_left_with_a_warning(tiny_model):
    long_prompt = "history chemistry " * 400  # far beyond the tiny model's 512-token context
    result = tiny_model.generate([conv(long_prompt), conv("hi")], GREEDY)
    assert result[0].warning and "were cut" in result[0].warning
    assert result[0].prompt_tokens == tiny_model.max_context - GREEDY.max_new_tokens
    assert result[1].warning is None


def test_streaming_yields_the_same_text_as_generate(tiny_model):
    streamed = "".join(tiny_model.stream(conv("hello there"), GREEDY)).strip()
    assert streamed == tiny_model.generate([conv("hello there")], GREEDY)[0].text


@pytest.mark.parametrize("spec, words", [
    ("no/such/thing/here", "neither an existing local folder"),
    ("bad id with spaces", "neither an existing local folder"),
    ("someone/not-a-real-model-xyz", "could not be fetched"),
])
def test_bad_model_ids_give_one_sentence(spec, words):
    began = time.perf_counter()
    with pytest.raises(ModelLoadError) as caught:
        load_model(spec)
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert time.perf_counter() - began < 30


def test_local_folder_problems_are_explained(tmp_path, tiny_model_dir):
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_model_path(str(tmp_path))
    file = tmp_path / "weights.bin"
    file.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        resolve_model_path(str(file))
    pickle_only = tmp_path / "pickle-only"
    pickle_only.mkdir()
    for item in tiny_model_dir.iterdir():
        if item.suffix != ".safetensors":
            (pickle_only / item.name).write_bytes(item.read_bytes())
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_model(str(pickle_only))


def test_unreachable_hub_fails_fast_with_one_sentence(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    began = time.perf_counter()
    with pytest.raises(ModelLoadError, match="cannot be reached"):
        load_model("someone/not-a-real-model-xyz")
    assert time.perf_counter() - began < 10


def test_streaming_comes_in_several_pieces(tiny_model):
    settings = GenerationSettings(max_new_tokens=24, temperature=1.0, seed=3)
    pieces = list(tiny_model.stream(conv("hello there"), settings))
    assert "".join(pieces) == tiny_model.generate([conv("hello there")], settings)[0].text
    assert len(pieces) >= 2


def test_repetition_penalty_discourages_repeated_tokens(tiny_model):
    plain = GenerationSettings(max_new_tokens=40, temperature=0.0)
    penalised = plain.model_copy(update={"repetition_penalty": 1.8})
    prompts = [conv(p) for p in ("hello", "history of chemistry", "kill a process")]

    def distinct_share(settings):
        generations = tiny_model.generate(prompts, settings)
        return sum(len(set(g.token_ids)) for g in generations) / sum(len(g.token_ids) for g in generations)

    before, after = distinct_share(plain), distinct_share(penalised)
    assert before < 0.5  # the random model loops on a few tokens when greedy
    assert after > before
