#!/usr/bin/env python3
"""ringserve-run --chat on chat_checkpoint.py's Hugging Face directory (Qwen2 layout, ChatML
template with a default system prompt, byte-level vocabulary: byte b is token b):

- the prompt is rendered as the template writes it, with the default system message when
  none is given and --system's otherwise;
- the reply stops at <|im_end|> (the model is built to pick it first; the vocabulary loader
  counts it among the ends of generation, as for every ChatML vocabulary), and runs on past
  it with --ignore-eos;
- a template that always thinks first opens the thought in the generation prompt, and
  --no-thinking closes it there;
- a format whose markers the vocabulary lacks, and a checkpoint with no chat template,
  are refused (exit status 1: the flags are well formed, the checkpoint cannot serve them)
  with a message naming the problem.

Usage: run_chat_test.py BIN_DIR. Standard library only.
"""
import json
import os
import subprocess
import sys
import tempfile

from chat_checkpoint import DEFAULT_SYSTEM, HEADER, IM_END, turn, write_checkpoint

# ChatML whose generation prompt always opens a thought (no system message by default).
THINKS_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{{ '<|im_start|>assistant\\n<think>\\n' }}")


def run(bin_dir, args):
    return subprocess.run([os.path.join(bin_dir, "ringserve-run")] + args + ["--threads", "1"],
                          capture_output=True, text=True, timeout=120)


def check(condition, what, detail=""):
    if not condition:
        print(f"FAIL: {what}\n{detail}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    bin_dir = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        chat_dir, plain_dir = os.path.join(tmp, "chat"), os.path.join(tmp, "plain")
        write_checkpoint(chat_dir)
        write_checkpoint(plain_dir, template=None)

        out = run(bin_dir, ["--model", chat_dir, "--chat", "--prompt", "Hi there", "--json"])
        check(out.returncode == 0, "--chat runs", out.stderr)
        got = json.loads(out.stdout)
        check(got["prompt_ids"] == turn("system", DEFAULT_SYSTEM) + turn("user", "Hi there") + HEADER,
              "the template's default system message opens the conversation", got["prompt_ids"])
        check(got["generated_ids"] == [IM_END] and got["finish_reason"] == "eos"
              and got["text"] == "", "the reply ends at <|im_end|>, whose text is not printed",
              json.dumps(got))

        out = run(bin_dir, ["--model", chat_dir, "--chat", "--system", "Be brief.", "--prompt", "Hi",
                            "--prompt", "Bye", "--json", "--ignore-eos", "--max-tokens", "3"])
        check(out.returncode == 0, "--chat --system runs", out.stderr)
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        check([l["prompt_ids"] for l in lines] ==
              [turn("system", "Be brief.") + turn("user", text) + HEADER for text in ("Hi", "Bye")],
              "--system replaces the default", out.stdout)
        check(all(l["generated_ids"] == [IM_END] * 3 and l["finish_reason"] == "max_tokens"
                  for l in lines), "--ignore-eos generates past the end of the turn", out.stdout)

        # A template that always thinks first (QwQ's shape) opens the thought in the
        # generation prompt; --no-thinking closes it there instead.
        think_dir = os.path.join(tmp, "think")
        write_checkpoint(think_dir, template=THINKS_TEMPLATE)
        for flags, tail in (([], b"<think>\n"), (["--no-thinking"], b"<think>\n\n</think>\n\n")):
            out = run(bin_dir, ["--model", think_dir, "--chat", "--prompt", "Hi", "--json"] + flags)
            check(out.returncode == 0, f"--chat {flags} on a thinking model runs", out.stderr)
            got = json.loads(out.stdout)
            check(got["prompt_ids"] == turn("user", "Hi") + HEADER + list(tail),
                  f"the generation prompt {'closes' if flags else 'opens'} the thought",
                  got["prompt_ids"])

        out = run(bin_dir, ["--model", chat_dir, "--chat", "--chat-format", "llama3", "--prompt", "Hi"])
        check(out.returncode == 1 and "lacks the format's control tokens" in out.stderr,
              "a format the vocabulary cannot write is refused", out.stderr)
        out = run(bin_dir, ["--model", plain_dir, "--chat", "--prompt", "Hi"])
        check(out.returncode == 1 and "no chat format" in out.stderr,
              "--chat on a checkpoint without a chat template is refused", out.stderr)
        out = run(bin_dir, ["--model", plain_dir, "--prompt", "Hi", "--json", "--max-tokens", "2"])
        check(out.returncode == 0 and json.loads(out.stdout)["prompt_ids"] == list(b"Hi"),
              "without --chat the prompt is plain text", out.stdout + out.stderr)


if __name__ == "__main__":
    main()
