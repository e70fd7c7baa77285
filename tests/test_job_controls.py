"""Stop and resume are answered by cai_core.jobs alone: what a page asks, and what a worker sees."""

from __future__ import annotations

import re
from pathlib import Path

from cai_core.jobs import (CANCELLED, FAILED, FINISHED, INTERRUPTED, QUEUED, RUNNING, JobCancelled, Reporter,
                           clear_stop_request, is_resumable, is_stopping, request_stop)

ROOT = Path(__file__).resolve().parents[1]


def test_a_stop_asked_is_seen_by_the_worker_until_the_job_starts_again(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    reporter = Reporter(folder)
    reporter.check_stop()  # nothing asked: carries on
    assert not is_stopping(folder)
    request_stop(folder)
    assert is_stopping(folder)
    try:
        reporter.check_stop()
    except JobCancelled:
        pass
    else:
        raise AssertionError("the worker did not see the stop")
    clear_stop_request(folder)
    assert not is_stopping(folder)
    reporter.check_stop()


def test_a_stop_for_a_folder_that_is_gone_does_nothing(tmp_path):
    request_stop(tmp_path / "gone")
    assert not (tmp_path / "gone").exists()


def test_which_states_resume():
    assert [state for state in ("new", QUEUED, RUNNING, FINISHED, FAILED, CANCELLED, INTERRUPTED)
            if is_resumable(state)] == ["new", FAILED, CANCELLED, INTERRUPTED]


def test_only_the_jobs_module_names_the_stop_file():
    """Pages, the CLI and the runners ask cai_core.jobs; none of them writes the file itself."""
    named = re.compile(r"""["']cancel["']""")
    sources = [p for p in [*ROOT.glob("cai_core/**/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]
               if named.search(p.read_text(encoding="utf-8"))]
    assert [p.relative_to(ROOT).as_posix() for p in sources] == ["cai_core/jobs.py"]
