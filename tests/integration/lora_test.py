"""LoRA adapters served by a real ringserve-worker process behind a router: two PEFT adapters
(--lora) beside the model, named per request (GenerateRequest.adapter, EmbedRequest.adapter):
each changes the output, matches ringserve-run's offline result with the same adapter, keeps
its bits when batched with other adapters, never shares cached K/V with another adapter, and
an unknown name is NOT_FOUND while serving goes on.

usage: lora_test.py BIN_DIR PROTO_DIR SHARED_DIR [unittest args]
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request

import fleet

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "gpu"))
import peft_adapter  # noqa: E402

BIN_DIR, PROTO_DIR, SHARED_DIR = sys.argv[1:4]
fleet.import_grpc_or_skip()
fleet.generate_modules(PROTO_DIR, tempfile.mkdtemp(prefix="ringserve-py-"))

import grpc  # noqa: E402
from ringserve.v1 import inference_pb2 as pb  # noqa: E402

PROMPT = [1, 403, 407, 261, 378, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312,
          313, 314]


def at_once(generate, adapters):
    """[(adapter, generate(adapter))] for every adapter listed, all called concurrently."""
    results = []
    threads = [threading.Thread(target=lambda a=a: results.append((a, generate(a))))
               for a in adapters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


class AdapterCluster(unittest.TestCase):
    """A class's cluster (cls.cluster) and temporary directory (cls.tmp), closed after it."""

    @classmethod
    def start_class(cls):
        """Makes cls.tmp and cls.model_args; returns the model's shape for adapters."""
        cls.tmp = tempfile.TemporaryDirectory(prefix="ringserve-lora-")
        cls.model_args = fleet.model_args(BIN_DIR, SHARED_DIR)
        return peft_adapter.model_shape(BIN_DIR, cls.model_args)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()
        cls.tmp.cleanup()

    def stream(self, adapter, max_tokens=12):
        """fleet.stream's (code, ids, final, ...) for PROMPT with `adapter`."""
        return fleet.stream(self.cluster.stub,
                            fleet.generate_request("", PROMPT, max_tokens, adapter=adapter),
                            timeout=60)


