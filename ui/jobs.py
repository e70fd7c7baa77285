"""One panel for a background job (data, training, evaluation, judgement, loop) on any page.

The job runs in its own process and writes its folder (``cai_core.jobs``); the panel reads the
folder again every ``POLL_SECONDS`` from a fragment while the job runs, offers Stop while it runs
and Resume once it has ended in a state it can carry on from, shows the end of its log, and reruns
the whole page once when the job ends, so that what the job made (tables, charts, downloads)
catches up and the polling stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import streamlit as st

from cai_core.jobs import FAILED, INTERRUPTED, JobState, is_resumable, is_stopping, log_tail, read_job, request_stop

POLL_SECONDS = 1.0
LOG_LINES = 40


def live_while(active: bool, every: float = POLL_SECONDS):
    """A fragment decorator that redraws its part of the page every ``every`` seconds while
    ``active`` (a job it shows was running when the page was drawn), and never otherwise."""
    return st.fragment(run_every=every if active else None)


def stop_button(folder: Path, key: str, stopping_words: str, label: str = "Stop", help: str | None = None) -> None:
    """Stop for a running job (disabled once asked), and what happens next once it is asked."""
    stopping = is_stopping(folder)
    if st.button(label, key=key, icon=":material/stop:", disabled=stopping, help=help):
        request_stop(folder)
        stopping = True
    if stopping:
        st.caption(stopping_words)


def log_expander(folder: Path, expanded: bool) -> None:
    """The end of the job's log.txt (where a failure's traceback is)."""
    with st.expander("End of the log (log.txt)", expanded=expanded, icon=":material/article:"):
        tail = log_tail(folder, LOG_LINES)
        if tail.strip():
            st.code(tail, language=None)
        else:
            st.caption("Nothing logged yet.")


def job_panel(
    folder: Path,
    drawn: JobState,
    key: str,
    *,
    show: Callable[[JobState], None],
    stopping_words: str,
    stop_label: str = "Stop",
    stop_help: str | None = None,
    resume: Callable[[], bool] | None = None,
    resume_words: Callable[[JobState], str] | str | None = None,
    resume_label: str = "Resume",
    then: Callable[[JobState], None] | None = None,
    log: str = "never",
    rerun_when: Callable[[JobState], bool] | None = None,
    poll_seconds: float = POLL_SECONDS,
) -> None:
    """The live panel of the job in ``folder``.

    ``drawn`` is the job as the page saw it when drawn: the panel polls while it was active.
    ``show(job)`` draws the job's own state; then come Stop (while active) or Resume (``resume()``
    starts the job again and returns whether it did; the page is rerun when it did), then the log
    (``log``: "always", open when the job failed or was interrupted; "on_failure", only then, open;
    or "never"), then ``then(job)``. ``rerun_when(job)`` may rerun the page while the job
    still runs (say when a chunk of rows was written). ``key`` prefixes the buttons' keys.
    """

    @live_while(drawn.active, poll_seconds)
    def live() -> None:
        job = read_job(folder)
        show(job)
        if job.active:
            stop_button(folder, f"{key}stop", stopping_words, stop_label, stop_help)
        elif resume is not None and is_resumable(job.state):
            words = resume_words(job) if callable(resume_words) else resume_words
            if words:
                st.caption(words)
            if st.button(resume_label, key=f"{key}resume", type="primary", icon=":material/play_arrow:") and resume():
                st.rerun()  # the whole page: polling starts again
        failed = job.state in (FAILED, INTERRUPTED)
        if log == "always" or (log == "on_failure" and failed):
            log_expander(folder, expanded=failed)
        if then is not None:
            then(job)
        if drawn.active and (not job.active or (rerun_when is not None and rerun_when(job))):
            st.rerun()

    live()


def start_or_say(start: Callable[[], Path], kind: str) -> Path | None:
    """Run a job's ``start()`` and return its folder; any problem is one st.error sentence and None."""
    from cai_core.constitution import ConstitutionError
    from cai_core.evaluation import EvaluationError
    from cai_core.evaluation.loop import LoopError
    from cai_core.jobs import JobError
    from cai_core.training import RecipeError, TrainingError

    from ui.common import os_error_sentence, sentence

    try:
        return start()
    except RecipeError as error:  # the name check is shared with training runs, whose message says "run name"
        st.error(sentence(str(error).replace("run name", f"{kind} name", 1)))
    except (EvaluationError, LoopError, JobError, ConstitutionError, TrainingError) as error:
        st.error(sentence(error))
    except OSError as error:
        st.error(os_error_sentence(f"the {kind} folder could not be written", error))
    return None
