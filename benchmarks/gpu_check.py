"""A self-contained GPU check: batched decode speed against the memory-bandwidth bound, and one LoRA DPO step.

Needs only torch, transformers and peft (no project install, no network, no tokenizer, no
weights to download): it builds a ~1B Llama (Llama-3.2-1B's shape) from a ``LlamaConfig`` with
random weights, in bfloat16 on CUDA.

1. **Decode**: for each batch size, prefill a batch of random prompts, then time greedy decode
   steps (one token per row per step, KV cache kept, eager PyTorch, no CUDA graphs). A decode step
   must read every weight once, so ``weight bytes / memory bandwidth`` is a lower bound on its time
   and ``batch / that`` an upper bound on tokens/s; the line also gives the bound counting the KV
   cache the step reads. The bandwidth comes from ``--bandwidth-tb-s``, by default an NVIDIA H200's
   4.8 TB/s (the script says which it used).
2. **One LoRA DPO step**: LoRA (peft) on every projection of the policy; the reference is the same
   model with the adapter switched off (``disable_adapter()``), so no second copy of the weights;
   the DPO loss written out (``-log sigmoid(beta * (policy margin - reference margin))``) so TRL is
   not needed. Prints the step's time and the peak GPU memory (``torch.cuda.max_memory_allocated``).

    python benchmarks/gpu_check.py                          # ~1B on cuda, under 5 minutes on one H200
    python benchmarks/gpu_check.py --size tiny --device cpu # a few seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is built here; nothing is fetched

import torch  # noqa: E402

H200_BANDWIDTH_TB_S = 4.8
GIB = 1024 ** 3

# Llama-3.2-1B's shape (1.24 B parameters with tied embeddings), and a tiny one for a CPU check.
SIZES = {
    "1b": dict(config=dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                           num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096,
                           tie_word_embeddings=True),
               batch_sizes=[1, 8, 32, 128], prompt_tokens=128, new_tokens=128,
               dpo_batch=4, dpo_prompt_tokens=256, dpo_answer_tokens=256),
    "tiny": dict(config=dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                             tie_word_embeddings=True),
                 batch_sizes=[1, 4], prompt_tokens=16, new_tokens=8,
                 dpo_batch=2, dpo_prompt_tokens=16, dpo_answer_tokens=16),
}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1b")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bandwidth-tb-s", type=float, default=None,
                        help=f"the device's memory bandwidth in TB/s (default: an H200's {H200_BANDWIDTH_TB_S})")
    parser.add_argument("--batch-sizes", type=lambda text: [int(x) for x in text.split(",")], default=None,
                        help="comma-separated decode batch sizes (default: the size's own)")
    parser.add_argument("--new-tokens", type=int, default=None, help="decode steps per batch size")
    parser.add_argument("--dpo-steps", type=int, default=2, help="DPO steps; the last one is timed (the first warms up)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    return args


def build_model(size: str, device: torch.device, dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SIZES[size]["config"], pad_token_id=0, bos_token_id=1, eos_token_id=2)
    with torch.device(device):  # initialised where it runs: a 1B init on the CPU alone takes a while
        model = LlamaForCausalLM(config)
    return model.to(dtype).eval(), config


def weight_bytes(model) -> int:
    # Tied embeddings are one tensor: parameters() yields it once, and the LM head reads all of it each step.
    return sum(p.numel() * p.element_size() for p in model.parameters())


def kv_bytes_per_position(config, dtype: torch.dtype) -> int:
    head_dim = config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * torch.tensor([], dtype=dtype).element_size()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_with_cache(model):
    """model(ids, cache) -> (next greedy tokens, cache), whichever transformers is installed.

    transformers 5.24 renamed ``past_key_values`` to ``cache`` (argument and output); older
    versions call ``logits_to_keep`` ``num_logits_to_keep`` or lack it.
    """
    import inspect

    parameters = inspect.signature(model.forward).parameters
    cache_name = "cache" if "cache" in parameters else "past_key_values"
    keep = next(({name: 1} for name in ("logits_to_keep", "num_logits_to_keep") if name in parameters), {})

    def step(ids, cache):
        arguments = {cache_name: cache} if cache is not None else {}
        out = model(input_ids=ids, use_cache=True, **keep, **arguments)
        return out.logits[:, -1].argmax(-1, keepdim=True), out[cache_name]

    return step


@torch.inference_mode()
def decode_tokens_per_second(model, batch: int, prompt_tokens: int, new_tokens: int, device: torch.device,
                             vocab: int) -> tuple[float, float]:
    """(tokens/s, seconds per step) of greedy decoding, prefill excluded."""
    step = forward_with_cache(model)
    prompt = torch.randint(3, vocab, (batch, prompt_tokens), device=device)
    token, cache = step(prompt, None)
    token, cache = step(token, cache)  # one step to warm the kernels up
    synchronize(device)
    began = time.perf_counter()
    for _ in range(new_tokens):
        token, cache = step(token, cache)
    synchronize(device)
    seconds = time.perf_counter() - began
    return batch * new_tokens / seconds, seconds / new_tokens


def sequence_log_prob(model, ids: torch.Tensor, answer_start: int) -> torch.Tensor:
    """Sum of log p(token) over each row's answer tokens."""
    logits = model(input_ids=ids).logits[:, answer_start - 1:-1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, answer_start:, None]).squeeze(-1).sum(-1)


