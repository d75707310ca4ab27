"""Integration tests of the service: real ringserve-worker and ringserve-router processes on
loopback, driven through the public gRPC API.

usage: service_test.py BIN_DIR PROTO_DIR SHARED_DIR [unittest args]
"""
import concurrent.futures
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import fleet

BIN_DIR, PROTO_DIR, SHARED_DIR = sys.argv[1:4]
fleet.import_grpc_or_skip()
MODULES_DIR = tempfile.mkdtemp(prefix="ringserve-py-")
fleet.generate_modules(PROTO_DIR, MODULES_DIR)
EXAMPLE = os.path.join(PROTO_DIR, "..", "deploy", "python", "ringserve_client.py")

import grpc  # noqa: E402
from ringserve.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402
from ringserve.v1 import inference_pb2 as pb  # noqa: E402
from ringserve.v1 import inference_pb2_grpc as rpc  # noqa: E402


def generate(stub, session, tokens, max_tokens, append=False, expected=None, timeout=30):
    """Runs one Generate; returns (token ids, final, worker from metadata)."""
    request = pb.GenerateRequest(session_id=session, tokens=pb.TokenIds(ids=tokens), append=append,
                                 stop=pb.StopCriteria(max_tokens=max_tokens, ignore_eos=True),
                                 sampling=pb.SamplingParams(temperature=0))
    if expected is not None:
        request.expected_history_tokens = expected
    call = stub.Generate(request, timeout=timeout)
    ids, final = [], None
    for message in call:
        ids.extend(message.token_ids)
        if message.HasField("final"):
            final = message.final
    worker = dict(call.initial_metadata()).get("x-ringserve-worker")
    return ids, final, worker


