"""What the Python service benchmarks share: the router's CPU time, a pass of concurrent
client threads measured against it, and a fleet serving a tiny chat checkpoint whose replies
always run to their limit."""
import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
import fleet  # noqa: E402
from chat_checkpoint import write_checkpoint  # noqa: E402


def cpu_seconds(pid):
    """utime + stime of process `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_pass(router_pid, work, concurrency, requests):
    """`requests` calls of work() (each returning (time to first token, tokens)) on
    `concurrency` threads: the router's CPU over them, the wall time, the p50 time to first
    token and the tokens counted."""
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


def record_pass(rows, r, mode, rep, total, note=""):
    """Adds pass `r` of `mode` (rep `rep`, `total` tokens streamed) to `rows` with its
    throughput and router CPU per 1k tokens, and prints it (`note` after)."""
    r.setdefault("tokens_per_s", total / r["wall_s"])
    r.update(mode=mode, rep=rep, cpu_ms_per_1k_tokens=1000 * 1000 * r["router_cpu_s"] / total)
    rows.append(r)
    print(f"{mode} {rep}: router CPU {r['cpu_ms_per_1k_tokens']:.1f} ms / 1k tokens, "
          f"{r['tokens_per_s']:.0f} tok/s, TTFT p50 {r['ttft_p50_ms']:.2f} ms{note}", flush=True)


def print_medians(rows, modes):
    """Each mode's median router CPU per 1k tokens over its passes in `rows`."""
    for mode in modes:
        cpu = statistics.median(r["cpu_ms_per_1k_tokens"] for r in rows if r["mode"] == mode)
        print(f"median {mode}: router CPU {cpu:.1f} ms / 1k tokens")


def start_chat_fleet(bin_dir, served_name):
    """A worker (1 thread) serving the tiny ChatML checkpoint of chat_checkpoint.py written so
    that greedy decoding always picks "a" (never <|im_end|>: every reply runs to its limit),
    behind a router with --http-port: (worker, router, HTTP port), the HTTP API answering."""
    model_dir = tempfile.mkdtemp(prefix="ringserve-bench-chat-")
    write_checkpoint(model_dir, favourite=ord("a"))
    worker = fleet.Process(
        [os.path.join(bin_dir, "ringserve-worker"), "--model", model_dir, "--port", "0",
         "--host", "127.0.0.1", "--id", "w0", "--kv-memory", "256MiB", "--threads", "1"], "w0")
    port = fleet.free_port()
    router = fleet.start_router(bin_dir, [worker],
                                extra=["--http-port", str(port), "--served-model-name", served_name])
    fleet.wait_until(lambda: fleet.fetch(port, path="/health")[0] == 200, 15)
    return worker, router, port
