""""Test this principle": one principle's examples answered and checked beside the caller.

A test answers about ten examples, and an author runs it again after each edit. So it runs in a
thread of the app process on the model the app already holds, as a Playground preview does: a job
process would load a second copy of the model for seconds of work, each time. The caller polls
``state()``; ``cancel()`` stops it between batches of answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..constitution import Principle
from ..errors import Cancelled
from ..threads import BackgroundRun
from .principles import run_principle_examples

RUNNING = "running"
# Small batches: progress moves and a stop waits for at most this many answers.
BATCH_SIZE = 4


class PrincipleTestCancelled(Cancelled):
    """Raised between batches when the test was asked to stop."""


@dataclass(frozen=True)
class PrincipleTestState:
    """One consistent reading of a test."""

    stage: str  # running, done, failed, cancelled
    done: int
    total: int
    results: list[dict]  # run_principle_examples's items, once done
    error: str | None
    elapsed: float

    @property
    def finished(self) -> bool:
        return self.stage != RUNNING


@dataclass
class PrincipleTest(BackgroundRun):
    """Run ``run_principle_examples(model, principle, judge)`` in a thread; ``state()`` is safe any time."""

    cancelled_error = PrincipleTestCancelled
    running_stage = RUNNING

    model: object
    principle: Principle
    judge: object | None = None
    model_label: str = ""
    stage: str = field(default=RUNNING, kw_only=True)
    started_at: float = field(default_factory=time.time, kw_only=True)
    done: int = 0
    _results: list[dict] = field(default_factory=list, repr=False)

    @property
    def total(self) -> int:
        return len(self.principle.examples)

    def _thread_name(self) -> str:
        return f"principle-test-{self.principle.name}"

    def _on_progress(self, done: int, total: int) -> None:
        with self._lock:
            self.done = done
        if self._stop.is_set():
            raise PrincipleTestCancelled("stopped")

    def _compute(self) -> list[dict]:
        return run_principle_examples(self.model, self.principle, judge=self.judge, batch_size=BATCH_SIZE,
                                      on_progress=self._on_progress)

    def _keep(self, results: list[dict]) -> None:
        self._results, self.done = results, len(results)

    def state(self) -> PrincipleTestState:
        with self._lock:
            return PrincipleTestState(self.stage, self.done, self.total, list(self._results), self.error,
                                      self.elapsed())


def start_principle_test(model, principle: Principle, judge=None, model_label: str = "") -> PrincipleTest:
    return PrincipleTest(model, principle, judge, model_label).start()
