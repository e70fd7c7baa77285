"""Long work in its own process, with a folder on disk as the only shared state.

A job folder holds ``spec.json`` (what to do), ``status.json`` (queued, running, finished,
failed, cancelled), ``progress.json`` (done/total, rate, ETA), ``log.txt`` and whatever the job
writes. Pages start a job and poll the folder; a rerun, a closed tab or a second browser can
neither stop it nor start it twice, because the worker holds an exclusive ``flock`` on
``worker.lock`` for its whole life. The kernel drops that lock when the process dies however it
dies, so "running" in status.json with no lock held means the worker was killed: the job shows as
interrupted and starting it again resumes it (each job kind resumes from its own output files).

Run a worker by hand with ``python -m cai_core.jobs JOB_DIR``.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .errors import CaiError, Cancelled
from .atomic import write_text_atomic
from .threads import job_share

# Which function runs each kind of job: "module:function", imported only in the worker.
RUNNERS = {
    "generate": "cai_core.data.worker:run_generation_job",
    "train": "cai_core.training.trainer:run_training_job",
    "evaluate": "cai_core.evaluation.run:run_evaluation_job",
    "loop": "cai_core.evaluation.loop:run_loop_job",
    "harmlessness": "cai_core.evaluation.harmlessness:run_harmlessness_job",
}
# The module a job's worker runs as (``python -m MODULE JOB_DIR``); a kind may name its own, so
# the command the page shows is the one that runs.
WORKER_MODULES = {"train": "cai_core.training"}
QUEUED, RUNNING, FINISHED, FAILED, CANCELLED, INTERRUPTED = "queued", "running", "finished", "failed", "cancelled", "interrupted"
ENDED_STATES = (FINISHED, FAILED, CANCELLED, INTERRUPTED)
# States a job can be started again from: what it made so far is kept and it carries on. "new" is a
# folder whose spec was written but whose worker never started.
RESUMABLE_STATES = ("new", CANCELLED, INTERRUPTED, FAILED)
# The file whose presence asks a job to stop; only this module names it.
_STOP_FILE = "cancel"
# A worker that has not taken its lock this long after being started never will.
START_GRACE_SECONDS = 60.0
PROGRESS_EVERY_SECONDS = 0.5
LOCK_ATTEMPTS = 20  # x 0.1 s
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>: a signal the kernel sends a process when its parent ends


class JobError(CaiError):
    """A job that cannot be started or read; the message is one sentence."""


class JobCancelled(Cancelled):
    """Raised inside a runner when the user asked the job to stop."""


@dataclass
class JobState:
    folder: Path
    state: str
    kind: str = ""
    error: str | None = None
    progress: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)

    @property
    def fraction(self) -> float:
        total = self.progress.get("total") or 0
        return min(1.0, (self.progress.get("done") or 0) / total) if total else 0.0


class Reporter:
    """What a runner uses to report progress and to learn that it should stop."""

    def __init__(self, folder: Path, on_progress: Callable[[dict], None] | None = None):
        self.folder = folder
        self.on_progress = on_progress
        self._began = time.time()
        self._done_at_start: int | None = None
        self._last_write = 0.0
        self.stop_requested = False

    def progress(self, done: int, total: int, stage: str = "", force: bool = False, **extra) -> None:
        if self._done_at_start is None:
            self._done_at_start, self._began = done, time.time()
        elapsed = time.time() - self._began
        made = done - self._done_at_start
        rate = made / elapsed if elapsed > 0 and made > 0 else None
        data = {"done": done, "total": total, "stage": stage, "rate_per_second": rate,
                "eta_seconds": (total - done) / rate if rate else None, "elapsed_seconds": elapsed,
                "updated": time.time(), **extra}
        now = time.monotonic()
        if force or now - self._last_write >= PROGRESS_EVERY_SECONDS:
            write_json(self.folder / "progress.json", data)
            self._last_write = now
        if self.on_progress:
            self.on_progress(data)

    def restart_rate(self) -> None:
        """Measure rate and ETA from the next report on (after loading, or a resume's skipped steps)."""
        self._done_at_start = None

    def set_state(self, state: str) -> None:
        """Show the job as queued while it waits its turn, and running again once it has it."""
        status = read_json(self.folder / "status.json") or {}
        status["state"] = state
        write_json(self.folder / "status.json", status)

    def note(self, message: str) -> None:
        """A warning the user should see beside the result (kept in status.json and the log)."""
        status = read_json(self.folder / "status.json") or {}
        notes = status.setdefault("notes", [])
        if message not in notes:
            notes.append(message)
            write_json(self.folder / "status.json", status)
            if self.on_progress is None:  # a worker's stdout is its log; the CLI prints notes at the end
                print(f"note: {message}", flush=True)

    def check_stop(self) -> None:
        if self.stop_requested or is_stopping(self.folder):
            raise JobCancelled("stopped on request")


def write_json(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> dict | None:
    """A JSON object from disk, or None when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _clean_progress(progress: dict) -> dict:
    """progress.json as numbers the page can do arithmetic on, whatever a hand edit left there."""
    cleaned = dict(progress)
    for name in ("done", "total"):
        value = progress.get(name)
        cleaned[name] = value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
    for name in ("rate_per_second", "eta_seconds", "elapsed_seconds", "updated"):
        value = cleaned.pop(name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            cleaned[name] = float(value)
    cleaned["stage"] = str(progress.get("stage") or "")
    return cleaned


def is_running(folder: Path) -> bool:
    """True while a worker holds the folder's lock."""
    lock = Path(folder) / "worker.lock"
    if not lock.exists():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


@contextmanager
def holding_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / "worker.lock", "a")
    try:
        # A reader's is_running() holds the lock for an instant; a real second worker holds it for
        # the whole run. A short wait tells the two apart.
        for attempt in range(LOCK_ATTEMPTS):
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == LOCK_ATTEMPTS - 1:
                    raise JobError(f"{folder} is already being worked on by another process") from None
                time.sleep(0.1)
        yield
    finally:
        handle.close()


def is_job_folder(folder: Path) -> bool:
    """True when ``folder`` was made by this tool: its ``spec.json`` names one of our job kinds.

    That spec.json is the one marker of a job folder (``list_datasets`` and ``run_job`` read it
    too); a job writes it before any other file, so every folder a job has written in carries it.
    """
    recorded = read_json(Path(folder) / "spec.json")
    return recorded is not None and recorded.get("kind") in RUNNERS and isinstance(recorded.get("spec"), dict)


def check_output_folder(folder: Path) -> None:
    """Refuse, before anything is written, a folder a job may not write in: one that holds
    anything and was not made by this tool, since a job rewrites the files it finds there."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise JobError(f"{folder} is a file; give a folder")
    if folder.is_dir() and any(folder.iterdir()) and not is_job_folder(folder):
        raise JobError(f"{folder} already holds files that this tool did not make, so nothing was written "
                       "there; give a new or empty folder")


def prepare_job(folder: Path, kind: str, spec: dict, write: bool = True) -> None:
    """Write the spec of a new job, or check that it matches the one already there (a resume)."""
    if kind not in RUNNERS:
        raise JobError(f"unknown job kind {kind!r}")
    folder = Path(folder)
    existing = read_json(folder / "spec.json")
    if existing is not None:
        if existing.get("kind") != kind or existing.get("spec") != spec:
            changed = sorted(k for k in set(spec) | set(existing.get("spec", {}))
                             if spec.get(k) != existing.get("spec", {}).get(k))
            raise JobError(f"{folder} already holds a {existing.get('kind')} job with other settings "
                           f"({', '.join(changed) or 'kind'}); resume it unchanged or choose a new folder")
    elif write:
        write_json(folder / "spec.json", {"kind": kind, "spec": spec})


def start_job(folder: Path, kind: str, spec: dict) -> None:
    """Start (or resume) the job in its own process and return at once."""
    folder = Path(folder)
    state = read_job(folder)
    if state.active:
        raise JobError(f"the job in {folder.name} is already {state.state}")
    prepare_job(folder, kind, spec)
    clear_stop_request(folder)
    previous = read_json(folder / "status.json") or {}
    # The worker runs where the job was first started, so a relative path in its spec (a
    # constitution file, a model folder) names the same file in the background as in the
    # foreground, and again on a resume from somewhere else.
    working_folder = previous.get("working_folder") or os.getcwd()
    write_json(folder / "status.json", {"state": QUEUED, "kind": kind, "queued": time.time(),
                                        "started": previous.get("started"), "notes": previous.get("notes", []),
                                        "working_folder": working_folder})
    project = str(Path(__file__).resolve().parent.parent)
    with open(folder / "log.txt", "a") as log:
        log.write(f"--- started {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n")
        log.flush()
        # PYTHONSAFEPATH keeps the working folder off the worker's import path (a file named like
        # a module there must not shadow it); the project's own folder goes on instead.
        subprocess.Popen(worker_command(folder, kind), stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True,
                         cwd=working_folder if Path(working_folder).is_dir() else project,
                         env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONSAFEPATH": "1",
                              "PYTHONPATH": os.pathsep.join(p for p in (project, os.environ.get("PYTHONPATH")) if p)})


def worker_command(folder: Path, kind: str) -> list[str]:
    """The command line that runs a job's worker."""
    return [sys.executable, "-m", WORKER_MODULES.get(kind, "cai_core.jobs"), str(folder)]


def kill_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child is SIGKILLed when the process that starts it
    ends, however it ends (Linux; elsewhere it does nothing).

    A worker killed with SIGKILL has no chance to stop what it started, so its children must be
    tied to it by the kernel. Everything is looked up here, before the fork: the child only makes
    one system call and checks that its parent had not already gone before it made it.
    """
    if not sys.platform.startswith("linux"):
        return lambda: None
    import ctypes

    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()

    def tie_to_parent() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return tie_to_parent


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent ends (Linux); for a process whose
    parent started it without ``kill_with_parent``, such as a rank started by ``accelerate launch``."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def timestamped_name(prefix: str) -> str:
    """A new job's suggested name: ``PREFIX-YYYYMMDD-HHMMSS``."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def log_tail(folder: Path, lines: int = 40, max_bytes: int = 64_000) -> str:
    """The end of a job's log (where a failure's traceback is), read without loading it all."""
    path = Path(folder) / "log.txt"
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - max_bytes))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def request_stop(folder: Path) -> None:
    """Ask the worker to stop after the piece of work it is on; what it made so far is kept."""
    folder = Path(folder)
    if folder.is_dir():
        (folder / _STOP_FILE).touch()


