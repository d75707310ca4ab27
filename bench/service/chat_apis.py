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
import tempfile
import time

from router_load import (fleet, print_medians, record_pass, run_pass,  # noqa: E402
                         start_chat_fleet)

QUESTION = "Tell me about the sea."
MODEL = "tiny-chat"


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

    worker, router, port = start_chat_fleet(a.bin, MODEL)
    channel = grpc.insecure_channel(router.address)
    stub = rpc.InferenceStub(channel)
    try:
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
                record_pass(rows, r, mode, rep + 1, total)
        print_medians(rows, modes)
    finally:
        channel.close()
        router.terminate()
        worker.terminate()


if __name__ == "__main__":
    main()
