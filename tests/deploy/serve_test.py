#!/usr/bin/env python3
"""Runs deploy/local/serve.sh (--no-build, one CPU worker each) against the built binaries.

Two instances on different --port values both start (their /metrics ports follow --port;
they were fixed at 9100 and up, so the second failed); the router listens on loopback, as
the banner says (it listened on 0.0.0.0); a worker that dies, or one that never starts,
ends serve.sh with a non-zero status naming it (it exited 0), while SIGTERM still drains
and exits 0; without --cpu-workers, one CPU worker where two copies of the weights would not
fit the memory available (the second used to fail its start and stop everything).

Exit 77 (ctest SKIP_RETURN_CODE) when the binaries are absent.
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SERVE = os.path.join(ROOT, "deploy", "local", "serve.sh")
BIN = os.environ.get("RINGSERVE_BIN_DIR", "")
SKIP = 77


def ports_free(ports):
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base_port(offsets):
    """A port P with P + every offset free on loopback (serve.sh derives its ports from P)."""
    for _ in range(50):
        base = random.randrange(20000, 40000)
        if ports_free(base + o for o in offsets):
            return base
    raise RuntimeError("no free ports")


class Serve:
    """One serve.sh process, with its own state directory, on CPU workers only."""

    def __init__(self, *args, workers=("--cpu-workers", "1"), env_extra=None):
        self.state = tempfile.mkdtemp(prefix="ringserve-serve-test-")
        env = dict(os.environ, RINGSERVE_BUILD_DIR=os.path.dirname(BIN),
                   RINGSERVE_STATE_DIR=self.state, **(env_extra or {}))
        # A machine with a GPU would get GPU workers; these checks are about the script.
        env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep)
                                      if not os.path.exists(os.path.join(d, "nvidia-smi")))
        self.proc = subprocess.Popen([SERVE, "--no-build", *workers, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.out = ""
        for line in self.proc.stdout:
            self.out += line
            if line.startswith("Ctrl-C stops everything"):
                break

    def serving(self):
        return "ringserve is serving on" in self.out

    def children(self):
        """{command name: pid} of serve.sh's child processes."""
        pids = {}
        for task in os.listdir(f"/proc/{self.proc.pid}/task"):
            with open(f"/proc/{self.proc.pid}/task/{task}/children") as f:
                for pid in f.read().split():
                    with open(f"/proc/{pid}/comm") as comm:
                        pids[comm.read().strip()] = int(pid)
        return pids

    def finish(self, timeout=30):
        """Waits for serve.sh to exit; returns (status, stderr)."""
        out, err = self.proc.communicate(timeout=timeout)
        self.out += out
        return self.proc.returncode, err

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish()


def metrics_answer(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.status == 200


def completion_answers(port):
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 4}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status == 200 and json.load(response)["usage"]["completion_tokens"] == 4


class ServeScript(unittest.TestCase):
    def test_two_instances_on_different_ports_serve_side_by_side_on_loopback(self):
        # Instance b's --port is a's + 100: its router, worker and /metrics ports follow.
        base = free_base_port([0, 1, 100, 101, 1000, 1001, 1100, 1101, 2000, 2100])
        a = Serve("--port", str(base))
        b = Serve("--port", str(base + 100))
        try:
            for serve, port in ((a, base), (b, base + 100)):
                self.assertTrue(serve.serving(), serve.out)
                # The router binds what the banner says: loopback unless --host says otherwise.
                self.assertIn(f"ringserve-router listening on 127.0.0.1:{port}\n", serve.out)
                self.assertIn(f"ringserve is serving on 127.0.0.1:{port} (router)", serve.out)
                self.assertIn(f"http://127.0.0.1:{port + 1000}/metrics", serve.out)
                self.assertTrue(metrics_answer(port + 1000))  # the router's
                self.assertTrue(metrics_answer(port + 1001))  # worker-0's
                # OpenAI's HTTP API at the router, on --port + 2000.
                self.assertIn(f"OpenAI API: http://127.0.0.1:{port + 2000}/v1", serve.out)
                self.assertTrue(completion_answers(port + 2000))
        finally:
            statuses = [a.stop(), b.stop()]
        for status, err in statuses:
            self.assertEqual(status, 0, err)  # SIGTERM: drained, a normal stop

    def test_flags_after_a_double_dash_go_to_every_worker(self):
        base = free_base_port([0, 1, 1000, 1001, 2000])
        serve = Serve("--port", str(base), "--", "--kv-dtype", "bf16")
        try:
            self.assertTrue(serve.serving(), serve.out)
            # the worker's banner: the KV dtype the flag set, then the CPU kernels' ISA
            self.assertRegex(serve.out,
                             r"KV blocks of 16 tokens, bf16, (avx2|avx512|avx512-vnni)\)")
        finally:
            status, err = serve.stop()
        self.assertEqual(status, 0, err)
        # The flags serve.sh sets itself are refused after --, before anything starts.
        refused = Serve("--port", str(base), "--", "--max-seqs", "8", "--port=1")
        status, err = refused.finish()
        self.assertEqual(status, 2, err)
        self.assertIn("--port=1 is serve.sh's to set", err)

    def test_a_worker_that_dies_ends_serve_sh_with_its_name_and_status(self):
        base = free_base_port([0, 1, 1000, 1001, 2000])
        serve = Serve("--port", str(base))
        try:
            self.assertTrue(serve.serving(), serve.out)
            worker = serve.children()["ringserve-worke"]  # comm keeps 15 characters
            os.kill(worker, signal.SIGKILL)
            status, err = serve.finish()
        finally:
            serve.stop()
        self.assertEqual(status, 1, err)
        self.assertIn(f"worker-0 (pid {worker}) exited with status 137 (SIGKILL)", err)

    def test_a_worker_that_cannot_start_ends_serve_sh_with_its_status(self):
        base = free_base_port([0, 1, 1000, 1001, 2000])
        serve = Serve("--port", str(base), "--kv-memory", "1.5")
        status, err = serve.finish()
        self.assertFalse(serve.serving())
        self.assertNotEqual(status, 0, err)
        self.assertIn("worker-0 exited with status 2 before listening", err)
        self.assertTrue(re.search(r"--kv-memory: '1\.5'", err), err)

    def test_cpu_workers_follow_the_memory_unless_told(self):
        # The tiny model's weights are ~1 MiB: two copies and 512 MiB fit in 600 MiB, not
        # in 400 MiB, where serve.sh starts one worker and says why; --cpu-workers 2 insists.
        for available, flags, want in (("629145600", (), 2), ("419430400", (), 1),
                                       ("419430400", ("--cpu-workers", "2"), 2)):
            with self.subTest(available=available, flags=flags):
                base = free_base_port([0, 1, 2, 1000, 1001, 1002, 2000])
                serve = Serve("--port", str(base), workers=flags,
                              env_extra={"RINGSERVE_SERVE_AVAILABLE_BYTES": available})
                try:
                    self.assertTrue(serve.serving(), serve.out)
                    self.assertIn(f"with {want} workers (" + " ".join(["cpu"] * want) + ")",
                                  serve.out)
                finally:
                    status, err = serve.stop()
                self.assertEqual(status, 0, err)
                self.assertEqual("serve.sh: one CPU worker: two would hold" in err,
                                 want == 1 and not flags, err)


if __name__ == "__main__":
    if not os.path.exists(os.path.join(BIN, "ringserve-worker")):
        print(f"no ringserve-worker in {BIN!r}: skipping", file=sys.stderr)
        sys.exit(SKIP)
    unittest.main(verbosity=2)
