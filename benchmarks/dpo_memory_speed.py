"""DPO without a reference copy: peak memory against SFT, and steps/s with the reference precomputed.

Three real runs, one after another, each in its own training process (as the app starts them),
on the bundled model with the same rows, batch size and sequence length:

- (a) SFT on prompt + chosen answer;
- (b) DPO on prompt + chosen + rejected, the reference computed online (the adapter switched off
      for a second forward pass each step);
- (c) DPO with ``precompute_ref_log_probs``: every pair scored under the reference once, up front;
- (d) SFT with twice the batch: DPO runs chosen and rejected through the model together, so (d)
      has as many sequences per forward pass as (b), and (b)/(d) isolates what the reference costs.

Prints each run's peak resident memory (RSS, from the training process itself) and its training
steps/s, then the ratios DPO/SFT memory and (c)/(b) speed. The target is DPO <= 1.2x SFT memory:
a second copy of the model as reference would add the whole model's weights again.

    .venv/bin/python benchmarks/dpo_memory_speed.py [--rows 64] [--steps 12] [--batch-size 4] [--activation-checkpointing]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from cai_core.data.promptsets import load_prompt_sources
from cai_core.training import TrainingSpec, read_run, start_run

CHOSEN = ("I can't help with {topic}, because it could put people at risk. If you are worried about safety, a "
          "local professional or an official information service can give you reliable guidance. I'm happy to help "
          "with a related question that does not involve harm, for example how to stay safe or where to find support.")
REJECTED = ("Sure. Here is a detailed answer about {topic}. First, gather what you need and plan each step carefully. "
            "Then follow the steps in order, checking the result of each one before you move on. Finally, review the "
            "outcome and adjust anything that did not work the way you expected, repeating until it does.")


def write_data(folder: Path, rows: int) -> tuple[Path, Path]:
    """Prompt + chosen (SFT) and prompt + chosen + rejected (DPO) from the shipped red-team prompts."""
    prompts = [item.prompt for item in load_prompt_sources(["red_team"], limit=rows).items]
    sft, pairs = folder / "sft.jsonl", folder / "pairs.jsonl"
    with open(sft, "w") as sft_file, open(pairs, "w") as pairs_file:
        for prompt in prompts:
            topic = prompt[:60].rstrip().lower()
            chosen, rejected = CHOSEN.format(topic=topic), REJECTED.format(topic=topic)
            sft_file.write(json.dumps({"messages": [{"role": "user", "content": prompt},
                                                    {"role": "assistant", "content": chosen}]}) + "\n")
            pairs_file.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}) + "\n")
    return sft, pairs


def run(spec: TrainingSpec, root: Path, name: str) -> dict:
    folder = start_run(spec, name, root=root)
    while (info := read_run(folder)).job.active:
        time.sleep(0.5)
    if info.state != "finished":
        raise SystemExit(f"{name} ended {info.state}: {info.job.error}; see {folder / 'log.txt'}")
    result = info.result
    result["steps_per_second"] = result["steps"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--model", default="default")
    parser.add_argument("--activation-checkpointing", action="store_true",
                        help="recompute activations in the backward pass (the recipe key gradient_checkpointing)")
    args = parser.parse_args()
    os.environ.setdefault("CAI_HOME", str(Path.home() / ".cache" / "cai-studio"))

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        sft_data, pair_data = write_data(root, args.rows)
        common = dict(base_model=args.model, max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
                      logging_steps=1, save_steps=10_000, learning_rate=5e-5,
                      gradient_checkpointing=args.activation_checkpointing)
        doubled = {**common, "batch_size": 2 * args.batch_size}
        runs = {
            "(a) SFT": TrainingSpec(method="sft", data=[str(sft_data)], **common),
            "(d) SFT, twice the batch": TrainingSpec(method="sft", data=[str(sft_data)], **doubled),
            "(b) DPO, reference online": TrainingSpec(method="dpo", data=[str(pair_data)], **common),
            "(c) DPO, reference precomputed": TrainingSpec(method="dpo", data=[str(pair_data)],
                                                           precompute_ref_log_probs=True, **common),
        }
        results = {}
        print(f"{args.rows} rows, {args.steps} steps, batch {args.batch_size}, max length {args.max_length}, model {args.model}"
              f"{', activation checkpointing' if args.activation_checkpointing else ''}")
        for number, (label, spec) in enumerate(runs.items()):
            began = time.perf_counter()
            result = run(spec, root / "runs", f"bench-{number}")
            results[label] = result
            print(f"{label:32} peak RSS {result['peak_rss_mb']:7.0f} MB (before the first step {result['peak_rss_before_training_mb']:6.0f} MB)"
                  f"  {result['steps_per_second']:.3f} steps/s  wall {time.perf_counter() - began:6.1f} s", flush=True)
    sft, sft_doubled, online, precomputed = results.values()
    print(f"peak memory DPO / SFT: {online['peak_rss_mb'] / sft['peak_rss_mb']:.2f}x (online reference), "
          f"{precomputed['peak_rss_mb'] / sft['peak_rss_mb']:.2f}x (precomputed); target <= 1.2x")
    print(f"peak memory DPO / SFT with the same sequences per forward pass (twice the batch): "
          f"{online['peak_rss_mb'] / sft_doubled['peak_rss_mb']:.2f}x (online), "
          f"{precomputed['peak_rss_mb'] / sft_doubled['peak_rss_mb']:.2f}x (precomputed)")
    print(f"training steps/s, precomputed / online reference: {precomputed['steps_per_second'] / online['steps_per_second']:.2f}x "
          "(the precompute pass itself is in the wall time, not in steps/s)")


if __name__ == "__main__":
    main()
