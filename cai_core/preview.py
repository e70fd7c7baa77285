"""A chain preview running beside the caller, so a UI can poll it instead of blocking on it.

Previews are short and interactive, and they share the one loaded model of the process (a
second process would load a second copy of the model for a few seconds of work), so they run in
a background thread. Dataset generation and training, which are long, run in processes of
their own (see jobs.py in later parts).
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .chain import ChainEvent, Trace, run_chain


@dataclass
class PreviewJob:
    """Run ``run_chain(**kwargs)`` in a thread; ``snapshot()`` is safe to call at any time."""

    label: str
    chain_kwargs: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    stage: str = "queued"
    round: int = 0
    error: str | None = None
    started_at: float = 0.0
    finished_at: float | None = None
    _traces: list[Trace] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> "PreviewJob":
        if self._thread is None:
            self.started_at = time.time()
            self.stage = "initial"
            self._thread = threading.Thread(target=self._work, name=f"preview-{self.id}", daemon=True)
            self._thread.start()
        return self

    def _on_event(self, event: ChainEvent) -> None:
        with self._lock:
            self._traces = copy.deepcopy(event.traces)
            self.round = event.round
            self.stage = {"initial": "critique", "critique": "revision", "revision": "critique"}[event.stage]

    def _work(self) -> None:
        try:
            traces = run_chain(on_event=self._on_event, **self.chain_kwargs)
            with self._lock:
                self._traces = traces
                self.stage = "done"
        except Exception as error:  # noqa: BLE001 - shown to the user as one sentence
            with self._lock:
                self.error = str(error) or type(error).__name__
                self.stage = "failed"
        finally:
            self.finished_at = time.time()

    @property
    def finished(self) -> bool:
        return self.stage in ("done", "failed")

    def snapshot(self) -> list[Trace]:
        with self._lock:
            return copy.deepcopy(self._traces)

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished

    def elapsed(self) -> float:
        end = self.finished_at or time.time()
        return end - self.started_at if self.started_at else 0.0


def start_preview(label: str, **chain_kwargs: Any) -> PreviewJob:
    return PreviewJob(label=label, chain_kwargs=chain_kwargs).start()
