"""Drain and rolling restart: real ringserve-worker and ringserve-router processes on loopback.

SIGTERM on a worker turns its health NOT_SERVING, the router stops sending it new calls,
its in-flight streams finish whole, and it exits well before --drain-timeout-s. Then every
worker is restarted in turn under continuous load through the router, and no request is
lost: each one completes with its full output or ends with a retriable status.

usage: drain_test.py BIN_DIR PROTO_DIR SHARED_DIR [unittest args]
"""
import random
import sys
import tempfile
import threading
import time
import unittest

import fleet

BIN_DIR, PROTO_DIR, SHARED_DIR = sys.argv[1:4]
fleet.import_grpc_or_skip()
fleet.generate_modules(PROTO_DIR, tempfile.mkdtemp(prefix="ringserve-py-"))

import grpc  # noqa: E402
from ringserve.v1 import inference_pb2 as pb  # noqa: E402

DRAIN_TIMEOUT_S = 10
# Paced steps keep streams in flight long enough to be caught by a drain.
WORKER_FLAGS = ["--min-step-ms", "5", "--drain-timeout-s", str(DRAIN_TIMEOUT_S)]
request = fleet.generate_request


class Drain(unittest.TestCase):
    def test_sigterm_takes_a_worker_out_and_finishes_its_streams(self):
        cluster = fleet.Cluster(BIN_DIR, SHARED_DIR, "d", 3, worker_extra=WORKER_FLAGS)
        self.addCleanup(cluster.close)
        victim = cluster.workers[0]

        # Sessions the victim owns (the first turn of an idle fleet goes to the ring owner).
        owned = []
        for i in range(60):
            r = request(f"s{i}", [5, 6], 1)
            code, _, _, worker, details = fleet.stream(cluster.stub, r, 10)
            self.assertEqual(code, "OK", details)
            if worker == victim.name:
                owned.append(f"s{i}")
        self.assertGreaterEqual(len(owned), 6)

        # Long streams in flight on the victim: 4 x 400 tokens at >= 5 ms a step. They append,
        # so they go to the session's owner whatever its load (bounded loads would spread
        # whole-context calls).
        results = [None] * 4

        def long_stream(i):
            r = request(owned[i], [7, 8, 9], 400, append=True)
            results[i] = fleet.stream(cluster.stub, r, 60)

        streams = [threading.Thread(target=long_stream, args=(i,)) for i in range(4)]
        for t in streams:
            t.start()
        self.assertTrue(fleet.wait_until(lambda: cluster.worker_stats(0).running_requests == 4, 10))

        signalled = time.monotonic()
        victim.proc.send_signal(15)
        self.assertTrue(fleet.wait_until(lambda: fleet.health(victim.address) == "NOT_SERVING", 2))
        not_serving_s = time.monotonic() - signalled
        self.assertTrue(fleet.wait_until(lambda: victim.address not in cluster.healthy(), 5))
        out_of_ring_s = time.monotonic() - signalled

        # New calls for the victim's sessions go elsewhere, and none reaches the victim: a
        # call that did would be refused (draining) and retried, which the router logs.
        def tried_victim():
            return sum("retrying" in line and f"worker={victim.address} " in line
                       for line in cluster.router.log_text().splitlines())
        before = tried_victim()
        for session in owned[4:]:
            r = request(session, [4], 3)
            code, ids, final, worker, details = fleet.stream(cluster.stub, r, 10)
            self.assertEqual(code, "OK", details)
            self.assertTrue(fleet.complete_output(ids, final, 3))
            self.assertNotEqual(worker, victim.name)
        self.assertEqual(tried_victim(), before, "the router sent new calls to a draining worker")
        self.assertIsNone(victim.proc.poll(), "the victim exited before its streams ended")

        for t in streams:
            t.join(60)
        for code, ids, final, worker, details in results:
            self.assertEqual(code, "OK", details)
            self.assertEqual(worker, victim.name)
            self.assertTrue(fleet.complete_output(ids, final, 400), (len(ids), final))
        self.assertEqual(victim.proc.wait(DRAIN_TIMEOUT_S + 10), 0)
        exit_s = time.monotonic() - signalled
        print(f"drain: NOT_SERVING after {not_serving_s * 1000:.0f} ms, out of the router's ring "
              f"after {out_of_ring_s * 1000:.0f} ms, 4 streams x 400 tokens finished, exit after "
              f"{exit_s:.2f} s (drain timeout {DRAIN_TIMEOUT_S} s)")
        self.assertLess(exit_s, DRAIN_TIMEOUT_S)


