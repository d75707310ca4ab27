"""The KV cache's host tier (ringserve-worker --kv-host-memory) on a real worker behind the
router: a prompt whose blocks another prompt evicted is served from host memory with the
tokens it gave when computed, the worker's metrics and Admin.GetStats count it, and bad
sizes (unparsable, too small for a block, more than the machine's memory) are refused at
start naming the flag.

usage: kv_host_test.py BIN_DIR PROTO_DIR SHARED_DIR [unittest args]
"""
import os
import subprocess
import sys
import tempfile
import unittest

import fleet

BIN_DIR, PROTO_DIR, SHARED_DIR = sys.argv[1:4]
fleet.import_grpc_or_skip()
fleet.generate_modules(PROTO_DIR, tempfile.mkdtemp(prefix="ringserve-py-"))

from ringserve.v1 import inference_pb2 as pb  # noqa: E402

BLOCK = 16
POOL_BLOCKS = 24
FIRST = [3 + (i * 37) % 240 for i in range(16 * BLOCK + 3)]  # 16 full blocks and 3 tokens
# Needs all but one block of the pool (with its 4 generated tokens): every cached block of
# FIRST but its head is evicted (a released prefix goes tail first).
OTHER = [3 + (i * 53 + 7) % 240 for i in range((POOL_BLOCKS - 1) * BLOCK - 4)]


def run(stub, tokens, max_tokens=4):
    code, ids, final, _, details = fleet.stream(
        stub, fleet.generate_request("", tokens, max_tokens), 60)
    assert code == "OK", (code, details)
    return ids, final.usage


class HostTier(unittest.TestCase):
    def evict_and_rerun(self, host_memory):
        metrics_port = fleet.free_port()
        extra = ["--kv-blocks", str(POOL_BLOCKS), "--metrics-port", str(metrics_port)]
        if host_memory:
            extra += ["--kv-host-memory", host_memory]
        cluster = fleet.Cluster(BIN_DIR, SHARED_DIR, "h", 1, worker_extra=extra)
        try:
            first, usage = run(cluster.stub, FIRST)
            self.assertEqual(usage.cached_tokens, 0)
            run(cluster.stub, OTHER)
            again, usage = run(cluster.stub, FIRST)
            self.assertEqual(again, first)
            kv = cluster.worker_stats(0).kv_cache
            info = cluster.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
            self.assertEqual(info.kv_host_num_blocks, kv.host_blocks_total)
            return usage, kv, fleet.scrape(metrics_port)
        finally:
            cluster.close()

    def test_an_evicted_prefix_comes_back_from_host_memory(self):
        usage, kv, metrics = self.evict_and_rerun("4MiB")
        self.assertEqual(usage.cached_tokens, 16 * BLOCK)
        self.assertEqual(kv.host_hit_tokens_total, 15 * BLOCK)
        self.assertGreaterEqual(kv.offloaded_blocks_total, 15)
        self.assertGreater(kv.host_blocks_total, POOL_BLOCKS)
        self.assertGreater(kv.host_blocks_stored, 0)
        self.assertEqual(metrics[("ringserve_worker_kv_host_hit_tokens_total", "")],
                         kv.host_hit_tokens_total)
        self.assertEqual(metrics[("ringserve_worker_kv_offloaded_blocks_total", "")],
                         kv.offloaded_blocks_total)
        self.assertEqual(metrics[("ringserve_worker_kv_host_blocks", '{state="stored"}')],
                         kv.host_blocks_stored)

    def test_without_a_host_tier_only_the_head_block_is_left(self):
        usage, kv, metrics = self.evict_and_rerun(None)
        self.assertEqual(usage.cached_tokens, BLOCK)
        self.assertEqual(kv.host_blocks_total, 0)
        self.assertEqual(metrics[("ringserve_worker_kv_host_hit_tokens_total", "")], 0)

    def test_bad_sizes_are_refused_at_start(self):
        worker = os.path.join(BIN_DIR, "ringserve-worker")
        for size, code, words in (("1.5", 2, "--kv-host-memory"), ("0", 2, "--kv-host-memory"),
                                  ("100", 1, "hold no KV block"),
                                  ("100TiB", 1, "make --kv-host-memory smaller")):
            with self.subTest(size=size):
                done = subprocess.run(
                    [worker, *fleet.model_args(BIN_DIR, SHARED_DIR), "--port", "0",
                     "--kv-memory", "64MiB", "--kv-host-memory", size],
                    capture_output=True, text=True, timeout=60)
                self.assertEqual(done.returncode, code, done.stderr)
                self.assertIn(words, done.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[4:])
