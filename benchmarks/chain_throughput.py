"""Batched chain vs one prompt and one ``generate`` call at a time, side by side in one run.

16 prompts, 2 critique -> revision rounds, greedy decoding, the bundled model. Prints generated
tokens/s of each way, their ratio, and whether the final answers are identical; then the cold
(first conversion from GGUF) and warm load times of the bundled model.

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


def timed_chain(model, constitution, prompts, settings, rounds, one_at_a_time):
    for name in model.stats:
        model.stats[name] = 0
    began = time.perf_counter()
    if one_at_a_time:
        traces = [run_chain(model, constitution, [p], rounds=rounds, seed=0, settings=settings)[0] for p in prompts]
    else:
        traces = run_chain(model, constitution, prompts, rounds=rounds, seed=0, settings=settings)
    seconds = time.perf_counter() - began
    tokens = sum(t.completion_tokens for t in traces)
    return traces, tokens, seconds, dict(model.stats)


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
    return (f"prefill {stats['prefill_seconds']:.1f} s for {stats['prefill_tokens']} prompt tokens (padding included), "
            f"decode {stats['decode_seconds']:.1f} s in {stats['decode_steps']} steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--constitution", default="general-hhh")
    args = parser.parse_args()

    import torch

    model = load_model("default")
    constitution = load_constitution(args.constitution)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.0, batch_size=len(PROMPTS))
    print(f"model: {model.describe()}, torch threads: {torch.get_num_threads()}, "
          f"{len(PROMPTS)} prompts, {args.rounds} rounds, greedy, max_new_tokens={args.max_new_tokens}")

    run_chain(model, constitution, PROMPTS[:2], rounds=1, settings=settings.model_copy(update={"max_new_tokens": 4}))  # warm-up
    single, single_tokens, single_s, single_stats = timed_chain(model, constitution, PROMPTS, settings, args.rounds, one_at_a_time=True)
    batched, batched_tokens, batched_s, batched_stats = timed_chain(model, constitution, PROMPTS, settings, args.rounds, one_at_a_time=False)

    single_rate, batched_rate = single_tokens / single_s, batched_tokens / batched_s
    same = sum(a.final == b.final for a, b in zip(single, batched))
    same_steps = sum(a.to_dict()["steps"] == b.to_dict()["steps"] and a.initial == b.initial for a, b in zip(single, batched))
    print(f"(a) one prompt at a time: {single_tokens} tokens in {single_s:.1f} s = {single_rate:.1f} tokens/s")
    print(f"    {describe_phases(single_stats)}")
    print(f"(b) batched chain:        {batched_tokens} tokens in {batched_s:.1f} s = {batched_rate:.1f} tokens/s")
    print(f"    {describe_phases(batched_stats)}")
    print(f"ratio (b)/(a) tokens/s: {batched_rate / single_rate:.2f}x; wall-clock speed-up: {single_s / batched_s:.2f}x; "
          f"decode phase alone: {single_stats['decode_seconds'] / batched_stats['decode_seconds']:.2f}x")
    print(f"identical final answers: {same}/{len(PROMPTS)}; identical whole traces: {same_steps}/{len(PROMPTS)}")

    imports, cold, warm = load_times()
    print(f"bundled model load (fresh process, empty CAI_HOME): importing torch + transformers {imports:.1f} s, "
          f"then cold load with GGUF -> safetensors conversion {cold:.1f} s, warm load {warm:.2f} s")


if __name__ == "__main__":
    main()
