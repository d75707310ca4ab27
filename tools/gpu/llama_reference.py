"""A Llama forward pass in plain Python (float64), with a safetensors writer.

The independent implementation hf_compare.py falls back on where PyTorch and transformers
are missing (the development machines): small random models only (a few seconds for a few
dozen tokens). It follows transformers' LlamaForCausalLM: RMSNorm, rotary embedding on
halves of each head (rotate_half) with Llama 3 frequency scaling, grouped-query attention,
SwiGLU, untied output head.
"""

import json
import math
import random
import struct


def bf16_round(value):
    """value rounded to the nearest bfloat16 (ties to even), as a Python float."""
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def bf16_bytes(values):
    out = bytearray()
    for v in values:
        bits = struct.unpack("<I", struct.pack("<f", v))[0]
        out += struct.pack("<H", bits >> 16)  # values are already bf16-exact
    return bytes(out)


def random_weights(cfg, seed):
    """name -> (shape, row-major bf16-exact values), HF tensor names."""
    rng = random.Random(seed)
    d, h = cfg["hidden_size"], cfg["intermediate_size"]
    hd = cfg["head_dim"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    v = cfg["vocab_size"]

    def mat(rows, cols, std):
        return ([rows, cols], [bf16_round(rng.gauss(0.0, std)) for _ in range(rows * cols)])

    def norm(n):
        return ([n], [bf16_round(1.0 + 0.1 * rng.gauss(0.0, 1.0)) for _ in range(n)])

    w = {"model.embed_tokens.weight": mat(v, d, 1.0)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        # q and k large enough that attention is peaked: positions (and rope) matter.
        w[p + "self_attn.q_proj.weight"] = mat(q, d, 1.4 / math.sqrt(d))
        w[p + "self_attn.k_proj.weight"] = mat(kv, d, 1.4 / math.sqrt(d))
        w[p + "self_attn.v_proj.weight"] = mat(kv, d, 1.0 / math.sqrt(d))
        w[p + "self_attn.o_proj.weight"] = mat(d, q, 1.0 / math.sqrt(q))
        w[p + "mlp.gate_proj.weight"] = mat(h, d, 1.0 / math.sqrt(d))
        w[p + "mlp.up_proj.weight"] = mat(h, d, 1.0 / math.sqrt(d))
        w[p + "mlp.down_proj.weight"] = mat(d, h, 1.0 / math.sqrt(h))
        w[p + "input_layernorm.weight"] = norm(d)
        w[p + "post_attention_layernorm.weight"] = norm(d)
    w["model.norm.weight"] = norm(d)
    w["lm_head.weight"] = mat(v, d, 1.0 / math.sqrt(d))
    return w


def write_safetensors(path, weights):
    """weights: name -> (shape, values); stored as BF16."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, (shape, values) in weights.items():
        blob = bf16_bytes(values)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def _rope_settings(cfg):
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    return rope, rope.get("rope_type", rope.get("type", "default"))


def inverse_frequencies(cfg):
    """transformers' default, linear, llama3 and yarn rope initialisation."""
    rope, kind = _rope_settings(cfg)
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    hd = cfg["head_dim"]
    inv = [1.0 / theta ** (i / hd) for i in range(0, hd, 2)]
    if kind == "linear":
        return [f / rope["factor"] for f in inv]
    if kind == "yarn":
        factor = rope["factor"]
        original = (rope.get("original_max_position_embeddings")
                    or cfg["max_position_embeddings"])

        def turning_dim(turns):  # the pair index turning `turns` times over the original
            return hd * math.log(original / (turns * 2 * math.pi)) / (2 * math.log(theta))
        low, high = turning_dim(rope.get("beta_fast") or 32), turning_dim(rope.get("beta_slow") or 1)
        if rope.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, hd - 1)
        if low == high:
            high += 0.001
        out = []
        for i, f in enumerate(inv):
            ramp = min(max((i - low) / (high - low), 0.0), 1.0)
            out.append(f * (1 - ramp) + f / factor * ramp)
        return out
    if kind != "llama3":
        return inv
    factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    old = rope["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for f in inv:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return out


def attention_factor(cfg):
    """What transformers multiplies cos and sin by: yarn's attention factor, else 1."""
    rope, kind = _rope_settings(cfg)
    if kind != "yarn":
        return 1.0
    if rope.get("attention_factor"):
        return rope["attention_factor"]
    factor = rope["factor"]
    return 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0


def sliding_window(cfg):
    """Mistral's sliding window (every layer; each query sees its last `window` keys), or
    None: what transformers' MistralConfig reads from config.json."""
    return cfg.get("sliding_window") if cfg.get("model_type") == "mistral" else None


def _matvec(w, cols, x):
    return [sum(wr * xv for wr, xv in zip(w[r * cols:(r + 1) * cols], x))
            for r in range(len(w) // cols)]


def _rmsnorm(x, weight, eps):
    scale = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
    return [v * scale * g for v, g in zip(x, weight)]


def _rope(vec, heads, hd, position, inv, scale):
    out = list(vec)
    half = hd // 2
    for h in range(heads):
        base = h * hd
        for i in range(half):
            c, s = scale * math.cos(position * inv[i]), scale * math.sin(position * inv[i])
            a, b = vec[base + i], vec[base + i + half]
            out[base + i] = a * c - b * s
            out[base + i + half] = b * c + a * s
    return out


def forward(cfg, weights, ids, first_row, out_hidden=None):
    """Logits (float64 lists) at positions first_row .. len(ids) - 1. With a list `out_hidden`,
    also appends the last position's final hidden state (the output norm's output: what a
    last-token-pooling embedding is)."""
    d, hd = cfg["hidden_size"], cfg["head_dim"]
    nq, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    eps = cfg["rms_norm_eps"]
    inv, scale = inverse_frequencies(cfg), attention_factor(cfg)
    window = sliding_window(cfg)
    w = {k: v[1] for k, v in weights.items()}
    emb = w["model.embed_tokens.weight"]
    xs = [emb[t * d:(t + 1) * d] for t in ids]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        keys, values, new_xs = [], [], []
        for pos, x in enumerate(xs):
            h = _rmsnorm(x, w[p + "input_layernorm.weight"], eps)
            q = _rope(_matvec(w[p + "self_attn.q_proj.weight"], d, h), nq, hd, pos, inv, scale)
            keys.append(_rope(_matvec(w[p + "self_attn.k_proj.weight"], d, h), nkv, hd, pos, inv,
                              scale))
            values.append(_matvec(w[p + "self_attn.v_proj.weight"], d, h))
            first = max(0, pos - window + 1) if window else 0  # the keys this query sees
            att = []
            for head in range(nq):
                kvh = head // (nq // nkv)
                qh = q[head * hd:(head + 1) * hd]
                scores = [sum(a * b for a, b in zip(qh, k[kvh * hd:(kvh + 1) * hd])) / math.sqrt(hd)
                          for k in keys[first:]]
                top = max(scores)
                probs = [math.exp(s - top) for s in scores]
                total = sum(probs)
                att += [sum(pr * v[kvh * hd + i] for pr, v in zip(probs, values[first:])) / total
                        for i in range(hd)]
            x = [a + b for a, b in zip(x, _matvec(w[p + "self_attn.o_proj.weight"], nq * hd, att))]
            h = _rmsnorm(x, w[p + "post_attention_layernorm.weight"], eps)
            g = _matvec(w[p + "mlp.gate_proj.weight"], d, h)
            u = _matvec(w[p + "mlp.up_proj.weight"], d, h)
            act = [gv / (1.0 + math.exp(-gv)) * uv for gv, uv in zip(g, u)]
            hidden = cfg["intermediate_size"]
            new_xs.append([a + b for a, b in
                           zip(x, _matvec(w[p + "mlp.down_proj.weight"], hidden, act))])
        xs = new_xs
    normed = [_rmsnorm(x, w["model.norm.weight"], eps) for x in xs[first_row:]]
    if out_hidden is not None:
        out_hidden.append(normed[-1])
    return [_matvec(w["lm_head.weight"], d, h) for h in normed]
