#!/usr/bin/env python3
"""The baseline ringserve's offline throughput is compared with: transformers' batched
generate at Llama-3-8B shape with random bf16 weights (built from the config on the GPU,
nothing downloaded), --requests prompts of --prompt-tokens random ids, greedy,
min_new_tokens = max_new_tokens = --gen-tokens (no early stop), as many at once as fit
(at most --max-batch).

The run is bounded by --time-budget-s: after a short probe estimates one batch's time, only
as many whole batches run as fit in the budget (at least one), and output tokens/s is
measured over those; the JSON says so ("extrapolated": true) when that is fewer than all.
Every batch has the same shape, so the rate of a subset is the rate of the whole.
Prints one JSON object (also to --out). Exits 77 without CUDA, torch or transformers.
"""

import argparse
import json
import sys
import time

LLAMA3_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                 max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=False)
ROPE_THETA = 500000.0


def llama3_8b_config(transformers):
    """transformers >= 5 takes rope_theta inside rope_parameters."""
    import inspect
    if "rope_parameters" in inspect.signature(transformers.LlamaConfig.__init__).parameters:
        return transformers.LlamaConfig(
            rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA}, **LLAMA3_8B)
    return transformers.LlamaConfig(rope_theta=ROPE_THETA, **LLAMA3_8B)


def generate_seconds(torch, model, prompts, new_tokens):
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts),
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False, pad_token_id=0)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    assert out.shape[1] == prompts.shape[1] + new_tokens, out.shape
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=256)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--time-budget-s", type=float, default=120)
    parser.add_argument("--out")
    args = parser.parse_args()
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"hf_generate_baseline: {e}; skipping", file=sys.stderr)
        return 77
    if not torch.cuda.is_available():
        print("hf_generate_baseline: no CUDA device; skipping", file=sys.stderr)
        return 77
    started = time.perf_counter()
    torch.manual_seed(0)
    config = llama3_8b_config(transformers)
    config.eos_token_id = None
    torch.set_default_dtype(torch.bfloat16)  # built on the GPU in bf16: seconds, not minutes
    with torch.device("cuda"):
        model = transformers.LlamaForCausalLM(config).to(torch.bfloat16).eval()
    torch.set_default_dtype(torch.float32)
    model.generation_config.eos_token_id = None
    build_s = time.perf_counter() - started
    vocab = config.vocab_size

    def prompts(n):
        return torch.randint(3, vocab, (n, args.prompt_tokens), device="cuda")

    generate_seconds(torch, model, prompts(2), 4)  # warm-up: kernels, allocator
    batch = min(args.requests, args.max_batch)
    while True:  # the largest batch whose prefill and a few steps fit in memory
        try:
            short = generate_seconds(torch, model, prompts(batch), 2)
            probe = generate_seconds(torch, model, prompts(batch), 16)
            break
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if batch == 1:
                raise
            batch //= 2
    per_step = max(probe - short, 1e-6) / 14
    # The KV cache grows with every step: later steps cost more than the probe's.
    estimate = short + 1.3 * per_step * (args.gen_tokens - 2)
    batches_total = -(-args.requests // batch)
    budget_left = args.time_budget_s - (time.perf_counter() - started)
    batches = max(1, min(batches_total, int(budget_left // estimate)))
    seconds = 0.0
    for _ in range(batches):
        seconds += generate_seconds(torch, model, prompts(batch), args.gen_tokens)
    output_tokens = batches * batch * args.gen_tokens
    report = {
        "what": "transformers LlamaForCausalLM.generate, Llama-3-8B shape, random bf16 weights",
        "transformers": transformers.__version__, "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "requests": args.requests, "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens, "batch": batch,
        "batches_measured": batches, "batches_total": batches_total,
        "extrapolated": batches < batches_total,
        "estimated_batch_s": round(estimate, 2), "build_s": round(build_s, 2),
        "output_tokens": output_tokens, "seconds": seconds,
        "output_tokens_per_s": output_tokens / seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
