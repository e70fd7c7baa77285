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

import os

import cai_core.models.transformers as local_backend
from best_of_n_setup import parse_options, set_up, timed_rows
from cai_core import GenerationSettings


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
    args = parse_options(__doc__)
    items, spec, model = set_up(args, sample_temperature=0.7)
    model.generate([[{"role": "user", "content": "Hello"}]], GenerationSettings(max_new_tokens=8))  # warm up first
    current = local_backend._pick_tokens
    seconds = {}
    for label, pick in (("(a) whole vocabulary sorted", whole_vocabulary_pick),
                        (f"(b) top {local_backend.NUCLEUS_CANDIDATES} first", current)):
        local_backend._pick_tokens = pick
        seconds[label], _ = timed_rows(items, spec, model)
        print(f"{label:30} {seconds[label]:7.1f} s  {len(items) / seconds[label]:6.3f} prompts/s  "
              f"prefill {model.stats['prefill_seconds']:.1f} s, decode {model.stats['decode_seconds']:.1f} s "
              f"({model.stats['decode_steps']} steps)  (load average now {os.getloadavg()[0]:.2f})", flush=True)
    local_backend._pick_tokens = current
    slow, fast = seconds.values()
    print(f"ratio: {slow / fast:.2f}x")


if __name__ == "__main__":
    main()
