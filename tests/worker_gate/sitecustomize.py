"""Loaded at start-up by job workers that a test starts through the ``worker_gate`` fixture (this
folder comes first on their PYTHONPATH, and CAI_TEST_GATE names the gate's folder).

Each model call of the worker (``generate`` or ``option_logprobs`` of the transformers backend)
is numbered; call N writes N to ``reached`` and waits until the number in ``allowed`` is at least N.
So the test knows exactly where the worker stands, and can kill, cancel or start a second worker
there, however fast or slow the machine is.
"""

import importlib.abc
import importlib.machinery
import itertools
import os
import sys
import threading
import time
from pathlib import Path

WAIT_LIMIT_S = 300  # a test that never opens the gate fails the worker instead of leaving it behind


def _gate(models) -> None:
    folder = Path(os.environ["CAI_TEST_GATE"])
    numbers = itertools.count(1)
    lock = threading.Lock()

    def allowed() -> int:
        try:
            return int((folder / "allowed").read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def wait_turn() -> None:
        with lock:
            number = next(numbers)
            staged = folder / f".reached-{os.getpid()}"
            staged.write_text(str(number))
            staged.replace(folder / "reached")
        deadline = time.monotonic() + WAIT_LIMIT_S
        while allowed() < number:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the test never allowed model call {number}")
            time.sleep(0.01)

    def gated(original):
        def call(self, *args, **kwargs):
            wait_turn()
            return original(self, *args, **kwargs)
        return call

    backend = models.TransformersBackend
    for name in ("generate", "option_logprobs"):
        setattr(backend, name, gated(getattr(backend, name)))


class _GateOnImport(importlib.abc.MetaPathFinder):
    """Gates the backend as soon as ``cai_core.models`` is imported, whichever copy the worker imports."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "cai_core.models":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _gate(module)

        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("CAI_TEST_GATE"):
    sys.meta_path.insert(0, _GateOnImport())
