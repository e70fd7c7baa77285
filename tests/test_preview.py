"""Background previews: consistent state, progress, cancel, and failures as one sentence."""

import threading

from cai_core import load_constitution
from cai_core.preview import start_preview
from tests.test_chain import ScriptedBackend, two_rules


class GatedBackend(ScriptedBackend):
    """Waits for the test's go-ahead before each batch, so the test can look mid-run."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Semaphore(0)

    def generate(self, conversations, settings):
        self.gate.acquire()
        return super().generate(conversations, settings)


def test_preview_reports_progress_then_finishes():
    backend = GatedBackend()
    job = start_preview("t", model=backend, constitution=two_rules(), prompts=["p"], rounds=2)
    assert job.state().steps_total == 5 and not job.state().finished
    for _ in range(5):
        backend.gate.release()
    assert job.wait(10)
    state = job.state()
    assert state.stage == "done" and state.steps_done == 5 and state.traces[0].final
    assert state.traces[0].lineage["principles"] == ["a", "b"]


def test_cancel_stops_at_the_next_stage():
    backend = GatedBackend()
    job = start_preview("t", model=backend, constitution=two_rules(), prompts=["p"], rounds=3)
    job.cancel()
    backend.gate.release()
    assert job.wait(10)
    assert job.state().stage == "cancelled" and len(backend.batches) == 1


def test_failure_becomes_one_sentence():
    job = start_preview("t", model=ScriptedBackend(), constitution=load_constitution("general-hhh"), prompts=["p"], principles=["nope"])
    job.wait(10)
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


def test_preview_state_carries_partial_text_only_mid_stage(tiny_model):
    from cai_core import GenerationSettings

    job = start_preview("t", model=tiny_model, constitution=two_rules(), prompts=["hello"], rounds=1,
                        settings=GenerationSettings(max_new_tokens=12, temperature=1.0))
    assert job.wait(30)
    assert job.state().stage == "done" and job.state().partial_text is None
