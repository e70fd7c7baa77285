"""How many CPU threads a job, a preview or a training process may use.

torch starts one compute thread per core in every process. Two jobs and a preview on one laptop
then run three times the threads there are cores, and each thread waits for the others: a 5 s
piece of work was measured at 130 s that way. So every process that computes takes a fair share
of the cores: the cores this process may run on, divided by the number of the project's processes
computing at that moment (itself included).

Which processes are computing is kept the way job folders keep their workers (see cai_core.jobs):
each one holds an exclusive ``flock`` on ``$CAI_HOME/.computing/PID`` while it works, and the
kernel drops the lock however the process ends. A job folder cannot be used for this alone: a
dataset may live outside ``$CAI_HOME``, a loop runs its stages inside its own process, and a
preview is not a job.

An explicit setting wins: ``CAI_THREADS=N`` (this project's) or an ``OMP_NUM_THREADS`` the user
exported. The share chosen here is also put into ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` for the
job's own child processes, with a marker so that a child tells it apart from the user's setting.

``BackgroundRun`` is the shape of work that runs in a thread of the app process while a page polls
it (a Playground preview, a principle's test): its thread, its stop, its failure as one sentence, its timing.
"""

from __future__ import annotations

import fcntl
import math
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Self

from .paths import cai_home

USER_ENV = "CAI_THREADS"
# Set beside OMP_NUM_THREADS when the engine (not the user) chose it for a job's children.
CHOSEN_ENV = "CAI_THREADS_CHOSEN"
# Threads for each rank of a multi-process training run, set by the run's job process.
RANK_ENV = "CAI_RANK_THREADS"
CHILD_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
REGISTRY_DIR = ".computing"
# A registration file whose lock nobody holds is left alone this long: its owner may be between
# creating it and locking it.
STALE_AFTER_SECONDS = 60.0


def choose_threads(cores: int, other_jobs: int) -> int:
    """A fair share of ``cores`` for one process among ``other_jobs`` + 1, never less than one thread."""
    return max(1, max(1, cores) // (max(0, other_jobs) + 1))


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a container's CPU quota."""
    counter = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if counter is not None:
        cores = counter() or 1
    elif hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0)) or 1
    else:
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(cores, quota)) if quota else cores


def _cgroup_cpu_quota() -> int | None:
    """The CPU limit of a cgroup v2 container (``cpu.max``: "QUOTA PERIOD" or "max PERIOD")."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return math.ceil(int(quota) / int(period)) if quota != "max" else None
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class ThreadShare:
    threads: int
    cores: int
    other_jobs: int
    setting: str | None = None  # the explicit setting that decided, e.g. "CAI_THREADS=4"
    ignored: str | None = None  # an explicit setting that could not be used, and why

    def describe(self) -> str:
        """The one line a job's log shows."""
        if self.setting:
            why = f"set by {self.setting}"
        else:
            why = f"{self.other_jobs} other job{'' if self.other_jobs == 1 else 's'} running"
        line = f"using {self.threads} of {self.cores} cores: {why}"
        return f"{line} ({self.ignored})" if self.ignored else line


def explicit_setting() -> tuple[int | None, str | None, str | None]:
    """(threads, "NAME=VALUE", why ignored) from CAI_THREADS or a user's OMP_NUM_THREADS."""
    value = os.environ.get(USER_ENV, "").strip()
    if value:
        if value.isdigit() and int(value) > 0:
            return int(value), f"{USER_ENV}={value}", None
        return None, None, f"{USER_ENV}={value!r} is not a whole number above 0, so it was ignored"
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp and omp != os.environ.get(CHOSEN_ENV):
        if omp.isdigit() and int(omp) > 0:
            return int(omp), f"OMP_NUM_THREADS={omp}", None
        return None, None, f"OMP_NUM_THREADS={omp!r} is not a whole number above 0, so it was ignored"
    return None, None, None


