"""Test this principle's background run (cai_core.evaluation.principle_test) on a scripted model."""

from __future__ import annotations

from cai_core.constitution import Principle
from cai_core.evaluation.principle_test import start_principle_test
from cai_core.threads import CANCELLED, DONE, FAILED

PRINCIPLE = Principle.model_validate({
    "name": "private-data", "critique_request": "c", "revision_request": "r",
    "checks": [{"not-icontains": "address"}],
    "examples": [{"prompt": f"question {n}", "expect": ["answers"]} for n in range(6)],
})


def test_every_example_is_answered_and_checked_with_its_half(scripted_backend):
    backend = scripted_backend(lambda conversation, copy: "Your address is 5 Elm St." if "3" in conversation[-1]["content"] else "Sure.")
    run = start_principle_test(backend, PRINCIPLE, model_label="scripted")
    assert run.wait(30)
    state = run.state()
    assert state.stage == DONE and state.done == state.total == 6
    assert [item["half"] for item in state.results] == ["test", "train"] * 3
    assert [item["passed"] for item in state.results] == [True, True, True, False, True, True]
    assert state.results[3]["reason"].startswith("not-icontains \"address\" failed: it contains 'address'")
    assert len(backend.batches) == 2  # answered four at a time, so progress moves and Stop is near


def test_stop_ends_it_between_batches_without_checking(scripted_backend):
    backend = scripted_backend("Sure.")
    gate = backend.hold_each_batch()
    run = start_principle_test(backend, PRINCIPLE)
    run.cancel()
    assert run.stopping
    gate.release()
    assert run.wait(30)
    state = run.state()
    assert state.stage == CANCELLED and state.results == [] and len(backend.batches) == 1


def test_a_model_that_breaks_is_one_sentence(scripted_backend):
    def broken(batch):
        raise RuntimeError("the scripted model broke")

    run = start_principle_test(scripted_backend("Sure.", hold=broken), PRINCIPLE)
    assert run.wait(30)
    assert run.state().stage == FAILED and run.state().error == "the scripted model broke"
