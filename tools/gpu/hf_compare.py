#!/usr/bin/env python3
"""ringserve's logits against an independent Llama implementation, on random models.

Four small configs with grouped-query attention (4 query heads, 2 KV heads): one with Llama 3
rope scaling (factor 8, low/high freq factor 1/4, original context 8192), one with YaRN
(factor 4 over an original context of 1024), one without, and a Mistral with a sliding
window (128 keys; 8 for the Python reference) shorter than its longer sequences. The weights
are random and bf16-exact, so every side computes from the same numbers.

  prepare   writes each model as a Hugging Face directory (config.json + model.safetensors)
            and the reference logits. With PyTorch and transformers (the GPU machine):
            LlamaForCausalLM (MistralForCausalLM) builds the config, saves itself with
            save_pretrained, and gives
            logits in float64 and float32 on the CPU and in bf16 on the GPU (eager
            attention); also the logits without rope scaling on the same weights, to show
            how much scaling moves them. Without them (--reference python, or auto when
            transformers is missing): tools/gpu/llama_reference.py writes the files and
            computes float64 logits (short sequences only).
  compare   runs `ringserve-run logits` on each model (CPU f32; with --device cuda:N also
            --dtype f32, --dtype bf16 and --dtype bf16 --attention tensor-core) and compares
            rows by max |a - b| / max |b| (logits_error.py, the unit tests' measure), the
            L2 ratio ||a - b|| / ||b|| reported beside it; and `ringserve-run --embed --raw`
            (CPU f32, the device's f32 and bf16) against the reference's final hidden state
            at each sequence's last token (the embedding), under the same limits.
  all       both.

LoRA: the gqa_plain_rope model also gets a random PEFT adapter (every projection, rank 8,
bf16-exact values, tools/gpu/peft_adapter.py), and its reference logits are the model's with
the adapter merged into the weights (W + alpha / r * B A); `ringserve-run logits --lora
a=DIR --adapter a` is held to them under the same limits as the plain logits, and the
adapter must move the reference logits (else the check would compare nothing).

Prints one JSON object (also written to --out); exits 1 when a check fails.
Gates, on max |a - b| / max |b| per row: ringserve f32 (CPU or GPU) vs the reference's f32
<= 1e-3; ringserve bf16 (GPU) vs the reference's f64 <= 1e-2 (the issue's bound; 2e-2 for
the YaRN model, see BF16_LIMITS) and no larger than transformers' own bf16 error against
its f64. ringserve bf16 vs transformers
bf16 is reported beside them (see logits_checks for why it is not a gate).
"""

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference  # noqa: E402
import logits_error  # noqa: E402
import peft_adapter  # noqa: E402

F32_LIMIT = 1e-3
BF16_LIMIT = 1e-2
# YaRN multiplies every attention logit by its attention factor squared (1.30 at factor 4),
# and the error bf16 puts in q.k with it: on hf_compare's models that takes bf16 attention
# from 5-9e-3 to 0.9-1.2e-2 of the f64 logits, transformers' own bf16 error on the others.
# Its bf16 is held to the unit tests' bf16 bound and, where transformers runs, to being no
# further from f64 than transformers' bf16.
BF16_LIMITS = {"gqa_yarn_rope": 2e-2}
DECODE_STEPS = 4  # the last tokens of each sequence go through decode steps
LORA_MODEL = "gqa_plain_rope"  # the model the LoRA check adapts
LORA_RANK = 8


def configs(reference):
    base = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
        "vocab_size": 512, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0, "tie_word_embeddings": False,
    }
    if reference == "python":  # a pure-Python forward pass: keep it small
        base.update(hidden_size=64, intermediate_size=128, head_dim=16, vocab_size=256)
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    # YaRN as Qwen2.5 and Qwen3 use it past their original context, here 1024 positions.
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}
    # Mistral 7B v0.1's sliding window, shorter than the longer sequences (see sequences).
    mistral = dict(base, architectures=["MistralForCausalLM"], model_type="mistral",
                   sliding_window=8 if reference == "python" else 128)
    return [("gqa_llama3_rope", dict(base, rope_scaling=scaling)), ("gqa_plain_rope", dict(base)),
            ("gqa_yarn_rope", dict(base, rope_scaling=yarn)),
            ("gqa_sliding_window", mistral)]


def sequences(reference, vocab, seed):
    import random
    rng = random.Random(seed)
    lengths = [9, 23] if reference == "python" else [9, 200, 1000]
    return [[rng.randrange(vocab) for _ in range(n)] for n in lengths]


