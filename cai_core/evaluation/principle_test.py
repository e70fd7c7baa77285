""""Test this principle": one principle's examples answered and checked beside the caller.

A test answers about ten examples, and an author runs it again after each edit. So it runs in a
thread of the app process on the model the app already holds, as a Playground preview does: a job
process would load a second copy of the model for seconds of work, each time. The caller polls
``state()``; ``cancel()`` stops it between batches of answers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..constitution import Principle
from ..errors import Cancelled
from ..threads import preview_share
from .principles import run_principle_examples

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
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
class PrincipleTest:
    """Run ``run_principle_examples(model, principle, judge)`` in a thread; ``state()`` is safe any time."""

    model: object
    principle: Principle
    judge: object | None = None
    model_label: str = ""
    stage: str = RUNNING
    done: int = 0
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    _results: list[dict] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def total(self) -> int:
        return len(self.principle.examples)

    def start(self) -> "PrincipleTest":
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=f"principle-test-{self.principle.name}", daemon=True)
            self._thread.start()
        return self

    def cancel(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Asked to stop (it may still be finishing the answers being written)."""
        return self._stop.is_set()

    def _on_progress(self, done: int, total: int) -> None:
        with self._lock:
            self.done = done
        if self._stop.is_set():
            raise PrincipleTestCancelled("stopped")

    def _work(self) -> None:
        try:
            with preview_share():  # beside running jobs, a test takes its share of the cores, not all
                results = run_principle_examples(self.model, self.principle, judge=self.judge, batch_size=BATCH_SIZE,
                                                 on_progress=self._on_progress)
            with self._lock:
                self._results, self.stage, self.done = results, DONE, len(results)
        except PrincipleTestCancelled:
            with self._lock:
                self.stage = CANCELLED
        except Exception as error:  # noqa: BLE001 - shown to the user as one sentence
            with self._lock:
                self.error, self.stage = str(error) or type(error).__name__, FAILED
        finally:
            self.finished_at = time.time()

    def state(self) -> PrincipleTestState:
        with self._lock:
            return PrincipleTestState(self.stage, self.done, self.total, list(self._results), self.error,
                                      (self.finished_at or time.time()) - self.started_at)

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state().finished


def start_principle_test(model, principle: Principle, judge=None, model_label: str = "") -> PrincipleTest:
    return PrincipleTest(model, principle, judge, model_label).start()
