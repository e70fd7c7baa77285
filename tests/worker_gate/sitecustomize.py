"""Loaded at start-up by job workers that a test starts through the ``worker_gate`` fixture (this
folder comes first on their PYTHONPATH, and CAI_TEST_GATE names the gate's folder).

Each model call of the worker (``generate`` or ``option_logprobs`` of the transformers backend,
or the start of a training step) is numbered; call N writes N to ``reached`` and waits until the
number in ``allowed`` is at least N. So the test knows exactly where the worker stands (at a
training step, everything the steps before it log and save is on disk), and can kill, cancel or
start a second worker there, however fast or slow the machine is.
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


def _waiter():
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

    return wait_turn


wait_turn = _waiter() if os.environ.get("CAI_TEST_GATE") else None


def _gated(original):
    def call(self, *args, **kwargs):
        wait_turn()
        return original(self, *args, **kwargs)
    return call


def _gate_backend(transformers_backend) -> None:
    backend = transformers_backend.TransformersBackend
    for name in ("generate", "option_logprobs"):
        setattr(backend, name, _gated(getattr(backend, name)))


def _gate_training(trainer) -> None:
    trainer.RunCallback.on_step_begin = _gated(trainer.RunCallback.on_step_begin)


GATED = {"cai_core.models.transformers": _gate_backend, "cai_core.training.trainer": _gate_training}


class _GateOnImport(importlib.abc.MetaPathFinder):
    """Gates the engine as soon as its module is imported, whichever copy the worker imports."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in GATED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            GATED[fullname](module)

        spec.loader.exec_module = exec_module
        return spec


if wait_turn is not None:
    sys.meta_path.insert(0, _GateOnImport())
