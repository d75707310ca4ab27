"""Soak under faults: a mixed load through the router onto 3 workers for
$RINGSERVE_SOAK_SECONDS (default 60) with one worker killed (-9) and restarted midway.

Kinds of request, each run by its own client thread: plain streams, multi-turn
conversations (append), forks, client cancellations mid-stream, slow readers (through the
router, where flow control absorbs them) and stalled readers (straight to a worker with a
small receive window, so --max-pending-tokens cancels them), oversized prompts and malformed
requests. Every call has a deadline. Every request must end with its complete output or the
status the API documents for it; retriable statuses only around the kill. Workers keep a
small KV host tier that cycles all along (the surviving ones must have used it). Afterwards,
with every session closed, each worker holds no KV blocks and the surviving workers' RSS is within
10% of its value at the kill, well past warm-up. Every worker grows once by about 7 MB and is
flat after it (likely a thread's first malloc arena), sometimes only after the pool has
cycled (8 s after a 20 s warm-up in one CI run); the later baseline leaves the last 60% of
the run to show a leak.

usage: soak_test.py BIN_DIR PROTO_DIR SHARED_DIR [unittest args]
"""
import os
import random
import resource
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
from ringserve.v1 import inference_pb2_grpc as rpc  # noqa: E402

SOAK_SECONDS = float(os.environ.get("RINGSERVE_SOAK_SECONDS", "60"))
MAX_PENDING_TOKENS = 64
# 128 blocks of 16 tokens: a small pool whose blocks are reused all the time, and which
# warm-up goes through entirely, so that all its pages count in the RSS baseline. The same
# for the KV cache's host tier: 1 MiB (some 50-65 blocks of the tiny models) keeps and
# forgets evicted blocks all the time.
WORKER_FLAGS = ["--min-step-ms", "5", "--kv-blocks", "128", "--kv-host-memory", "1MiB",
                "--max-pending-tokens", str(MAX_PENDING_TOKENS)]
STREAM_DEADLINE_S = 60
UNARY_DEADLINE_S = 10
RSS_TOLERANCE = 0.10
INVALID, NOT_FOUND = "INVALID_ARGUMENT", "NOT_FOUND"
# What a turn gets when its session's worker died (NOT_FOUND) or it reached a stale copy
# (FAILED_PRECONDITION): the client resends the whole context (inference.proto).
MOVED = ("NOT_FOUND", "FAILED_PRECONDITION")


def tokens(rng, n):
    return [rng.randrange(3, 500) for _ in range(n)]


