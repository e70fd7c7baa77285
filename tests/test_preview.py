"""Background previews: consistent state, progress, cancel, and failures as one sentence."""

import time

import pytest

from cai_core import load_constitution
from cai_core.preview import start_preview
from tests.test_chain import two_rules


def wait_for(condition, timeout: float = 10.0, what: str = "the preview to get there"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.01)
    return value


@pytest.fixture
def backend(scripted_backend):
    return scripted_backend.chain()


def test_preview_reports_progress_then_finishes(backend):
    gate = backend.hold_each_batch()
    job = start_preview("t", model=backend, constitution=two_rules(), prompts=["p"], rounds=2)
    assert job.state().steps_total == 5 and not job.state().finished
    for _ in range(5):
        gate.release()
    assert job.wait(10)
    state = job.state()
    assert state.stage == "done" and state.steps_done == 5 and state.traces[0].final
    assert state.traces[0].lineage["principles"] == ["a", "b"]


def test_cancel_stops_at_the_next_stage(backend):
    gate = backend.hold_each_batch()
    job = start_preview("t", model=backend, constitution=two_rules(), prompts=["p"], rounds=3)
    job.cancel()
    gate.release()
    assert job.wait(10)
    assert job.state().stage == "cancelled" and len(backend.batches) == 1


def test_failure_becomes_one_sentence(backend):
    job = start_preview("t", model=backend, constitution=load_constitution("general-hhh"), prompts=["p"], principles=["nope"])
    assert job.wait(10)
    state = job.state()
    assert state.stage == "failed" and "no principle named 'nope'" in state.error


def test_partial_text_is_reported_while_a_stage_is_written(tiny_model):
    from cai_core import GenerationSettings, run_chain

    seen = []
    settings = GenerationSettings(max_new_tokens=12, temperature=1.0)
    traces = run_chain(tiny_model, two_rules(), ["hello there", "bye"], rounds=1, seed=2, settings=settings,
                       on_partial=lambda stage, rnd, texts: seen.append((stage, rnd, dict(texts))))
    assert {stage for stage, _, _ in seen} >= {"initial", "critique"}
    assert all(set(texts) <= {0, 1} for _, _, texts in seen)
    last_initial = [texts for stage, _, texts in seen if stage == "initial"][-1]
    for index, text in last_initial.items():  # partial text is a prefix of what the stage ended with
        assert traces[index].initial.startswith(text.strip()[:5])


def test_preview_state_carries_partial_text_only_mid_stage(scripted_backend):
    # Each batch shows the first half of its answer as written so far, then waits for the test.
    backend = scripted_backend.chain(initial="the first answer", critique="a critique of it",
                                     revision="a revised answer", partial_text=True)
    gate = backend.hold_each_batch()
    job = start_preview("t", model=backend, constitution=two_rules(), prompts=["hello"], rounds=1, principles=["a"])
    assert wait_for(lambda: job.state().partial_text) == "the firs"
    assert job.state().stage == "initial"
    gate.release()  # the initial answers end; the critique is being written
    assert wait_for(lambda: job.state().partial_text == "a critiq" and job.state())
    assert job.state().stage == "critique" and job.state().traces[0].initial == "the first answer"
    gate.release()
    gate.release()
    assert job.wait(10)
    state = job.state()
    assert state.stage == "done" and state.partial_text is None and state.traces[0].final == "a revised answer"


def test_a_model_that_reports_no_partial_text_shows_none_mid_stage(backend):
    gate = backend.hold_each_batch()
    job = start_preview("t", model=backend, constitution=two_rules(), prompts=["hello"], rounds=1)
    wait_for(lambda: backend.batches, what="the first batch")
    assert job.state().stage == "initial" and job.state().partial_text is None
    for _ in range(3):
        gate.release()
    assert job.wait(10)