class RollingRestart(unittest.TestCase):
    """Every worker is drained and replaced in turn while clients keep calling the router."""

    NUM_CLIENTS = 6

    def setUp(self):
        self.cluster = fleet.Cluster(BIN_DIR, SHARED_DIR, "r", 3, worker_extra=WORKER_FLAGS)
        self.addCleanup(self.cluster.close)
        self.tally = fleet.Tally()
        self.stop = threading.Event()
        self.sessions = set()

    def record(self, kind, code, ids, final, max_tokens, details):
        """Complete, retriable, or lost (a non-retriable status, or output cut short)."""
        result, problem = fleet.outcome(code, ids, final, max_tokens, details)
        if result == "complete" or result in fleet.RETRIABLE:
            self.tally.add(kind, result)
        else:
            self.tally.add(kind, "lost", problem)

    def client(self, index):
        """One-off calls, whole-context session turns and appended conversations in turn."""
        rng = random.Random(index)
        conversation = None
        while not self.stop.is_set():
            max_tokens = rng.randrange(20, 80)
            kind = ("one_off", "turn", "conversation")[rng.randrange(3)]
            prompt = [rng.randrange(3, 500) for _ in range(rng.randrange(4, 40))]
            if kind == "one_off":
                r = request("", prompt, max_tokens)
            elif kind == "turn":
                r = request(f"c{index}-t{rng.randrange(20)}", prompt, max_tokens)
            else:
                if conversation is None or conversation.done():
                    conversation = fleet.Conversation(f"c{index}-{rng.randrange(1 << 30)}",
                                                      prompt, max_context=300)
                r = conversation.request(prompt[:4], max_tokens)
            if r.session_id:
                self.sessions.add(r.session_id)
            code, ids, final, _, details = fleet.stream(self.cluster.stub, r, 30)
            resend = conversation.update(r, code, ids, final) if kind == "conversation" else None
            if resend:  # the session's worker restarted: documented, and the client recovers
                self.tally.add(kind, resend)
            else:
                self.record(kind, code, ids, final, max_tokens, details)

    def test_every_worker_restarted_under_load_loses_no_request(self):
        clients = [threading.Thread(target=self.client, args=(i,)) for i in range(self.NUM_CLIENTS)]
        for t in clients:
            t.start()
        time.sleep(2)
        exits, running = [], []
        for i in range(len(self.cluster.workers)):
            old = self.cluster.workers[i]
            # Drain it while it streams, so that its in-flight calls must finish.
            fleet.wait_until(lambda: self.cluster.worker_stats(i).running_requests > 0, 5, 0.01)
            running.append(self.cluster.worker_stats(i).running_requests)
            signalled = time.monotonic()
            old.proc.send_signal(15)
            self.assertEqual(old.proc.wait(DRAIN_TIMEOUT_S + 10), 0)
            exits.append(time.monotonic() - signalled)
            old.terminate()
            new = self.cluster.restart(i)
            self.assertTrue(fleet.wait_until(lambda: new.address in self.cluster.healthy(), 10),
                            f"{new.name} never rejoined the router's ring")
            time.sleep(1.5)
        self.stop.set()
        for t in clients:
            t.join(60)
            self.assertFalse(t.is_alive(), "a client call hung")
        for session in self.sessions:  # leave nothing pinned (the processes end anyway)
            try:
                self.cluster.stub.CloseSession(pb.CloseSessionRequest(session_id=session),
                                               timeout=5)
            except grpc.RpcError:  # NOT_FOUND: moved or never made
                pass
        completed = self.tally.total("complete")
        print(f"rolling restart of 3 workers: {completed} requests complete, "
              f"{self.tally.total() - completed} not; streams running at SIGTERM {running}, "
              "exits after " + ", ".join(f"{s:.2f} s" for s in exits)
              + f" (drain timeout {DRAIN_TIMEOUT_S} s)")
        print(self.tally.summary())
        self.assertEqual(self.tally.total("lost"), 0, "\n".join(self.tally.problems[:20]))
        self.assertGreater(completed, 100)
        self.assertTrue(all(s < DRAIN_TIMEOUT_S for s in exits), exits)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[4:]], verbosity=2)