def have_transformers():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        return True
    except ImportError:
        return False


# ---- prepare -------------------------------------------------------------------------------

def prepare_python(name, cfg, seqs, model_dir):
    weights = llama_reference.random_weights(cfg, seed=sum(map(ord, name)))
    lora = prepare_lora_python(cfg, weights, seqs, model_dir) if name == LORA_MODEL else None
    llama_reference.write_safetensors(os.path.join(model_dir, "model.safetensors"), weights)
    write_config(cfg, model_dir)
    hidden = []
    refs = {"f64": [llama_reference.forward(cfg, weights, ids, len(ids) - DECODE_STEPS - 1,
                                            hidden)
                    for ids in seqs]}
    info = {"implementation": "tools/gpu/llama_reference.py (float64)", "hidden": {"f64": hidden}}
    if lora is not None:
        info["lora"] = lora
    return refs, info


def write_lora(cfg, model_dir):
    """Writes the LoRA check's adapter into model_dir/lora; {HF weight name: [out, in] delta
    rows (scale * B A, float64)} of the projections it changes."""
    shape = peft_adapter.shape_of_config(cfg)
    modules, scale = peft_adapter.write_adapter(
        os.path.join(model_dir, "lora"), shape, rank=LORA_RANK, alpha=2 * LORA_RANK, seed=11,
        scale=0.1, rounding=llama_reference.bf16_round)
    deltas = {}
    for name, (a, b) in modules.items():
        out, inp = len(b) // LORA_RANK, len(a) // LORA_RANK
        deltas[name + ".weight"] = [
            [scale * sum(b[o * LORA_RANK + r] * a[r * inp + k] for r in range(LORA_RANK))
             for k in range(inp)] for o in range(out)]
    return deltas


def prepare_lora_python(cfg, weights, seqs, model_dir):
    merged = dict(weights)
    for name, delta in write_lora(cfg, model_dir).items():
        shape, values = weights[name]
        flat = [v for row in delta for v in row]
        merged[name] = (shape, [w + d for w, d in zip(values, flat)])
    return {"f64": [llama_reference.forward(cfg, merged, ids, len(ids) - DECODE_STEPS - 1)
                    for ids in seqs]}


def write_config(cfg, model_dir):
    """config.json as transformers >= 5 writes it (rope settings in rope_parameters)."""
    on_disk = dict(cfg)
    if "rope_scaling" in on_disk:  # the way transformers >= 5 writes it
        on_disk["rope_parameters"] = dict(on_disk.pop("rope_scaling"),
                                          rope_theta=on_disk.pop("rope_theta"))
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(on_disk, f, indent=1)


def prepare_torch(name, cfg, seqs, model_dir):
    import torch
    import torch_llama
    weights = torch_llama.random_weights(cfg, seed=sum(map(ord, name)))
    llama_reference.write_safetensors(os.path.join(model_dir, "model.safetensors"),
                                      torch_llama.as_lists(weights))
    write_config(cfg, model_dir)
    hidden = []
    refs = {label: [torch_llama.forward(cfg, weights, ids, len(ids) - DECODE_STEPS - 1, dtype,
                                        hidden if label == "f64" else None)
                    for ids in seqs]
            for label, dtype in (("f64", torch.float64), ("f32", torch.float32),
                                 ("bf16", torch.bfloat16))}
    return refs, {"implementation": f"tools/gpu/torch_llama.py (torch {torch.__version__}, CPU): "
                                    "transformers' eager forward op for op",
                  "hidden": {"f64": hidden}}


def rotary_frequencies(model):
    """transformers' rotary inverse frequencies (made in f32), or None where they are not
    where this script knows to look."""
    rotary = getattr(getattr(model, "model", None), "rotary_emb", None)
    inv_freq = getattr(rotary, "inv_freq", None)
    return None if inv_freq is None else inv_freq.detach().clone()


