#!/usr/bin/env python3
"""ringserve on a device against the reference vectors in ../shared/vectors.

  tokens_f32   every case of stories260K-greedy.json, all prompts in one batch through
               `ringserve-run --json` (through the generator) in f32 on --device, for the
               llama2.c file and the GGUF file: the 64 greedy tokens must match exactly.
  first_step   the logits after each case's prompt (`ringserve-run logits`), on --device in
               bf16 against the CPU in f32: max |a - b| / max |b| <= 2e-2 for every case
               (logits_error.py; the L2 ratio ||a - b|| / ||b|| is reported beside it).

On --device cpu the f32 check runs on the CPU and first_step compares the CPU with itself
(the plumbing only). Prints one JSON object (also to --out); exits 1 when a check fails,
77 when the vectors are absent.
"""

import argparse
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import logits_error  # noqa: E402

FIRST_STEP_LIMIT = 2e-2


def run(cmd, timeout=300):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{os.path.basename(cmd[0])} {' '.join(cmd[1:4])} ...: exit "
                           f"{proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def dtype_args(has_flag, dtype):
    if dtype is None:
        return []
    if not has_flag:
        raise RuntimeError(f"ringserve-run has no --dtype flag yet (wanted {dtype})")
    return ["--dtype", dtype]


def check_tokens(ringserve, model, tokenizer, cases, device, dtype):
    cmd = [ringserve, "--model", model, "--tokenizer", tokenizer, "--device", device,
           "--max-tokens", str(len(cases[0]["generated_ids"])), "--ignore-eos", "--json"] + dtype
    for c in cases:
        cmd += ["--prompt-ids", ",".join(map(str, c["prompt_ids"]))]
    lines = [json.loads(line) for line in run(cmd).splitlines() if line.strip()]
    mismatches = []
    for c, got in zip(cases, lines):
        if got["generated_ids"] != c["generated_ids"]:
            first = next((i for i, (a, b) in enumerate(zip(got["generated_ids"], c["generated_ids"]))
                          if a != b), min(len(got["generated_ids"]), len(c["generated_ids"])))
            mismatches.append({"prompt": c["prompt"], "first_mismatch": first})
    if len(lines) != len(cases):
        mismatches.append({"error": f"{len(lines)} results for {len(cases)} cases"})
    return {"model": os.path.basename(model), "cases": len(cases), "mismatches": mismatches,
            "ok": not mismatches}


def first_step_logits(ringserve, model, tokenizer, cases, device, dtype, out_path):
    cmd = [ringserve, "logits", "--model", model, "--tokenizer", tokenizer, "--device", device,
           "--out", out_path] + dtype
    for c in cases:
        cmd += ["--prompt-ids", ",".join(map(str, c["prompt_ids"]))]
    run(cmd)
    with open(out_path) as f:
        return [json.loads(line)["logits"][0] for line in f if line.strip()]


def first_step_check(got, want, cases, label):
    """The first-step criterion: every case's logits (got) within FIRST_STEP_LIMIT of the
    CPU f32 ones (want), one row per case."""
    check = {"a": label, "b": "cpu f32", "cases": len(got)}
    # A case missing on either side fails: rows of unequal counts compare as inf.
    check.update(logits_error.compare_rows(got, want if len(want) == cases else [],
                                           FIRST_STEP_LIMIT))
    return check


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True, help="folder holding ringserve-run")
    parser.add_argument("--shared", required=True, help="the shared reference data folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", default="/tmp/ringserve-vectors")
    parser.add_argument("--out")
    args = parser.parse_args()
    vectors = os.path.join(args.shared, "vectors", "stories260K-greedy.json")
    if not os.path.exists(vectors):
        print(f"vectors_check: {vectors} is absent; skipping", file=sys.stderr)
        return 77
    with open(vectors) as f:
        doc = json.load(f)
    cases = doc["cases"]
    models = os.path.join(args.shared, "models")
    tokenizer = os.path.join(models, doc["tokenizer"])
    ringserve = os.path.join(args.bin, "ringserve-run")
    help_text = subprocess.run([ringserve, "--help"], capture_output=True, text=True).stdout
    has_dtype = "--dtype" in help_text
    on_gpu = args.device != "cpu"
    os.makedirs(args.work, exist_ok=True)
    report = {"device": args.device, "dtype_flag": has_dtype, "tokens_f32": [], "errors": []}
    for name in (doc["model"], doc["gguf"]):
        try:
            report["tokens_f32"].append(check_tokens(
                ringserve, os.path.join(models, name), tokenizer, cases, args.device,
                dtype_args(has_dtype, "f32" if on_gpu else None)))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            report["errors"].append(f"tokens_f32 {name}: {e}")
    try:
        model = os.path.join(models, doc["model"])
        want = first_step_logits(ringserve, model, tokenizer, cases, "cpu", [],
                                 os.path.join(args.work, "cpu-f32.jsonl"))
        got = first_step_logits(ringserve, model, tokenizer, cases, args.device,
                                dtype_args(has_dtype, "bf16" if on_gpu else None),
                                os.path.join(args.work, "device-bf16.jsonl"))
        report["first_step"] = first_step_check(
            got, want, len(cases), f"{args.device} {'bf16' if on_gpu else 'f32'}")
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        report["errors"].append(f"first_step: {e}")
    report["pass"] = (not report["errors"] and all(t["ok"] for t in report["tokens_f32"])
                      and report.get("first_step", {}).get("ok", False))
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
