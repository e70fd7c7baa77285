"""The AI judge: option log-probabilities vs writing a verdict and parsing it, same pairs, one run.

Pairs: two sampled answers from the model itself for each of N prompts (red-team and benign, from
the shipped sets), made before any timing. Every judge asks about every pair in both orders under
the same principle, on the same loaded model:

- (a) written verdict, explained: "explain, then end with [[A]] or [[B]]" (MT-Bench and
  LangChain's pairwise evaluator), greedy, up to --verdict-tokens new tokens, then parsed;
- (b) written verdict, letter only: "reply with the letter", greedy, 4 new tokens, parsed;
- (c) ours: one forward pass per question, the normalised probabilities of the option tokens.

Prints pairs/s of each, the ratios to (c), the share of verdicts that could not be parsed, and
how often (a) and (c) prefer the same answer.

    .venv/bin/python benchmarks/judge_speed.py [--pairs 32] [--model default]
"""

from __future__ import annotations

import argparse
import time

from cai_core import GenerationSettings, load_constitution, load_model
from cai_core import prompts as templates
from cai_core.judge import comparison_request, judge_by_written_verdict, judge_pairs, letter_verdicts
from cai_core.promptsets import load_prompt_sources
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

    began = time.perf_counter()
    explained, explained_unparsed = judge_by_written_verdict(model, pairs, principle, args.verdict_tokens, args.batch_size)
    explained_seconds = time.perf_counter() - began

    request = comparison_request(principle)
    letter_questions = [q for p, a, b in pairs for q in (templates.judge_conversation(p, request, a, b),
                                                          templates.judge_conversation(p, request, b, a))]
    began = time.perf_counter()
    _, letter_unparsed_flags = letter_verdicts(model, letter_questions, args.batch_size)
    letter_seconds = time.perf_counter() - began

    began = time.perf_counter()
    ours = judge_pairs(model, pairs, [[principle]] * len(pairs), batch_size=args.batch_size)
    ours_seconds = time.perf_counter() - began

    verdicts = 2 * len(pairs)
    rows = [
        ("(a) written verdict, explained", explained_seconds, explained_unparsed),
        ("(b) written verdict, letter only", letter_seconds, sum(letter_unparsed_flags)),
        ("(c) option log-probabilities", ours_seconds, 0),
    ]
    print(f"\n{len(pairs)} pairs, both orders ({verdicts} questions), principle {principle.name!r}, batch {args.batch_size}")
    print(f"{'judge':36} {'seconds':>8} {'pairs/s':>8} {'x slower':>9} {'unparsed':>9}")
    for name, seconds, unparsed in rows:
        print(f"{name:36} {seconds:8.2f} {len(pairs) / seconds:8.2f} {seconds / ours_seconds:8.1f}x "
              f"{unparsed / verdicts:8.1%}")
    agree = sum((e > 0.5 and o.p_first > 0.5) or (e < 0.5 and o.p_first < 0.5) for e, o in zip(explained, ours))
    decided = sum(e != 0.5 for e in explained)
    print(f"\nratio (c) vs (a): {explained_seconds / ours_seconds:.1f}x; (c) vs (b): {letter_seconds / ours_seconds:.1f}x")
    print(f"(a) and (c) prefer the same answer in {agree}/{decided} pairs where (a) reached a decision")
    print(f"(c): mean confidence {sum(o.confidence for o in ours) / len(ours):.3f}, "
          f"orders disagree in {sum(o.orders_disagree for o in ours)}/{len(ours)} pairs")


if __name__ == "__main__":
    main()