def dpo_step(policy, optimizer, chosen: torch.Tensor, rejected: torch.Tensor, answer_start: int,
             beta: float = 0.1) -> float:
    both = torch.cat([chosen, rejected])  # one forward pass for both answers, as TRL does
    with torch.no_grad(), policy.disable_adapter():
        reference = sequence_log_prob(policy, both, answer_start)
    logps = sequence_log_prob(policy, both, answer_start)
    half = chosen.shape[0]
    margin = (logps[:half] - reference[:half]) - (logps[half:] - reference[half:])
    loss = -torch.nn.functional.logsigmoid(beta * margin).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def run_dpo(model, config, size: dict, steps: int, device: torch.device) -> tuple[float, int | None, float, int]:
    """(seconds of the last step, peak bytes on the GPU or None, loss, trainable parameters)."""
    from peft import LoraConfig, get_peft_model

    policy = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS,
                                              task_type="CAUSAL_LM"))
    policy.train()
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    batch, prompt_len, answer_len = size["dpo_batch"], size["dpo_prompt_tokens"], size["dpo_answer_tokens"]
    prompt = torch.randint(3, config.vocab_size, (batch, prompt_len), device=device)
    chosen = torch.cat([prompt, torch.randint(3, config.vocab_size, (batch, answer_len), device=device)], dim=1)
    rejected = torch.cat([prompt, torch.randint(3, config.vocab_size, (batch, answer_len), device=device)], dim=1)
    seconds, loss = 0.0, float("nan")
    for step in range(max(1, steps)):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        synchronize(device)
        began = time.perf_counter()
        loss = dpo_step(policy, optimizer, chosen, rejected, prompt_len)
        synchronize(device)
        seconds = time.perf_counter() - began
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return seconds, peak, loss, sum(p.numel() for p in trainable)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    size = SIZES[args.size]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    import peft
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name} ({device}); torch {torch.__version__}, transformers {transformers.__version__}, "
          f"peft {peft.__version__}; {dtype}".replace("torch.", ""))
    bandwidth_tb_s = args.bandwidth_tb_s or H200_BANDWIDTH_TB_S
    source = "--bandwidth-tb-s" if args.bandwidth_tb_s else "default: an NVIDIA H200's, pass --bandwidth-tb-s for another device"
    print(f"memory bandwidth: {bandwidth_tb_s:g} TB/s ({source})")

    model, config = build_model(args.size, device, dtype)
    weights = weight_bytes(model)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: random Llama, {parameters / 1e6:,.1f} M parameters, {weights / 1024 ** 2:,.1f} MiB of weights "
          f"(built in {time.perf_counter() - started:.1f} s)")

    new_tokens = args.new_tokens or size["new_tokens"]
    kv_per_position = kv_bytes_per_position(config, dtype)
    bandwidth = bandwidth_tb_s * 1e12
    for batch in args.batch_sizes or size["batch_sizes"]:
        tokens_per_s, step_seconds = decode_tokens_per_second(model, batch, size["prompt_tokens"], new_tokens,
                                                              device, config.vocab_size)
        bound_step = weights / bandwidth  # every weight read once per step
        mean_context = size["prompt_tokens"] + 1 + new_tokens / 2
        bound_step_kv = (weights + batch * mean_context * kv_per_position) / bandwidth
        print(f"decode batch {batch}: {tokens_per_s:,.1f} tokens/s, {step_seconds * 1e3:.2f} ms/step; "
              f"bandwidth bound {batch / bound_step:,.0f} tokens/s ({bound_step * 1e3:.4f} ms/step, weights only), "
              f"{batch / bound_step_kv:,.0f} tokens/s with the KV cache; "
              f"{100 * bound_step / step_seconds:.1f}% of the weights-only bound")
    if device.type == "cuda":
        torch.cuda.empty_cache()

    seconds, peak, loss, trainable = run_dpo(model, config, size, args.dpo_steps, device)
    pairs, length = size["dpo_batch"], size["dpo_prompt_tokens"] + size["dpo_answer_tokens"]
    memory = (f"peak GPU memory {peak / GIB:.2f} GiB (torch.cuda.max_memory_allocated)" if peak is not None
              else f"peak memory of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GiB (RSS; "
                   "GPU memory is measured on CUDA only)")
    print(f"DPO step (LoRA r=16 on all projections, {trainable / 1e6:.2f} M trainable; {pairs} pairs of "
          f"{length} tokens; reference = adapter disabled): {seconds:.3f} s, {memory}, loss {loss:.4f}")
    print(f"total: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
