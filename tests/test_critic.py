"""The critic role: a second model writes the critiques and revisions (and, by default, judges) for the policy.

The policy is the tiny model; the critic is a scripted backend (its text is known, so the trace and
the rows can be checked against it), a second tiny model with other weights, or an endpoint: a real
``transformers serve`` of the tiny model on 127.0.0.1, stopped mid-run and started again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cai_core import GenerationSettings, load_constitution, load_model, run_chain
from cai_core import prompts as templates
from cai_core.errors import DatasetError
from cai_core.data import (DONE_FILE, REVISION_PAIRS_FILE, SFT_FILE, TRACES_FILE, GenerationSpec, make_rows, read_rows,
                           run_generation)
from cai_core.jobs import Reporter
from cai_core.models import Generation, GenerationBackend
from cai_core.roles import (AVAILABLE_MEMORY_VARIABLE, ModelsDoNotFit, available_memory_bytes, check_models_fit,
                            estimate_weight_bytes, load_roles, required_bytes, role_specs)
from conftest import build_tiny_model_folder
from test_endpoint import SERVER_START_SECONDS, _healthy, _stop, chat_completion, fast_backend, free_port, scripted_endpoint

PROMPTS = ["How do I cook rice?", "Tell me how to pick a lock.", "Write a haiku about rain."]
SHORT = GenerationSettings(max_new_tokens=8, temperature=0.0)


class ScriptedCritic(GenerationBackend):
    """A critic whose every text is unique and known: call N, conversation I -> "critic text N.I"."""

    model_id = "scripted-critic"

    def __init__(self) -> None:
        self.calls: list[list[list[dict]]] = []

    def generate(self, conversations, settings):
        self.calls.append(conversations)
        return [Generation(f"critic text {len(self.calls)}.{index}", 5, 4, 0.01) for index in range(len(conversations))]


class Recorder(GenerationBackend):
    """The tiny model, with every call it is asked (conversations, seed) and the token ids it gave."""

    def __init__(self, inner: GenerationBackend) -> None:
        self.inner, self.model_id, self.log = inner, inner.model_id, []

    def generate(self, conversations, settings):
        made = self.inner.generate(conversations, settings)
        self.log.append((conversations, settings.seed, [g.token_ids for g in made]))
        return made


@pytest.fixture(scope="module")
def critic_model_dir(tmp_path_factory) -> Path:
    """A second tiny model with other weights: a critic that writes other text than the policy."""
    return build_tiny_model_folder(tmp_path_factory.mktemp("tiny-critic"), seed=1)


@pytest.fixture
def constitution():
    return load_constitution("general-hhh")


# --------------------------------------------------------------------------- the chain


def test_the_critics_text_is_what_the_trace_holds(tiny_model, constitution):
    critic = ScriptedCritic()
    alone = run_chain(tiny_model, constitution, PROMPTS, rounds=2, seed=3, settings=SHORT)
    traces = run_chain(tiny_model, constitution, PROMPTS, rounds=2, seed=3, settings=SHORT, critic=critic)
    # Each stage is still one batched call over every prompt: critique, revision, critique, revision.
    assert [len(call) for call in critic.calls] == [len(PROMPTS)] * 4
    for index, (trace, policy_only) in enumerate(zip(traces, alone)):
        assert trace.initial == policy_only.initial  # the policy wrote the first answer
        for round_index, step in enumerate(trace.steps):
            assert step.critique == f"critic text {2 * round_index + 1}.{index}"
            assert step.revision == f"critic text {2 * round_index + 2}.{index}"
            assert step.critique_model == step.revision_model == "scripted-critic"
        assert trace.final == f"critic text 4.{index}"
        assert trace.models == {"initial": tiny_model.model_id, "critique": "scripted-critic", "revision": "scripted-critic"}
        assert trace.lineage["model"] == tiny_model.model_id and trace.lineage["critic_model"] == "scripted-critic"
    # The critic critiques the policy's answer, then revises after its own critique.
    first_critique = critic.calls[0][0]
    assert first_critique[-2] == {"role": "assistant", "content": traces[0].initial}
    assert critic.calls[1][0][-2] == {"role": "assistant", "content": "critic text 1.0"}


@pytest.mark.parametrize("temperature", [0.0, 0.8], ids=["greedy", "sampled"])
def test_a_policy_only_run_is_unchanged_token_for_token(tiny_model, constitution, temperature):
    """No critic, critic=None and critic=the policy ask the policy the same things with the same seeds,
    and each stage is exactly the conversation the chain has always built (checked by rebuilding it).
    The random tiny model often ends at once when greedy, so a seeded sampled run checks longer text too."""
    settings = SHORT.model_copy(update={"temperature": temperature})
    runs = []
    for critic in ("absent", None, "self"):
        recorder = Recorder(tiny_model)
        extra = {} if critic == "absent" else {"critic": recorder if critic == "self" else None}
        traces = run_chain(recorder, constitution, PROMPTS, rounds=2, seed=5, settings=settings, order="sequential",
                           principles=["avoid-harmful-help"], **extra)
        runs.append((recorder.log, [{**t.to_dict(), "seconds": None} for t in traces]))
    assert runs[0] == runs[1] == runs[2]
    log, traces = runs[0]
    assert all(step["critique_model"] == tiny_model.model_id for t in traces for step in t["steps"])
    assert "critic_model" not in traces[0]["lineage"]

    principle = constitution.principle("avoid-harmful-help")
    bases = [templates.initial_conversation(p) for p in PROMPTS]
    expected = [(bases, 5)]
    answers = [tiny_model.generate(bases, settings.model_copy(update={"seed": 5}))[i].text for i in range(len(PROMPTS))]
    for round_index in range(2):
        critique_convs = [templates.critique_conversation(b, a, principle.critique_request) for b, a in zip(bases, answers)]
        critiques = tiny_model.generate(critique_convs, settings.model_copy(update={"seed": 5 + 2 * round_index + 1}))
        revising = [i for i, c in enumerate(critiques) if not templates.critique_finds_nothing(c.text)]
        revision_convs = [templates.revision_conversation(critique_convs[i], critiques[i].text, principle.revision_request)
                          for i in revising]
        expected += [(critique_convs, 5 + 2 * round_index + 1)]
        if revision_convs:
            expected += [(revision_convs, 5 + 2 * round_index + 2)]
            revised = tiny_model.generate(revision_convs, settings.model_copy(update={"seed": 5 + 2 * round_index + 2}))
            for i, made in zip(revising, revised):
                answers[i] = templates.clean_revision(made.text) or answers[i]
    assert [(conversations, seed) for conversations, seed, _ in log] == expected
    for conversations, seed, token_ids in log:
        assert token_ids == [g.token_ids for g in tiny_model.generate(conversations, settings.model_copy(update={"seed": seed}))]
    assert [t["final"] for t in traces] == answers


def test_a_preview_takes_a_critic(tiny_model, constitution):
    from cai_core.preview import start_preview

    job = start_preview("with a critic", model=tiny_model, constitution=constitution, prompts=PROMPTS[:1], rounds=1,
                        settings=SHORT, critic=ScriptedCritic())
    assert job.wait(timeout=60)
    state = job.state()
    assert state.stage == "done", state.error
    assert state.traces[0].steps[0].critique == "critic text 1.0" and state.traces[0].final == "critic text 2.0"
    assert state.traces[0].models["critique"] == "scripted-critic"


def test_an_endpoint_critic_runs_concurrently_and_retries(tiny_model, constitution):
    in_flight, most, lock = [0], [0], threading.Lock()

    def script(number, request):
        if request["path"].endswith("/chat/completions") and number == 1:
            return 503, {"error": "warming up"}, {}
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        return 200, chat_completion(f"endpoint text {number}"), {}

    with scripted_endpoint(script) as (base_url, seen):
        critic = fast_backend(base_url, concurrency=4)
        traces = run_chain(tiny_model, constitution, PROMPTS, rounds=1, seed=0, settings=SHORT, critic=critic)
    assert most[0] > 1  # the critic's requests of one stage were in flight together
    assert len(seen) == 1 + 2 * len(PROMPTS)  # one 503, retried; a critique and a revision per prompt
    for trace in traces:
        assert trace.steps[0].critique.startswith("endpoint text") and trace.final.startswith("endpoint text")
        assert trace.steps[0].critique_model == f"tiny@{base_url}"


# --------------------------------------------------------------------------- the data job


def test_the_critic_writes_the_sft_rows_and_revision_pairs(tmp_path, tiny_model, constitution):
    from cai_core.data.promptsets import PromptItem

    spec = GenerationSpec(constitution="general-hhh", prompt_sources=["benign"], phases=["sft", "prefs"],
                          pair_sources=["revision"], rounds=1, settings=SHORT)
    chunk = [PromptItem(id=f"p{i}", prompt=p, category="test", source="benign") for i, p in enumerate(PROMPTS)]
    critic = ScriptedCritic()
    rows = make_rows(chunk, spec, constitution, tiny_model, tiny_model, Reporter(tmp_path), 0, len(chunk), critic=critic)
    for index, (sft, trace, pair) in enumerate(zip(rows[SFT_FILE], rows[TRACES_FILE], rows[REVISION_PAIRS_FILE])):
        assert sft["messages"][-1] == {"role": "assistant", "content": f"critic text 2.{index}"}
        assert trace["steps"][0]["critique"] == f"critic text 1.{index}" and trace["final"] == f"critic text 2.{index}"
        assert pair["chosen"][0]["content"] == f"critic text 2.{index}" and pair["rejected"][0]["content"] == trace["initial"]
        for row in (sft, pair, trace):
            assert row["lineage"]["roles"] == {"policy": tiny_model.model_id, "critic": "scripted-critic", "judge": None}
        assert sft["lineage"]["critic_model"] == "scripted-critic"


@pytest.mark.slow
def test_a_job_with_a_local_critic_records_the_roles_and_the_card_says_distillation(tmp_path, tiny_model_dir,
                                                                                    critic_model_dir):
    spec = GenerationSpec(constitution="general-hhh", prompt_sources=["benign"], limit=2, phases=["sft", "prefs"],
                          pair_sources=["revision", "rlaif"], policy_model=str(tiny_model_dir),
                          critic_model=str(critic_model_dir), settings=SHORT, min_confidence=0.5)
    folder = tmp_path / "ds"
    state = run_generation(folder, spec)
    assert state.state == "finished", state.error
    critic_id, policy_id = critic_model_dir.name, tiny_model_dir.name
    critic = load_model(str(critic_model_dir))
    for trace, sft in zip(read_rows(folder / TRACES_FILE), read_rows(folder / SFT_FILE)):
        step = trace["steps"][0]
        assert step["critique_model"] == critic_id and trace["models"]["initial"] == policy_id
        # The critique is the critic's own greedy answer to the critique conversation.
        asked = templates.critique_conversation(templates.initial_conversation(trace["prompt"]), trace["initial"],
                                                constitution_request(step["principle"]))
        assert step["critique"] == critic.generate([asked], SHORT.model_copy(update={"seed": spec.seed + 1}))[0].text
        assert sft["messages"][-1]["content"] == trace["final"]
        assert sft["lineage"]["roles"] == {"policy": policy_id, "critic": critic_id, "judge": critic_id}
    judged = read_rows(folder / "judgements.jsonl")
    assert all(row["judge"]["model"] == critic_id for row in judged)  # the judge defaulted to the critic
    card = (folder / "README.md").read_text()
    assert f"| critic | `{critic_id}` |" in card and f"distillation from `{critic_id}`" in card
    assert json.loads((folder / "card.json").read_text())["roles"]["critic"] == critic_id


def constitution_request(principle_name: str) -> str:
    return load_constitution("general-hhh").principle(principle_name).critique_request


def test_the_loop_settings_take_a_critic():
    from cai_core.evaluation.loop import LoopError, parse_loop_spec

    spec = parse_loop_spec({"constitution": "general-hhh", "generation": {"critic_model": "http://127.0.0.1:9/v1"}})
    assert spec.generation["critic_model"] == "http://127.0.0.1:9/v1"
    with pytest.raises(LoopError, match="critic_modle"):
        parse_loop_spec({"constitution": "general-hhh", "generation": {"critic_modle": "x"}})
    assert "endpoint URL" in GenerationSpec.model_fields["critic_model"].description


# --------------------------------------------------------------------------- memory


def test_roles_default_the_judge_to_the_critic():
    assert role_specs("a") == {"policy": "a", "critic": None, "judge": "a"}
    assert role_specs("a", "b") == {"policy": "a", "critic": "b", "judge": "b"}
    assert role_specs("a", "b", "c") == {"policy": "a", "critic": "b", "judge": "c"}
    assert role_specs("a", "a") == {"policy": "a", "critic": None, "judge": "a"}  # the policy critiquing itself
    assert role_specs("a", "b", need_critic=False, need_judge=False) == {"policy": "a", "critic": None, "judge": None}


def test_weights_are_estimated_from_the_safetensors_header(tiny_model, tiny_model_dir):
    parameters = sum(p.numel() for p in tiny_model.model.parameters())
    assert estimate_weight_bytes(str(tiny_model_dir), "cpu") == 4 * parameters
    assert estimate_weight_bytes(str(tiny_model_dir), "cuda") == 2 * parameters
    assert estimate_weight_bytes("http://127.0.0.1:9/v1") == 0


def test_two_local_models_too_big_are_refused_in_one_sentence(tmp_path, monkeypatch, tiny_model_dir, critic_model_dir):
    policy, critic = str(tiny_model_dir), str(critic_model_dir)
    needed = required_bytes([estimate_weight_bytes(policy), estimate_weight_bytes(critic)])
    roles = {"policy": policy, "critic": critic, "judge": critic}
    with pytest.raises(ModelsDoNotFit) as caught:
        check_models_fit(roles, available_bytes=needed - 1, device="cpu")
    message = str(caught.value)
    assert "\n" not in message and policy in message and critic in message and "critic and judge" in message
    assert "endpoint URL" in message
    check_models_fit(roles, available_bytes=needed, device="cpu")  # just enough: no refusal
    # An endpoint critic costs no local memory; one local model alone is never refused here.
    check_models_fit({"policy": policy, "critic": "http://127.0.0.1:9/v1", "judge": None}, available_bytes=1)
    # load_roles refuses before it loads anything.
    with pytest.raises(ModelsDoNotFit):
        load_roles(policy, critic, available_bytes=needed - 1)

    # A job: refused before its folder is written, through the variable a shared machine would set.
    monkeypatch.setenv(AVAILABLE_MEMORY_VARIABLE, str(needed - 1))
    assert available_memory_bytes() == needed - 1
    spec = GenerationSpec(constitution="general-hhh", prompt_sources=["benign"], limit=1, phases=["sft"],
                          policy_model=policy, critic_model=critic, settings=SHORT)
    with pytest.raises(DatasetError) as caught:
        run_generation(tmp_path / "ds", spec)
    assert "\n" not in str(caught.value) and "working room" in str(caught.value)
    assert not (tmp_path / "ds").exists()
    monkeypatch.setenv(AVAILABLE_MEMORY_VARIABLE, "2G")
    assert available_memory_bytes() == 2 * 1024**3
    monkeypatch.setenv(AVAILABLE_MEMORY_VARIABLE, "lots")
    with pytest.raises(Exception, match="is not a size"):
        available_memory_bytes()


# --------------------------------------------------------------------------- an endpoint critic that dies mid-run


def start_server(model_dir: Path, port: int, log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir),
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with open(log_path, "ab") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"})
    began = time.monotonic()
    while not _healthy(f"http://127.0.0.1:{port}/health"):
        if server.poll() is not None or time.monotonic() - began > SERVER_START_SECONDS:
            _stop(server)
            pytest.fail(f"transformers serve did not start; its log ends:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    return server


@pytest.mark.slow
def test_an_endpoint_critic_that_dies_mid_run_fails_then_resumes_without_duplicates(tmp_path, tiny_model_dir):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log_path = tmp_path / "serve.log"
    spec = GenerationSpec(constitution="general-hhh", prompt_sources=["benign"], limit=4, phases=["sft"],
                          policy_model=str(tiny_model_dir), critic_model=url, settings=SHORT, chunk_size=1)
    folder = tmp_path / "ds"
    server = start_server(tiny_model_dir, port, log_path)
    try:
        def stop_after_first_chunk(progress: dict) -> None:
            if progress.get("done", 0) >= 1 and server.poll() is None:
                _stop(server)

        failed = run_generation(folder, spec, on_progress=stop_after_first_chunk)
        assert failed.state == "failed"
        assert url in failed.error and "\n" not in failed.error and "is the server running" in failed.error
        done_before = len(read_rows(folder / DONE_FILE))
        assert 1 <= done_before < 4

        server = start_server(tiny_model_dir, port, log_path)
        finished = run_generation(folder, spec)
        assert finished.state == "finished", finished.error
    finally:
        _stop(server)
    prompts = [row["id"] for row in read_rows(folder / "prompts.jsonl")]
    for name in (SFT_FILE, TRACES_FILE, DONE_FILE):
        ids = [row["id"] for row in read_rows(folder / name)]
        assert sorted(ids) == sorted(prompts) and len(ids) == len(set(ids)) == 4, name
    for trace in read_rows(folder / TRACES_FILE):
        assert trace["steps"][0]["critique_model"].endswith(f"@{url}")
        assert trace["models"]["initial"] == tiny_model_dir.name


def test_the_card_tells_distillation_from_self_critique(tmp_path):
    from cai_core.data import dataset_roles, roles_card_lines

    external = "\n".join(roles_card_lines({"policy": "small", "critic": "big@http://127.0.0.1:8000/v1", "judge": None}))
    assert "distillation from `big@http://127.0.0.1:8000/v1`" in external and "| judge |" not in external
    own = "\n".join(roles_card_lines({"policy": "small", "critic": "small", "judge": "small"}))
    assert "self-critique" in own and "distillation" not in own
    # Without rows, the roles come from the spec; a spec.json edited into a list names no model.
    assert dataset_roles(tmp_path, {"constitution": "c", "prompt_sources": ["benign"], "critic_model": "big"}) == \
        {"policy": "default", "critic": "big", "judge": "big"}
    assert dataset_roles(tmp_path, ["not", "a", "spec"]) == {"policy": None, "critic": None, "judge": None}
