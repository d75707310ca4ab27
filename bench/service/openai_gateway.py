#!/usr/bin/python3
"""What OpenAI's HTTP API costs the router, against the same requests over gRPC.

One worker behind a router with --http-port. The same load (CONCURRENCY client threads,
REQUESTS streamed completions of OUTPUT_TOKENS tokens each, greedy, ignore_eos) goes through
the router's gRPC port and through its HTTP port, alternating (A B A B ...) in one run. For
each pass: the router process's CPU time per 1000 streamed tokens (utime + stime from
/proc, the gateway's JSON and SSE work and its in-process hop included), and the clients'
p50 time to first token. The clients are the same harness both ways, so their own cost
cancels out of the CPU figure: Python threads (--client python, a text prompt), or
ringserve-bench (--client bench: its gRPC API against --api openai, prompts of 16 random ids,
each pass its own seed so neither finds the other's prompts cached; it can drive many more
streams than Python's threads).

usage: bench/service/openai_gateway.py [--bin build/bin] [--shared ../shared] [--reps 3]
       [--concurrency 8] [--requests 200] [--output-tokens 64] [--client python|bench]
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
import fleet  # noqa: E402
from router_load import cpu_seconds, print_medians, record_pass, run_pass  # noqa: E402

PROMPT = "Once upon a time"


def grpc_once(stub, pb, tokens):
    request = pb.GenerateRequest(text=PROMPT.encode(), sampling=pb.SamplingParams(temperature=0),
                                 stop=pb.StopCriteria(max_tokens=tokens, ignore_eos=True))
    start, first, count = time.monotonic(), None, 0
    for message in stub.Generate(request, timeout=120):
        if message.token_ids and first is None:
            first = time.monotonic() - start
        count += len(message.token_ids)
    return first, count


def http_once(port, tokens):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps({"prompt": PROMPT, "max_tokens": tokens, "temperature": 0,
                       "ignore_eos": True, "stream": True, "logprobs": None})
    start, first, count = time.monotonic(), None, 0
    conn.request("POST", "/v1/completions", body=body,
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200, response.read()
    for line in response:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        if first is None:
            first = time.monotonic() - start
        count += 1  # one event a streamed message; tokens counted from usage below
    conn.close()
    return first, count


def bench_pass(router_pid, bench_args):
    """One ringserve-bench run: the router's CPU over it and the bench's own figures."""
    cpu_before, start = cpu_seconds(router_pid), time.monotonic()
    out = subprocess.run(bench_args + ["--json"], check=True, capture_output=True, text=True)
    report = json.loads(out.stdout)
    assert report["requests_failed"] == 0, report["errors"]
    return {"router_cpu_s": cpu_seconds(router_pid) - cpu_before,
            "wall_s": time.monotonic() - start,
            "ttft_p50_ms": report["ttft_ms"]["p50"], "itl_p50_ms": report["itl_ms"]["p50"],
            "tokens_per_s": report["output_tokens_per_s"],
            "tokens": report["itl_ms"]["count"] + report["ttft_ms"]["count"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--client", choices=["python", "bench"], default="python")
    a = parser.parse_args()
    fleet.import_grpc_or_skip()
    fleet.generate_modules(os.path.join(os.path.dirname(__file__), "..", "..", "proto"),
                           tempfile.mkdtemp(prefix="ringserve-py-"))
    import grpc
    from ringserve.v1 import inference_pb2 as pb
    from ringserve.v1 import inference_pb2_grpc as rpc

    worker = fleet.start_worker(a.bin, a.shared, "w0")
    port = fleet.free_port()
    router = fleet.start_router(a.bin, [worker], extra=["--http-port", str(port)])
    channel = grpc.insecure_channel(router.address)
    stub = rpc.InferenceStub(channel)
    try:
        fleet.wait_until(lambda: fleet.fetch(port, path="/health")[0] == 200, 15)
        total = a.requests * a.output_tokens
        vocab = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10).vocab_size
        bench = [os.path.join(a.bin, "ringserve-bench"), "--concurrency", str(a.concurrency),
                 "--output-tokens", str(a.output_tokens), "--prompt-tokens", "16"]
        targets = {"grpc": ["--target", router.address],
                   "http": ["--api", "openai", "--vocab-size", str(vocab),
                            "--target", f"127.0.0.1:{port}"]}
        if a.client == "bench":
            def run(mode, requests, seed):
                return bench_pass(router.proc.pid, bench + targets[mode] + [
                    "--requests", str(requests), "--seed", str(seed)])
        else:
            modes = {"grpc": lambda: grpc_once(stub, pb, a.output_tokens),
                     "http": lambda: http_once(port, a.output_tokens)}

            def run(mode, requests, seed):
                return run_pass(router.proc.pid, modes[mode], a.concurrency, requests)
        for mode in targets:  # first touch out of the measurement
            run(mode, a.concurrency, 1000)
        rows = []
        for rep in range(a.reps):
            for i, mode in enumerate(targets):
                r = run(mode, a.requests, 2 * rep + i)
                record_pass(rows, r, mode, rep + 1, total, f", {r['tokens']} messages")
        print_medians(rows, targets)
    finally:
        channel.close()
        router.terminate()
        worker.terminate()


if __name__ == "__main__":
    main()