cancel_job = request_stop  # the name the engine used first


def is_stopping(folder: Path) -> bool:
    """True once a stop was asked for and the job has not yet started again."""
    return (Path(folder) / _STOP_FILE).exists()


def is_stop_file(path: Path) -> bool:
    """True for the file a stop request leaves in a job folder (not part of what the job made)."""
    return Path(path).name == _STOP_FILE


def clear_stop_request(folder: Path) -> None:
    """Forget a stop asked for earlier: a job started again must not stop at once."""
    (Path(folder) / _STOP_FILE).unlink(missing_ok=True)


def is_resumable(state: str) -> bool:
    """Whether a job in ``state`` can be started again, keeping what it made."""
    return state in RESUMABLE_STATES


def read_job(folder: Path) -> JobState:
    folder = Path(folder)
    status = read_json(folder / "status.json")
    if status is None:
        return JobState(folder, "new")
    state = status.get("state", FAILED)
    if state in (QUEUED, RUNNING) and not is_running(folder):
        fresh = state == QUEUED and time.time() - status.get("queued", 0) < START_GRACE_SECONDS
        if not fresh:
            state = INTERRUPTED
    notes = status.get("notes")
    return JobState(folder, str(state), str(status.get("kind", "")), status.get("error"),
                    _clean_progress(read_json(folder / "progress.json") or {}),
                    [str(n) for n in notes] if isinstance(notes, list) else [], status.get("started"), status.get("ended"))