class LoraTest(AdapterCluster):
    @classmethod
    def setUpClass(cls):
        shape = cls.start_class()
        # "a" changes every projection at rank 4; "b" only q and v, at rank 8.
        a = os.path.join(cls.tmp.name, "a")
        b = os.path.join(cls.tmp.name, "b")
        peft_adapter.write_adapter(a, shape, seed=1)
        peft_adapter.write_adapter(b, shape, rank=8, targets=("q_proj", "v_proj"), seed=2)
        cls.lora_flags = ["--lora", f"a={a}", "--lora", f"b={b}"]
        # One worker, so that concurrent requests with different adapters share its batches.
        cls.metrics_port = fleet.free_port()
        cls.cluster = fleet.Cluster(BIN_DIR, SHARED_DIR, "lora", 1,
                                    worker_extra=cls.lora_flags + ["--metrics-port",
                                                                   str(cls.metrics_port)])

    def generate(self, adapter, tokens=PROMPT, max_tokens=12, session="", append=False):
        code, ids, final, _, details = fleet.stream(
            self.cluster.stub,
            fleet.generate_request(session, tokens, max_tokens, append=append, adapter=adapter),
            timeout=30)
        self.assertEqual(code, "OK", details)
        return ids, final

    def offline(self, adapter):
        """ringserve-run's greedy ids for PROMPT with `adapter` ("" for none)."""
        args = [os.path.join(BIN_DIR, "ringserve-run"), *self.model_args, *self.lora_flags,
                "--prompt-ids", ",".join(map(str, PROMPT)), "--max-tokens", "12", "--ignore-eos",
                "--json"]
        if adapter:
            args += ["--adapter", adapter]
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        return json.loads(out.splitlines()[0])["generated_ids"]

    def test_model_info_lists_the_adapters(self):
        info = self.cluster.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        self.assertEqual(list(info.adapters), ["a", "b"])

    def test_each_adapter_changes_the_output_as_it_does_offline(self):
        outputs = {}
        for adapter in ("", "a", "b"):
            ids, final = self.generate(adapter)
            self.assertEqual(len(ids), 12)
            self.assertEqual(ids, self.offline(adapter), f"adapter {adapter!r}")
            outputs[adapter] = ids
        self.assertEqual(len({tuple(ids) for ids in outputs.values()}), 3, outputs)

    def test_mixed_adapters_in_one_batch_keep_their_bits(self):
        alone = {adapter: self.generate(adapter, max_tokens=16)[0] for adapter in ("", "a", "b")}
        results = at_once(lambda adapter: self.generate(adapter, max_tokens=16)[0],
                          ["", "a", "b"] * 3)
        self.assertEqual(len(results), 9)
        for adapter, ids in results:
            self.assertEqual(ids, alone[adapter], f"adapter {adapter!r}")

    def test_cached_blocks_are_never_shared_between_adapters(self):
        long_prompt = [1] + list(range(100, 147))  # no other test's prefix
        _, first = self.generate("a", tokens=long_prompt, max_tokens=2)
        _, again = self.generate("a", tokens=long_prompt, max_tokens=2)
        _, other = self.generate("b", tokens=long_prompt, max_tokens=2)
        _, base = self.generate("", tokens=long_prompt, max_tokens=2)
        self.assertEqual(first.usage.cached_tokens, 0)
        self.assertGreater(again.usage.cached_tokens, 0)
        self.assertEqual(other.usage.cached_tokens, 0)
        self.assertEqual(base.usage.cached_tokens, 0)

    def test_a_session_changing_adapter_computes_its_history_again(self):
        _, first = self.generate("a", max_tokens=4, session="lora-s")
        _, same = self.generate("a", tokens=[300, 301], max_tokens=4, session="lora-s", append=True)
        self.assertEqual(same.usage.cached_tokens, len(PROMPT) + 4 - 1)
        _, switched = self.generate("b", tokens=[302], max_tokens=4, session="lora-s", append=True)
        self.assertEqual(switched.usage.cached_tokens, 0)
        self.assertEqual(switched.usage.prompt_tokens, len(PROMPT) + 4 + 2 + 4 + 1)

    def test_unknown_adapter_is_not_found_and_serving_goes_on(self):
        code, ids, _, _, details = fleet.stream(
            self.cluster.stub, fleet.generate_request("", PROMPT, 4, adapter="nope"), timeout=10)
        self.assertEqual(code, "NOT_FOUND")
        self.assertIn("adapter", details)
        self.assertIn("a, b", details)
        self.assertEqual(ids, [])
        with self.assertRaises(grpc.RpcError) as embed_error:
            self.cluster.stub.Embed(pb.EmbedRequest(inputs=[pb.EmbedInput(tokens=pb.TokenIds(
                ids=PROMPT))], adapter="nope"), timeout=10)
        self.assertEqual(embed_error.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(len(self.generate("a", max_tokens=3)[0]), 3)

    def test_embeddings_follow_the_adapter(self):
        vectors = {}
        for adapter in ("", "a"):
            response = self.cluster.stub.Embed(
                pb.EmbedRequest(inputs=[pb.EmbedInput(tokens=pb.TokenIds(ids=PROMPT))],
                                adapter=adapter), timeout=30)
            values = list(response.embeddings[0].values)
            self.assertAlmostEqual(math.sqrt(sum(v * v for v in values)), 1.0, places=4)
            vectors[adapter] = values
        self.assertNotEqual(vectors[""], vectors["a"])

    def test_cli_names_the_adapter(self):
        out = subprocess.run(
            [os.path.join(BIN_DIR, "ringserve-cli"), "--target", self.cluster.router.address,
             "generate", "--session", "", "--tokens", ",".join(map(str, PROMPT)),
             "--max-tokens", "12", "--ignore-eos", "--temperature", "0", "--adapter", "b",
             "--json"], check=True, capture_output=True, text=True).stdout
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        ids = [i for line in lines for i in line.get("tokenIds", line.get("token_ids", []))]
        self.assertEqual(ids, self.generate("b")[0])

    def test_metrics_count_jobs_by_adapter(self):
        before = self.adapter_jobs()
        self.generate("b", max_tokens=5)
        after = self.adapter_jobs()
        self.assertEqual(after.get("b", 0) - before.get("b", 0), 1, (before, after))
        self.assertEqual(after.get("a", 0), before.get("a", 0))

    def adapter_jobs(self):
        """{adapter: finished jobs} from the worker's /metrics."""
        jobs = {}
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("ringserve_worker_adapter_jobs_total{"):
                    name = line.split('adapter="', 1)[1].split('"', 1)[0]
                    jobs[name] = float(line.rsplit(" ", 1)[1])
        return jobs

    def test_bench_spreads_conversations_over_adapters(self):
        out = subprocess.run(
            [os.path.join(BIN_DIR, "ringserve-bench"), "--target", self.cluster.router.address,
             "--requests", "8", "--sessions", "4", "--turns", "2", "--prompt-tokens", "6",
             "--output-tokens", "3", "--adapter", "a", "--adapter", "b", "--json"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        report = json.loads(out.stdout)
        self.assertEqual(report["requests_ok"], 8, out.stdout)
        self.assertEqual(report["config"]["adapters"], ["a", "b"])

    def test_a_worker_without_slots_loads_nothing_while_serving(self):
        from ringserve.v1 import admin_pb2, admin_pb2_grpc
        admin = admin_pb2_grpc.AdminStub(self.cluster.channel)
        with self.assertRaises(grpc.RpcError) as error:
            admin.LoadAdapter(admin_pb2.LoadAdapterRequest(name="c", path=self.tmp.name),
                              timeout=30)
        self.assertEqual(error.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("--max-loras", error.exception.details())


class SwappingTest(AdapterCluster):
    """One worker with one LoRA slot (--max-loras 1) and three --lora adapters: two wait in
    host memory and take the slot when a request needs them. Concurrent requests over all
    three compute what each computes alone, and what ringserve-run computes with every
    adapter in a slot of its own."""

    @classmethod
    def setUpClass(cls):
        from ringserve.v1 import admin_pb2_grpc
        shape = cls.start_class()
        cls.lora_flags = []
        for seed, name in enumerate(("a", "b", "c"), start=1):
            path = os.path.join(cls.tmp.name, name)
            peft_adapter.write_adapter(path, shape, seed=seed)
            cls.lora_flags += ["--lora", f"{name}={path}"]
        cls.metrics_port = fleet.free_port()
        cls.cluster = fleet.Cluster(BIN_DIR, SHARED_DIR, "swap", 1, worker_extra=[
            *cls.lora_flags, "--max-loras", "1", "--max-cpu-loras", "4", "--metrics-port",
            str(cls.metrics_port)])
        cls.admin = admin_pb2_grpc.AdminStub(cls.cluster.channel)

    def generate(self, adapter):
        code, ids, _, _, details = self.stream(adapter)
        self.assertEqual(code, "OK", details)
        return ids

    def swaps(self):
        from ringserve.v1 import admin_pb2
        stats = self.admin.GetStats(admin_pb2.GetStatsRequest(), timeout=10)
        return stats.workers[0].adapter_swaps_total

    def test_adapters_in_host_memory_serve_and_mixed_requests_keep_their_bits(self):
        info = self.cluster.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        self.assertEqual(list(info.adapters), ["a", "b", "c"])
        offline = {}
        for adapter in ("a", "b", "c"):
            out = subprocess.run(
                [os.path.join(BIN_DIR, "ringserve-run"), *self.model_args, *self.lora_flags,
                 "--adapter", adapter, "--prompt-ids", ",".join(map(str, PROMPT)),
                 "--max-tokens", "12", "--ignore-eos", "--json"],
                check=True, capture_output=True, text=True).stdout
            offline[adapter] = json.loads(out.splitlines()[0])["generated_ids"]
        alone = {adapter: self.generate(adapter) for adapter in ("", "a", "b", "c")}
        for adapter in ("a", "b", "c"):
            self.assertEqual(alone[adapter], offline[adapter], f"adapter {adapter}")
        self.assertEqual(len({tuple(ids) for ids in alone.values()}), 4, alone)
        swaps = self.swaps()
        self.assertGreaterEqual(swaps, 2, "b and c were written into the slot")

        results = at_once(self.generate, ["a", "b", "c", ""] * 3)
        self.assertEqual(len(results), 12)
        for adapter, ids in results:
            self.assertEqual(ids, alone[adapter], f"adapter {adapter!r}")
        self.assertGreater(self.swaps(), swaps)
        cli = subprocess.run(
            [os.path.join(BIN_DIR, "ringserve-cli"), "--target", self.cluster.router.address,
             "stats"], capture_output=True, text=True, timeout=30)
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertRegex(cli.stdout, r"LoRA adapters: 0 requests waiting for a slot; \d+ written")
        with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        counted = [line for line in metrics.splitlines()
                   if line.startswith("ringserve_worker_adapter_swaps_total")]
        self.assertEqual(len(counted), 1, metrics)
        self.assertGreaterEqual(float(counted[0].split()[-1]), swaps)

    def test_loads_beyond_the_slots_go_to_host_memory_up_to_max_cpu_loras(self):
        from ringserve.v1 import admin_pb2
        path = os.path.join(self.tmp.name, "a")
        self.admin.LoadAdapter(admin_pb2.LoadAdapterRequest(name="d", path=path), timeout=60)
        try:
            self.assertEqual(self.generate("d"), self.generate("a"), "the same weights as a")
            with self.assertRaises(grpc.RpcError) as error:
                self.admin.LoadAdapter(admin_pb2.LoadAdapterRequest(name="e", path=path),
                                       timeout=60)
            self.assertEqual(error.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("--max-cpu-loras", error.exception.details())
        finally:
            self.admin.UnloadAdapter(admin_pb2.UnloadAdapterRequest(name="d"), timeout=60)


class LibraryTest(AdapterCluster):
    """One worker with one LoRA slot and a directory of adapters (--lora-dir) it finds by
    name when a request first names one, holding two at a time (--max-cpu-loras 2)."""

    @classmethod
    def setUpClass(cls):
        shape = cls.start_class()
        cls.library = os.path.join(cls.tmp.name, "library")
        for seed, name in enumerate(("x", "y", "z"), start=1):
            peft_adapter.write_adapter(os.path.join(cls.library, name), shape, seed=seed)
        cls.metrics_port = fleet.free_port()
        cls.cluster = fleet.Cluster(BIN_DIR, SHARED_DIR, "library", 1, worker_extra=[
            "--lora-dir", cls.library, "--max-loras", "1", "--max-cpu-loras", "2",
            "--metrics-port", str(cls.metrics_port)])

    def test_adapters_are_found_by_name_and_the_least_recently_used_makes_room(self):
        info = self.cluster.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        self.assertEqual(list(info.adapters), [])
        outputs = {}
        for name in ("x", "y"):
            code, ids, _, _, details = self.stream(name)
            self.assertEqual(code, "OK", details)
            offline = subprocess.run(
                [os.path.join(BIN_DIR, "ringserve-run"), *self.model_args, "--lora",
                 f"{name}={os.path.join(self.library, name)}", "--adapter", name,
                 "--prompt-ids", ",".join(map(str, PROMPT)), "--max-tokens", "12",
                 "--ignore-eos", "--json"], check=True, capture_output=True, text=True).stdout
            self.assertEqual(ids, json.loads(offline.splitlines()[0])["generated_ids"], name)
            outputs[name] = ids
        self.assertNotEqual(outputs["x"], outputs["y"])
        # Concurrent requests for an adapter not yet found share one find.
        results = at_once(lambda name: self.stream(name)[:2], ["z"] * 4)
        self.assertEqual({code for _, (code, _) in results}, {"OK"})
        self.assertEqual(len({tuple(ids) for _, (_, ids) in results}), 1)
        info = self.cluster.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        self.assertEqual(list(info.adapters), ["y", "z"], "x, used least recently, made room")
        code, ids, _, _, details = self.stream("x")
        self.assertEqual((code, ids), ("OK", outputs["x"]), details)
        with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            metrics = dict(line.rsplit(" ", 1) for line in response.read().decode().splitlines()
                           if line.startswith("ringserve_worker_adapter"))
        self.assertGreaterEqual(float(metrics["ringserve_worker_adapters_found_total"]), 4)
        self.assertGreaterEqual(float(metrics["ringserve_worker_adapter_evictions_total"]), 2)

    def test_names_outside_the_library_are_refused_and_serving_goes_on(self):
        for name, code in (("missing", "NOT_FOUND"), ("..", "INVALID_ARGUMENT"),
                           (".hidden", "INVALID_ARGUMENT")):
            got, _, _, _, details = self.stream(name)
            self.assertEqual(got, code, (name, details))
        self.assertEqual(self.stream("y")[0], "OK")

    def test_the_worker_refuses_a_library_without_slots(self):
        run = subprocess.run(
            [os.path.join(BIN_DIR, "ringserve-worker"), *self.model_args, "--lora-dir",
             self.library, "--port", "0"], capture_output=True, text=True, timeout=30)
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertIn("--max-loras", run.stderr)


class RuntimeLoadingTest(AdapterCluster):
    """Two workers with two LoRA slots of rank 8 each, "a" loaded at start: adapters loaded
    and unloaded through the router act on both workers, and a loaded one computes what the
    same adapter given at start computes."""

    @classmethod
    def setUpClass(cls):
        from ringserve.v1 import admin_pb2_grpc
        shape = cls.start_class()
        cls.a = os.path.join(cls.tmp.name, "a")
        cls.b = os.path.join(cls.tmp.name, "b")
        peft_adapter.write_adapter(cls.a, shape, seed=1)
        peft_adapter.write_adapter(cls.b, shape, rank=8, targets=("q_proj", "v_proj"), seed=2)
        cls.cluster = fleet.Cluster(BIN_DIR, SHARED_DIR, "dyn", 2, worker_extra=[
            "--lora", f"a={cls.a}", "--max-loras", "2", "--max-lora-rank", "8"])
        cls.admin = admin_pb2_grpc.AdminStub(cls.cluster.channel)

    def code_of(self, call, request):
        try:
            call(request, timeout=60)
            return "OK"
        except grpc.RpcError as e:
            return e.code().name

    def test_load_serve_unload(self):
        from ringserve.v1 import admin_pb2
        info = self.cluster.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        self.assertEqual(list(info.adapters), ["a"])
        self.assertEqual(self.stream("b")[0], "NOT_FOUND")
        loaded = self.admin.LoadAdapter(admin_pb2.LoadAdapterRequest(name="b", path=self.b),
                                        timeout=60)
        self.assertEqual(sorted(loaded.worker_ids), ["dyn0", "dyn1"])
        info = self.cluster.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        self.assertEqual(list(info.adapters), ["a", "b"])
        code, ids, _, _, details = self.stream("b")
        self.assertEqual(code, "OK", details)
        offline = subprocess.run(
            [os.path.join(BIN_DIR, "ringserve-run"), *self.model_args, "--lora", f"a={self.a}",
             "--lora", f"b={self.b}", "--adapter", "b", "--prompt-ids",
             ",".join(map(str, PROMPT)), "--max-tokens", "12", "--ignore-eos", "--json"],
            check=True, capture_output=True, text=True).stdout
        self.assertEqual(ids, json.loads(offline.splitlines()[0])["generated_ids"],
                         "loaded while serving, the adapter computes what it does from the start")
        for request, code in (
                (admin_pb2.LoadAdapterRequest(name="c", path=self.b), "RESOURCE_EXHAUSTED"),
                (admin_pb2.LoadAdapterRequest(name="b", path=self.b), "ALREADY_EXISTS"),
                (admin_pb2.LoadAdapterRequest(name="bad name", path=self.b), "INVALID_ARGUMENT")):
            self.assertEqual(self.code_of(self.admin.LoadAdapter, request), code, request.name)
        cli = subprocess.run(
            [os.path.join(BIN_DIR, "ringserve-cli"), "--target", self.cluster.router.address,
             "unload-adapter", "--name", "b"], capture_output=True, text=True, timeout=60)
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertEqual(self.stream("b")[0], "NOT_FOUND")
        self.assertEqual(self.code_of(self.admin.UnloadAdapter,
                                      admin_pb2.UnloadAdapterRequest(name="b")), "NOT_FOUND")
        self.assertEqual(self.code_of(self.admin.LoadAdapter, admin_pb2.LoadAdapterRequest(
            name="c", path=os.path.join(self.tmp.name, "missing"))), "NOT_FOUND")
        cli = subprocess.run(
            [os.path.join(BIN_DIR, "ringserve-cli"), "--target", self.cluster.router.address,
             "load-adapter", "--name", "c", "--path", self.b], capture_output=True, text=True,
            timeout=60)
        self.assertEqual(cli.returncode, 0, cli.stderr)
        code, c_ids, _, _, details = self.stream("c")
        self.assertEqual((code, c_ids), ("OK", ids), "the same adapter again, under another name")
        self.assertEqual(self.stream("a")[0], "OK")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[4:])
