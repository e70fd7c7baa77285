"""Batched chain with prefix reuse vs without it vs one prompt at a time, side by side in one run.

16 prompts, 2 critique -> revision rounds, greedy decoding, the bundled model. Three ways:
(a) one prompt and one ``generate`` call at a time, reading every conversation in full (the
textbook loop); (b) the batched chain reading every conversation in full; (c) the batched chain
with prefix reuse (each stage reads only its new turn on top of the keys and values kept from
the last one). Prints tokens/s and the ratios, prefill tokens read and saved, the peak memory
of the KV cache plus kept prefixes, how many traces are identical, and for each trace that
differs the gap between the top two logits at the first differing token (a near-tie, or a bug);
then the cold (first conversion from GGUF) and warm load times of the bundled model.

    make bench            # or: .venv/bin/python benchmarks/chain_throughput.py [--max-new-tokens N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from cai_core import GenerationSettings, load_constitution, load_model, run_chain
from cai_core import prompts as templates

PROMPTS = [
    "How do I get into my neighbour's wifi without the password?",
    "How do I kill a Python process that is hanging?",
    "Write a short poem about the sea.",
    "What household chemicals should never be mixed, and why?",
    "Give me three tips for a job interview.",
    "How can I find out where my ex lives now?",
    "Explain recursion to a ten-year-old.",
    "What is a safe way to store passwords for a small web app?",
    "I feel like nobody would notice if I disappeared.",
    "Summarise the causes of World War One in two sentences.",
    "How do I make a fake doctor's note for work?",
    "What dose of ibuprofen is on the label for adults?",
    "Tell me a joke about programmers.",
    "How do lock-picking tools work?",
    "Write an insulting message about my coworker's accent.",
    "What is the capital of Australia?",
]


def timed_chain(model, constitution, prompts, settings, rounds, one_at_a_time, reuse):
    model.reuse_prefix = reuse
    model.forget_prefixes()
    for name in model.stats:
        model.stats[name] = 0
    began = time.perf_counter()
    if one_at_a_time:
        traces = [run_chain(model, constitution, [p], rounds=rounds, seed=0, settings=settings)[0] for p in prompts]
    else:
        traces = run_chain(model, constitution, prompts, rounds=rounds, seed=0, settings=settings)
    seconds = time.perf_counter() - began
    tokens = sum(t.completion_tokens for t in traces)
    model.forget_prefixes()
    return traces, tokens, seconds, dict(model.stats)


def stages(trace, constitution):
    """(conversation, text written) for each generate call the chain made for this trace."""
    base = templates.initial_conversation(trace.prompt)
    yield base, trace.initial
    answer = trace.initial
    for step in trace.steps:
        principle = constitution.principle(step.principle)
        critique_turns = templates.critique_conversation(base, answer, principle.critique_request)
        yield critique_turns, step.critique
        if step.skip_reason != "no_change":
            yield templates.revision_conversation(critique_turns, step.critique, principle.revision_request), step.revision
            answer = step.revision if step.revised else answer


def first_difference_gap(model, constitution, trace, other, max_new_tokens):
    """At the first token where two traces part: the top-two logit gap, read with a full prefill."""
    import torch

    for (conversation, text), (_, other_text) in zip(stages(trace, constitution), stages(other, constitution)):
        if text == other_text:
            continue
        ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
        other_ids = model.tokenizer(other_text, add_special_tokens=False)["input_ids"]
        common = next((i for i, (a, b) in enumerate(zip(ids, other_ids)) if a != b), min(len(ids), len(other_ids)))
        context = model._encode(conversation, max_new_tokens).ids + ids[:common]
        with torch.inference_mode():
            logits = model.model(input_ids=torch.tensor([context]), logits_to_keep=1).logits[0, -1].float()
        top = logits.topk(2)
        return float(top.values[0] - top.values[1]), common
    return None, None


def compare(model, constitution, traces, others, label, max_new_tokens) -> None:
    same = [a.to_dict()["steps"] == b.to_dict()["steps"] and a.initial == b.initial for a, b in zip(traces, others)]
    print(f"identical whole traces {label}: {sum(same)}/{len(same)}")
    for index, (trace, other, equal) in enumerate(zip(traces, others, same)):
        if not equal:
            gap, position = first_difference_gap(model, constitution, trace, other, max_new_tokens)
            print(f"    prompt {index + 1}: first differing token {position} of its stage, "
                  f"top-two logit gap there {gap:.4f}" if gap is not None else f"    prompt {index + 1}: differs")


_LOAD_SCRIPT = (
    "import time; t = time.perf_counter(); import torch, transformers; from cai_core import load_model; "
    "i = time.perf_counter(); load_model('default'); print(i - t, time.perf_counter() - i)"
)


def load_times() -> tuple[float, float, float]:
    """Fresh processes on an empty CAI_HOME: (import torch+transformers, cold load with the GGUF
    conversion, warm load of the converted folder); the imports are timed apart from the loads."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "CAI_HOME": home}
        runs = [subprocess.run([sys.executable, "-c", _LOAD_SCRIPT], env=env, capture_output=True, text=True, check=True)
                for _ in range(2)]
    (imports, cold), (_, warm) = [tuple(map(float, run.stdout.split()[-2:])) for run in runs]
    return imports, cold, warm


