"""benchmarks/gpu_check.py runs end to end at a tiny size on the CPU, on torch/transformers/peft alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
# Runs the script's main and then fails if anything of the project was imported: on the GPU
# machine only torch, transformers, peft and accelerate are installed.
RUNNER = ("import runpy, sys\n"
          "namespace = runpy.run_path(sys.argv[1], run_name='gpu_check')\n"
          "code = namespace['main'](sys.argv[2:])\n"
          "project = sorted(name for name in sys.modules if name.split('.')[0] == 'cai_core')\n"
          "assert not project, f'gpu_check imported {project}'\n"
          "sys.exit(code)\n")


def test_the_gpu_check_prints_decode_speed_against_the_bound_and_a_dpo_step(tmp_path):
    done = subprocess.run([sys.executable, "-c", RUNNER, str(SCRIPT), "--size", "tiny", "--device", "cpu",
                           "--bandwidth-tb-s", "0.05"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "memory bandwidth: 0.05 TB/s (--bandwidth-tb-s)" in out
    assert re.search(r"^model: random Llama, [\d.]+ M parameters", out, re.MULTILINE)
    for batch in (1, 4):
        line = re.search(rf"^decode batch {batch}: ([\d,.]+) tokens/s, [\d.]+ ms/step; bandwidth bound ([\d,]+) tokens/s "
                         r"\([\d.]+ ms/step, weights only\), ([\d,]+) tokens/s with the KV cache; [\d.]+% of the "
                         r"weights-only bound$", out, re.MULTILINE)
        assert line, out
        measured, bound, bound_with_kv = (float(group.replace(",", "")) for group in line.groups())
        assert 0 < measured and 0 < bound_with_kv < bound  # reading the KV cache too can only lower the bound
    dpo = re.search(r"^DPO step \(LoRA r=16 .* reference = adapter disabled\): ([\d.]+) s, peak memory .* "
                    r"loss ([\d.]+)$", out, re.MULTILINE)
    assert dpo, out
    # Random weights give the policy and the reference nearly equal log-probs: the loss starts near log 2.
    assert 0 < float(dpo.group(1)) and abs(float(dpo.group(2)) - 0.6931) < 0.05


def test_the_default_bandwidth_is_said_to_be_an_h200s():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "4.8" in done.stdout