def hf_logits(model, seqs, device, dtype, inv_freq=None):
    """The model's logits at `dtype` on `device`. Module.to converts buffers too, so the
    rotary frequencies are put back as transformers keeps them when it loads a model in
    that dtype: f32 (f64 in an f64 run), never rounded to bf16."""
    import torch
    m = model.to(device=device, dtype=dtype)
    if inv_freq is not None:
        m.model.rotary_emb.inv_freq = inv_freq.to(device=device,
                                                  dtype=torch.promote_types(dtype, torch.float32))
    out = []
    with torch.no_grad():
        for ids in seqs:
            logits = m(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[0]
            out.append(logits[len(ids) - DECODE_STEPS - 1:].double().cpu().tolist())
    return out


def is_mistral(cfg):
    return cfg.get("model_type") == "mistral"


def hf_hidden(model, seqs):
    """The final hidden state (the base model's last_hidden_state, after the output norm) at
    each sequence's last token, in float64 on the CPU."""
    import torch
    m = model.to(device="cpu", dtype=torch.float64)
    out = []
    with torch.no_grad():
        for ids in seqs:
            state = m.model(input_ids=torch.tensor([ids]), use_cache=False).last_hidden_state
            out.append(state[0][-1].tolist())
    return out


def hf_config(transformers, cfg):
    """A LlamaConfig (MistralConfig) for cfg: transformers >= 5 takes the rotary settings as
    one rope_parameters object, earlier versions as rope_theta and rope_scaling."""
    import inspect
    kwargs = {k: v for k, v in cfg.items()
              if k not in ("architectures", "model_type", "rope_theta", "rope_scaling")}
    config_class = transformers.MistralConfig if is_mistral(cfg) else transformers.LlamaConfig
    if "rope_parameters" in inspect.signature(config_class.__init__).parameters:
        kwargs["rope_parameters"] = dict(cfg.get("rope_scaling") or {"rope_type": "default"},
                                         rope_theta=cfg["rope_theta"])
    else:
        kwargs.update(rope_theta=cfg["rope_theta"], rope_scaling=cfg.get("rope_scaling"))
    config = config_class(attn_implementation="eager", **kwargs)
    try:
        config._attn_implementation = "eager"
    except AttributeError:
        pass
    return config


def check_inverse_frequencies(inv_freq, cfg):
    """transformers' rotary frequencies (rotary_frequencies) against llama_reference's for
    the same config, so a config transformers read differently than meant cannot pass
    unnoticed."""
    if inv_freq is None:
        return "transformers' model.model.rotary_emb.inv_freq not found; not checked"
    got = inv_freq.double().cpu().tolist()
    want = llama_reference.inverse_frequencies(cfg)
    worst = max(abs(a - b) / b for a, b in zip(got, want)) if len(got) == len(want) else 1.0
    return None if worst < 1e-5 else f"transformers' rope frequencies differ by {worst:.2e}"


def prepare_transformers(name, cfg, seqs, model_dir, device):
    import torch
    import transformers
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    config = hf_config(transformers, cfg)
    torch.manual_seed(sum(map(ord, name)))
    model_class = (transformers.MistralForCausalLM if is_mistral(cfg)
                   else transformers.LlamaForCausalLM)
    model = model_class(config).eval()
    inv_freq = rotary_frequencies(model)
    rope_error = check_inverse_frequencies(inv_freq, cfg)
    with torch.no_grad():  # the same scheme as llama_reference.random_weights
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif "embed_tokens" in pname:
                p.copy_(torch.randn_like(p))
            else:
                fan_in = p.shape[1]
                gain = 1.4 if ("q_proj" in pname or "k_proj" in pname) else 1.0
                p.copy_(torch.randn_like(p) * gain / math.sqrt(fan_in))
            p.copy_(p.to(torch.bfloat16).float())  # bf16-exact: every side sees the same values
    # Saved from a copy: converting the model itself would round its rotary frequencies (a
    # buffer) to bf16 for every reference below, 2e-2 of the logits by a few hundred tokens.
    on_disk = copy.deepcopy(model).to(torch.bfloat16)
    if int(transformers.__version__.split(".")[0]) >= 5:
        on_disk.save_pretrained(model_dir)  # safetensors is the only format
    else:
        on_disk.save_pretrained(model_dir, safe_serialization=True)
    del on_disk
    with open(os.path.join(model_dir, "config.json")) as f:
        saved = json.load(f)
    hidden = hf_hidden(model, seqs)
    refs = {"f64": hf_logits(model, seqs, "cpu", torch.float64, inv_freq),
            "f32": hf_logits(model, seqs, "cpu", torch.float32, inv_freq),
            "bf16": hf_logits(model, seqs, device if device != "cpu" else "cpu", torch.bfloat16,
                              inv_freq)}
    info = {"implementation": f"transformers {transformers.__version__} {model_class.__name__} "
                              f"(torch {torch.__version__}), eager attention",
            "bf16_device": device,
            "saved_rope_keys": sorted(k for k in saved if k.startswith("rope")),
            "hidden": {"f64": hidden}}
    if rope_error:
        info["rope_check"] = rope_error
    if cfg.get("rope_scaling"):
        plain_cfg = hf_config(transformers, {k: v for k, v in cfg.items() if k != "rope_scaling"})
        plain = transformers.LlamaForCausalLM(plain_cfg).eval()
        plain.load_state_dict(model.state_dict())
        unscaled = hf_logits(plain, seqs, "cpu", torch.float64, rotary_frequencies(plain))
        moved = compare_sequences(unscaled, refs["f64"])
        info["rope_scaling_moves_logits_by"] = moved["max_rel_err"]
    if name == LORA_MODEL:
        merged = copy.deepcopy(model)
        with torch.no_grad():
            params = dict(merged.named_parameters())
            for weight, delta in write_lora(cfg, model_dir).items():
                params[weight].add_(torch.tensor(delta, dtype=torch.float64).to(torch.float32))
        info["lora"] = {"f64": hf_logits(merged, seqs, "cpu", torch.float64, inv_freq),
                        "f32": hf_logits(merged, seqs, "cpu", torch.float32, inv_freq),
                        "bf16": hf_logits(merged, seqs, device if device != "cpu" else "cpu",
                                          torch.bfloat16, inv_freq)}
        del merged
    if is_mistral(cfg):  # a transformers that ignored the window would compare nothing
        full = model_class(hf_config(transformers, dict(cfg, sliding_window=None))).eval()
        full.load_state_dict(model.state_dict())
        unwindowed = hf_logits(full, seqs, "cpu", torch.float64, rotary_frequencies(full))
        moved = compare_sequences(unwindowed, refs["f64"])["max_rel_err"]
        info["sliding_window_moves_logits_by"] = moved
        if moved < 1e-6:
            info["window_check"] = "transformers' logits do not change with the sliding window"
    return refs, info


def prepare(args):
    reference = args.reference
    if reference == "auto":
        reference = "transformers" if have_transformers() else "python"
    manifest = {"reference": reference, "models": []}
    for name, cfg in configs(reference):
        model_dir = os.path.join(args.work, name)
        os.makedirs(model_dir, exist_ok=True)
        seqs = sequences(reference, cfg["vocab_size"], seed=len(name))
        start = time.time()
        if reference == "python":
            refs, info = prepare_python(name, cfg, seqs, model_dir)
        elif reference == "torch":
            refs, info = prepare_torch(name, cfg, seqs, model_dir)
        else:
            refs, info = prepare_transformers(name, cfg, seqs, model_dir, args.hf_device)
        info["prepare_s"] = round(time.time() - start, 2)
        with open(os.path.join(model_dir, "reference.json"), "w") as f:
            json.dump({"sequences": seqs, "logits": refs, "info": info}, f)
        manifest["models"].append(name)
    with open(os.path.join(args.work, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return manifest


# ---- compare -------------------------------------------------------------------------------

def compare_sequences(a, b, limit=None):
    """logits_error.compare_rows over per-sequence lists of rows; sequences whose rows do not
    pair up compare as inf."""
    paired = [len(rows) for rows in a] == [len(rows) for rows in b]
    rows_a = [row for rows in a for row in rows]
    rows_b = [row for rows in b for row in rows] if paired else []
    return logits_error.compare_rows(rows_a, rows_b, limit)


def logits_flags(program):
    return subprocess.run(program + ["--help"], capture_output=True, text=True).stdout


def run_tool(program, model_dir, seqs, device, dtype, extra):
    """Runs `program` on the model with every sequence as --prompt-ids; its stdout, or
    RuntimeError naming the exit status and the end of stderr."""
    cmd = program + ["--model", model_dir, "--device", device]
    if dtype:
        cmd += ["--dtype", dtype]
    cmd += list(extra)
    for ids in seqs:
        cmd += ["--prompt-ids", ",".join(map(str, ids))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ...: exit {proc.returncode}: "
                           f"{proc.stderr.strip()[-500:]}")
    return proc.stdout


def run_ringserve(program, model_dir, seqs, device, dtype, out_path, extra=()):
    """program: the argv that starts `ringserve-run logits` (or the emulation's tool)."""
    start = time.time()
    run_tool(program, model_dir, seqs, device, dtype,
             ["--decode-steps", str(DECODE_STEPS), "--out", out_path] + list(extra))
    rows = []
    with open(out_path) as f:
        for line in f:
            rows.append(json.loads(line)["logits"])
    return rows, round(time.time() - start, 2)


def run_embeddings(program, model_dir, seqs, device, dtype):
    """`ringserve-run --embed --raw` of every sequence: its final hidden state at the last
    token, one vector per sequence. The CPU keeps its KV cache in f32, as for the logits."""
    extra = ["--embed", "--raw", "--json"] + (["--kv-dtype", "f32"] if device == "cpu" else [])
    out = run_tool(program, model_dir, seqs, device, dtype, extra)
    return [json.loads(line)["embedding"] for line in out.splitlines()]


def embedding_checks(program, model_dir, ref, devices, bf16_limit, errors):
    """ringserve's embeddings (CPU f32; each real device in f32 and bf16) against the
    reference's f64 final hidden states, under the logits' limits."""
    want = ref["info"].get("hidden", {}).get("f64")
    if not want:
        return []
    runs = [("cpu", "cpu", None)] + [(f"{d} {t}", d, t) for d in devices if d != "cuda-emu"
                                     for t in ("f32", "bf16")]
    checks = []
    for label, device, dtype in runs:
        try:
            got = run_embeddings(program, model_dir, ref["sequences"], device, dtype)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            errors.append(f"embedding {label}: {e}")
            continue
        limit = bf16_limit if dtype == "bf16" else F32_LIMIT
        checks.append({"a": f"embedding ringserve {label}", "b": "reference f64 hidden",
                       **logits_error.compare_rows(got, want, limit)})
    return checks


def logits_checks(runs, got, refs, bf16_limit=BF16_LIMIT):
    """The checks of one model. runs: (label, device, dtype, extra) as compare() ran them;
    got: label -> ringserve's rows; refs: the reference's rows by precision ("f64", "f32",
    and "bf16" when transformers made them).

    f32 is gated at F32_LIMIT against the reference's f32 (else f64). bf16 is gated at
    bf16_limit against the reference's f64, the exact logits of the independent
    implementation. Against transformers' own bf16 run it is reported, not gated: that run is
    itself about 1e-2 away from its f64 (bench/RESULTS.md, "bf16 error budget"), so two
    correct bf16 implementations can differ by more than the bound. What is gated instead is
    that ringserve's bf16 is no further from the f64 logits than transformers' bf16 is."""
    checks = []

    def check(a_label, a, b_label, b, limit, gate=None):
        c = {"a": a_label, "b": b_label, **compare_sequences(a, b, limit)}
        if gate:
            c["gate"] = gate
        checks.append(c)
        return c

    f32_ref = "f32" if "f32" in refs else "f64"
    floor = None
    if "bf16" in refs:
        floor = check("reference bf16", refs["bf16"], "reference f64", refs["f64"], None)
    for label, _, dtype, _ in runs:
        if label not in got:
            continue
        if dtype != "bf16":
            check(f"ringserve {label}", got[label], f"reference {f32_ref}", refs[f32_ref], F32_LIMIT)
            continue
        check(f"ringserve {label}", got[label], "reference f64", refs["f64"], bf16_limit)
        if floor is not None:
            check(f"ringserve {label}", got[label], "reference f64", refs["f64"],
                  floor["max_rel_err"], gate="no_worse_than_reference_bf16")
            check(f"ringserve {label}", got[label], "reference bf16", refs["bf16"], None)
        if "cpu" in got:
            check(f"ringserve {label}", got[label], "ringserve cpu", got["cpu"], None)
    return checks


def lora_checks(program, runs, model_dir, ref, dtype_flag, bf16_limit, entry):
    """Every run again with the adapter (--lora a=DIR --adapter a), against the merged
    model's logits; and the adapter must move the reference's logits."""
    want = ref["info"].pop("lora")
    moved = compare_sequences(want["f64"], ref["logits"]["f64"])["max_rel_err"]
    entry["info"]["lora_moves_logits_by"] = moved
    if moved < 1e-2:
        entry["errors"].append(f"lora: the adapter moves the reference logits by only {moved}")
    adapter = ("--lora", f"a={os.path.join(model_dir, 'lora')}", "--adapter", "a")
    lora_runs, got = [], {}
    for label, device, dtype, extra in runs:
        if dtype and not dtype_flag:
            continue
        lora_runs.append((label, device, dtype, extra))
        try:
            got[label], _ = run_ringserve(
                program.get(device, program["run"]), model_dir, ref["sequences"], device, dtype,
                os.path.join(model_dir, f"lora-{label.replace(' ', '-').replace(':', '')}.jsonl"),
                tuple(extra) + adapter)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            entry["errors"].append(f"lora {label}: {e}")
    checks = logits_checks(lora_runs, got, want, bf16_limit)
    for c in checks:
        c["a"], c["b"] = f"lora {c['a']}", f"lora {c['b']}"
    return checks


def compare(args):
    with open(os.path.join(args.work, "manifest.json")) as f:
        manifest = json.load(f)
    program = {"run": [os.path.join(args.bin, "ringserve-run"), "logits"]}
    flags = logits_flags(program["run"])
    # The CPU is the f32 path: its KV cache in f32 too (auto keeps a bf16 model's in f16).
    runs = [("cpu", "cpu", None, ("--kv-dtype", "f32") if "--kv-dtype" in flags else ())]
    dtype_flag = "--dtype" in flags
    devices = [] if args.device == "cpu" else [args.device]
    if args.emulator:  # the CUDA sources on the CPU emulation, run like a device
        program["cuda-emu"] = [args.emulator]
        devices.append("cuda-emu")
    for device in devices:
        runs += [(f"{device} f32", device, "f32", ()), (f"{device} bf16", device, "bf16", ())]
        if "--attention" in flags:  # the tensor-core attention, held to the bf16 limit too
            runs += [(f"{device} bf16 tensor-core", device, "bf16",
                      ("--attention", "tensor-core"))]
    report = {"reference": manifest["reference"], "device": args.device,
              "dtype_flag": dtype_flag, "models": [], "pass": True}
    for name in manifest["models"]:
        model_dir = os.path.join(args.work, name)
        with open(os.path.join(model_dir, "reference.json")) as f:
            ref = json.load(f)
        entry = {"name": name, "info": ref["info"], "checks": [], "errors": []}
        if "differ" in ref["info"].get("rope_check", ""):
            entry["errors"].append(ref["info"]["rope_check"])
        if "window_check" in ref["info"]:
            entry["errors"].append(ref["info"]["window_check"])
        got = {}
        for label, device, dtype, extra in runs:
            if dtype and not dtype_flag:
                entry["errors"].append(f"{label}: ringserve-run has no --dtype flag yet")
                continue
            try:
                got[label], seconds = run_ringserve(
                    program.get(device, program["run"]), model_dir, ref["sequences"], device, dtype,
                    os.path.join(model_dir, f"ringserve-{label.replace(' ', '-').replace(':', '')}.jsonl"),
                    extra)
                entry.setdefault("ringserve_s", {})[label] = seconds
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                entry["errors"].append(f"{label}: {e}")
        entry["checks"] = logits_checks(runs, got, ref["logits"],
                                        BF16_LIMITS.get(name, BF16_LIMIT))
        entry["checks"] += embedding_checks([os.path.join(args.bin, "ringserve-run")], model_dir,
                                            ref, devices, BF16_LIMITS.get(name, BF16_LIMIT),
                                            entry["errors"])
        if "lora" in ref["info"]:
            entry["checks"] += lora_checks(program, runs, model_dir, ref, dtype_flag,
                                           BF16_LIMITS.get(name, BF16_LIMIT), entry)
        ok = not entry["errors"] and all(c.get("ok", True) for c in entry["checks"])
        entry["pass"] = ok
        report["pass"] = report["pass"] and ok
        report["models"].append(entry)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=["prepare", "compare", "all"])
    parser.add_argument("--work", required=True, help="folder for the models and results")
    parser.add_argument("--bin", help="folder holding ringserve-run (compare)")
    parser.add_argument("--device", default="cpu", help="ringserve device besides the CPU")
    parser.add_argument("--emulator", help="ringserve-emu-logits: also run the CUDA backend's "
                        "sources on the CPU emulation, as device cuda-emu (small models only)")
    parser.add_argument("--hf-device", default="cuda", help="device of transformers' bf16 run")
    parser.add_argument("--reference", default="auto",
                        choices=["auto", "transformers", "torch", "python"])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    result = {}
    if args.phase in ("prepare", "all"):
        result["prepared"] = prepare(args)
    if args.phase in ("compare", "all"):
        if not args.bin:
            parser.error("compare needs --bin")
        result = compare(args)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0 if result.get("pass", True) else 1


if __name__ == "__main__":
    sys.exit(main())