def cpu_seconds(pid):
    """User + system CPU time of a process (from /proc/PID/stat), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Soak(unittest.TestCase):
    def setUp(self):
        self.cluster = fleet.Cluster(BIN_DIR, SHARED_DIR, "k", 3, worker_extra=WORKER_FLAGS)
        self.addCleanup(self.cluster.close)
        self.stub = self.cluster.stub
        info = self.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=UNARY_DEADLINE_S)
        # stories260K's 512 tokens, or make-tiny's 2048 without ../shared.
        self.vocab, self.context = info.vocab_size, info.context_length
        self.tally = fleet.Tally()
        self.stop = threading.Event()
        self.sessions = set()  # every session id any request named: closed at the end
        self.lock = threading.Lock()
        self.kill_window = None  # (killed, rejoined + grace), monotonic seconds
        self.late = []  # (kind, outcome, start, end) of statuses only a kill explains

    # ---- outcome bookkeeping ----

    def note(self, kind, result, start, allowed=(), problem=None):
        """Counts one request. `allowed`: the outcomes besides "complete" this kind expects
        at any time; retriable statuses and moved sessions ("moved(CODE)") are checked against
        the kill window once the run is over; anything else is a problem."""
        end = time.monotonic()
        if result == "complete" or result in allowed:
            self.tally.add(kind, result)
        elif result in fleet.RETRIABLE or result.startswith("moved("):
            self.tally.add(kind, result)
            with self.lock:
                self.late.append((kind, result, start, end))
        else:
            self.tally.add(kind, result, problem or result)

    def generate(self, kind, request, allowed=(), stub=None, **stream_args):
        """Streams one request and counts it; returns (code, ids, final)."""
        if request.session_id:
            self.sessions.add(request.session_id)
        start = time.monotonic()
        code, ids, final, _, details = fleet.stream(stub or self.stub, request, STREAM_DEADLINE_S,
                                                    **stream_args)
        result, problem = fleet.outcome(code, ids, final, request.stop.max_tokens, details)
        if request.append and result in MOVED:
            result = f"moved({result})"
        self.note(kind, result, start, allowed, problem)
        return code, ids, final

    def unary(self, kind, method, request):
        """A unary call on an existing session (Fork); returns the reply or None.
        NOT_FOUND means the session's worker died, so it is checked against the kill."""
        start = time.monotonic()
        try:
            reply = method(request, timeout=UNARY_DEADLINE_S)
            self.note(kind, "complete", start)
            return reply
        except grpc.RpcError as e:
            code = e.code().name
            self.note(kind, f"moved({code})" if code == NOT_FOUND else code, start,
                      problem=f"{code}: {e.details()}")
            return None

    def close(self, session):
        """Closes every copy of a session (a turn resent after a move can leave two); the
        NOT_FOUND that says none is left is not counted. Right after a client cancelled a
        turn the worker may not have seen the cancellation yet: the session is still busy
        (FAILED_PRECONDITION) for a step or so, and the close is tried again."""
        for _ in range(50):
            start = time.monotonic()
            try:
                self.stub.CloseSession(pb.CloseSessionRequest(session_id=session),
                                       timeout=UNARY_DEADLINE_S)
                self.note("close", "complete", start)
            except grpc.RpcError as e:
                details = e.details() or ""
                if e.code() == grpc.StatusCode.FAILED_PRECONDITION and "busy" in details:
                    self.note("close", "busy", start, allowed=("busy",))
                    time.sleep(0.02)
                    continue
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    self.note("close", e.code().name, start, problem=f"{session}: {details}")
                return
        self.tally.add("close", "error", f"{session} still busy after 50 tries")

    # ---- the clients: one kind each, until stopped ----

    def run_streams(self, rng):
        # Whole-context turns on a few sessions of this thread's own (two requests at once
        # on one session would be FAILED_PRECONDITION: busy).
        own = threading.current_thread().name
        session = "" if rng.random() < 0.5 else f"{own}-{rng.randrange(40)}"
        sampling = (pb.SamplingParams(temperature=0) if rng.random() < 0.5 else
                    pb.SamplingParams(temperature=0.8, top_p=0.9, seed=rng.randrange(1 << 32)))
        r = fleet.generate_request(session, tokens(rng, rng.randrange(4, 64)),
                                   rng.randrange(8, 96), sampling=sampling,
                                   logprobs=rng.choice((0, 0, 5)))
        self.generate("stream", r)

    def run_conversation(self, rng):
        conversation = fleet.Conversation(f"cv-{rng.randrange(1 << 40)}",
                                          tokens(rng, rng.randrange(8, 48)), max_context=360)
        while not conversation.done() and not self.stop.is_set():
            r = conversation.request(tokens(rng, rng.randrange(1, 12)), rng.randrange(8, 48))
            code, ids, final = self.generate("conversation", r)
            conversation.update(r, code, ids, final)
        self.close(conversation.session)

    def run_fork(self, rng):
        parent = f"fk-{rng.randrange(1 << 40)}"
        r = fleet.generate_request(parent, tokens(rng, rng.randrange(16, 64)), 8)
        code, _, _ = self.generate("fork", r)
        forks = []
        if code == "OK":
            reply = self.unary("fork", self.stub.Fork,
                               pb.ForkRequest(session_id=parent, num_forks=rng.randrange(1, 5)))
            forks = list(reply.session_ids) if reply else []
        for session in forks:
            self.sessions.add(session)
            self.generate("fork", fleet.generate_request(session, tokens(rng, 3),
                                                         rng.randrange(4, 32), append=True))
        for session in [parent] + forks:
            self.close(session)

    def run_cancel(self, rng):
        session = "" if rng.random() < 0.5 else f"cx-{rng.randrange(1 << 40)}"
        r = fleet.generate_request(session, tokens(rng, rng.randrange(4, 32)),
                                   rng.randrange(200, 400))
        self.generate("cancel", r, allowed=("CANCELLED",), cancel_after=rng.randrange(1, 30))
        if session:
            self.close(session)

    def run_slow(self, rng):
        if rng.random() < 0.5:  # through the router: flow control holds the stream back
            r = fleet.generate_request("", tokens(rng, 8), rng.randrange(40, 160))
            self.generate("slow", r, allowed=("RESOURCE_EXHAUSTED",),
                          read_delay_s=rng.uniform(0.005, 0.02))
        else:  # a stalled reader with a 1 KiB window: the pending-token limit cancels it
            r = fleet.generate_request("", tokens(rng, 8), 300, logprobs=20)
            self.generate("stalled", r, allowed=("RESOURCE_EXHAUSTED",), stub=self.stalled_stub,
                          stall_after_first_s=1.0)

    def bad_cases(self):
        """(kind, method, request, expected code, a word the message must contain)."""
        g, ids = pb.GenerateRequest, pb.TokenIds(ids=[5, 6])

        def stop(**kw):
            return pb.StopCriteria(**kw)

        def samp(**kw):
            return pb.SamplingParams(**kw)

        generate, fork, close = self.stub.Generate, self.stub.Fork, self.stub.CloseSession
        cases = [
            (g(tokens=ids, stop=stop(max_tokens=-5)), INVALID, "max_tokens"),
            (g(tokens=ids, stop=stop(max_tokens=2**31 - 1)), INVALID, "max_tokens"),
            (g(tokens=ids, sampling=samp(temperature=-1)), INVALID, "temperature"),
            (g(tokens=ids, sampling=samp(top_p=1.5)), INVALID, "top_p"),
            (g(tokens=ids, sampling=samp(top_k=-1)), INVALID, "top_k"),
            (g(tokens=ids, logprobs=50), INVALID, "logprobs"),
            (g(tokens=pb.TokenIds(ids=[self.vocab + 5])), INVALID, "tokens"),
            (g(tokens=pb.TokenIds(ids=[-1])), INVALID, "tokens"),
            (g(tokens=ids, stop=stop(stop_token_ids=[self.vocab])), INVALID, "stop_token_ids"),
            (g(tokens=ids, stop=stop(stop=[b""])), INVALID, "stop"),
            (g(), INVALID, "input"),
            (g(tokens=ids, append=True), INVALID, "append"),
            (g(tokens=ids, append=True, session_id="never-made"), NOT_FOUND, "session_id"),
            (g(tokens=ids, session_id="s" * 300), INVALID, "session_id"),
            (g(tokens=ids, request_id="r" * 200), INVALID, "request_id"),
            (g(text=b"\xc3\x28 not utf-8"), INVALID, "text"),
        ]
        n = self.context
        oversized = [  # beyond the model's context
            (g(tokens=pb.TokenIds(ids=[5] * (n + 88))), INVALID, "input"),
            (g(tokens=pb.TokenIds(ids=[5] * (n - 12)), stop=stop(max_tokens=20)), INVALID,
             "max_tokens"),
            (g(text=b"once upon a time " * (n // 2 + 10)), INVALID, "input"),
        ]
        # Not here: megabyte prompts. Each one that reaches a worker (the router passes up to
        # --max-request-bytes, 16 MiB) leaves ~10 MB with glibc's arena of the thread that
        # parsed it (bounded, not a leak), which would swamp the RSS comparison;
        # integration.service sends one.
        unary = [
            (fork, pb.ForkRequest(session_id="never-made", num_forks=2), NOT_FOUND, "session_id"),
            (close, pb.CloseSessionRequest(session_id="never-made"), NOT_FOUND, "session_id"),
        ]
        return ([("bad", generate, r, c, w) for r, c, w in cases]
                + [("oversized", generate, r, c, w) for r, c, w in oversized]
                + [("bad", m, r, c, w) for m, r, c, w in unary])

    def run_bad(self, rng):
        for kind, method, request, code, word in self.bad_cases():
            if self.stop.is_set():
                return
            start = time.monotonic()
            try:
                result = method(request, timeout=UNARY_DEADLINE_S)
                if isinstance(request, pb.GenerateRequest):
                    list(result)  # the stream's status
                got, details = "OK", ""
            except grpc.RpcError as e:
                got, details = e.code().name, e.details() or ""
            problem = None
            if got == code and word not in details:
                got, problem = "unclear", f"{code} without '{word}': {details}"
            self.note(kind, got, start, allowed=(code,),
                      problem=problem or f"{request} -> {got}: {details} (expected {code})")
            time.sleep(0.05)
        # A session one token short of the context, then a turn that cannot fit.
        session = f"ov-{rng.randrange(1 << 40)}"
        code, _, _ = self.generate("oversized",
                                   fleet.generate_request(session, [5] * (self.context - 12), 11))
        if code == "OK":
            self.generate("oversized", fleet.generate_request(session, [6] * 20, 4, append=True),
                          allowed=(INVALID,))
        self.close(session)

    def client(self, kind, run, seed):
        rng = random.Random(seed)
        while not self.stop.is_set():
            try:
                run(rng)
            except Exception as e:  # noqa: BLE001 (a broken rule, counted, never a hang)
                self.tally.add(kind, "error", f"{type(e).__name__}: {e}")
                time.sleep(0.1)

    # ---- the run ----

    def worker_rss(self):
        return [fleet.rss_kib(w.proc.pid) for w in self.cluster.workers]

    def sample(self, trace, started, interval_s):
        """Every interval_s: (seconds since start, each worker's RSS in KiB and threads)."""
        while not self.stop.wait(interval_s):
            try:
                trace.append((time.monotonic() - started, self.worker_rss(),
                              [fleet.num_threads(w.proc.pid) for w in self.cluster.workers]))
            except (OSError, RuntimeError):  # the killed worker, between kill and restart
                pass

    def test_mixed_load_with_a_kill(self):
        stalled_target = self.cluster.workers[0]  # survives the kill
        small_window = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]
        stalled_channel = grpc.insecure_channel(stalled_target.address, options=small_window)
        self.addCleanup(stalled_channel.close)
        self.stalled_stub = rpc.InferenceStub(stalled_channel)
        kinds = [("stream", self.run_streams), ("stream", self.run_streams),
                 ("conversation", self.run_conversation),
                 ("conversation", self.run_conversation), ("fork", self.run_fork),
                 ("cancel", self.run_cancel), ("slow", self.run_slow), ("bad", self.run_bad)]
        started = time.monotonic()
        processes = self.cluster.workers + [self.cluster.router]
        cpu_before = [cpu_seconds(p.proc.pid) for p in processes]
        clients = [threading.Thread(target=self.client, args=(k, run, i), name=f"{k}{i}")
                   for i, (k, run) in enumerate(kinds)]
        trace = []
        clients.append(threading.Thread(target=self.sample, name="sampler",
                                        args=(trace, started, max(5.0, SOAK_SECONDS / 20))))
        for t in clients:
            t.start()

        # Warm-up: at least 20 s, and until every worker has written twice its pool's worth
        # of K/V (blocks are taken from the LRU end of the free list, so all have been used).
        def pools_cycled():
            return all(s.kv_cache.prompt_tokens_total - s.kv_cache.cache_hit_tokens_total
                       + s.generated_tokens_total
                       >= 2 * s.kv_cache.blocks_total * s.kv_cache.block_size_tokens
                       for s in self.cluster.stats())
        time.sleep(min(60.0, max(20.0, 0.15 * SOAK_SECONDS)))
        all_touched = fleet.wait_until(pools_cycled, 60, 0.5)
        rss_warm = self.worker_rss()
        warm_at = time.monotonic() - started

        # Kill -9 the last worker midway through the rest, restart it on its port.
        time.sleep(max(0.0, (SOAK_SECONDS - warm_at) * 0.4))
        victim = self.cluster.workers[2]
        rss_base = self.worker_rss()
        killed = time.monotonic()
        victim.kill9()
        time.sleep(1.0)
        restarted = self.cluster.restart(2)
        self.assertTrue(fleet.wait_until(lambda: restarted.address in self.cluster.healthy(), 15),
                        "the restarted worker never rejoined")
        rejoined = time.monotonic()
        self.kill_window = (killed, rejoined + 3.0)

        time.sleep(max(0.0, SOAK_SECONDS - (time.monotonic() - started)))
        self.stop.set()
        for t in clients:
            t.join(STREAM_DEADLINE_S + 30)
        hung = [t.name for t in clients if t.is_alive()]
        duration = time.monotonic() - started
        cpu_after = [cpu_seconds(p.proc.pid) for p in self.cluster.workers + [self.cluster.router]]
        cpu_before[2] = 0.0  # the restarted worker: its new process only

        # Drained: no request left anywhere, every session closed, so no block in use.
        idle = fleet.wait_until(lambda: all(s.running_requests == 0 and s.waiting_requests == 0
                                            for s in self.cluster.stats()), 10, 0.2)
        for session in sorted(self.sessions):
            self.close(session)
        fleet.wait_until(lambda: all(s.kv_cache.blocks_used == 0 for s in self.cluster.stats()),
                         5, 0.2)
        stats = self.cluster.stats()
        rss_after = self.worker_rss()

        self.report(duration, warm_at, all_touched, killed - started, rejoined - killed, stats,
                    (rss_warm, rss_base, rss_after), [b - a for a, b in zip(cpu_before, cpu_after)],
                    trace)
        self.assertEqual(hung, [], "client threads still running after the deadline")
        self.assertTrue(idle, "requests still running after the load stopped")
        self.assertEqual(self.tally.problems, [])
        late = [(k, o) for k, o, s, e in self.late
                if e < self.kill_window[0] or s > self.kill_window[1]]
        self.assertEqual(late, [], "retriable statuses or moved sessions away from the kill")
        self.assertEqual(len(stats), 3)
        for s in stats:
            self.assertEqual(s.kv_cache.blocks_used, 0, f"{s.worker_id}: {s}")
            self.assertEqual(s.sessions, 0, f"{s.worker_id}: {s}")
        # The host tier took evicted blocks all along (and gave some back) on the workers
        # that served the whole run.
        survivors = [s for s in stats if s.worker_id != "k2"]
        self.assertTrue(all(s.kv_cache.offloaded_blocks_total > 0 for s in survivors),
                        [s.kv_cache for s in survivors])
        for kind in {k for k, _ in kinds} - {"bad", "cancel"}:
            self.assertGreater(self.tally.total("complete", kind), 0, kind)
        self.assertGreater(self.tally.total("RESOURCE_EXHAUSTED", "stalled"), 0,
                           "no stalled reader hit --max-pending-tokens")
        self.assertGreater(self.tally.total("CANCELLED", "cancel"), 0)
        if fleet.sanitizer(self.cluster.workers[0].proc.pid) is not None:
            print("  RSS not compared: a sanitizer's allocator (ASan's quarantine) grows it")
            return
        for i in (0, 1):  # the survivors
            self.assertLessEqual(abs(rss_after[i] - rss_base[i]), RSS_TOLERANCE * rss_base[i],
                                 f"worker {i} RSS {rss_base[i]} -> {rss_after[i]} KiB")

    def report(self, duration, warm_at, all_touched, kill_at, down_s, stats, rss, cpu, trace):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"\nsoak: {duration:.0f} s (RINGSERVE_SOAK_SECONDS={SOAK_SECONDS:g}), 3 workers "
              f"({' '.join(WORKER_FLAGS)}) + router, {self.tally.total()} requests")
        print(f"  warm-up {warm_at:.1f} s (every KV block used once: {all_touched}); worker 2 "
              f"killed -9 at {kill_at:.1f} s, back in the ring {down_s:.2f} s later")
        print("  kind            total  outcomes")
        print(self.tally.summary())
        print("  KV blocks used after closing every session: "
              + ", ".join(f"{s.worker_id}={s.kv_cache.blocks_used} (sessions {s.sessions}, "
                          f"requests {s.requests_total}, preemptions {s.preemptions_total})"
                          for s in stats))
        print("  KV host tier: "
              + ", ".join(f"{s.worker_id}: {s.kv_cache.offloaded_blocks_total} blocks out, "
                          f"{s.kv_cache.host_hit_tokens_total} prompt tokens back, "
                          f"{s.kv_cache.host_blocks_stored} of {s.kv_cache.host_blocks_total} held"
                          for s in stats))
        print("  RSS after warm-up, at the kill -> after the load (KiB): "
              + ", ".join(f"k{i}: {w}, {a} -> {b} ({(b - a) * 100 / a:+.1f}%)"
                          + (" (restarted)" if i == 2 else "")
                          for i, (w, a, b) in enumerate(zip(*rss))))
        print("  CPU seconds: workers " + ", ".join(f"{c:.1f}" for c in cpu[:-1])
              + f" (k2 restarted: its new process only), router {cpu[-1]:.1f}, clients "
              f"{usage.ru_utime + usage.ru_stime:.1f}")
        print("  RSS KiB / threads of k0 k1 k2 over time: " + "; ".join(
            f"{t:.0f}s {'/'.join(map(str, r))} {'/'.join(map(str, n))}" for t, r, n in trace))
        for problem in self.tally.problems[:30]:
            print("  problem:", problem)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[4:]], verbosity=2)