def decide(other_jobs: int | None = None) -> ThreadShare:
    """This process's share now (``other_jobs`` defaults to the project's other computing processes)."""
    cores = available_cores()
    others = count_other_computing() if other_jobs is None else other_jobs
    threads, setting, ignored = explicit_setting()
    if threads is not None:
        return ThreadShare(threads, cores, others, setting)
    return ThreadShare(choose_threads(cores, others), cores, others, None, ignored)


def apply(share: ThreadShare, for_children: bool = True) -> int:
    """Make torch in this thread use the share, and hand it to child processes; returns what torch reports.

    ``for_children`` is False in the app process: its environment is what every job it starts
    inherits, and a preview's share must not become theirs.
    """
    import torch

    torch.set_num_threads(share.threads)
    if for_children:
        for name in CHILD_ENVS:
            os.environ[name] = str(share.threads)
        if share.setting is None or share.setting.startswith(USER_ENV):
            os.environ[CHOSEN_ENV] = str(share.threads)
    return torch.get_num_threads()


def log_line(share: ThreadShare, torch_threads: int) -> str:
    line = share.describe()
    if torch_threads != share.threads:
        line += f" (torch reports {torch_threads} threads)"
    return line


# --------------------------------------------------------------------------- who is computing


def registry_dir() -> Path:
    return cai_home() / REGISTRY_DIR


_registration_lock = threading.Lock()
_registration: dict = {"handle": None, "holders": 0, "pid": None}


@contextmanager
def computing() -> Iterator[None]:
    """Count this process among those computing while the block runs (nested blocks count once)."""
    _register()
    try:
        yield
    finally:
        _unregister()


def _register() -> None:
    with _registration_lock:
        if _registration["pid"] != os.getpid():  # a forked child does not inherit its parent's lock
            _registration.update(handle=None, holders=0, pid=os.getpid())
        if _registration["handle"] is None:
            try:
                folder = registry_dir()
                folder.mkdir(parents=True, exist_ok=True)
                handle = open(folder / str(os.getpid()), "a")
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle = None  # a read-only or full disk: this process is not counted, nothing else changes
            _registration["handle"] = handle
        _registration["holders"] += 1


def _unregister() -> None:
    with _registration_lock:
        _registration["holders"] -= 1
        handle = _registration["handle"]
        if _registration["holders"] <= 0 and handle is not None:
            try:
                os.unlink(handle.name)
            except OSError:
                pass
            handle.close()
            _registration.update(handle=None, holders=0)


def count_other_computing() -> int:
    """How many other processes of this project hold their registration now (stale files are removed)."""
    folder = registry_dir()
    try:
        entries = [p for p in folder.iterdir() if p.name.isdigit() and int(p.name) != os.getpid()]
    except OSError:
        return 0
    return sum(_is_held(path) for path in entries)


def _is_held(path: Path) -> bool:
    try:
        descriptor = os.open(path, os.O_RDONLY)  # never O_CREAT: a file its owner just removed stays removed
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(descriptor)  # also drops the lock taken just above, if it was taken
    try:
        if time.time() - path.stat().st_mtime > STALE_AFTER_SECONDS:
            path.unlink(missing_ok=True)  # its process died without cleaning up
    except OSError:
        pass
    return False


# --------------------------------------------------------------------------- where it is applied


@contextmanager
def job_share(log_path: Path) -> Iterator[ThreadShare]:
    """A job process's share for the block, counted among the computing and said in the job's log."""
    with computing():
        yield use_share(log_path)


_current_share: ThreadShare | None = None


def current_share() -> ThreadShare:
    """The share this process applied last, or a fresh decision when it has applied none."""
    return _current_share or decide()


def use_share(log_path: Path | None, prefix: str = "") -> ThreadShare:
    """Decide and apply this process's share now and write the line to ``log_path``."""
    global _current_share
    share = decide()
    line = prefix + log_line(share, apply(share))
    _current_share = share
    if log_path is not None:
        _append_line(log_path, line)
    return share


