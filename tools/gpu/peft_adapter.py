"""Random LoRA adapters in PEFT's format (adapter_config.json, adapter_model.safetensors in
F32) for a model ringserve serves: hf_compare.py's LoRA check and the integration tests.
Shapes come from a config.json's fields (shape_of_config) or from `ringserve-model info`
(model_shape). Plain Python: no numpy or safetensors package needed."""
import json
import os
import random
import re
import struct
import subprocess

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def info_shape(bin_dir, *info_args):
    """{dim, hidden_dim, layers, heads, kv_heads, head_dim} from `ringserve-model info ARGS`'s
    config line (a preset's head_dim 0 means dim / heads)."""
    out = subprocess.run([os.path.join(bin_dir, "ringserve-model"), "info", *info_args],
                         check=True, capture_output=True, text=True).stdout
    config = re.search(r"^config: (.*)$", out, re.M).group(1)
    fields = dict(item.split("=", 1) for item in config.split())
    shape = {k: int(fields[k]) for k in ("dim", "hidden_dim", "layers", "heads", "kv_heads",
                                         "head_dim")}
    shape["head_dim"] = shape["head_dim"] or shape["dim"] // shape["heads"]
    return shape


def model_shape(bin_dir, model_args):
    """The shape of the model `model_args` names (--model PATH [--tokenizer PATH])."""
    return info_shape(bin_dir, model_args[model_args.index("--model") + 1])


def shape_of_config(cfg):
    """The shape dict of a Hugging Face config.json's fields."""
    return {"dim": cfg["hidden_size"], "hidden_dim": cfg["intermediate_size"],
            "layers": cfg["num_hidden_layers"], "heads": cfg["num_attention_heads"],
            "kv_heads": cfg["num_key_value_heads"],
            "head_dim": cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])}


def target_shape(shape, target):
    """(out, in) of a projection."""
    q = shape["heads"] * shape["head_dim"]
    kv = shape["kv_heads"] * shape["head_dim"]
    return {"q_proj": (q, shape["dim"]), "k_proj": (kv, shape["dim"]),
            "v_proj": (kv, shape["dim"]), "o_proj": (shape["dim"], q),
            "gate_proj": (shape["hidden_dim"], shape["dim"]),
            "up_proj": (shape["hidden_dim"], shape["dim"]),
            "down_proj": (shape["dim"], shape["hidden_dim"])}[target]


def safetensors_image(tensors):
    """bytes of a safetensors file of [(name, shape, float values)] in F32."""
    header, data, offset = {}, b"", 0
    for name, shape, values in tensors:
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": list(shape),
                        "data_offsets": [offset, offset + len(blob)]}
        data += blob
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write_adapter(directory, shape, rank=4, alpha=8, targets=TARGETS, seed=1, scale=0.3,
                  rounding=None):
    """Writes a random adapter for a model of `shape` into `directory` (created); each value
    passes through `rounding` when given (bf16-exact values for hf_compare). Returns
    {module name ("model.layers.0.self_attn.q_proj"): (A rows, B rows)} as written, with the
    scale alpha / rank."""
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(seed)
    tensors, modules = [], {}
    rounding = rounding or (lambda v: v)

    def draw(count):
        return [rounding(rng.uniform(-scale, scale)) for _ in range(count)]

    for layer in range(shape["layers"]):
        for target in targets:
            out, inp = target_shape(shape, target)
            module = "self_attn" if target in TARGETS[:4] else "mlp"
            name = f"model.layers.{layer}.{module}.{target}"
            a, b = draw(rank * inp), draw(out * rank)
            tensors.append((f"base_model.model.{name}.lora_A.weight", (rank, inp), a))
            tensors.append((f"base_model.model.{name}.lora_B.weight", (out, rank), b))
            modules[name] = (a, b)
    with open(os.path.join(directory, "adapter_model.safetensors"), "wb") as f:
        f.write(safetensors_image(tensors))
    with open(os.path.join(directory, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "r": rank, "lora_alpha": alpha,
                   "target_modules": list(targets), "bias": "none", "lora_dropout": 0.0,
                   "task_type": "CAUSAL_LM"}, f)
    return modules, alpha / rank


def main(argv):
    """peft_adapter.py library BIN_DIR PRESET RANK DIR NAME...: a random rank-RANK adapter at
    --dummy-weights --preset PRESET's shape in DIR/NAME for each NAME (a --lora-dir library
    for the bench/service scripts)."""
    if len(argv) < 6 or argv[0] != "library":
        raise SystemExit(main.__doc__)
    bin_dir, preset, rank, library = argv[1], argv[2], int(argv[3]), argv[4]
    shape = info_shape(bin_dir, "--preset", preset)
    for seed, name in enumerate(argv[5:], start=1):
        write_adapter(os.path.join(library, name), shape, rank=rank, seed=seed)


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
