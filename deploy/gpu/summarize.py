#!/usr/bin/env python3
"""Turns deploy/gpu/check.sh's work folder into check.json (every stage, every raw result,
the ratios the issue asks for) and check.md (a table ready for bench/RESULTS.md), and
prints the table.

Ratios, all from numbers measured in the same call:
  decode roofline fraction = (bytes a step must move / step time) / copy bandwidth, where
      bytes = weights (+ KV read) and the copy bandwidth counts bytes read plus written;
  prefill fraction = time cuBLAS would take for the layers' GEMMs at its measured rate for
      each shape (qkv, o, gate_up, down at M = 2048) / ringserve's prefill time (attention
      and the output row are left out of the ideal, so this is conservative);
  throughput ratio = ringserve-run bench output tokens/s at P = 256 / transformers' generate.
"""

import argparse
import csv
import datetime
import json
import os
import re
import sys

TARGETS = {
    "decode_b1_roofline": 0.75,
    "decode_b64_roofline": 0.60,
    "prefill_vs_cublas": 0.60,
    "throughput_vs_transformers": 3.0,
    "kv_pool_fraction": 0.85,
}


def load(work, name):
    path = os.path.join(work, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def stages(work):
    out = {}
    try:
        with open(os.path.join(work, "stages.tsv")) as f:
            for row in csv.reader(f, delimiter="\t"):
                if len(row) == 3:
                    out[row[0]] = {"status": row[1], "seconds": int(row[2])}
    except OSError:
        pass
    return out


def prebuilt_record(work):
    """What check.sh's configure stage wrote when it used prepare.sh's binaries, else {}."""
    try:
        with open(os.path.join(work, "prebuilt.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def ctest_summary(work):
    try:
        with open(os.path.join(work, "logs", "ctest.log"), errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", text)
    if not m:
        return {"parsed": False}
    failed = re.findall(r"^\s*\d+ - (\S+) \((Failed|Timeout|SEGFAULT|Not Run|Exception)[^)]*\)",
                        text, re.M)
    passed_names = re.findall(r"Test\s+#\d+: (\S+) \.+\s+Passed", text)
    return {"parsed": True, "total": int(m.group(3)), "failed": int(m.group(2)),
            "failed_tests": [name for name, _ in failed][:50],
            "allocation_tests_passed": [n for n in passed_names if re.search(r"[Aa]lloc", n)],
            "invariance_tests_passed": len([n for n in passed_names
                                            if re.search(r"[Ii]nvarian", n)])}


def gemm_rates(roofline):
    return {g["name"]: g for g in (roofline or {}).get("gemm", []) if "tflops" in g}


def prefill_ideal_seconds(bench, roofline):
    """cuBLAS time for one prefill's layer GEMMs at the measured per-shape rates."""
    rates = gemm_rates(roofline)
    cfg = (bench or {}).get("config")
    pre = ((bench or {}).get("steps") or {}).get("prefill")
    if not (cfg and pre and all(k in rates for k in ("qkv", "o", "gate_up", "down"))):
        return None
    n = pre["tokens"]
    q = cfg["num_heads"] * cfg["head_dim"]
    kv = cfg["num_kv_heads"] * cfg["head_dim"]
    shapes = {"qkv": (cfg["dim"], q + 2 * kv), "o": (q, cfg["dim"]),
              "gate_up": (cfg["dim"], 2 * cfg["hidden_dim"]), "down": (cfg["hidden_dim"], cfg["dim"])}
    seconds = 0.0
    for name, (k, m) in shapes.items():
        seconds += 2.0 * n * k * m / (rates[name]["tflops"] * 1e12)
    return cfg["num_layers"] * seconds


def l2_note(err):
    """The L2 ratio ||a - b|| / ||b|| the logits checks report beside their gate."""
    return f"L2 ratio {err:.2e}, not gated" if err is not None else ""


def hf_rows(hf):
    """check.md's rows for hf_compare.json: each gated pair at its worst model of those
    held to the same limit, with that limit; the no-worse-than-transformers'-bf16 gate as the ratio of the
    two errors; the ungated bf16 pairs for information."""
    worst = {}
    for m in hf.get("models", []):
        for c in m["checks"]:
            key = (c["a"], c["b"], c.get("gate", ""), "limit" in c, c.get("limit", 0.0))
            w = worst.setdefault(key, {"err": 0.0, "l2": 0.0, "limit": 0.0, "ok": True,
                                       "ratio": 0.0})
            w["err"] = max(w["err"], c["max_rel_err"])
            if c.get("limit"):
                w["ratio"] = max(w["ratio"], c["max_rel_err"] / c["limit"])
            w["l2"] = max(w["l2"], c.get("l2_rel_err") or 0.0)
            w["limit"] = max(w["limit"], c.get("limit", 0.0))
            w["ok"] = w["ok"] and c.get("ok", True)
    rows = []
    for (a, b, gate, gated, _), w in sorted(worst.items()):
        if gate == "no_worse_than_reference_bf16":
            rows.append((f"transformers: {a} vs {b}, over reference bf16 vs {b}",
                         f"{w['ratio']:.2f}x (worst model)", "<= 1x", w["ok"],
                         "ringserve's bf16 no less accurate than transformers' own"))
        elif gated:
            rows.append((f"transformers: {a} vs {b} (max |diff| / max |logit|)", f"{w['err']:.2e}",
                         f"<= {w['limit']:g}", w["ok"], l2_note(w["l2"])))
        elif "bf16" in a or "bf16" in b:
            rows.append((f"(info) {a} vs {b}", f"{w['err']:.2e}", "", True, l2_note(w["l2"])))
    return rows


# ringserve's product names -> gpu_roofline's cuBLAS shapes.
CUBLAS_SHAPE = {"wqkv": "qkv", "wo": "o", "w_gate_up": "gate_up", "w_down": "down"}


def product_rows(bench, copy, roofline=None):
    """(info) rows: each weight product alone at batch 1 against the copy bandwidth, and at
    the prefill length against cuBLAS's rate at that shape, so a decode step short of its
    roofline, or a prefill short of cuBLAS, names the product that holds it back."""
    rows = []
    rates = gemm_rates(roofline)
    prefill = (((bench or {}).get("steps") or {}).get("prefill") or {}).get("tokens")
    for p in (bench or {}).get("products") or []:
        what = (f"{p['product']} [{p['rows']} x {p['cols']}] -> {p['out_dtype']}, "
                f"batch {p['batch']}: {p['us_median']:.1f} us")
        if p["batch"] == 1:
            frac = f" = {p['gb_per_s'] / copy:.0%} of the copy bandwidth" if copy else ""
            rows.append((f"(info) decode product {what}", f"{p['gb_per_s']:.0f} GB/s{frac}", "",
                         True))
        elif p["batch"] == prefill and p["product"] in CUBLAS_SHAPE:
            ref = rates.get(CUBLAS_SHAPE[p["product"]])
            frac = (f" = {p['tflops'] / ref['tflops']:.0%} of cuBLAS's {ref['tflops']:.0f}"
                    if ref and ref.get("n") == p["rows"] and ref.get("m") == prefill else "")
            rows.append((f"(info) prefill product {what}", f"{p['tflops']:.1f} TFLOP/s{frac}", "",
                         True))
    if (bench or {}).get("products_error"):
        rows.append(("(info) decode products", "not timed", "", True, bench["products_error"][:200]))
    return rows


def algo_rows_sweep(bench, roofline=None):
    """The product sweep (ringserve-run bench --product-algo-rows) per row count cuBLASLt's
    algorithm was chosen for: {rows: {"decode": {batch: GB/s over every product's weights},
    "prefill_tflops": the layers' at the prefill length, "prefill_vs_cublas": cuBLAS's time
    for them at its measured rates / theirs, "score": the worst of that row count's figures
    as a share of the best row count's for the same figure}}."""
    entries = (bench or {}).get("products_by_algo_rows") or []
    prefill = (((bench or {}).get("steps") or {}).get("prefill") or {}).get("tokens")
    rates = gemm_rates(roofline)
    sums = {}  # (rows, "prefill" or a decode batch) -> [work, us, cuBLAS's us or None]
    for p in entries:
        if p["batch"] == prefill:
            if p["product"] not in CUBLAS_SHAPE:
                continue
            key = "prefill"
            work = 2.0 * p["batch"] * p["rows"] * p["cols"]
            ref = rates.get(CUBLAS_SHAPE[p["product"]])
            ideal_us = (work / (ref["tflops"] * 1e6)
                        if ref and ref.get("n") == p["rows"] and ref.get("m") == prefill else None)
        else:
            key, work, ideal_us = p["batch"], float(p["weight_bytes"]), 0.0
        total = sums.setdefault((p["algo_rows"], key), [0.0, 0.0, 0.0])
        total[0] += work
        total[1] += p["us_median"]
        total[2] = None if ideal_us is None or total[2] is None else total[2] + ideal_us
    sweep = {}
    figures = {}  # figure ("prefill" or a decode batch) -> {rows: its value}
    for (rows, key), (work, us, ideal_us) in sums.items():
        q = sweep.setdefault(rows, {"decode": {}})
        if key == "prefill":
            q["prefill_tflops"] = value = work / (us * 1e6)
            q["prefill_vs_cublas"] = ideal_us / us if ideal_us else None
        else:
            q["decode"][key] = value = work / (us * 1e3)
        figures.setdefault(key, {})[rows] = value
    for rows, q in sweep.items():
        shares = [by_rows[rows] / max(by_rows.values()) for by_rows in figures.values()
                  if rows in by_rows and max(by_rows.values()) > 0]
        q["score"] = min(shares) if shares else 0.0
    return sweep


def pick_algo_rows(bench, roofline=None):
    """The swept row count with the best score, the configured one on a tie; None when there
    was no sweep or the configured row count is best."""
    sweep = algo_rows_sweep(bench, roofline)
    configured = (bench or {}).get("matmul_algo_rows")
    if not sweep:
        return None
    best = max(sweep, key=lambda rows: (sweep[rows]["score"], rows == configured))
    return None if best == configured else best


def algo_rows_rows(bench, copy, roofline=None):
    """(info) rows: each swept row count's decode and prefill figures, the pick marked."""
    sweep = algo_rows_sweep(bench, roofline)
    if (bench or {}).get("products_by_algo_rows_error"):
        return [("(info) cuBLASLt algorithm by query rows", "not timed", "", True,
                 bench["products_by_algo_rows_error"][:200])]
    configured = (bench or {}).get("matmul_algo_rows")
    picked = pick_algo_rows(bench, roofline) or configured
    rows = []
    for q in sorted(sweep):
        s = sweep[q]
        parts = []
        for batch in sorted(s["decode"]):
            frac = f" ({s['decode'][batch] / copy:.0%} of copy)" if copy else ""
            parts.append(f"decode B={batch} {s['decode'][batch]:.0f} GB/s{frac}")
        if "prefill_tflops" in s:
            vs = s.get("prefill_vs_cublas")
            parts.append(f"prefill {s['prefill_tflops']:.0f} TFLOP/s"
                         + (f" ({vs:.0%} of cuBLAS)" if vs else ""))
        mark = (" [configured]" if q == configured else "") + (" [best]" if q == picked else "")
        rows.append((f"(info) products with cuBLASLt's algorithm for {q} rows{mark}: "
                     + ", ".join(parts), f"score {s['score']:.2f}", "", True))
    return rows


def decode_vs_base_rows(base, base_name, run, what):
    """(info) rows: each decode step of `run` (a step bench's JSON) against the step of the
    same batch in `base`."""
    by_batch = {d["batch"]: d for d in ((base or {}).get("steps") or {}).get("decode", [])}
    rows = []
    for d in ((run or {}).get("steps") or {}).get("decode", []):
        b = by_batch.get(d["batch"])
        if not b:
            continue
        rows.append((f"(info) decode B={d['batch']} ctx={d['context']}: {what} "
                     f"{d['step_ms_median']:.2f} ms/step, {base_name} {b['step_ms_median']:.2f}",
                     f"{d['step_ms_median'] / b['step_ms_median']:.3f}x {base_name}", "", True))
    return rows


def sampling_rows(greedy, top_p, logprobs=None):
    """(info) rows: decode steps sampled on the device (top_p, then top_p with logprobs)
    against the same greedy step."""
    if not greedy or not top_p:
        return [("(info) device sampling: decode greedy vs top_p", "not run", "", True)]
    return (decode_vs_base_rows(greedy, "greedy", top_p, "top_p 0.95 T=0.8") +
            decode_vs_base_rows(greedy, "greedy", logprobs, "top_p 0.95 T=0.8 + logprobs 5"))


def kv_fp8_rows(bf16, fp8):
    """(info) rows: decode steps over an fp8 KV cache against the same steps over bf16."""
    if not bf16 or not fp8:
        return [("(info) fp8 KV cache: decode vs bf16", "not run", "", True)]
    return decode_vs_base_rows(bf16, "bf16 KV", fp8, "fp8 KV")


def lora_rows(off, on, swap=None):
    """(info) rows: decode steps and a prefill with four LoRA adapters against the same without,
    and the engine's time per swap when the four share one slot."""
    rows = []
    for r in (swap or {}).get("runs", []):
        if r.get("adapter_swaps"):
            rows.append((f"(info) LoRA 4 adapters on 1 slot, P={r['parallel']}: "
                         f"{r['adapter_swaps']} swaps from host memory, "
                         f"{r['output_tokens_per_s']:.1f} output t/s",
                         f"{1e3 * r['adapter_swap_s'] / r['adapter_swaps']:.2f} ms a swap", "",
                         True))
    if not off or not on:
        return rows + [("(info) LoRA adapters: decode and prefill vs none", "not run", "", True)]
    rows += decode_vs_base_rows(off, "no adapter", on, "4 rank-16 adapters")
    p_off = ((off.get("steps") or {}).get("prefill") or {})
    p_on = ((on.get("steps") or {}).get("prefill") or {})
    if p_off.get("ms_median") and p_on.get("ms_median"):
        rows.append((f"(info) prefill {p_on.get('tokens')} tokens: 4 rank-16 adapters "
                     f"{p_on['ms_median']:.1f} ms, no adapter {p_off['ms_median']:.1f} ms",
                     f"{p_on['ms_median'] / p_off['ms_median']:.3f}x no adapter", "", True))
    return rows


def kv_host_rows(kv_host):
    """(info) rows: the KV host tier's copies per block (ringserve-kv-copy-bench's JSON)."""
    rows = []
    for b in (kv_host or {}).get("benchmarks", []):
        parts = b.get("name", "").split("/")
        if len(parts) < 3 or "bytes_per_second" not in b or "us_per_block" not in b:
            continue
        direction = "to host" if parts[1].endswith("to_host") else "from host"
        rows.append((f"(info) KV host tier: {parts[2]} Llama-3-8B bf16 block(s) of "
                     f"{b.get('block_MiB', 0):.0f} MiB {direction}",
                     f"{b['bytes_per_second'] / 1e9:.1f} GB/s, {b['us_per_block']:.0f} us a block",
                     "", True))
    return rows or [("(info) KV host tier: copies per block", "not run", "", True)]


def speculate_rows(off, on):
    """(info) rows: generator runs with --speculate 4 against the same runs without drafts."""
    if not off or not on:
        return [("(info) speculative decoding: --speculate 4 vs none", "not run", "", True)]
    rows = []
    plain = {r["parallel"]: r for r in off.get("runs", [])}
    for r in on.get("runs", []):
        p = plain.get(r["parallel"])
        if not p or not p.get("decode_tokens_per_s"):
            continue
        rows.append((f"(info) speculative decoding P={r['parallel']}: decode "
                     f"{r['decode_tokens_per_s']:.1f} t/s with --speculate 4 "
                     f"({r.get('accepted_draft_tokens', 0)}/{r.get('draft_tokens', 0)} drafts "
                     f"accepted, random weights), {p['decode_tokens_per_s']:.1f} without",
                     f"{r['decode_tokens_per_s'] / p['decode_tokens_per_s']:.3f}x", "", True))
    return rows


def compute(work):
    bench = load(work, "bench.json")
    roofline = load(work, "roofline.json")
    baseline = load(work, "baseline.json")
    vectors = load(work, "vectors.json")
    hf = load(work, "hf_compare.json")
    rows, ratios = [], {}

    def row(name, measured, target, ok, note=""):
        rows.append({"check": name, "measured": measured, "target": target, "ok": ok, "note": note})

    st = stages(work)
    ct = ctest_summary(work)
    build_status = st.get("build", {}).get("status", "not run")
    prebuilt = prebuilt_record(work)
    row("build (CUDA, ninja)", build_status, "ok", build_status == "ok",
        f"prebuilt by prepare.sh from commit {prebuilt.get('commit', '?')[:12]}"
        f"{' (dirty)' if prebuilt.get('dirty') else ''}" if prebuilt else "")
    if ct and ct.get("parsed"):
        row("ctest (kernels, model, engine, CUDA)", f"{ct['total'] - ct['failed']}/{ct['total']} passed",
            "all", ct["failed"] == 0, ", ".join(ct["failed_tests"][:5]))
    else:
        row("ctest (kernels, model, engine, CUDA)", st.get("ctest", {}).get("status", "not run"),
            "all", False)
    if vectors:
        toks = vectors.get("tokens_f32", [])
        row("vectors: f32 greedy tokens", f"{sum(t['ok'] for t in toks)}/{len(toks)} files exact",
            "exact", bool(toks) and all(t["ok"] for t in toks) and not vectors.get("errors"),
            "; ".join(vectors.get("errors", []))[:200])
        fs = vectors.get("first_step")
        row("vectors: bf16 first-step logits vs CPU f32 (max |diff| / max |logit|)",
            f"{fs['max_rel_err']:.2e}" if fs else "not run", "<= 2e-2", bool(fs and fs["ok"]),
            l2_note(fs and fs.get("l2_rel_err")))
    else:
        row("vectors", st.get("vectors", {}).get("status", "not run"), "pass", False)
    if hf:
        for r in hf_rows(hf):
            row(*r)
        errors = [e for m in hf.get("models", []) for e in m.get("errors", [])]
        if errors:
            row("transformers comparison errors", len(errors), 0, False, "; ".join(errors)[:200])
        scaled = [m["info"].get("rope_scaling_moves_logits_by") for m in hf.get("models", [])
                  if m["info"].get("rope_scaling_moves_logits_by") is not None]
        if scaled:
            row("(info) rope scaling moves the reference logits by", f"{scaled[0]:.2e}", "", True)
    else:
        row("transformers comparison", st.get("hf_compare", {}).get("status", "not run"), "pass", False)

    copy = (roofline or {}).get("copy", {}).get("gb_per_s")

    def step_rows(run, steps, suffix, label, gated):
        """Rows and ratios for one step bench; ungated ones are (info) rows."""
        ideal = prefill_ideal_seconds(run, roofline)
        info = "" if gated else "(info) "
        for d in steps.get("decode", []):
            name = "decode_b1_roofline" if d["batch"] == 1 else f"decode_b{d['batch']}_roofline"
            frac = d["gb_per_s"] / copy if copy else None
            ratios[name + suffix] = frac
            target = TARGETS.get(name) if gated else None
            row(f"{info}decode B={d['batch']} ctx={d['context']} ({d.get('path', '?')}){label}: "
                f"{d['step_ms_median']:.2f} ms/step, {d['gb_per_s']:.0f} GB/s",
                f"{frac:.1%} of copy {copy:.0f} GB/s" if frac else "n/a",
                f">= {target:.0%}" if target else "",
                not gated or (frac is not None and (target is None or frac >= target)))
            if d.get("eager_step_ms_median"):
                speedup = d["eager_step_ms_median"] / d["step_ms_median"]
                ratios[f"decode_b{d['batch']}_graph_speedup" + suffix] = speedup
                row(f"(info) decode B={d['batch']}{label} op by op (--cuda-graphs=false)",
                    f"{d['eager_step_ms_median']:.2f} ms/step", f"graphs {speedup:.2f}x faster", True)
        pre = steps.get("prefill")
        if pre:
            frac = ideal / (pre["ms_median"] / 1e3) if ideal else None
            ratios["prefill_vs_cublas" + suffix] = frac
            row(f"{info}prefill {pre['tokens']} tokens{label}: {pre['ms_median']:.1f} ms, "
                f"{pre['tflops']:.1f} TFLOP/s", f"{frac:.1%} of cuBLAS" if frac else "n/a",
                ">= 60%" if gated else "", not gated or (frac is not None and frac >= 0.60))

    # With --step-attention the step bench ran once per attention kernel. The targets hold
    # for the kernel a worker serves with (the bench's configured --attention, which
    # check.sh leaves at the workers' default): its ratios keep their names and its rows are
    # gated; the others' ratios get the kernel's name appended and their rows are (info),
    # what switching the default would give.
    served = (bench or {}).get("attention") or "simt"
    by_attention = sorted(((bench or {}).get("steps_by_attention") or {}).items(),
                          key=lambda item: item[0] != served)
    for attention, steps in by_attention or [(None, (bench or {}).get("steps") or {})]:
        is_served = attention in (None, served)
        suffix = "" if is_served else "_" + attention.replace("-", "_")
        label = f" [{attention} attention{', served' if is_served else ''}]" if attention else ""
        step_rows(bench, steps, suffix, label, gated=is_served)
    # The step bench again with the algorithm row count the product sweep picked (stage
    # algo_rows): for information until that row count is made the default.
    rerun = load(work, "bench_algo_rows.json")
    if rerun and rerun.get("steps"):
        q = rerun.get("matmul_algo_rows")
        step_rows(rerun, rerun["steps"], f"_algo_rows_{q}", f" [--matmul-algo-rows {q}]",
                  gated=False)
    runs = [r for r in (bench or {}).get("runs", []) if r["parallel"] == 256]
    rs_tps = runs[0]["output_tokens_per_s"] if runs else None
    hf_tps = (baseline or {}).get("output_tokens_per_s")
    if rs_tps:
        ratio = rs_tps / hf_tps if hf_tps else None
        ratios["throughput_vs_transformers"] = ratio
        shape = f"256 x {bench['prompt_tokens']}/{bench['gen_tokens']}"
        row(f"{shape}: ringserve {rs_tps:.0f} output t/s, transformers {hf_tps:.0f}"
            if hf_tps else f"{shape}: ringserve {rs_tps:.0f} output t/s",
            f"{ratio:.2f}x" if ratio else "no baseline", ">= 3x", ratio is not None and ratio >= 3.0,
            "baseline extrapolated from a subset" if (baseline or {}).get("extrapolated") else "")
    else:
        row("256 x 512/256 throughput", st.get("bench", {}).get("status", "not run"), ">= 3x", False)
    kv = (bench or {}).get("kv_pool") or {}
    if "fraction_of_free" in kv:
        ratios["kv_pool_fraction"] = kv["fraction_of_free"]
        row(f"KV pool {kv['bytes'] / 2**30:.1f} GiB of {kv['free_after_weights_bytes'] / 2**30:.1f} GiB "
            "free after weights", f"{kv['fraction_of_free']:.1%}", ">= 85%",
            kv["fraction_of_free"] >= 0.85)
    row("serve.sh: one worker per GPU, generate through the router",
        st.get("serve", {}).get("status", "not run"), "ok", st.get("serve", {}).get("status") == "ok")
    for r in product_rows(bench, copy, roofline):
        row(*r)
    for r in algo_rows_rows(bench, copy, roofline):
        row(*r)
    for r in sampling_rows(load(work, "sampling_greedy.json"), load(work, "sampling_top_p.json"),
                           load(work, "sampling_logprobs.json")):
        row(*r)
    for r in speculate_rows(load(work, "speculate_off.json"), load(work, "speculate_on.json")):
        row(*r)
    for r in kv_fp8_rows(load(work, "kv_bf16.json"), load(work, "kv_fp8.json")):
        row(*r)
    for r in lora_rows(load(work, "lora_off.json"), load(work, "lora_on.json"),
                       load(work, "lora_swap.json")):
        row(*r)
    for r in kv_host_rows(load(work, "kv_host.json")):
        row(*r)
    sanitize = st.get("sanitize", {}).get("status", "not run")
    row("compute-sanitizer memcheck + racecheck + synccheck on the CUDA kernel tests", sanitize, "ok",
        sanitize == "ok")
    return rows, ratios, {"bench": bench, "roofline": roofline, "baseline": baseline,
                          "vectors": vectors, "hf_compare": hf, "ctest": ct, "stages": st}


def markdown(rows, header):
    lines = [header, "", "| check | measured | target | ok |", "| --- | --- | --- | --- |"]
    for r in rows:
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['check']} | {r['measured']}{note} | {r['target']} | "
                     f"{'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work")
    parser.add_argument("--out")
    parser.add_argument("--elapsed-s", type=int, default=0)
    parser.add_argument("--pick-algo-rows", metavar="BENCH_JSON",
                        help="print the row count the bench's product sweep favours over the "
                             "configured one (nothing when the configured one is best), and exit")
    args = parser.parse_args()
    if args.pick_algo_rows:
        with open(args.pick_algo_rows) as f:
            bench = json.load(f)
        roofline = load(os.path.dirname(args.pick_algo_rows), "roofline.json")
        picked = pick_algo_rows(bench, roofline)
        if picked is not None:
            print(picked)
        return 0
    if not args.work or not args.out:
        parser.error("--work and --out are required")
    rows, ratios, raw = compute(args.work)
    source = load(args.work, "source.json") or {}
    gpu = ""
    try:
        with open(os.path.join(args.work, "gpu.csv")) as f:
            gpu = f.read().strip()
    except OSError:
        pass
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = source.get("commit", "unknown")[:12] + (" (dirty)" if source.get("dirty") else "")
    header = (f"GPU check: {gpu or 'unknown device'}; commit {commit}; {date}; "
              f"check.sh {args.elapsed_s} s")
    report = {"device": gpu, "source": source, "date": date, "elapsed_s": args.elapsed_s,
              "pass": all(r["ok"] for r in rows if not r["check"].startswith("(info)")),
              "targets": TARGETS, "ratios": ratios, "table": rows, "raw": raw}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "check.json"), "w") as f:
        json.dump(report, f, indent=1)
    text = markdown(rows, header)
    with open(os.path.join(args.out, "check.md"), "w") as f:
        f.write(text)
    print()
    print(text)
    print(f"overall: {'PASS' if report['pass'] else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