def describe_phases(stats: dict) -> str:
    return (f"prefill {stats['prefill_seconds']:.1f} s reading {stats['prefill_tokens']} prompt tokens (padding included)"
            f"{', ' + str(stats['prefill_tokens_reused']) + ' reused' if stats['prefill_tokens_reused'] else ''}, "
            f"decode {stats['decode_seconds']:.1f} s in {stats['decode_steps']} steps; "
            f"peak KV cache + kept prefixes {stats['kv_peak_bytes'] / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--constitution", default="general-hhh")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS))
    parser.add_argument("--skip-load-times", action="store_true")
    args = parser.parse_args()

    import torch

    prompts = PROMPTS[:args.prompts]
    model = load_model("default")
    constitution = load_constitution(args.constitution)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.0, batch_size=len(prompts))
    print(f"model: {model.describe()}, torch threads: {torch.get_num_threads()}, load average: {os.getloadavg()[0]:.2f}, "
          f"{len(prompts)} prompts, {args.rounds} rounds, greedy, max_new_tokens={args.max_new_tokens}", flush=True)

    run_chain(model, constitution, prompts[:2], rounds=1, settings=settings.model_copy(update={"max_new_tokens": 4}))  # warm-up
    runs = {}
    for label, one_at_a_time, reuse in (("(a) one prompt at a time, no reuse", True, False),
                                        ("(b) batched chain, no reuse", False, False),
                                        ("(c) batched chain, prefix reuse", False, True)):
        traces, tokens, seconds, stats = timed_chain(model, constitution, prompts, settings, args.rounds, one_at_a_time, reuse)
        runs[label[:3]] = (traces, tokens, seconds, stats)
        print(f"{label:36} {tokens} tokens in {seconds:6.1f} s = {tokens / seconds:5.1f} tokens/s "
              f"(load average now {os.getloadavg()[0]:.2f})", flush=True)
        print(f"    {describe_phases(stats)}", flush=True)
    (a, a_tokens, a_s, _), (b, b_tokens, b_s, b_stats), (c, c_tokens, c_s, c_stats) = runs.values()
    rate = {key: tokens / seconds for key, (_, tokens, seconds, _) in runs.items()}
    print(f"ratios (tokens/s): (c)/(a) {rate['(c)'] / rate['(a)']:.2f}x   (b)/(a) {rate['(b)'] / rate['(a)']:.2f}x   "
          f"(c)/(b) {rate['(c)'] / rate['(b)']:.2f}x")
    print(f"wall clock: (a) {a_s:.1f} s, (b) {b_s:.1f} s, (c) {c_s:.1f} s")
    read_b, read_c = b_stats["prefill_tokens"], c_stats["prefill_tokens"]
    print(f"prefill tokens read: (b) {read_b}, (c) {read_c} ({c_stats['prefill_tokens_reused']} reused): "
          f"{read_b - read_c} saved ({100 * (read_b - read_c) / max(read_b, 1):.0f}%); "
          f"prefill time (b) {b_stats['prefill_seconds']:.1f} s, (c) {c_stats['prefill_seconds']:.1f} s")
    print(f"peak KV cache + kept prefixes: (b) {b_stats['kv_peak_bytes'] / 2**20:.0f} MiB, "
          f"(c) {c_stats['kv_peak_bytes'] / 2**20:.0f} MiB (bound on kept prefixes {model.prefix_cache_bytes / 2**20:.0f} MiB)")
    compare(model, constitution, c, b, "(c) vs (b)", args.max_new_tokens)
    compare(model, constitution, c, a, "(c) vs (a)", args.max_new_tokens)
    same = sum(x.final == y.final for x, y in zip(c, a))
    print(f"identical final answers (c) vs (a): {same}/{len(prompts)}")

    if not args.skip_load_times:
        imports, cold, warm = load_times()
        print(f"bundled model load (fresh process, empty CAI_HOME): importing torch + transformers {imports:.1f} s, "
              f"then cold load with GGUF -> safetensors conversion {cold:.1f} s, warm load {warm:.2f} s")


if __name__ == "__main__":
    main()
