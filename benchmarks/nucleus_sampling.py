"""Sampled generation with the nucleus found among the top candidates vs the whole vocabulary sorted.

Best-of-N sampling (``best_of_n_rows``, temperature 0.7, top-p 0.95, as the small-model loop
samples) on the same prompts and the same loaded model, twice:

- (a) as before: each step sorts the whole vocabulary (49k tokens) and draws from it;
- (b) now: the nucleus is looked for among the 512 most likely tokens (a partial sort), and only
  a row whose 512 fall short of top-p is sorted whole.

Both draw from the same distribution (tests/test_nucleus_sampling.py); the random numbers are
spent differently, so the samples themselves differ. Prints seconds, prompts/s and the ratio.

    .venv/bin/python benchmarks/nucleus_sampling.py [--prompts 16] [--n 6] [--max-new-tokens 96]
"""

from __future__ import annotations

import argparse
import os
import time

import cai_core.models.transformers as local_backend
from cai_core import GenerationSettings, load_model
from cai_core.data import GenerationSpec, best_of_n_rows
from cai_core.data.promptsets import load_prompt_sources


def whole_vocabulary_pick(logits, settings, generator):
    """The sampler as it was: softmax, sort all tokens, cut at top-p, draw."""
    import torch

    if settings.greedy:
        return logits.argmax(dim=-1)
    probabilities = torch.softmax(logits.float() / settings.temperature, dim=-1)
    sorted_probs, sorted_ids = probabilities.sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(dim=-1) - sorted_probs > settings.top_p
    choice = torch.multinomial(sorted_probs.masked_fill(outside, 0.0), 1, generator=generator)
    return sorted_ids.gather(-1, choice).squeeze(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()

    import torch

    items = list(load_prompt_sources(["red_team", "benign"], limit=args.prompts, shuffle_seed=0).items)
    spec = GenerationSpec(constitution="general-hhh", prompt_sources=["red_team", "benign"], phases=["sft", "prefs"],
                          sft_source="best_of_n", pair_sources=["best_of_n"], best_of_n=args.n, sample_temperature=0.7,
                          settings=GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=16))
    model = load_model("default")
    print(f"model: {model.describe()}, torch threads: {torch.get_num_threads()}, load average: {os.getloadavg()[0]:.2f}, "
          f"{len(items)} prompts x {args.n} samples, temperature {spec.sample_temperature}, top-p "
          f"{spec.settings.top_p}, max_new_tokens={args.max_new_tokens}, batch size {spec.settings.batch_size}", flush=True)
    model.generate([[{"role": "user", "content": "Hello"}]], GenerationSettings(max_new_tokens=8))  # warm up first
    current = local_backend._pick_tokens
    seconds = {}
    for label, pick in (("(a) whole vocabulary sorted", whole_vocabulary_pick),
                        (f"(b) top {local_backend.NUCLEUS_CANDIDATES} first", current)):
        local_backend._pick_tokens = pick
        model.forget_prefixes()
        for name in model.stats:
            model.stats[name] = 0
        began = time.perf_counter()
        best_of_n_rows(items, spec, model, {})
        seconds[label] = time.perf_counter() - began
        print(f"{label:30} {seconds[label]:7.1f} s  {len(items) / seconds[label]:6.3f} prompts/s  "
              f"prefill {model.stats['prefill_seconds']:.1f} s, decode {model.stats['decode_seconds']:.1f} s "
              f"({model.stats['decode_steps']} steps)  (load average now {os.getloadavg()[0]:.2f})", flush=True)
    local_backend._pick_tokens = current
    slow, fast = seconds.values()
    print(f"ratio: {slow / fast:.2f}x")


if __name__ == "__main__":
    main()
