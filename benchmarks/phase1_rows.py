"""Phase 1 data generation: rows/s batched vs one prompt at a time, side by side in one run.

The same N prompts from the shipped sets go through ``run_generation`` (Phase 1 only: the chain,
SFT rows, traces, the files and the checkpoints) twice on the same loaded model:

- (a) one prompt at a time: chunk size 1 and batch size 1, as a loop over a chain would do it;
- (b) batched: chunk size N and batch size N (the default settings batch 16 prompts).

Prints seconds, rows/s and the ratio, and how many SFT rows are identical between the two
(greedy decoding, so they should all be).

    .venv/bin/python benchmarks/phase1_rows.py [--prompts 16] [--rounds 1] [--max-new-tokens 96]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from cai_core import GenerationSettings
from cai_core.data import SFT_FILE, GenerationSpec, read_rows, run_generation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    os.environ.setdefault("CAI_HOME", str(Path.home() / ".cache" / "cai-studio"))

    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for label, size in (("(a) one prompt at a time", 1), ("(b) batched", args.prompts)):
            spec = GenerationSpec(
                constitution="general-hhh", prompt_sources=["red_team", "benign"], limit=args.prompts, phases=["sft"],
                rounds=args.rounds, policy_model=args.model, chunk_size=size,
                settings=GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.0, batch_size=size))
            folder = Path(scratch) / f"chunk-{size}"
            began = time.perf_counter()
            state = run_generation(folder, spec)
            seconds = time.perf_counter() - began
            assert state.state == "finished", state.error
            rows = read_rows(folder / SFT_FILE)
            results[label] = (seconds, rows)
            print(f"{label:28} {seconds:8.1f} s  {len(rows) / seconds:6.3f} rows/s", flush=True)
    (slow, slow_rows), (fast, fast_rows) = results.values()
    same = sum(a["messages"] == b["messages"] for a, b in zip(slow_rows, fast_rows))
    print(f"ratio: {slow / fast:.2f}x  ({args.prompts} prompts, {args.rounds} round(s), greedy, "
          f"<= {args.max_new_tokens} new tokens; model load included in both)")
    print(f"identical SFT rows: {same}/{len(fast_rows)}")


if __name__ == "__main__":
    main()
