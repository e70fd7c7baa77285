"""CPU threads: each computing process takes a fair share of the cores, and an explicit setting wins."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cai_core import threads
from cai_core.data import GenerationSpec, start_generation
from cai_core.jobs import FINISHED, read_job
from cai_core.models import GenerationSettings

LINE = re.compile(r"^using (\d+) of (\d+) cores: (.*)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def no_thread_settings(monkeypatch):
    for name in (threads.USER_ENV, threads.CHOSEN_ENV, threads.RANK_ENV, *threads.CHILD_ENVS):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("cores, other_jobs, expected", [
    (1, 0, 1), (1, 3, 1),
    (2, 0, 2), (2, 1, 1), (2, 5, 1),
    (8, 0, 8), (8, 1, 4), (8, 2, 2), (8, 3, 2), (8, 7, 1), (8, 20, 1),
    (16, 3, 4), (64, 2, 21),
    (0, 0, 1), (4, -1, 4),  # nonsense counts still give a usable answer
])
def test_choose_threads_gives_each_computing_process_a_fair_share(cores, other_jobs, expected):
    assert threads.choose_threads(cores, other_jobs) == expected


def test_the_cores_are_the_ones_this_process_may_run_on():
    cores = threads.available_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))


def test_other_computing_processes_are_counted_while_they_compute_and_not_after(tmp_path):
    assert threads.count_other_computing() == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom cai_core.threads import computing\n"
         "with computing():\n    print('in', flush=True)\n    sys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy(), cwd=Path(__file__).parents[1])
    try:
        assert holder.stdout.readline().strip() == "in"
        assert threads.count_other_computing() == 1
        with threads.computing(), threads.computing():  # this process, counted once, is never an "other"
            assert threads.count_other_computing() == 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert threads.count_other_computing() == 0


def test_a_killed_process_stops_counting(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom cai_core.threads import computing\n"
         "with computing():\n    print('in', flush=True)\n    time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True, env=os.environ.copy(), cwd=Path(__file__).parents[1])
    assert holder.stdout.readline().strip() == "in"
    assert threads.count_other_computing() == 1
    holder.kill()
    holder.wait(timeout=30)
    assert threads.count_other_computing() == 0


def test_an_explicit_setting_wins_and_is_said(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    share = threads.decide(other_jobs=5)
    assert share.threads == 3 and share.describe().endswith("set by OMP_NUM_THREADS=3")
    monkeypatch.setenv(threads.USER_ENV, "5")  # the project's own setting comes first
    assert threads.decide(other_jobs=5).describe() == f"using 5 of {threads.available_cores()} cores: set by CAI_THREADS=5"


def test_a_share_the_engine_put_in_omp_num_threads_is_not_taken_for_the_users(monkeypatch):
    import torch

    before = torch.get_num_threads()
    share = threads.ThreadShare(threads=1, cores=2, other_jobs=1)
    threads.apply(share)  # what a job process does for its children
    try:
        assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ[threads.CHOSEN_ENV] == "1"
        assert threads.decide(other_jobs=0).setting is None  # a child decides afresh
    finally:
        torch.set_num_threads(before)
        for name in (threads.CHOSEN_ENV, *threads.CHILD_ENVS):
            os.environ.pop(name, None)  # the fixture then puts back whatever was there before


def test_a_setting_that_is_not_a_number_is_ignored_and_said(monkeypatch):
    monkeypatch.setenv(threads.USER_ENV, "lots")
    share = threads.decide(other_jobs=0)
    assert share.threads == threads.available_cores()
    assert "CAI_THREADS='lots' is not a whole number above 0, so it was ignored" in share.describe()


def test_ranks_split_the_jobs_share_unless_the_user_set_each_process():
    assert threads.rank_threads(threads.ThreadShare(8, 8, 0), 2) == 4
    assert threads.rank_threads(threads.ThreadShare(1, 2, 1), 2) == 1
    assert threads.rank_threads(threads.ThreadShare(3, 8, 0, "CAI_THREADS=3"), 2) == 3


# --------------------------------------------------------------------------- a real job process


def _generation(tmp_path: Path, model_dir: Path, name: str) -> Path:
    spec = GenerationSpec(constitution="general-hhh", prompt_sources=["red_team"], limit=1, policy_model=str(model_dir),
                          settings=GenerationSettings(max_new_tokens=2, batch_size=1), rounds=1, chunk_size=1)
    folder = tmp_path / name
    start_generation(folder, spec)
    deadline = time.time() + 180
    while read_job(folder).active:
        assert time.time() < deadline, f"the job in {folder} did not end in 180 s"
        time.sleep(0.2)
    assert read_job(folder).state == FINISHED, read_job(folder).error
    return folder


def _logged_share(folder: Path) -> tuple[int, int, str]:
    found = LINE.findall((folder / "log.txt").read_text())
    assert len(found) == 1, (folder / "log.txt").read_text()
    threads_used, cores, why = found[0]
    assert "torch reports" not in why  # the line's count is what torch uses in that process
    return int(threads_used), int(cores), why


def test_a_job_beside_another_takes_its_share_and_says_so(tmp_path, tiny_model_dir):
    with threads.computing():  # this test process computes beside the job
        folder = _generation(tmp_path, tiny_model_dir, "beside")
    used, cores, why = _logged_share(folder)
    assert cores == threads.available_cores()
    assert used == threads.choose_threads(cores, 1)
    assert why == "1 other job running"


def test_the_users_setting_wins_in_a_job_process(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv(threads.USER_ENV, "3")  # more than the fair share beside another job on a small machine
    with threads.computing():
        folder = _generation(tmp_path, tiny_model_dir, "set")
    used, cores, why = _logged_share(folder)
    assert used == 3 and why == "set by CAI_THREADS=3"


def test_a_preview_is_counted_and_takes_its_share_without_changing_what_jobs_inherit():
    import torch

    before = torch.get_num_threads()
    try:
        with threads.preview_share() as share:
            assert torch.get_num_threads() == share.threads == threads.choose_threads(threads.available_cores(), 0)
            seen = subprocess.run([sys.executable, "-c", "from cai_core.threads import count_other_computing\n"
                                   "print(count_other_computing())"], capture_output=True, text=True, timeout=120,
                                  env=os.environ.copy(), cwd=Path(__file__).parents[1])
            assert seen.stdout.strip() == "1", seen.stderr[-2000:]
            assert not any(name in os.environ for name in (threads.CHOSEN_ENV, *threads.CHILD_ENVS))
    finally:
        torch.set_num_threads(before)
    assert threads.count_other_computing() == 0 and not list(threads.registry_dir().iterdir())
