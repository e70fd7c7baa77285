"""A chain preview running beside the caller, so a UI can poll it instead of blocking on it.

Previews are short and interactive, and they share the one loaded model of the process (a
second process would load a second copy of the model for a few seconds of work), so they run in
a background thread. Dataset generation and training, which are long, run in processes of
their own.

``chain_kwargs`` are ``run_chain``'s, so a preview can take a ``critic`` backend beside the policy
(``model``): two previews of the same prompts, one without a critic and one with, compare
self-critique with an external critic.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

from .chain import ChainCancelled, ChainEvent, Trace, run_chain
from .threads import FINISHED_STAGES, BackgroundRun

# After the initial answers, each round is two stages (critique, revision).
_STAGE_AFTER = {"initial": "critique", "critique": "revision", "revision": "critique"}


@dataclass(frozen=True)
class PreviewState:
    """One consistent reading of a job: everything taken under the job's lock at once."""

    stage: str  # queued, initial, critique, revision, done, failed, cancelled
    round: int
    steps_done: int
    steps_total: int
    error: str | None
    traces: list[Trace]
    elapsed: float
    # Text of the stage being written right now, for the first prompt (None between stages).
    partial_text: str | None = None

    @property
    def finished(self) -> bool:
        return self.stage in FINISHED_STAGES


@dataclass
class PreviewJob(BackgroundRun):
    """Run ``run_chain(**chain_kwargs)`` in a thread; ``state()`` is safe to call at any time."""

    cancelled_error = ChainCancelled
    running_stage = "initial"

    label: str
    chain_kwargs: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    round: int = 0
    steps_done: int = 0
    _traces: list[Trace] = field(default_factory=list, repr=False)
    _partial_text: str | None = field(default=None, repr=False)

    @property
    def steps_total(self) -> int:
        return 1 + 2 * int(self.chain_kwargs.get("rounds", 1))

    def _thread_name(self) -> str:
        return f"preview-{self.id}"

    def _on_partial(self, stage: str, round_number: int, texts: dict[int, str]) -> None:
        if 0 in texts:
            with self._lock:
                self._partial_text = texts[0]

    def _on_event(self, event: ChainEvent) -> None:
        with self._lock:
            self._partial_text = None
            self._traces = copy.deepcopy(event.traces)
            self.round = event.round
            self.steps_done += 1
            self.stage = _STAGE_AFTER[event.stage]

    def _compute(self) -> list[Trace]:
        return run_chain(on_event=self._on_event, should_stop=self._stop.is_set, on_partial=self._on_partial,
                         **self.chain_kwargs)

    def _keep(self, traces: list[Trace]) -> None:
        self._traces, self.steps_done, self._partial_text = traces, self.steps_total, None

    def state(self) -> PreviewState:
        with self._lock:
            return PreviewState(self.stage, self.round, self.steps_done, self.steps_total, self.error,
                                copy.deepcopy(self._traces), self.elapsed(), self._partial_text)


def writer_role(trace: Trace, model_id: str) -> str:
    """Which role wrote a text of ``trace``, from the model id the trace records for it: "policy"
    (the model that wrote the first answer, also when it critiques itself) or "critic"."""
    policy = trace.models.get("initial") if isinstance(trace.models, dict) else None
    return "critic" if model_id and policy and model_id != policy else "policy"


def start_preview(label: str, **chain_kwargs: Any) -> PreviewJob:
    return PreviewJob(label=label, chain_kwargs=chain_kwargs).start()
