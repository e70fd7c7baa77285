"""The engine stands without the web app: no ``cai_core`` module imports streamlit."""

from __future__ import annotations

import ast
import importlib
import importlib.util
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


def test_the_backend_contract_does_not_import_torch():
    # The CLI's help, the forms and the chain import the contract; torch costs seconds to import.
    probe = ("import sys, cai_core.models.base\n"
             "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, module: str, is_package: bool, modules: set[str], in_functions: bool) -> set[str]:
    """The cai_core modules a module imports: when it is imported (statements in the module body,
    including under ``if``/``try``), and with ``in_functions`` also when its functions run; never
    those under ``if TYPE_CHECKING:``.

    ``from package import name`` imports the submodule when ``name`` is one, else the package (whose
    ``__init__`` must then have run to the end: a real edge). The parent packages Python imports
    first on the way to a module are not edges of their own.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body])
        elif in_functions and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.With)):
            pending.extend(node.body)
        elif in_functions and isinstance(node, (ast.For, ast.While)):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name in modules and name != module}


def import_graph(in_functions: bool = False) -> dict[str, set[str]]:
    files = {_module_name(path): path for path in (ROOT / "cai_core").rglob("*.py")}
    return {module: _imports(ast.parse(path.read_text()), module, path.name == "__init__.py", set(files), in_functions)
            for module, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search, three colours)."""
    colour = dict.fromkeys(graph, "white")
    trail: list[str] = []

    def visit(module: str) -> list[str] | None:
        colour[module] = "grey"
        trail.append(module)
        for target in sorted(graph[module]):
            if colour[target] == "grey":
                return trail[trail.index(target):] + [target]
            if colour[target] == "white" and (cycle := visit(target)):
                return cycle
        trail.pop()
        colour[module] = "black"
        return None

    for module in sorted(graph):
        if colour[module] == "white" and (cycle := visit(module)):
            return cycle
    return None


def test_the_engine_has_no_import_circles():
    graph = import_graph()
    assert "cai_core.models.transformers" in graph["cai_core.models.loading"]  # the graph sees relative imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_import_circle_hides_in_a_function():
    # An import inside a function dodges the error of a circle, not the tangle: each side then
    # needs the other, and neither can be read or tested alone.
    graph = import_graph(in_functions=True)
    assert "cai_core.models.adapters" in graph["cai_core.cli"]  # the graph sees imports in functions
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_sees_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_an_installed_package_holds_every_cai_core_package():
    """pyproject.toml lists the packages a wheel (``pip install .``, not ``-e``) ships; one left off
    the list is missing from such an install, and ``import cai_core`` fails there."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "cai_core").rglob("__init__.py")}
    assert listed == on_disk


def test_every_name_imported_from_the_project_exists():
    """After a module moves, a stale ``from cai_core.X import Y`` in a page, script, benchmark or test
    fails only when that file runs, maybe in a test that is skipped here. Read every such import and
    check the name is there, without running the files."""
    import ast

    files = [*ROOT.glob("*.py"), *ROOT.glob("pages/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("scripts/*.py"),
             *ROOT.glob("benchmarks/*.py"), *ROOT.glob("tests/*.py"), *(ROOT / "cai_core").rglob("*.py")]
    missing = []
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in ("cai_core", "ui"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if not hasattr(module, alias.name) and importlib.util.find_spec(f"{node.module}.{alias.name}") is None:
                        missing.append(f"{file.relative_to(ROOT)}:{node.lineno}: {node.module}.{alias.name}")
    assert len(files) > 100 and missing == []
