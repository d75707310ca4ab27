#!/usr/bin/python3
"""Service load figures with ringserve-bench against real processes on loopback:

1. 3 workers behind the router: 64 concurrent clients, 2000 requests over 200 sessions x 3
   turns; expects zero errors.
2. Router overhead: 1 worker, the same load sent straight to it and through the router,
   alternating (A B A B ...) in one run; reports p50 TTFT of each and the difference.

usage: bench/service/router_overhead.py [--bin build/bin] [--shared ../shared] [--reps 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
import fleet  # noqa: E402


def bench(bin_dir, target, prefix, args):
    out = subprocess.run([os.path.join(bin_dir, "ringserve-bench"), "--target", target, "--json",
                          "--session-prefix", prefix, *args], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--reps", type=int, default=5)
    a = parser.parse_args()
    load = ["--concurrency", "64", "--requests", "2000", "--sessions", "200", "--turns", "3",
            "--prompt-tokens", "32", "--output-tokens", "16"]
    report = {}

    workers = [fleet.start_worker(a.bin, a.shared, f"w{i}") for i in range(3)]
    router = fleet.start_router(a.bin, workers)
    try:
        r = bench(a.bin, router.address, "fleet", load)
        report["fleet"] = {k: r[k] for k in ("requests_ok", "requests_failed", "errors",
                                             "output_tokens_per_s", "requests_per_s",
                                             "cache_hit_ratio", "ttft_ms", "tpot_ms", "e2e_ms")}
    finally:
        router.terminate()
        for w in workers:
            w.terminate()

    worker = fleet.start_worker(a.bin, a.shared, "solo")
    router = fleet.start_router(a.bin, [worker])
    try:
        direct, routed = [], []
        bench(a.bin, worker.address, "warm", load)  # first-touch out of the measurement
        for rep in range(a.reps):
            d = bench(a.bin, worker.address, f"d{rep}", load)
            r = bench(a.bin, router.address, f"r{rep}", load)
            assert d["requests_failed"] == 0 and r["requests_failed"] == 0, (d["errors"], r["errors"])
            direct.append(d["ttft_ms"]["p50"])
            routed.append(r["ttft_ms"]["p50"])
        report["router_overhead"] = {
            "direct_ttft_p50_ms": direct, "routed_ttft_p50_ms": routed,
            "median_added_ttft_p50_ms": statistics.median(x - y for x, y in zip(routed, direct))}
    finally:
        router.terminate()
        worker.terminate()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
