"""Best-of-N data rows/s: N samples of a prompt sharing one prefill vs each read on its own.

The loop's best-of-N step (``best_of_n_rows``: N sampled answers per prompt, scored by the
refusal rule, SFT rows and pairs from them) on the same prompts and the same loaded model, twice:

- (a) without prefix reuse, as before: every one of the N copies of a prompt is prefilled;
- (b) with prefix reuse: each prompt is prefilled once and its keys and values copied N ways.

Prints seconds, prompts/s and the ratio, the prefill tokens each way read, and how many of the
N x prompts samples are identical (same seed; they differ only where sampling met a near-tie).

    .venv/bin/python benchmarks/best_of_n_rows.py [--prompts 16] [--n 6] [--max-new-tokens 96]
"""

from __future__ import annotations

import os

from best_of_n_setup import parse_options, set_up, timed_rows
from cai_core.data import SAMPLES_FILE


def main() -> None:
    args = parse_options(__doc__)
    items, spec, model = set_up(args)
    results = {}
    for label, reuse in (("(a) every copy prefilled", False), ("(b) one prefill per prompt", True)):
        model.reuse_prefix = reuse
        seconds, rows = timed_rows(items, spec, model)
        results[label] = (seconds, rows, dict(model.stats))
        stats = model.stats
        print(f"{label:28} {seconds:7.1f} s  {len(items) / seconds:6.3f} prompts/s  prefill {stats['prefill_seconds']:.1f} s "
              f"({stats['prefill_tokens']} tokens read), decode {stats['decode_seconds']:.1f} s "
              f"(load average now {os.getloadavg()[0]:.2f})", flush=True)
    (slow, slow_rows, slow_stats), (fast, fast_rows, fast_stats) = results.values()
    pairs = [(a["answer"], b["answer"]) for x, y in zip(slow_rows[SAMPLES_FILE], fast_rows[SAMPLES_FILE])
             for a, b in zip(x["samples"], y["samples"])]
    same = sum(a == b for a, b in pairs)
    print(f"ratio: {slow / fast:.2f}x; prefill tokens read {slow_stats['prefill_tokens']} -> {fast_stats['prefill_tokens']}; "
          f"identical samples: {same}/{len(pairs)}")


if __name__ == "__main__":
    main()
