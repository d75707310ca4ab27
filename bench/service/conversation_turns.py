#!/usr/bin/python3
"""A long conversation continued by previous_response_id against the same conversation resent.

One worker serving a tiny ChatML checkpoint (tests/integration/chat_checkpoint.py) whose
greedy pick is always "a" (every reply runs to its limit) behind a router with --http-port.
CONVERSATIONS conversations of TURNS turns each (a user message of USER_CHARS random letters,
one token a byte, and a reply of REPLY_TOKENS tokens) run one after the other, three ways,
alternating in one run:
  - responses: /v1/responses, each turn continuing the previous response (previous_response_id:
    the worker forks the stored session and computes only the new turn);
  - chat: /v1/chat/completions with the whole conversation resent each turn (the prefix cache
    finds its full blocks; the rest of the last block and the new turn are computed);
  - responses-resent: /v1/responses with store false and the whole conversation as input items.
For each: the p50 latency of the last turn, and the tokens the worker computed a turn (usage's
input less its cached tokens) summed over every turn.

usage: bench/service/conversation_turns.py [--bin build/bin] [--reps 3] [--conversations 8]
       [--turns 8] [--user-chars 160] [--reply-tokens 16]
"""
import argparse
import http.client
import json
import random
import statistics
import time

from router_load import start_chat_fleet  # noqa: E402

MODEL = "tiny-chat"


def post(port, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.monotonic()
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    text = response.read()
    elapsed = time.monotonic() - start
    conn.close()
    assert response.status == 200, text
    return elapsed, json.loads(text)


def converse(port, mode, turns, user_chars, reply_tokens, rng):
    """Seconds the last turn took, and tokens computed over every turn."""
    messages, previous, computed, last = [], None, 0, 0.0
    for _ in range(turns):
        user = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(user_chars))
        if mode == "chat":
            messages.append({"role": "user", "content": user})
            last, r = post(port, "/v1/chat/completions",
                           {"model": MODEL, "temperature": 0, "max_tokens": reply_tokens,
                            "messages": messages})
            messages.append({"role": "assistant", "content": r["choices"][0]["message"]["content"]})
            computed += r["usage"]["prompt_tokens"] - r["usage"]["prompt_tokens_details"][
                "cached_tokens"]
            continue
        body = {"model": MODEL, "temperature": 0, "max_output_tokens": reply_tokens}
        if mode == "responses":
            body.update(input=user, **({"previous_response_id": previous} if previous else {}))
        else:  # responses-resent
            messages.append({"role": "user", "content": user})
            body.update(input=messages, store=False)
        last, r = post(port, "/v1/responses", body)
        reply = r["output"][-1]["content"][0]["text"]
        if mode == "responses-resent":
            messages.append({"role": "assistant", "content": reply})
        previous = r["id"]
        computed += r["usage"]["input_tokens"] - r["usage"]["input_tokens_details"][
            "cached_tokens"]
    return last, computed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--user-chars", type=int, default=160)
    parser.add_argument("--reply-tokens", type=int, default=16)
    a = parser.parse_args()
    worker, router, port = start_chat_fleet(a.bin, MODEL)
    try:
        modes = ["responses", "chat", "responses-resent"]
        results = {m: {"last": [], "computed": []} for m in modes}
        for rep in range(a.reps):
            for i, mode in enumerate(modes):
                # Each conversation its own text, so no mode finds another's cached.
                rng = random.Random(1000 * rep + 100 * i)
                lasts, computed = [], 0
                for _ in range(a.conversations):
                    last, tokens = converse(port, mode, a.turns, a.user_chars, a.reply_tokens,
                                            rng)
                    lasts.append(last)
                    computed += tokens
                results[mode]["last"].append(1000 * statistics.median(lasts))
                results[mode]["computed"].append(computed / a.conversations)
                print(f"{mode} {rep + 1}: last turn p50 {results[mode]['last'][-1]:.2f} ms, "
                      f"{results[mode]['computed'][-1]:.0f} tokens computed a conversation",
                      flush=True)
        for mode in modes:
            print(f"median {mode}: last turn {statistics.median(results[mode]['last']):.2f} ms, "
                  f"{statistics.median(results[mode]['computed']):.0f} tokens computed")
    finally:
        router.terminate()
        worker.terminate()


if __name__ == "__main__":
    main()
