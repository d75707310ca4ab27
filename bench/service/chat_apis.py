#!/usr/bin/python3
"""What each chat API costs the router, for the same streamed replies.

One worker serving a tiny ChatML checkpoint (tests/integration/chat_checkpoint.py) whose greedy
pick is always "a", so every reply runs to its token limit, behind a router with --http-port.
The same load (CONCURRENCY Python client threads, REQUESTS streamed chat replies of
OUTPUT_TOKENS tokens each to a one-message conversation) goes, alternating in one run, through
gRPC (Generate with a Chat), /v1/chat/completions, /v1/responses (store: false) and
/v1/messages. For each pass: the router process's CPU time per 1000 streamed tokens (utime +
stime from /proc: the proxy, and for HTTP the gateway's parsing, rendering and local hop), the
clients' p50 time to first token, and tokens/s. The model is tiny, so the router's own cost per
token is what separates the passes.

usage: bench/service/chat_apis.py [--bin build/bin] [--reps 3] [--concurrency 8]
       [--requests 200] [--output-tokens 64]
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
import fleet  # noqa: E402
from chat_checkpoint import write_checkpoint  # noqa: E402

QUESTION = "Tell me about the sea."
MODEL = "tiny-chat"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def grpc_once(stub, pb, tokens):
    request = pb.GenerateRequest(
        chat=pb.Chat(messages=[pb.ChatMessage(role="user", content=QUESTION.encode())]),
        sampling=pb.SamplingParams(temperature=0), stop=pb.StopCriteria(max_tokens=tokens))
    start, first, count = time.monotonic(), None, 0
    for message in stub.Generate(request, timeout=120):
        if message.token_ids and first is None:
            first = time.monotonic() - start
        count += len(message.token_ids)
    return first, count


# Each HTTP API's path, its body, and the reply text one streamed event's data carries.
HTTP_APIS = {
    "chat": ("/v1/chat/completions",
             lambda n: {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": n},
             lambda e: "".join(c["delta"].get("content") or "" for c in e.get("choices", []))),
    "responses": ("/v1/responses",
                  lambda n: {"input": QUESTION, "max_output_tokens": n, "store": False},
                  lambda e: e["delta"] if e["type"] == "response.output_text.delta" else ""),
    "messages": ("/v1/messages",
                 lambda n: {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": n},
                 lambda e: e["delta"].get("text", "") if e["type"] == "content_block_delta"
                 else ""),
}


def http_once(port, api, tokens):
    path, body, text_of = HTTP_APIS[api]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start, first, count = time.monotonic(), None, 0
    conn.request("POST", path, body=json.dumps({"model": MODEL, "temperature": 0, "stream": True,
                                                **body(tokens)}),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200, response.read()
    for line in response:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        text = text_of(json.loads(line[6:]))
        if text and first is None:
            first = time.monotonic() - start
        count += len(text)  # each token is "a": one character
    conn.close()
    return first, count


def run_pass(router_pid, work, concurrency, requests):
    ttfts, tokens, lock = [], [0], threading.Lock()
    remaining = [requests]

    def client():
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            first, count = work()
            with lock:
                ttfts.append(first)
                tokens[0] += count

    cpu_before, start = cpu_seconds(router_pid), time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"router_cpu_s": cpu_seconds(router_pid) - cpu_before,
            "wall_s": time.monotonic() - start,
            "ttft_p50_ms": 1000 * statistics.median(ttfts), "tokens": tokens[0]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--output-tokens", type=int, default=64)
    a = parser.parse_args()
    fleet.import_grpc_or_skip()
    fleet.generate_modules(os.path.join(os.path.dirname(__file__), "..", "..", "proto"),
                           tempfile.mkdtemp(prefix="ringserve-py-"))
    import grpc
    from ringserve.v1 import inference_pb2 as pb
    from ringserve.v1 import inference_pb2_grpc as rpc

    model_dir = tempfile.mkdtemp(prefix="ringserve-chat-apis-")
    write_checkpoint(model_dir, favourite=ord("a"))  # never <|im_end|>: replies run to the limit
    worker = fleet.Process(
        [os.path.join(a.bin, "ringserve-worker"), "--model", model_dir, "--port", "0",
         "--host", "127.0.0.1", "--id", "w0", "--kv-memory", "256MiB", "--threads", "1"], "w0")
    port = fleet.free_port()
    router = fleet.start_router(a.bin, [worker],
                                extra=["--http-port", str(port), "--served-model-name", MODEL])
    channel = grpc.insecure_channel(router.address)
    stub = rpc.InferenceStub(channel)
    try:
        fleet.wait_until(lambda: fleet.fetch(port, path="/health")[0] == 200, 15)
        modes = {"grpc": lambda: grpc_once(stub, pb, a.output_tokens)}
        for api in HTTP_APIS:
            modes[api] = lambda api=api: http_once(port, api, a.output_tokens)
        total = a.requests * a.output_tokens
        for mode, work in modes.items():  # first touch out of the measurement
            first, count = work()
            assert count == a.output_tokens, (mode, count)
            run_pass(router.proc.pid, work, a.concurrency, a.concurrency)
        rows = []
        for rep in range(a.reps):
            for mode, work in modes.items():
                r = run_pass(router.proc.pid, work, a.concurrency, a.requests)
                assert r["tokens"] == total, (mode, r["tokens"], total)
                r.update(mode=mode, rep=rep + 1, tokens_per_s=total / r["wall_s"],
                         cpu_ms_per_1k_tokens=1000 * 1000 * r["router_cpu_s"] / total)
                rows.append(r)
                print(f"{mode} {rep + 1}: router CPU {r['cpu_ms_per_1k_tokens']:.1f} ms / 1k "
                      f"tokens, {r['tokens_per_s']:.0f} tok/s, TTFT p50 "
                      f"{r['ttft_p50_ms']:.2f} ms", flush=True)
        for mode in modes:
            cpu = statistics.median(r["cpu_ms_per_1k_tokens"] for r in rows if r["mode"] == mode)
            print(f"median {mode}: router CPU {cpu:.1f} ms / 1k tokens")
    finally:
        channel.close()
        router.terminate()
        worker.terminate()


if __name__ == "__main__":
    main()