def rank_threads(share: ThreadShare, processes: int) -> int:
    """Threads for each of ``processes`` ranks of one job: the job's share split, or the user's setting each."""
    if share.setting:
        return share.threads
    return max(1, share.threads // max(1, processes))


def use_rank_share(log_path: Path | None, rank: int) -> int | None:
    """Apply the threads a multi-process run's job gave each rank; returns them (None when not given)."""
    import torch

    given = os.environ.get(RANK_ENV, "")
    if not given.isdigit() or int(given) < 1:
        return None
    torch.set_num_threads(int(given))
    line = f"rank {rank}: using {torch.get_num_threads()} of {available_cores()} cores (its part of the run's share)"
    if log_path is not None:
        _append_line(log_path, line)
    return torch.get_num_threads()


@contextmanager
def preview_share() -> Iterator[ThreadShare]:
    """For a preview in the app process: set torch's threads from the preview's own thread.

    torch applies a new count to the calling thread and to threads started after it (each takes
    it up on its first parallel work); threads that have already computed keep theirs. The app's
    environment is left alone (see ``apply``).
    """
    with computing():
        share = decide()
        apply(share, for_children=False)
        yield share


def _append_line(path: Path, line: str) -> None:
    # Appended, not rewritten: log.txt is also the job's stdout, opened for appending.
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError:
        pass


# --------------------------------------------------------------------------- work beside the page

DONE, FAILED, CANCELLED = "done", "failed", "cancelled"
FINISHED_STAGES = (DONE, FAILED, CANCELLED)


@dataclass
class BackgroundRun:
    """Work run in a daemon thread of this process, with its share of the cores; ``state()`` is
    for a page to poll. A subclass says what the work is (``_compute``), how its result is kept
    (``_keep``, called under the lock), what its thread is called, which exception means it
    stopped because it was asked to (``cancelled_error``) and which stage it starts in.

    Its fields are keyword-only, so a subclass's own fields come first in its constructor.
    """

    cancelled_error: ClassVar[type[BaseException]]
    running_stage: ClassVar[str]

    stage: str = field(default="queued", kw_only=True)
    error: str | None = field(default=None, kw_only=True)
    started_at: float = field(default=0.0, kw_only=True)  # 0 until started, unless a subclass times from creation
    finished_at: float | None = field(default=None, kw_only=True)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, kw_only=True)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False, kw_only=True)
    _thread: threading.Thread | None = field(default=None, repr=False, kw_only=True)

    def _thread_name(self) -> str:
        raise NotImplementedError

    def _compute(self) -> Any:
        raise NotImplementedError

    def _keep(self, result: Any) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        if self._thread is None:
            self.started_at = self.started_at or time.time()
            self.stage = self.running_stage
            self._thread = threading.Thread(target=self._work, name=self._thread_name(), daemon=True)
            self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop at its next boundary (a stage of a chain, a batch of answers)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Asked to stop (it may still be finishing the piece of work under way)."""
        return self._stop.is_set()

    def _work(self) -> None:
        try:
            with preview_share():  # beside running jobs, this work takes its share of the cores, not all
                result = self._compute()
            with self._lock:
                self._keep(result)
                self.stage = DONE
        except self.cancelled_error:
            with self._lock:
                self.stage = CANCELLED
        except Exception as error:  # noqa: BLE001 - shown to the user as one sentence
            with self._lock:
                self.error, self.stage = str(error) or type(error).__name__, FAILED
        finally:
            self.finished_at = time.time()

    @property
    def finished(self) -> bool:
        return self.stage in FINISHED_STAGES

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread up to ``timeout`` seconds; whether the work has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished

    def elapsed(self) -> float:
        end = self.finished_at or time.time()
        return end - self.started_at if self.started_at else 0.0
