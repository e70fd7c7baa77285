"""Rows decoded together: best-of-N sampling at 16 rows a batch vs 48, and one decode step by rows.

On a CPU a decode step's cost grows with the rows in the batch, but more slowly than the rows: the
weights are read once a step whichever the number of rows. Two measurements on the same loaded
model, in one run:

- one decode step (a 250-token context, random tokens) at 1, 4, 16, 32, 48 and 64 rows: the
  step's time and its time per row;
- best-of-N sampling (``best_of_n_rows``, temperature 0.7, top-p 0.95, as the small-model loop
  samples) of the same prompts with ``batch_size`` 16 and then 48.

A sampled row draws from the same distribution whatever its batch, but the random numbers are
handed out across the batch in another order, so the samples themselves differ. Prints seconds,
prompts/s and the ratio.

    .venv/bin/python benchmarks/batch_rows.py [--prompts 16] [--n 6] [--max-new-tokens 96]
"""

from __future__ import annotations

import os
import time

from best_of_n_setup import parse_options, set_up, timed_rows

STEP_ROWS = (1, 4, 16, 32, 48, 64)
BATCH_SIZES = (16, 48)


def step_seconds(model, rows: int, context: int = 250, steps: int = 12) -> float:
    """The median time of one decode step with ``rows`` rows on a ``context``-token cache."""
    import torch

    from cai_core.models.transformers import _cache_argument_name, _returned_cache

    argument = _cache_argument_name(model.model)
    ids = torch.randint(100, 20000, (rows, context), generator=torch.Generator().manual_seed(rows))
    times = []
    with torch.inference_mode():
        cache = _returned_cache(model.model(input_ids=ids, use_cache=True, logits_to_keep=1))
        for _ in range(steps):
            began = time.perf_counter()
            cache = _returned_cache(model.model(input_ids=ids[:, -1:], use_cache=True, **{argument: cache}))
            times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def main() -> None:
    args = parse_options(__doc__)
    items, spec, model = set_up(args, sample_temperature=0.7)
    print("one decode step, 250-token context:")
    for rows in STEP_ROWS:
        seconds = step_seconds(model, rows)
        print(f"  {rows:3d} rows  {seconds * 1000:7.1f} ms a step  {seconds * 1000 / rows:6.2f} ms a row", flush=True)
    seconds = {}
    for size in BATCH_SIZES:
        sized = spec.model_copy(update={"settings": spec.settings.model_copy(update={"batch_size": size})})
        seconds[size], _ = timed_rows(items, sized, model)
        print(f"best-of-N, batch {size:3d}: {seconds[size]:7.1f} s  {len(items) / seconds[size]:6.3f} prompts/s  "
              f"decode {model.stats['decode_seconds']:.1f} s ({model.stats['decode_steps']} steps)  "
              f"(load average now {os.getloadavg()[0]:.2f})", flush=True)
    small, large = (seconds[size] for size in BATCH_SIZES)
    print(f"ratio: {small / large:.2f}x")


if __name__ == "__main__":
    main()