def run_job(folder: Path, on_progress: Callable[[dict], None] | None = None) -> JobState:
    """Run the job in this process (the worker's body, and the CLI's foreground run)."""
    folder = Path(folder)
    recorded = read_json(folder / "spec.json")
    if not recorded:
        raise JobError(f"{folder} holds no job (spec.json is missing or unreadable)")
    kind, spec = recorded["kind"], recorded["spec"]
    module_name, function_name = RUNNERS[kind].split(":")
    with holding_lock(folder):
        status = read_json(folder / "status.json") or {}
        status.update(state=RUNNING, kind=kind, pid=os.getpid(), error=None, started=status.get("started") or time.time())
        write_json(folder / "status.json", status)
        reporter = Reporter(folder, on_progress)
        previous_handler = _stop_on_sigterm(reporter)
        try:
            runner = getattr(importlib.import_module(module_name), function_name)
            with job_share(folder / "log.txt"):  # a fair share of the cores, said in the log
                runner(folder, spec, reporter)
            final, error = FINISHED, None
        except (JobCancelled, KeyboardInterrupt):
            final, error = CANCELLED, None
        except Exception as exception:  # noqa: BLE001 - the user sees one sentence; the log has the rest
            with open(folder / "log.txt", "a") as log:
                log.write(traceback.format_exc())
            final, error = FAILED, one_sentence(exception)
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
        # The stop request goes before the final state is written: whoever sees the job ended
        # (a page, a resume) must not find a stale request that would stop the next start at once.
        clear_stop_request(folder)
        status = read_json(folder / "status.json") or status
        status.update(state=final, error=error, ended=time.time())
        write_json(folder / "status.json", status)
    return read_job(folder)


def one_sentence(error: BaseException) -> str:
    """Our own errors already read as one sentence; anything else gets its type and first line."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, (CaiError, Cancelled)):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text[:300]} (details in log.txt)" if text else f"{type(error).__name__} (details in log.txt)"


def _stop_on_sigterm(reporter: Reporter):
    """SIGTERM stops the job cleanly at its next checkpoint instead of killing it mid-write."""
    if threading_main():
        def handler(signum, frame):
            reporter.stop_requested = True
        return signal.signal(signal.SIGTERM, handler)
    return None


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cai_core.jobs JOB_DIR", file=sys.stderr)
        return 2
    try:
        state = run_job(Path(args[0]))
    except JobError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0 if state.state in (FINISHED, CANCELLED) else 1


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: a runner that raises
    # cai_core.jobs.JobCancelled must be caught as the same class.
    from cai_core.jobs import main as imported_main

    sys.exit(imported_main())
