"""transformers' LlamaForCausalLM forward (eager attention), written out op for op in PyTorch.

hf_compare.py's third reference (--reference torch): where PyTorch is installed but
transformers is not (Debian's python3-torch on a development machine), it stands in for
transformers to estimate, without a GPU, how far two correct bf16 implementations can be
apart. It rounds where transformers' bf16 run rounds: every op's output is bf16, with RMSNorm
and softmax computed in f32 and cast back, and the rotary cos/sin cast to bf16 before use.
"""

import math

import torch

import llama_reference


def random_weights(cfg, seed):
    """name -> bf16-exact float64 tensor, the scheme of llama_reference.random_weights."""
    torch.manual_seed(seed)
    d, h, hd = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd

    def bf16_exact(t):
        return t.to(torch.bfloat16).double()

    def mat(rows, cols, gain=1.0):
        return bf16_exact(torch.randn(rows, cols) * gain / math.sqrt(cols))

    def norm(n):
        return bf16_exact(1.0 + 0.1 * torch.randn(n))

    w = {"model.embed_tokens.weight": bf16_exact(torch.randn(cfg["vocab_size"], d))}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "self_attn.q_proj.weight"] = mat(q, d, 1.4)
        w[p + "self_attn.k_proj.weight"] = mat(kv, d, 1.4)
        w[p + "self_attn.v_proj.weight"] = mat(kv, d)
        w[p + "self_attn.o_proj.weight"] = mat(d, q)
        w[p + "mlp.gate_proj.weight"] = mat(h, d)
        w[p + "mlp.up_proj.weight"] = mat(h, d)
        w[p + "mlp.down_proj.weight"] = mat(d, h)
        w[p + "input_layernorm.weight"] = norm(d)
        w[p + "post_attention_layernorm.weight"] = norm(d)
    w["model.norm.weight"] = norm(d)
    w["lm_head.weight"] = mat(cfg["vocab_size"], d)
    return w


def as_lists(weights):
    """The llama_reference.write_safetensors form: name -> (shape, values)."""
    return {k: (list(t.shape), t.flatten().tolist()) for k, t in weights.items()}


def forward(cfg, weights, ids, first_row, dtype, hidden=None):
    """Logits (float64 lists) at positions first_row .. len(ids) - 1, computed in dtype. With
    a list `hidden`, also appends the last position's final hidden state (the output norm's
    output)."""
    exact = dtype == torch.float64
    norm_dtype = torch.float64 if exact else torch.float32
    w = {k: t.to(dtype) for k, t in weights.items()}
    eps, hd = cfg["rms_norm_eps"], cfg["head_dim"]
    nq, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    n = len(ids)
    inv = torch.tensor(llama_reference.inverse_frequencies(cfg), dtype=norm_dtype)
    angles = torch.outer(torch.arange(n, dtype=norm_dtype), inv)
    angles = torch.cat([angles, angles], -1)
    scale = llama_reference.attention_factor(cfg)  # transformers' attention_scaling
    cos, sin = (angles.cos() * scale).to(dtype), (angles.sin() * scale).to(dtype)

    def rmsnorm(x, gain):
        xf = x.to(norm_dtype)
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        return gain * xf.to(dtype)

    def rotate_half(x):
        half = x.shape[-1] // 2
        return torch.cat([-x[..., half:], x[..., :half]], -1)

    def heads(x, count):
        return x.view(n, count, hd).transpose(0, 1)

    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    position = torch.arange(n)
    blocked = position[None, :] > position[:, None]  # causal: no key after the query
    window = llama_reference.sliding_window(cfg)
    if window:  # nor one more than `window` - 1 before it
        blocked |= position[None, :] <= position[:, None] - window
    mask = torch.zeros((n, n), dtype=dtype).masked_fill(blocked, torch.finfo(dtype).min)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"])
        q = heads(h @ w[p + "self_attn.q_proj.weight"].T, nq)
        k = heads(h @ w[p + "self_attn.k_proj.weight"].T, nkv)
        v = heads(h @ w[p + "self_attn.v_proj.weight"].T, nkv)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nq // nkv, 0)
        v = v.repeat_interleave(nq // nkv, 0)
        scores = torch.matmul(q, k.transpose(1, 2)) * hd ** -0.5 + mask
        probs = torch.softmax(scores, -1, dtype=norm_dtype).to(dtype)
        att = torch.matmul(probs, v).transpose(0, 1).reshape(n, nq * hd)
        x = x + att @ w[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"])
        act = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (
            h @ w[p + "mlp.up_proj.weight"].T)
        x = x + act @ w[p + "mlp.down_proj.weight"].T
    normed = rmsnorm(x, w["model.norm.weight"])
    if hidden is not None:
        hidden.append(normed[-1].double().tolist())
    logits = normed @ w["lm_head.weight"].T
    return logits[first_row:].double().tolist()
