"""The engine stands without the web app: no ``cai_core`` module imports streamlit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Imports every module of the package in one fresh interpreter and names, for each module, the
# streamlit modules that were loaded once it was imported. ``__main__`` modules run a program when
# imported, so they are left out.
WALK = """
import importlib, json, pkgutil, sys
import cai_core

seen, offenders = [], {}
for info in pkgutil.walk_packages(cai_core.__path__, "cai_core."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue
    importlib.import_module(info.name)
    seen.append(info.name)
    loaded = sorted(m for m in sys.modules if m == "streamlit" or m.startswith("streamlit."))
    if loaded and not offenders:
        offenders[info.name] = loaded[:3]
print(json.dumps({"seen": seen, "offenders": offenders}))
"""


def test_no_engine_module_imports_streamlit():
    # Run from the project root, so the interpreter imports this checkout's cai_core.
    done = subprocess.run([sys.executable, "-c", WALK], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "cai_core.chain" in result["seen"] and "cai_core.evaluation.run" in result["seen"]
    assert "cai_core.training.trainer" in result["seen"]
    assert result["offenders"] == {}, f"the first module that brought streamlit in: {result['offenders']}"
