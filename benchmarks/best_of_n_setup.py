"""What the best-of-N benchmarks share: their options, prompts and spec, the loaded model, one timed run.

``best_of_n_rows.py`` and ``nucleus_sampling.py`` time the loop's best-of-N step twice on the same
prompts and the same loaded model, changing one thing between the two runs; everything else is here,
so the two measure the same work.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from cai_core import GenerationSettings, load_model
from cai_core.data import GenerationSpec, best_of_n_rows
from cai_core.data.promptsets import load_prompt_sources

PROMPT_SOURCES = ["red_team", "benign"]


def parse_options(doc: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    return parser.parse_args()


def set_up(args: argparse.Namespace, **spec_fields: Any) -> tuple[list, GenerationSpec, Any]:
    """The prompts, the best-of-N spec (``spec_fields`` added to it) and the default model, said in one line."""
    import torch

    items = list(load_prompt_sources(PROMPT_SOURCES, limit=args.prompts, shuffle_seed=0).items)
    spec = GenerationSpec(constitution="general-hhh", prompt_sources=PROMPT_SOURCES, phases=["sft", "prefs"],
                          sft_source="best_of_n", pair_sources=["best_of_n"], best_of_n=args.n,
                          settings=GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=16), **spec_fields)
    model = load_model("default")
    print(f"model: {model.describe()}, torch threads: {torch.get_num_threads()}, load average: {os.getloadavg()[0]:.2f}, "
          f"{len(items)} prompts x {args.n} samples, temperature {spec.sample_temperature}, top-p "
          f"{spec.settings.top_p}, max_new_tokens={args.max_new_tokens}, batch size {spec.settings.batch_size}", flush=True)
    return items, spec, model


def timed_rows(items: list, spec: GenerationSpec, model) -> tuple[float, dict]:
    """Seconds for one best-of-N pass and its rows, from no cached prefixes and zeroed counters (``model.stats``)."""
    model.forget_prefixes()
    for name in model.stats:
        model.stats[name] = 0
    began = time.perf_counter()
    rows = best_of_n_rows(items, spec, model, {})
    return time.perf_counter() - began, rows
