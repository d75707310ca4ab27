"""A chat-capable checkpoint small enough to write in a test: a Hugging Face directory in
Qwen2's layout, a ChatML template with a default system prompt, and a byte-level vocabulary
in which byte b is token b. Its weights make greedy decoding pick <|im_end|> after any
context, so a chat reply is exactly one token. Standard library only."""
import json
import os
import random
import struct

END_OF_TEXT, IM_START, IM_END = 256, 257, 258
VOCAB, DIM, HEADS, KV_HEADS, HIDDEN, LAYERS = 260, 64, 4, 2, 128, 2
DEFAULT_SYSTEM = "You are a tiny test model."


def byte_to_unicode():
    """GPT-2's printable stand-ins for the 256 bytes."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
                 + list(range(ord("\xae"), ord("\xff") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


# The checkpoint's chat template by default: ChatML with a default system prompt.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}")
# Mistral Instruct's shape: its [INST] markers are plain text in this vocabulary (v1).
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}"
    "{{ message['content'] + eos_token }}{% endif %}{% endfor %}")
# Mistral's tokenizer v3: its markers, tools' included, are control tokens after the bytes
# (write_checkpoint's `extra_tokens`), with <s> and </s> as BOS and EOS.
# DeepSeek R1's distills: BOS and EOS special, the role markers and thought tags not.
DEEPSEEK_TOKENS = ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", ("<｜User｜>", False),
                   ("<｜Assistant｜>", False), ("<think>", False), ("</think>", False))
ZEPHYR_TOKENS = ("<s>", "</s>")
MISTRAL_V3_TOKENS = ("<s>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
                     "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]")
# Tokenizer v11 (Mistral Small 3.2): v7's [TOOL_CONTENT], then the calls' [ARGS] and [CALL_ID].
MISTRAL_V11_TOKENS = MISTRAL_V3_TOKENS + ("[TOOL_CONTENT]", "[ARGS]", "[CALL_ID]")
# The Split pattern of Mistral's Tekken tokenizer.json files.
TEKKEN_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
    r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def write_tokenizer(path, template, extra_tokens=(), split_pattern=None):
    """tokenizer.json, and tokenizer_config.json with `template` (none when None);
    `extra_tokens` are added tokens from id VOCAB on: special ones, or (content, False) for
    one that is not. `split_pattern`: a Split pre-tokenizer's regex before the byte-level
    mapping (GPT-2's split when None)."""
    chars = byte_to_unicode()
    vocab = {chars[b]: b for b in range(256)}
    vocab["~~"] = 259  # one merge, which no prompt here meets
    added = ((END_OF_TEXT, "<|endoftext|>", True), (IM_START, "<|im_start|>", True),
             (IM_END, "<|im_end|>", True))
    added += tuple((VOCAB + i,) + (t if isinstance(t, tuple) else (t, True))
                   for i, t in enumerate(extra_tokens))
    tokenizer = {
        "model": {"type": "BPE", "vocab": vocab, "merges": ["~ ~"]},
        "added_tokens": [{"id": i, "content": c, "special": special} for i, c, special in added],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
        "decoder": {"type": "ByteLevel"},
    }
    if split_pattern is not None:
        tokenizer["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split_pattern}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}
    with open(os.path.join(path, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f)
    config = {} if template is None else {"chat_template": template}
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)


def write_model(path, vocab=VOCAB, favourite=IM_END, bos=END_OF_TEXT, eos=END_OF_TEXT):
    """Every layer's output projections are zero, so the last hidden state is the last
    token's embedding; each embedding's first value is 1 and the output head reads only that
    value, most for `favourite` (<|im_end|>): greedy decoding picks it after any context."""
    head_dim = DIM // HEADS
    config = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": DIM,
              "intermediate_size": HIDDEN, "num_attention_heads": HEADS,
              "num_key_value_heads": KV_HEADS, "num_hidden_layers": LAYERS, "vocab_size": vocab,
              "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
              "tie_word_embeddings": False, "torch_dtype": "float32",
              "bos_token_id": bos, "eos_token_id": eos}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    rng = random.Random(0)
    tensors = {}

    def add(name, shape, fill=None):
        count = 1
        for s in shape:
            count *= s
        tensors[name] = (shape, [fill] * count if fill is not None
                         else [rng.gauss(0, 0.05) for _ in range(count)])

    add("model.embed_tokens.weight", [vocab, DIM])
    for t in range(vocab):
        tensors["model.embed_tokens.weight"][1][t * DIM] = 1.0
    add("model.norm.weight", [DIM], 1.0)
    add("lm_head.weight", [vocab, DIM], 0.0)
    tensors["lm_head.weight"][1][favourite * DIM] = 10.0
    tensors["lm_head.weight"][1][ord("a") * DIM] = 5.0  # the runner-up
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        add(p + "input_layernorm.weight", [DIM], 1.0)
        add(p + "post_attention_layernorm.weight", [DIM], 1.0)
        for name, rows in (("q", HEADS), ("k", KV_HEADS), ("v", KV_HEADS)):
            add(p + f"self_attn.{name}_proj.weight", [rows * head_dim, DIM])
            add(p + f"self_attn.{name}_proj.bias", [rows * head_dim])
        add(p + "self_attn.o_proj.weight", [DIM, HEADS * head_dim], 0.0)
        add(p + "mlp.gate_proj.weight", [HIDDEN, DIM])
        add(p + "mlp.up_proj.weight", [HIDDEN, DIM])
        add(p + "mlp.down_proj.weight", [DIM, HIDDEN], 0.0)
    header, data = {}, bytearray()
    for name, (shape, values) in tensors.items():
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + data)


def turn(role, text):
    """A ChatML turn's token ids."""
    return [IM_START] + list(f"{role}\n{text}".encode()) + [IM_END] + list(b"\n")



HEADER = [IM_START] + list(b"assistant\n")  # the generation prompt


def write_checkpoint(path, template=CHATML_TEMPLATE, extra_tokens=(), split_pattern=None,
                     **model):
    os.makedirs(path, exist_ok=True)
    write_tokenizer(path, template, extra_tokens, split_pattern)
    write_model(path, vocab=VOCAB + len(extra_tokens), **model)
