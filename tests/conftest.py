"""Shared fixtures: a private CAI_HOME per test, a tiny random Llama saved as a real model folder,
a scripted model for tests where the exact text matters, and a gate that holds job workers.

The tiny model goes through the same ``load_model`` path as a real checkpoint (safetensors,
tokenizer files, chat template), so the engine is exercised end to end in well under a second.
The scripted model (``scripted_backend``) is a real GenerationBackend whose answers and option
log-probabilities the test writes. The worker gate (``worker_gate``) holds a job's worker process
before each model call or training step until the test lets it through, so a test kills, stops or
starts a second worker at a point it chose, never at one the machine's speed chose.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pytest

from cai_core.models import Generation, GenerationBackend, GenerationSettings

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


Reply = Callable[[list[dict], int], str]


class ScriptedBackend(GenerationBackend):
    """A model whose every answer the test wrote: the fake for tests where the exact text matters.

    ``reply(conversation, copy)`` writes each answer (a plain text answers everything); ``copy``
    counts the earlier conversations of the same batch that ended in the same user turn, as
    best-of-N sends one prompt several times. ``logprobs(conversation, options)``, when given,
    answers ``option_logprobs``; without it the backend reports none, as some endpoints do.
    ``hold(batch)``, when given, runs before each batch is answered: a test blocks it on an event it
    controls to look at a run mid-way, or raises from it to make the model fail. Every batch is
    recorded in ``batches`` and every ``option_logprobs`` call counted in ``logprob_calls``. With
    ``partial_text``, the backend reports the first half of each answer as text being written, then
    holds the batch, as a real model is seen mid-answer.
    """

    model_id = "scripted"

    def __init__(self, reply: Reply | str = "An answer.",
                 logprobs: Callable[[list[dict], Sequence[str]], Mapping[str, float]] | None = None,
                 hold: Callable[[list[list[dict]]], None] | None = None, partial_text: bool = False):
        self.reports_partial_text = partial_text
        self.reply = (lambda conversation, copy: reply) if isinstance(reply, str) else reply
        self.logprobs = logprobs
        self.hold = hold
        self.batches: list[list[list[dict]]] = []
        self.logprob_calls = 0

    @classmethod
    def chain(cls, initial: str | Callable[[str], str] = "answer to {turn}",
              critique: str | Callable[[str], str] = "The answer breaks: {turn}",
              revision: str | Callable[[str], str] = "A revised answer.", **options) -> "ScriptedBackend":
        """A backend that answers by the kind of the last user turn, as the chain sends it: a
        critique request, a revision request, or a prompt. Each part is a text (``{turn}``, the last
        turn, and ``{turns}``, the number of turns, are filled in) or a function of the last turn."""

        def write(part, conversation: list[dict]) -> str:
            turn = conversation[-1]["content"]
            return part(turn) if callable(part) else part.format(turn=turn, turns=len(conversation))

        def reply(conversation: list[dict], copy: int) -> str:
            turn = conversation[-1]["content"]
            if turn.startswith("Critique request"):
                return write(critique, conversation)
            if turn.startswith("Revision request"):
                return write(revision, conversation)
            return write(initial, conversation)

        return cls(reply, **options)

    def hold_each_batch(self, timeout: float = 30.0) -> threading.Semaphore:
        """From now on each batch waits for one ``release()`` of the returned semaphore; a batch the
        test never lets through fails after ``timeout`` seconds rather than hanging the test."""
        gate = threading.Semaphore(0)

        def hold(batch: list[list[dict]]) -> None:
            if not gate.acquire(timeout=timeout):
                raise TimeoutError("the test never let the scripted batch through")

        self.hold = hold
        return gate

    def generate(self, conversations: list[list[dict]], settings: GenerationSettings,
                 on_text: Callable[[dict[int, str]], None] | None = None) -> list[Generation]:
        self.batches.append(conversations)
        copies: Counter = Counter()
        texts = []
        for conversation in conversations:
            turn = conversation[-1]["content"]
            texts.append(self.reply(conversation, copies[turn]))
            copies[turn] += 1
        if on_text is not None:
            on_text({index: text[:len(text) // 2] for index, text in enumerate(texts)})
        if self.hold is not None:
            self.hold(conversations)
        return [Generation(text, prompt_tokens=10, completion_tokens=5, seconds=0.01) for text in texts]

    def option_logprobs(self, conversations, options, answer_prefix="", batch_size=16):
        self.logprob_calls += 1
        if self.logprobs is None:
            return super().option_logprobs(conversations, options, answer_prefix, batch_size)
        return [dict(self.logprobs(conversation, options)) for conversation in conversations]


@pytest.fixture
def scripted_backend() -> type[ScriptedBackend]:
    """The scripted model: call it with a reply (see ScriptedBackend) to get a fresh backend."""
    return ScriptedBackend


class WorkerGate:
    """Holds the model calls of the job workers started while it is on (see worker_gate/sitecustomize.py):
    the test lets N calls through, waits until the worker stands at call N + 1, and acts there."""

    def __init__(self, folder: Path):
        self.folder = folder

    def allow(self, calls: int) -> None:
        staged = self.folder / ".allowed"
        staged.write_text(str(calls))
        staged.replace(self.folder / "allowed")

    def open(self) -> None:
        self.allow(10 ** 9)

    def reached(self) -> int:
        try:
            return int((self.folder / "reached").read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def wait_until_reached(self, call: int, timeout: float = 120.0, failed: Callable[[], str | None] = lambda: None) -> None:
        """Wait until the worker waits at model call ``call``; ``failed()`` names why it never will."""
        deadline = time.monotonic() + timeout
        while self.reached() < call:
            reason = failed()
            assert reason is None, f"the worker stopped before model call {call}: {reason}"
            assert time.monotonic() < deadline, f"the worker did not reach model call {call} in {timeout} s"
            time.sleep(0.02)

    def step_until(self, condition: Callable[[], bool], most: int = 200, failed: Callable[[], str | None] = lambda: None) -> int:
        """Let model calls through one at a time until ``condition()`` holds while the worker waits
        at the next call; returns the number of calls let through."""
        for calls in range(most + 1):
            self.wait_until_reached(calls + 1, failed=failed)
            if condition():
                return calls
            self.allow(calls + 1)
        raise AssertionError(f"not there after {most} model calls")


@pytest.fixture
def worker_gate(tmp_path, monkeypatch) -> WorkerGate:
    """Job workers started from now on stop before each model call until the test lets it through."""
    folder = tmp_path / "worker-gate"
    folder.mkdir()
    hooks = Path(__file__).resolve().parent / "worker_gate"
    monkeypatch.setenv("CAI_TEST_GATE", str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])))
    gate = WorkerGate(folder)
    yield gate
    gate.open()  # a worker still waiting finishes rather than waiting out its limit


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

    from cai_core.models import bundled

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
