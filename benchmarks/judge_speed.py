"""The AI judge: option log-probabilities vs writing a verdict and parsing it, same pairs, one run.

Pairs: two sampled answers from the model itself for each of N prompts (red-team and benign, from
the shipped sets), made before any timing. Every judge asks about every pair in both orders under
the same principle, on the same loaded model:

- (a) written verdict, explained: "explain, then end with [[A]] or [[B]]" (MT-Bench and
  LangChain's pairwise evaluator), greedy, up to --verdict-tokens new tokens, then parsed;
- (b) written verdict, letter only: "reply with the letter", greedy, 4 new tokens, parsed;
- (c) ours: one forward pass per question, the normalised probabilities of the option tokens;
  the two orders of a pair read what they share (everything up to the first option) once;
- (d) ours reading every question in full, for the effect of that sharing.

Prints pairs/s of each, the ratios to (c), the share of verdicts that could not be parsed, how
often (a) and (c) prefer the same answer, and the largest difference between (c) and (d).

    .venv/bin/python benchmarks/judge_speed.py [--pairs 32] [--model default]
"""

from __future__ import annotations

import argparse
import time

from cai_core import GenerationSettings, load_constitution, load_model
from cai_core.judge import both_orders, comparison_request, judge_by_written_verdict, judge_pairs, letter_verdicts
from cai_core.data.promptsets import load_prompt_sources
from cai_core.prompts import initial_conversation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--model", default="default")
    parser.add_argument("--answer-tokens", type=int, default=96)
    parser.add_argument("--verdict-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    model = load_model(args.model)
    principle = load_constitution("general-hhh").principle("avoid-harmful-help")
    red = load_prompt_sources(["red_team"]).items
    benign = load_prompt_sources(["benign"]).items
    items = [item for pair in zip(red, benign) for item in pair][: args.pairs]
    conversations = [initial_conversation(item.prompt) for item in items]
    sampling = GenerationSettings(max_new_tokens=args.answer_tokens, temperature=1.0, batch_size=args.batch_size)
    print(f"making {len(items)} answer pairs with {model.describe()} ...", flush=True)
    first = model.generate(conversations, sampling.model_copy(update={"seed": 101}))
    second = model.generate(conversations, sampling.model_copy(update={"seed": 202}))
    pairs = [(item.prompt, a.text, b.text) for item, a, b in zip(items, first, second)]

    request = comparison_request(principle)
    letter_questions = [q for p, a, b in pairs for q in both_orders(p, request, a, b)]

    def timed(work):
        model.forget_prefixes()  # no judge starts from what the one before it left in the cache
        for name in model.stats:
            model.stats[name] = 0
        began = time.perf_counter()
        result = work()
        return result, time.perf_counter() - began, dict(model.stats)

    (explained, explained_unparsed), explained_seconds, explained_stats = timed(
        lambda: judge_by_written_verdict(model, pairs, principle, args.verdict_tokens, args.batch_size))
    (letters, letter_unparsed), letter_seconds, letter_stats = timed(
        lambda: letter_verdicts(model, letter_questions, args.batch_size))
    ours, ours_seconds, ours_stats = timed(
        lambda: judge_pairs(model, pairs, [[principle]] * len(pairs), batch_size=args.batch_size))
    model.reuse_prefix = False
    full, full_seconds, full_stats = timed(
        lambda: judge_pairs(model, pairs, [[principle]] * len(pairs), batch_size=args.batch_size))
    model.reuse_prefix = True

    # P(first is better) from each judge; 0.5 means the judge gave no preference.
    letter_scores = [(letters[2 * i][0] + letters[2 * i + 1][1]) / 2 for i in range(len(pairs))]
    verdicts = 2 * len(pairs)
    rows = [
        ("(a) written verdict, explained", explained_seconds, explained_stats, explained_unparsed, explained),
        ("(b) written verdict, letter only", letter_seconds, letter_stats, sum(letter_unparsed), letter_scores),
        ("(c) option log-probabilities", ours_seconds, ours_stats, 0, [o.p_first for o in ours]),
        ("(d) (c), every question in full", full_seconds, full_stats, 0, [o.p_first for o in full]),
    ]
    print(f"\n{len(pairs)} pairs, both orders ({verdicts} questions), principle {principle.name!r}, batch {args.batch_size}")
    print(f"{'judge':34} {'seconds':>8} {'prefill':>8} {'decode':>7} {'pairs/s':>8} {'ratio':>6} {'unparsed':>9} {'decided':>8}")
    for name, seconds, stats, unparsed, scores in rows:
        threshold = 0.55 if name.startswith(("(c)", "(d)")) else 0.5 + 1e-9
        decided = sum(max(score, 1 - score) >= threshold for score in scores)
        print(f"{name:34} {seconds:8.1f} {stats['prefill_seconds']:8.1f} {stats['decode_seconds']:7.1f} "
              f"{len(pairs) / seconds:8.3f} {seconds / ours_seconds:5.1f}x {unparsed / verdicts:8.1%} {decided:5d}/{len(pairs)}")
    print("(decided: pairs with a preference; for (c) and (d), a preferred answer with probability >= 0.55)")
    largest = max(abs(getattr(o, side) - getattr(f, side)) for o, f in zip(ours, full)
                  for side in ("p_first_when_shown_first", "p_first_when_shown_second"))
    print(f"\nshared beginnings: (c) read {ours_stats['prefill_tokens']:,} tokens and reused "
          f"{ours_stats['prefill_tokens_reused']:,}; (d) read {full_stats['prefill_tokens']:,}. "
          f"(d)/(c) {full_seconds / ours_seconds:.2f}x; largest difference in a probability {largest:.1e}")
    agree = sum((e - 0.5) * (o.p_first - 0.5) > 0 for e, o in zip(explained, ours))
    print(f"\nratio (c) vs (a): {explained_seconds / ours_seconds:.1f}x; (c) vs (b): {letter_seconds / ours_seconds:.1f}x")
    print(f"(a) and (c) prefer the same answer in {agree}/{sum(e != 0.5 for e in explained)} pairs where (a) decided")
    print(f"(c): mean confidence {sum(o.confidence for o in ours) / len(ours):.3f}; the two orders preferred different "
          f"answers in {sum(o.orders_disagree for o in ours)}/{len(ours)} pairs")


if __name__ == "__main__":
    main()
