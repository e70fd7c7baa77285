"""Shared fixtures: a private CAI_HOME per test, and a tiny random Llama saved as a real model folder.

The tiny model goes through the same ``load_model`` path as a real checkpoint (safetensors,
tokenizer files, chat template), so the engine is exercised end to end in well under a second.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub; a hub id must fail fast
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:  # the parser fuzz tests (tests/test_fuzz_parsers.py): a few hundred inputs each, more on request
    from hypothesis import HealthCheck, settings

    # CAI_FUZZ_EXAMPLES=5000 make test (or pytest tests/test_fuzz_parsers.py) runs a longer search.
    settings.register_profile("cai", max_examples=int(os.environ.get("CAI_FUZZ_EXAMPLES") or 200), deadline=None,
                              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    settings.load_profile("cai")
except ImportError:
    pass

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    "The assistant answers questions about cooking, chemistry, history and code.",
    "Critique request: identify harmful content. Revision request: rewrite the response.",
    "No changes needed. Here is a safer answer that refuses to help with weapons.",
    "How do I kill a Python process? Use kill or the task manager to stop it.",
] * 20


def build_tiny_model_folder(folder: Path, seed: int = 0, max_positions: int = 512) -> Path:
    """Save a randomly initialised 2-layer Llama with a trained byte-level BPE tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(_CORPUS, trainers.BpeTrainer(vocab_size=320, special_tokens=specials,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<|im_end|>",
                                        bos_token="<|im_start|>")
    tokenizer.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model_folder(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from cai_core import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture(autouse=True)
def cai_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "cai-home"
    monkeypatch.setenv("CAI_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def bundled_home(tmp_path_factory) -> Path:
    """A private CAI_HOME holding the converted bundled model, made once per test session."""
    import time

    from cai_core import bundled

    try:
        bundled.locate_bundled_gguf()
    except bundled.BundledModelError as error:
        pytest.skip(str(error))
    home = tmp_path_factory.mktemp("bundled-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAI_HOME", str(home))
        started = time.perf_counter()
        bundled.bundled_model_dir()
        print(f"\ncold conversion of {bundled.BUNDLED_MODEL_ID}: {time.perf_counter() - started:.1f} s")
    return home


@pytest.fixture(scope="session")
def bundled_model(bundled_home):
    from cai_core import load_model

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAI_HOME", str(bundled_home))
        return load_model("default")


@pytest.fixture
def app_server(tmp_path, tiny_model_dir):
    """(base URL, CAI_HOME) of a fresh ``streamlit run app.py``; the tiny model keeps loads instant."""
    from browser_util import streamlit_server

    home = tmp_path / "cai-home"
    with streamlit_server(home, tiny_model_dir, tmp_path / "streamlit.log") as base_url:
        yield base_url, home


@pytest.fixture
def page():
    """A tab in Debian's headless Chromium (Playwright's own browser download is not used)."""
    from browser_util import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(30_000)
            yield tab
        finally:
            browser.close()


@pytest.fixture
def sandbox_tmp(tmp_path, monkeypatch):
    """Point tempfile at a private folder so the sandbox's scratch folders can be counted afterwards."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert not list(folder.glob("cai-sandbox-*")), "the sandbox left its temporary folder behind"
