"""Every command the README shows is run, in order, as a new user would run it.

Each fenced ``bash`` or ``python`` block of README.md carries a marker on the line above it:
``<!-- readme-test: run -->`` or ``<!-- readme-test: skip (why) -->``. A block without one fails the
test, so a command is never left out silently. The blocks marked ``run`` go in README order, in
one fresh CAI_HOME and one working folder (which holds links to the project's ``constitutions/``
and ``recipes/`` and a ``.venv/bin/`` that runs this checkout), so a later block finds what an
earlier one made, by name.

The bundled model's converted folder in that CAI_HOME is the tests' tiny random Llama, so
``default`` everywhere (the CLI, the recipes) loads it in a second, and the counts the README's
commands give are cut (``--limit N`` to 4, ``max_steps=N`` to 2), as the README says. Nothing
else in a command is changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import build_tiny_model_folder

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*(run|skip\s*\((?P<why>[^)]+)\))\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")
# The cuts that keep the path to minutes on a tiny model; each must match at least one command.
SHRINK = [(re.compile(r"--limit \d+"), "--limit 4"), (re.compile(r"max_steps=\d+"), "max_steps=2")]
BLOCK_TIMEOUT_S = 600


@dataclass
class Block:
    line: int          # the README line of the opening fence
    language: str
    text: str
    run: bool
    why_skipped: str = ""


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of a shell or Python language, with the marker on the line above it."""
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start, language = index, opening.group(1)
        index += 1
        body = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        index += 1
        if language not in ("bash", "sh", "shell", "python"):
            continue
        marker = MARKER.search(lines[start - 1]) if start else None
        if marker is None:
            raise AssertionError(f"README.md line {start + 1}: a {language} block with no "
                                 "<!-- readme-test: run --> or <!-- readme-test: skip (why) --> on the line above")
        blocks.append(Block(start + 1, language, "\n".join(body) + "\n", marker.group(1) == "run",
                            (marker.group("why") or "").strip()))
    return blocks


def shrink(command: str, used: set[int]) -> str:
    for number, (pattern, replacement) in enumerate(SHRINK):
        command, count = pattern.subn(replacement, command)
        if count:
            used.add(number)
    return command


def new_user_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working folder like a fresh clone after `make`, and the environment the blocks run in."""
    from cai_core.models import bundled

    home = Path(os.environ["CAI_HOME"])  # the fresh one conftest gives every test

    # The bundled model's converted folder, holding the tiny model: "default" loads it everywhere.
    model = build_tiny_model_folder(home / "models" / bundled.BUNDLED_MODEL_ID, max_positions=4096)
    (model / bundled.COMPLETE_MARKER).write_text("")
    assert bundled.is_bundled_model_ready(), "the tiny model does not pass for the converted bundled model"

    work = tmp_path / "clone"
    (work / ".venv" / "bin").mkdir(parents=True)
    for shipped in ("constitutions", "recipes", "prompts", "evalsets"):
        (work / shipped).symlink_to(REPO / shipped)
    for name, target in (("cai", f'"{sys.executable}" -m cai_core.cli'), ("python", f'"{sys.executable}"')):
        script = work / ".venv" / "bin" / name
        script.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        script.chmod(0o755)
    env = {**os.environ, "CAI_HOME": str(home), "HF_HUB_OFFLINE": "1", "CAI_MODEL": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return work, env


def test_every_readme_block_is_marked_and_the_skipped_ones_say_why():
    blocks = readme_blocks(README.read_text())
    assert sum(block.run for block in blocks) >= 5
    for block in blocks:
        assert block.run or block.why_skipped, f"README.md line {block.line}: a skipped block must say why"


def test_an_unmarked_block_is_an_error_naming_its_line():
    with pytest.raises(AssertionError, match="line 3: a bash block with no"):
        readme_blocks("# Title\n\n```bash\nls\n```\n")


@pytest.mark.slow
def test_the_readme_commands_run_in_order_from_a_constitution_to_a_tax_report(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash is needed to run the README's shell blocks")
    work, env = new_user_folder(tmp_path)
    used: set[int] = set()
    ran = []
    for block in readme_blocks(README.read_text()):
        if not block.run:
            continue
        text = shrink(block.text, used)
        command = ["bash", "-euo", "pipefail", "-c", text] if block.language != "python" else [sys.executable, "-c", text]
        try:
            result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                                    timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"README.md line {block.line}: the block ran past {BLOCK_TIMEOUT_S} s:\n{text}")
        output = (result.stdout + result.stderr)[-4000:]
        assert result.returncode == 0, (f"README.md line {block.line}: the block failed with exit code "
                                        f"{result.returncode}:\n{text}\n--- output (end) ---\n{output}")
        ran.append(block.line)
    assert used == set(range(len(SHRINK))), "a cut the README describes no longer matches any command"

    # The path reached a tax report: both evaluations finished and were compared by name.
    home = Path(env["CAI_HOME"])
    for name in ("base", "aligned"):
        assert (home / "evaluations" / name / "report.json").is_file()
    assert (work / "tax.json").is_file() and (work / "quick.json").is_file()
    assert (home / "runs" / "demo-dpo" / "adapter").is_dir()
    assert (home / "runs" / "demo-sft-bon" / "adapter").is_dir()