class Fleet(unittest.TestCase):
    """Three workers behind one router, started once for the tests of this class."""

    @classmethod
    def setUpClass(cls):
        cls.workers = [fleet.start_worker(BIN_DIR, SHARED_DIR, f"w{i}") for i in range(3)]
        cls.router = fleet.start_router(BIN_DIR, cls.workers)
        cls.channel = grpc.insecure_channel(cls.router.address)
        cls.stub = rpc.InferenceStub(cls.channel)
        info = cls.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        cls.vocab, cls.context = info.vocab_size, info.context_length
        assert fleet.wait_until(cls.all_serving, 10), "workers never became healthy"

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.router.terminate()
        for w in cls.workers:
            w.terminate()

    @classmethod
    def all_serving(cls):
        try:
            stats = admin_pb2_grpc.AdminStub(cls.channel).GetStats(admin_pb2.GetStatsRequest(),
                                                                   timeout=5)
            return len(stats.workers) == 3
        except grpc.RpcError:
            return False

    def tokens(self, n, rng):
        return [rng.randrange(3, self.vocab) for _ in range(n)]

    def worker_stub(self, worker):
        channel = grpc.insecure_channel(worker.address)
        self.addCleanup(channel.close)
        return rpc.InferenceStub(channel), admin_pb2_grpc.AdminStub(channel)

    def test_sessions_stay_on_one_worker_and_later_turns_hit_the_cache(self):
        def conversation(index):
            rng = random.Random(index)
            session = f"conv-{index}"
            ids, final, worker = generate(self.stub, session, self.tokens(24, rng), 6)
            workers, cached = [worker, final.usage.worker_id], []
            history = final.history_tokens
            for _ in range(2):
                ids, final, worker = generate(self.stub, session, self.tokens(5, rng), 6,
                                              append=True, expected=history)
                workers += [worker, final.usage.worker_id]
                cached.append(final.usage.cached_tokens)
                history = final.history_tokens
            return workers, cached

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(conversation, range(100)))
        used = set()
        for workers, cached in results:
            self.assertEqual(len(set(workers)), 1, workers)
            self.assertTrue(all(c > 0 for c in cached), cached)
            used.add(workers[0])
        self.assertEqual(len(used), 3)  # the ring spreads the sessions

    def test_bad_input_gets_a_clear_status_and_the_fleet_keeps_serving(self):
        def code_of(request):
            try:
                list(self.stub.Generate(request, timeout=10))
                return grpc.StatusCode.OK, ""
            except grpc.RpcError as e:
                return e.code(), e.details()

        invalid = grpc.StatusCode.INVALID_ARGUMENT
        hi = pb.TokenIds(ids=[5, 6])  # token ids: valid with or without a tokenizer
        cases = [
            (pb.GenerateRequest(tokens=hi, stop=pb.StopCriteria(max_tokens=-1)), invalid,
             "stop.max_tokens: "),
            (pb.GenerateRequest(tokens=hi, stop=pb.StopCriteria(max_tokens=100000)), invalid,
             "stop.max_tokens: "),
            # Input and max_tokens each fit, together they do not: the engine's check, which
            # names the field the same way.
            (pb.GenerateRequest(tokens=pb.TokenIds(ids=[5] * (self.context - 4)),
                                stop=pb.StopCriteria(max_tokens=8)), invalid, "stop.max_tokens: "),
            (pb.GenerateRequest(session_id="s-neg", append=True, tokens=hi,
                                expected_history_tokens=-1), invalid, "expected_history_tokens: "),
            (pb.GenerateRequest(tokens=hi, sampling=pb.SamplingParams(temperature=-1)), invalid,
             "temperature"),
            (pb.GenerateRequest(tokens=hi, sampling=pb.SamplingParams(top_p=0)), invalid,
             "top_p"),
            (pb.GenerateRequest(tokens=hi, sampling=pb.SamplingParams(top_p=1.5)), invalid,
             "top_p"),
            (pb.GenerateRequest(session_id="never-made", append=True, tokens=hi),
             grpc.StatusCode.NOT_FOUND, "session_id"),
            (pb.GenerateRequest(tokens=pb.TokenIds(ids=[self.vocab + 5])), invalid, "tokens"),
            (pb.GenerateRequest(), invalid, "input"),
        ]
        chat = pb.GenerateRequest(chat=pb.Chat(messages=[pb.ChatMessage(role="user",
                                                                         content=b"hi")]))
        cases.append((pb.GenerateRequest(text=b"\xc3\x28 bad"), invalid, "text"))
        # Its checkpoint names no chat format, and the workers were given none.
        cases.append((chat, grpc.StatusCode.FAILED_PRECONDITION, "no chat format"))
        for request, code, field in cases:
            got, details = code_of(request)
            self.assertEqual(got, code, f"{request}: {details}")
            self.assertIn(field, details)
        # A 10 MB prompt: refused (by the router's or the worker's size limit), not served.
        got, details = code_of(pb.GenerateRequest(text=b"a" * (10 << 20)))
        self.assertIn(got, (invalid, grpc.StatusCode.RESOURCE_EXHAUSTED), details)
        try:
            self.stub.Fork(pb.ForkRequest(session_id="missing", num_forks=2), timeout=10)
            self.fail("fork of a missing session succeeded")
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
            self.assertIn("session_id", e.details())
        # No session has the empty id (Generate's one-off requests keep none): naming it is
        # a malformed request, through the router and at a worker alike.
        worker_stub, _ = self.worker_stub(self.workers[0])
        for stub in (self.stub, worker_stub):
            for call, request in ((stub.Fork, pb.ForkRequest(session_id="", num_forks=1)),
                                  (stub.CloseSession, pb.CloseSessionRequest(session_id=""))):
                try:
                    call(request, timeout=10)
                    self.fail(f"{request} succeeded")
                except grpc.RpcError as e:
                    self.assertEqual(e.code(), invalid, f"{request}: {e.details()}")
                    self.assertIn("session_id", e.details())
        ids, final, _ = generate(self.stub, "", self.tokens(8, random.Random(1)), 4)
        self.assertEqual(len(ids), 4)

    def test_logit_bias_bans_the_greedy_token_and_bad_biases_are_refused(self):
        def first(bias):
            request = pb.GenerateRequest(tokens=pb.TokenIds(ids=[1, 300, 200]),
                                         stop=pb.StopCriteria(max_tokens=4, ignore_eos=True),
                                         sampling=pb.SamplingParams(temperature=0,
                                                                    logit_bias=bias))
            return [i for m in self.stub.Generate(request, timeout=30) for i in m.token_ids]

        plain = first({})
        banned = first({plain[0]: -100.0})
        self.assertNotEqual(banned[0], plain[0])
        self.assertNotIn(plain[0], banned)  # banned at every step
        self.assertEqual(first({plain[0]: 0.0}), plain)
        for bias, words in [({plain[0]: 100.5}, "[-100, 100]"),
                            ({self.vocab: 1.0}, "outside the vocabulary")]:
            with self.assertRaises(grpc.RpcError) as caught:
                first(bias)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("logit_bias", caught.exception.details())
            self.assertIn(words, caught.exception.details())
        self.assertEqual(first({}), plain)  # and the fleet keeps serving

    def test_prompt_logprobs_score_the_input_as_generation_did(self):
        rng = random.Random(11)
        prompt = [1] + self.tokens(40, rng)
        generated = list(self.stub.Generate(pb.GenerateRequest(
            tokens=pb.TokenIds(ids=prompt), logprobs=3,
            stop=pb.StopCriteria(max_tokens=6, ignore_eos=True),
            sampling=pb.SamplingParams(temperature=0)), timeout=30))
        ids = [i for m in generated for i in m.token_ids]
        scores = [lp for m in generated for lp in m.logprobs]
        context = prompt + ids
        messages = list(self.stub.Generate(pb.GenerateRequest(
            tokens=pb.TokenIds(ids=context), prompt_logprobs=3,
            stop=pb.StopCriteria(max_tokens=1, ignore_eos=True),
            sampling=pb.SamplingParams(temperature=0)), timeout=30))
        scored = [lp for m in messages for lp in m.prompt_logprobs]
        self.assertEqual([lp.chosen.token_id for lp in scored], context[1:])
        self.assertTrue(all(len(lp.top) == 3 for lp in scored))
        first_token = next(i for i, m in enumerate(messages) if m.token_ids)
        # The message with the first tokens may carry the last scores; none comes later.
        self.assertFalse(any(m.prompt_logprobs for m in messages[first_token + 1:]))
        # The generated tokens' scores are the logprobs they were generated with.
        for want, got in zip(scores, scored[len(prompt) - 1:]):
            self.assertAlmostEqual(got.chosen.logprob, want.chosen.logprob, places=4)
            self.assertEqual([t.token_id for t in got.top], [t.token_id for t in want.top])
        final = messages[-1].final
        self.assertEqual(final.usage.cached_tokens, 0)  # scored positions are computed again
        # max_tokens 0: the same scores, and nothing generated.
        only = list(self.stub.Generate(pb.GenerateRequest(
            tokens=pb.TokenIds(ids=context), prompt_logprobs=3,
            stop=pb.StopCriteria(max_tokens=0)), timeout=30))
        self.assertEqual([lp for m in only for lp in m.prompt_logprobs], scored)
        self.assertFalse(any(m.token_ids for m in only))
        self.assertEqual(only[-1].final.finish_reason, pb.FINISH_REASON_MAX_TOKENS)
        self.assertEqual(only[-1].final.usage.completion_tokens, 0)
        with self.assertRaises(grpc.RpcError) as caught:
            list(self.stub.Generate(pb.GenerateRequest(tokens=pb.TokenIds(ids=prompt),
                                                       prompt_logprobs=21), timeout=30))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("prompt_logprobs", caught.exception.details())

    def test_prompt_token_ids_come_back_on_each_completions_first_message(self):
        rng = random.Random(17)
        prompt = [1] + self.tokens(30, rng)
        messages = list(self.stub.Generate(pb.GenerateRequest(
            tokens=pb.TokenIds(ids=prompt), return_prompt_token_ids=True, n=2,
            truncate_prompt_tokens=20, stop=pb.StopCriteria(max_tokens=4, ignore_eos=True),
            sampling=pb.SamplingParams(temperature=0)), timeout=30))
        # On each completion's first message, and on no other.
        for index in (0, 1):
            own = [m for m in messages if m.index == index]
            self.assertEqual(list(own[0].prompt_token_ids), prompt[-20:])
            self.assertFalse(any(m.prompt_token_ids for m in own[1:]))
        # Not asked: never sent.
        plain = list(self.stub.Generate(pb.GenerateRequest(
            tokens=pb.TokenIds(ids=prompt), stop=pb.StopCriteria(max_tokens=2)), timeout=30))
        self.assertFalse(any(m.prompt_token_ids for m in plain))

    def test_detokenize_inverts_tokenize_and_refuses_ids_outside_the_vocabulary(self):
        text = "Once upon a time, a little dog named Max said: \u00e9t\u00e9!"
        ids = list(self.stub.Tokenize(pb.TokenizeRequest(text=text.encode(),
                                                         add_special_tokens=True),
                                      timeout=10).token_ids)
        # BOS is written as its text, unless special tokens are skipped.
        decoded = self.stub.Detokenize(pb.DetokenizeRequest(token_ids=ids), timeout=10).text
        self.assertEqual(decoded, "<s>" + text)
        skipped = self.stub.Detokenize(pb.DetokenizeRequest(token_ids=ids,
                                                            skip_special_tokens=True), timeout=10)
        self.assertEqual(skipped.text, text)
        self.assertEqual(self.stub.Detokenize(pb.DetokenizeRequest(), timeout=10).text, "")
        for bad in ([5, -1], [5, self.vocab]):
            with self.assertRaises(grpc.RpcError) as caught:
                self.stub.Detokenize(pb.DetokenizeRequest(token_ids=bad), timeout=10)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("token_ids[1]", caught.exception.details())
        # Without BOS, the dummy-prefix space stays (as SentencePiece decodes), and the fleet
        # goes on after the refusals.
        self.assertEqual(self.stub.Detokenize(pb.DetokenizeRequest(token_ids=ids[1:]),
                                              timeout=10).text, " " + text)

    def test_embeddings_are_unit_vectors_of_the_models_width_and_bad_ones_are_refused(self):
        info = self.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        width = info.embedding_size
        self.assertGreater(width, 0)
        story = ("Once upon a time there was a little girl who loved to play outside in the "
                 "park with her friends and her big brown dog.").encode()
        request = pb.EmbedRequest(request_id="e1", inputs=[
            pb.EmbedInput(text=story), pb.EmbedInput(text=b"The cat sat."),
            pb.EmbedInput(tokens=pb.TokenIds(ids=[1, 5, 9, 12])), pb.EmbedInput(text=story)])
        response, call = self.stub.Embed.with_call(request, timeout=30)
        self.assertEqual(response.request_id, "e1")
        vectors = [list(e.values) for e in response.embeddings]
        self.assertEqual([len(v) for v in vectors], [width] * 4)
        for v in vectors:
            self.assertAlmostEqual(sum(x * x for x in v), 1.0, places=4)
        self.assertEqual(vectors[0], vectors[3])  # the same input, the same bits
        self.assertNotEqual(vectors[0], vectors[1])
        self.assertEqual(response.embeddings[2].prompt_tokens, 4)
        # Again: the router sends it where its blocks are cached.
        again = self.stub.Embed(request, timeout=30)
        self.assertEqual([list(e.values) for e in again.embeddings], vectors)
        self.assertGreater(again.embeddings[0].cached_tokens, 0)
        # Raw, and cut to 16 values (normalized after the cut).
        raw = self.stub.Embed(pb.EmbedRequest(inputs=[pb.EmbedInput(text=story)],
                                              normalize=False), timeout=30).embeddings[0].values
        norm = sum(x * x for x in raw) ** 0.5
        self.assertNotAlmostEqual(norm, 1.0, places=2)
        for got, want in zip([x / norm for x in raw], vectors[0]):
            self.assertAlmostEqual(got, want, places=5)
        cut = self.stub.Embed(pb.EmbedRequest(inputs=[pb.EmbedInput(text=story)], dimensions=16),
                              timeout=30).embeddings[0].values
        self.assertEqual(len(cut), 16)
        head = sum(x * x for x in raw[:16]) ** 0.5
        for got, want in zip(cut, raw[:16]):
            self.assertAlmostEqual(got, want / head, places=5)
        truncated = self.stub.Embed(pb.EmbedRequest(
            inputs=[pb.EmbedInput(tokens=pb.TokenIds(ids=[1, 5, 9, 12]))],
            truncate_prompt_tokens=2), timeout=30).embeddings[0]
        self.assertEqual((truncated.prompt_tokens, truncated.truncated_tokens), (2, 2))

        for bad, field in [(pb.EmbedRequest(), "inputs"),
                           (pb.EmbedRequest(inputs=[pb.EmbedInput(text=b"x")],
                                            dimensions=width + 1), "dimensions"),
                           (pb.EmbedRequest(inputs=[pb.EmbedInput(text=b"x"), pb.EmbedInput(
                               tokens=pb.TokenIds(ids=[self.vocab]))]), "inputs[1]"),
                           (pb.EmbedRequest(inputs=[pb.EmbedInput()]), "inputs[0]"),
                           (pb.EmbedRequest(inputs=[pb.EmbedInput(text=b"\xff")]), "inputs[0]")]:
            with self.assertRaises(grpc.RpcError) as caught:
                self.stub.Embed(bad, timeout=30)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, field)
            self.assertIn(field, caught.exception.details())
        # ringserve-cli embed: one line of values an input.
        out = subprocess.run([os.path.join(BIN_DIR, "ringserve-cli"), "--target",
                              self.router.address, "embed", "--text", story.decode(),
                              "--dimensions", "8"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        values = [float(x) for x in out.stdout.split()]
        self.assertEqual(len(values), 8)
        self.assertAlmostEqual(sum(x * x for x in values), 1.0, places=4)
        # The fleet still serves.
        self.assertEqual(len(self.stub.Embed(request, timeout=30).embeddings), 4)

    def test_n_completions_are_the_requests_with_seeds_seed_to_seed_plus_n(self):
        rng = random.Random(23)
        prompt = [1] + self.tokens(45, rng)

        def request(n, seed):
            return pb.GenerateRequest(tokens=pb.TokenIds(ids=prompt), n=n,
                                      stop=pb.StopCriteria(max_tokens=12, ignore_eos=True),
                                      sampling=pb.SamplingParams(temperature=0.9, seed=seed))

        call = self.stub.Generate(request(4, 100), timeout=30)
        ids, finals = {}, {}
        for m in call:
            self.assertNotIn(m.index, finals)  # nothing follows a completion's final
            ids.setdefault(m.index, []).extend(m.token_ids)
            if m.HasField("final"):
                finals[m.index] = m.final
        self.assertEqual(sorted(finals), [0, 1, 2, 3])
        self.assertEqual([finals[i].seed for i in range(4)], [100, 101, 102, 103])
        self.assertEqual(len({f.usage.worker_id for f in finals.values()}), 1)  # one worker
        # The input's full blocks are computed once: the others find them cached.
        self.assertGreaterEqual(sum(f.usage.cached_tokens > 0 for f in finals.values()), 3)
        for i in range(4):
            alone = [t for m in self.stub.Generate(request(1, 100 + i), timeout=30)
                     for t in m.token_ids]
            self.assertEqual(ids[i], alone, f"completion {i}")
        self.assertGreater(len({tuple(v) for v in ids.values()}), 1)
        for bad, field in [(pb.GenerateRequest(tokens=pb.TokenIds(ids=prompt), n=65), "n: "),
                           (pb.GenerateRequest(tokens=pb.TokenIds(ids=prompt), n=2,
                                               session_id="s"), "Fork")]:
            with self.assertRaises(grpc.RpcError) as caught:
                list(self.stub.Generate(bad, timeout=30))
            self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn(field, caught.exception.details())

    def test_min_tokens_holds_back_a_stop_id(self):
        def run(stop_id, min_tokens):
            request = pb.GenerateRequest(
                tokens=pb.TokenIds(ids=[1, 300, 200]),
                stop=pb.StopCriteria(max_tokens=6, min_tokens=min_tokens,
                                     stop_token_ids=[stop_id] if stop_id is not None else []),
                sampling=pb.SamplingParams(temperature=0))
            ids, final = [], None
            for m in self.stub.Generate(request, timeout=30):
                ids.extend(m.token_ids)
                if m.HasField("final"):
                    final = m.final
            return ids, final

        plain, _ = run(None, 0)
        stopped, final = run(plain[0], 0)
        self.assertEqual((stopped, final.finish_reason), (plain[:1], pb.FINISH_REASON_STOP_TOKEN))
        held, _ = run(plain[0], 3)
        self.assertGreaterEqual(len(held), 3)
        self.assertNotIn(plain[0], held[:3])
        with self.assertRaises(grpc.RpcError) as caught:
            run(None, 7)  # more than max_tokens
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("stop.min_tokens", caught.exception.details())

    def test_fork_runs_each_branch_on_the_parents_worker(self):
        rng = random.Random(7)
        _, final, worker = generate(self.stub, "forked", self.tokens(30, rng), 5)
        forks = self.stub.Fork(pb.ForkRequest(session_id="forked", num_forks=3), timeout=10)
        self.assertEqual(len(forks.session_ids), 3)
        self.assertEqual(forks.worker_id, worker)
        for sid in forks.session_ids:
            _, f, w = generate(self.stub, sid, self.tokens(3, rng), 4, append=True)
            self.assertEqual(w, worker)
            self.assertGreaterEqual(f.usage.cached_tokens, 34)
        for sid in list(forks.session_ids) + ["forked"]:
            self.stub.CloseSession(pb.CloseSessionRequest(session_id=sid), timeout=10)

    def test_the_python_client_example_talks_to_the_real_fleet(self):
        args = [sys.executable, EXAMPLE, "--target", self.router.address, "--session", "py-example"]
        env = dict(os.environ, PYTHONPATH=MODULES_DIR)
        out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        turns = [line for line in out.stdout.splitlines() if line.startswith("turn ")]
        self.assertEqual(len(turns), 2, out.stdout)
        self.assertNotIn("cached_tokens=0", turns[1])
        self.assertIn("embeddings: 2 of ", out.stdout)

    def test_cancelling_mid_stream_frees_the_jobs_blocks(self):
        stub, admin = self.worker_stub(self.workers[0])
        request = pb.GenerateRequest(tokens=pb.TokenIds(ids=self.tokens(16, random.Random(3))),
                                     stop=pb.StopCriteria(max_tokens=400, ignore_eos=True))
        call = stub.Generate(request, timeout=30)
        next(call)
        next(call)

        def used_blocks():
            return admin.GetStats(admin_pb2.GetStatsRequest(), timeout=5).workers[0].kv_cache.blocks_used

        self.assertGreater(used_blocks(), 0)
        call.cancel()
        self.assertTrue(fleet.wait_until(lambda: used_blocks() == 0, 2.0))


class Failover(unittest.TestCase):
    def test_a_killed_worker_is_routed_around_and_rejoins(self):
        # Paced steps keep a long stream in flight when the worker dies.
        paced = ["--min-step-ms", "5"]
        workers = [fleet.start_worker(BIN_DIR, SHARED_DIR, f"f{i}", extra=paced) for i in range(3)]
        router = fleet.start_router(BIN_DIR, workers)
        channel = grpc.insecure_channel(router.address)
        stub = rpc.InferenceStub(channel)
        try:
            vocab = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10).vocab_size
            rng = random.Random(11)
            # Find each session's owner.
            owner = {}
            for i in range(30):
                _, _, w = generate(stub, f"s{i}", [rng.randrange(3, vocab) for _ in range(8)], 2)
                owner[f"s{i}"] = w
            victim = workers[0]
            mine = [s for s, w in owner.items() if w == "f0"]
            others = [s for s, w in owner.items() if w != "f0"]
            self.assertTrue(mine and others)

            # A long stream on the victim, and steady load on the others.
            long_call = stub.Generate(pb.GenerateRequest(
                session_id=mine[0], tokens=pb.TokenIds(ids=[5, 6, 7]),
                stop=pb.StopCriteria(max_tokens=400, ignore_eos=True)), timeout=60)
            next(long_call)
            errors, stop = [], threading.Event()

            def load():
                while not stop.is_set():
                    for s in others:
                        try:
                            generate(stub, s, [9, 10], 2)
                        except grpc.RpcError as e:
                            errors.append(e.code())

            loader = threading.Thread(target=load)
            loader.start()
            time.sleep(0.3)
            victim.kill9()
            killed_at = time.monotonic()
            try:
                for _ in long_call:
                    pass
                self.fail("the stream of the killed worker ended without an error")
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertTrue(e.details())

            def served_elsewhere():
                try:
                    _, _, w = generate(stub, mine[0], [4, 5], 2, timeout=5)
                    return w not in (None, "f0")
                except grpc.RpcError:
                    return False

            self.assertTrue(fleet.wait_until(served_elsewhere, 3.0))
            self.assertLessEqual(time.monotonic() - killed_at, 3.5)
            stop.set()
            loader.join()
            self.assertEqual(errors, [])  # sessions on the other workers never noticed

            restarted = fleet.start_worker(BIN_DIR, SHARED_DIR, "f0", port=victim.port, extra=paced)
            workers[0] = restarted

            def back_home():
                _, _, w = generate(stub, mine[0], [4, 5], 2, timeout=5)
                return w == "f0"

            self.assertTrue(fleet.wait_until(back_home, 5.0))
            self.assertIsNone(router.proc.poll())  # the router kept running throughout
        finally:
            channel.close()
            router.terminate()
            for w in workers:
                w.terminate()


class Drain(unittest.TestCase):
    def test_sigterm_finishes_admitted_requests_then_exits(self):
        worker = fleet.start_worker(BIN_DIR, SHARED_DIR, "d0", extra=["--min-step-ms", "5"])
        channel = grpc.insecure_channel(worker.address)
        stub = rpc.InferenceStub(channel)
        try:
            call = stub.Generate(pb.GenerateRequest(
                tokens=pb.TokenIds(ids=[5, 6, 7]),
                stop=pb.StopCriteria(max_tokens=200, ignore_eos=True)), timeout=60)
            count = len(next(call).token_ids)
            worker.proc.send_signal(15)
            count += len(next(call).token_ids)
            # Signals repeated during the drain (a second Ctrl-C, serve.sh's own SIGTERM
            # after the terminal's SIGINT) must not cut it short.
            worker.proc.send_signal(2)
            worker.proc.send_signal(15)
            count += sum(len(m.token_ids) for m in call)  # finishes normally
            self.assertEqual(count, 200)
            self.assertEqual(worker.proc.wait(30), 0)
        finally:
            channel.close()
            worker.terminate()


class LongPromptScoring(unittest.TestCase):
    def test_a_long_inputs_scores_come_in_messages_of_at_most_1024(self):
        worker = fleet.Process([os.path.join(BIN_DIR, "ringserve-worker"), "--dummy-weights",
                                "--preset", "tiny", "--port", "0", "--host", "127.0.0.1",
                                "--id", "scoring", "--threads", "1", "--kv-memory", "64MiB"],
                               "scoring")
        channel = grpc.insecure_channel(worker.address)
        try:
            stub = rpc.InferenceStub(channel)
            info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
            rng = random.Random(3)
            n = min(1500, info.context_length - 2)
            tokens = [rng.randrange(3, info.vocab_size) for _ in range(n)]
            messages = list(stub.Generate(pb.GenerateRequest(
                tokens=pb.TokenIds(ids=tokens), prompt_logprobs=20,
                stop=pb.StopCriteria(max_tokens=2, ignore_eos=True)), timeout=120))
            sizes = [len(m.prompt_logprobs) for m in messages if m.prompt_logprobs]
            self.assertEqual(sum(sizes), n - 1)
            self.assertGreaterEqual(len(sizes), 2)
            self.assertLessEqual(max(sizes), 1024)
            scored = [lp.chosen.token_id for m in messages for lp in m.prompt_logprobs]
            self.assertEqual(scored, tokens[1:])
            self.assertEqual(sum(len(m.token_ids) for m in messages), 2)
        finally:
            channel.close()
            worker.terminate()


class KvCacheType(unittest.TestCase):
    def test_a_f16_cache_holds_twice_the_blocks_in_the_same_memory_and_serves(self):
        workers = [fleet.start_worker(BIN_DIR, SHARED_DIR, f"kv{i}", extra=["--kv-dtype", dt])
                   for i, dt in enumerate(["auto", "f16"])]
        channels = [grpc.insecure_channel(w.address) for w in workers]
        try:
            stubs = [rpc.InferenceStub(c) for c in channels]
            infos = [s.GetModelInfo(pb.GetModelInfoRequest(), timeout=10) for s in stubs]
            self.assertEqual([i.kv_dtype for i in infos], ["f32", "f16"])
            # Whole blocks of the same memory: twice as many, or one more.
            self.assertIn(infos[1].kv_num_blocks - 2 * infos[0].kv_num_blocks, (0, 1))
            for stub in stubs:
                ids, final, _ = generate(stub, "kv", [1, 400, 300, 200], 40)
                self.assertEqual(len(ids), 40)
                self.assertEqual(final.finish_reason, pb.FINISH_REASON_MAX_TOKENS)
        finally:
            for c in channels:
                c.close()
            for w in workers:
                w.terminate()


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[4:]], verbosity=2)
