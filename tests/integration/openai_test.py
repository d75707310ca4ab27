#!/usr/bin/env python3
"""OpenAI's HTTP API at the router (ringserve-router --http-port), end to end through real
workers, checked against the same requests over gRPC:

- /v1/models names the served model; /health answers; unknown paths, wrong methods, bad JSON,
  unknown models, oversized bodies and prompts are OpenAI-style errors and the router goes on;
- /v1/completions: greedy text and usage equal Generate's; streaming gives the same text as
  Server-Sent Events ending in [DONE] (with a usage chunk when asked); logprobs, n, a batch of
  prompts, echo and stop strings; echo with logprobs scores the prompt as Generate's
  prompt_logprobs do, at offsets an evaluation harness can cut a continuation by;
- a client that closes its stream cancels the generation on the worker;
- /v1/embeddings equal Embed's values (float and base64); /tokenize answers as Tokenize;
- /v1/chat/completions on a ChatML checkpoint: the reply and usage of the rendered
  conversation, a required tool call (whole and streamed as tool_calls deltas) and a
  json_schema response format;
- /v1/responses on the same checkpoint: a stored response continued (twice, and then on) by
  previous_response_id from its cached conversation, whose context is the one the whole
  conversation renders to; the same reply streamed as typed events; a required call and its
  result sent back as a function_call_output; unstored, deleted and unknown responses cannot
  be continued, and a continuation that fails or is not stored leaves no session behind;
- /v1/messages (Anthropic's Messages API) on the same checkpoint: the chat endpoint's reply and
  usage, streamed as content-block events; a required tool_use and its tool_result; the
  token count; errors in Anthropic's shape;
- with a bearer token required, HTTP requests need the same Authorization header; a worker
  serving the API itself requires its own tokens (--auth-token-file or RINGSERVE_AUTH_TOKEN).

usage: openai_test.py BIN_DIR PROTO_DIR SHARED_DIR [unittest args]
"""
import base64
import http.client
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import fleet
from chat_checkpoint import write_checkpoint

BIN_DIR, PROTO_DIR, SHARED_DIR = sys.argv[1:4]
fleet.import_grpc_or_skip()
fleet.generate_modules(PROTO_DIR, tempfile.mkdtemp(prefix="ringserve-py-"))

import grpc  # noqa: E402
from ringserve.v1 import inference_pb2 as pb  # noqa: E402
from ringserve.v1 import inference_pb2_grpc as rpc  # noqa: E402

PROMPT = "Once upon a time"


def request(port, method, path, body=None, headers=None, raw=None, timeout=60):
    """(status, headers, body text) of one HTTP exchange."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def post(port, path, body, headers=None):
    status, _, text = request(port, "POST", path, body, headers)
    return status, json.loads(text)


def events(text):
    """The data of each Server-Sent Event, JSON-decoded but for the final [DONE]."""
    out = []
    for event in text.split("\n\n"):
        if not event:
            continue
        assert event.startswith("data: "), event
        data = event[len("data: "):]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def grpc_generate(stub, prompt, max_tokens, **sampling):
    text, ids, final = "", [], None
    request = pb.GenerateRequest(text=prompt.encode(), stop=pb.StopCriteria(max_tokens=max_tokens),
                                 sampling=pb.SamplingParams(temperature=0, **sampling))
    for message in stub.Generate(request, timeout=60):
        text += message.text
        ids.extend(message.token_ids)
        if message.HasField("final"):
            final = message.final
    return text, ids, final


class CompletionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.http_port, cls.metrics_port = fleet.free_port(), fleet.free_port()
        cls.cluster = fleet.Cluster(BIN_DIR, SHARED_DIR, "o", 1,
                                    router_extra=["--http-port", str(cls.http_port),
                                                  "--metrics-port", str(cls.metrics_port)])
        if not fleet.wait_until(lambda: cls.status("/health") == 200, 15):
            raise RuntimeError("the HTTP port never answered")
        cls.info = cls.cluster.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)

    @classmethod
    def status(cls, path):
        try:
            return request(cls.http_port, "GET", path, timeout=2)[0]
        except OSError:
            return None

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def complete(self, **body):
        status, response = post(self.http_port, "/v1/completions",
                                {"model": self.info.model_name, **body})
        self.assertEqual(status, 200, response)
        return response

    def test_models_lists_the_served_model(self):
        status, headers, text = request(self.http_port, "GET", "/v1/models")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        models = json.loads(text)
        self.assertEqual(models["object"], "list")
        self.assertEqual(models["data"][0]["id"], self.info.model_name)
        self.assertEqual(models["data"][0]["max_model_len"], self.info.context_length)
        status, _, text = request(self.http_port, "GET", f"/v1/models/{self.info.model_name}")
        self.assertEqual((status, json.loads(text)["id"]), (200, self.info.model_name))
        status, _, text = request(self.http_port, "GET", "/v1/models/nope")
        self.assertEqual(status, 404, text)

    def test_a_greedy_completion_is_the_same_as_generate(self):
        text, ids, final = grpc_generate(self.cluster.stub, PROMPT, 12)
        response = self.complete(prompt=PROMPT, max_tokens=12, temperature=0)
        self.assertEqual(response["object"], "text_completion")
        self.assertTrue(response["id"].startswith("cmpl-"))
        self.assertEqual(response["model"], self.info.model_name)
        choice = response["choices"][0]
        self.assertEqual(choice["text"], text)
        self.assertEqual(choice["finish_reason"], "length")
        usage = response["usage"]
        self.assertEqual(usage["prompt_tokens"], final.usage.prompt_tokens)
        self.assertEqual(usage["completion_tokens"], 12)
        self.assertEqual(usage["total_tokens"], final.usage.prompt_tokens + 12)
        # OpenAI's default max_tokens for completions is 16.
        self.assertEqual(self.complete(prompt=PROMPT, temperature=0)["usage"]["completion_tokens"],
                         16)

    def test_a_streamed_completion_is_the_same_text_as_events(self):
        whole = self.complete(prompt=PROMPT, max_tokens=20, temperature=0)
        status, headers, text = request(self.http_port, "POST", "/v1/completions", {
            "prompt": PROMPT, "max_tokens": 20, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}})
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/event-stream"))
        self.assertEqual(headers.get("Transfer-Encoding"), "chunked")
        self.assertTrue(headers.get("X-Ringserve-Worker", "").startswith("o"))
        data = events(text)
        self.assertEqual(data[-1], "[DONE]")
        usage_chunk = data[-2]
        self.assertEqual("cmpl-" + headers["X-Request-Id"], usage_chunk["id"])
        self.assertEqual(usage_chunk["choices"], [])
        self.assertEqual(usage_chunk["usage"], whole["usage"])
        chunks = data[:-2]
        self.assertGreater(len(chunks), 1)
        self.assertEqual("".join(c["choices"][0]["text"] for c in chunks),
                         whole["choices"][0]["text"])
        self.assertTrue(all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1]))
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "length")
        self.assertTrue(all(c["id"] == chunks[0]["id"] for c in chunks))

        # vLLM's continuous_usage_stats: every chunk counts the prompt and the tokens so far.
        status, _, text = request(self.http_port, "POST", "/v1/completions", {
            "prompt": PROMPT, "max_tokens": 20, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}})
        self.assertEqual(status, 200)
        chunks = events(text)[:-2]
        counted = [c["usage"]["completion_tokens"] for c in chunks]
        self.assertEqual(counted, sorted(counted))
        self.assertEqual(chunks[-1]["usage"], {k: whole["usage"][k] for k in (
            "prompt_tokens", "completion_tokens", "total_tokens")})
        self.assertTrue(all(c["usage"]["prompt_tokens"] == whole["usage"]["prompt_tokens"]
                            for c in chunks))

    def test_a_clients_request_id_names_the_response(self):
        status, headers, text = request(self.http_port, "POST", "/v1/completions",
                                        {"prompt": PROMPT, "max_tokens": 2},
                                        headers={"X-Request-Id": "trace-42"})
        self.assertEqual(status, 200, text)
        self.assertEqual(headers["X-Request-Id"], "trace-42")
        self.assertEqual(json.loads(text)["id"], "cmpl-trace-42")

    def test_logprobs_n_batches_echo_and_stop(self):
        response = self.complete(prompt=PROMPT, max_tokens=6, temperature=0, logprobs=3)
        logprobs = response["choices"][0]["logprobs"]
        self.assertEqual(len(logprobs["tokens"]), 6)
        self.assertEqual("".join(logprobs["tokens"]), response["choices"][0]["text"])
        self.assertTrue(all(lp <= 0 for lp in logprobs["token_logprobs"]))
        self.assertTrue(all(len(top) <= 3 for top in logprobs["top_logprobs"]))
        # Greedy: the chosen token is the most likely one.
        for token, lp, top in zip(logprobs["tokens"], logprobs["token_logprobs"],
                                  logprobs["top_logprobs"]):
            self.assertAlmostEqual(max(top.values()), lp, places=4)

        response = self.complete(prompt=PROMPT, max_tokens=8, temperature=1, n=2, seed=5)
        self.assertEqual([c["index"] for c in response["choices"]], [0, 1])
        alone = self.complete(prompt=PROMPT, max_tokens=8, temperature=1, seed=6)
        self.assertEqual(response["choices"][1]["text"], alone["choices"][0]["text"])

        batch = self.complete(prompt=[PROMPT, "The cat"], max_tokens=5, temperature=0)
        self.assertEqual(len(batch["choices"]), 2)
        cat = self.complete(prompt="The cat", max_tokens=5, temperature=0)
        self.assertEqual(batch["choices"][1]["text"], cat["choices"][0]["text"])
        self.assertEqual(batch["usage"]["prompt_tokens"],
                         self.complete(prompt=PROMPT, max_tokens=5)["usage"]["prompt_tokens"]
                         + cat["usage"]["prompt_tokens"])

        echo = self.complete(prompt=PROMPT, max_tokens=5, temperature=0, echo=True)
        self.assertEqual(echo["choices"][0]["text"], PROMPT + greedy_text(self, 5))

        full = self.complete(prompt=PROMPT, max_tokens=30, temperature=0)["choices"][0]["text"]
        stop = full[10:13]
        stopped = self.complete(prompt=PROMPT, max_tokens=30, temperature=0, stop=[stop])
        self.assertEqual(stopped["choices"][0]["text"], full[:full.index(stop)])
        self.assertEqual(stopped["choices"][0]["finish_reason"], "stop")
        self.assertEqual(stopped["choices"][0]["stop_reason"], stop)

    def test_metrics_are_served_on_the_api_port_too(self):
        status, headers, text = request(self.http_port, "GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        self.assertIn("ringserve_router_http_requests_total", text)
        self.assertIn("ringserve_router_requests_total", text)

    def http_count(self, endpoint, code):
        samples = fleet.scrape(self.metrics_port)
        return samples.get(("ringserve_router_http_requests_total",
                            f'{{code="{code}",endpoint="{endpoint}"}}'), 0)

    def test_echo_with_logprobs_scores_a_prompt_as_evaluation_harnesses_read_it(self):
        # lm-evaluation-harness's loglikelihood: the whole text echoed with max_tokens 0, the
        # continuation's tokens found by their text_offset and their logprobs summed.
        context, continuation = PROMPT, " there was a little girl"
        text = context + continuation
        response = self.complete(prompt=text, max_tokens=0, echo=True, logprobs=1)
        choice = response["choices"][0]
        self.assertEqual(choice["text"], text)
        self.assertEqual(choice["finish_reason"], "length")
        lp = choice["logprobs"]
        scores = []
        request = pb.GenerateRequest(text=text.encode(), prompt_logprobs=1,
                                     stop=pb.StopCriteria(max_tokens=0))
        for message in self.cluster.stub.Generate(request, timeout=30):
            scores.extend(message.prompt_logprobs)
        self.assertEqual(len(lp["tokens"]), len(scores))  # after BOS, every token is scored
        for token, value, score in zip(lp["tokens"], lp["token_logprobs"], scores):
            self.assertEqual(token, score.chosen.token.decode())
            self.assertAlmostEqual(value, score.chosen.logprob, places=5)
        for token, offset in zip(lp["tokens"], lp["text_offset"]):
            # SentencePiece's first token brings a space the text lacks: it sits at 0.
            self.assertTrue(text[offset:].startswith(token) or
                            (offset == 0 and text.startswith(token.lstrip())), (token, offset))
        start = next(i for i, offset in enumerate(lp["text_offset"]) if offset >= len(context))
        self.assertEqual("".join(lp["tokens"][start:]), continuation)
        self.assertLess(sum(lp["token_logprobs"][start:]), 0)

    def test_bad_requests_are_openai_errors_and_the_router_goes_on(self):
        bad_json_before = self.http_count("/v1/completions", 400)
        other_before = self.http_count("other", 404)
        cases = [
            ("POST", "/v1/completions", "{not json", 400, "not valid JSON"),
            ("POST", "/v1/completions", json.dumps({"prompt": PROMPT, "temperature": "hot"}), 400,
             "temperature"),
            ("POST", "/v1/completions", json.dumps({"prompt": PROMPT, "model": "nope"}), 404,
             "nope"),
            ("POST", "/v1/completions", json.dumps({"prompt": "x " * 100000}), 400, ""),
            ("GET", "/v1/completions", None, 405, "POST"),
            ("POST", "/v1/nothing", "{}", 404, "/v1/nothing"),
        ]
        for method, path, raw, code, words in cases:
            status, _, text = request(self.http_port, method, path, raw=raw)
            self.assertEqual(status, code, (path, raw and raw[:80], text))
            error = json.loads(text)["error"]
            self.assertIn(words, error["message"])
            self.assertIn("type", error)
        # A body over the router's --max-request-bytes (16 MiB) is refused before it is read.
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            conn.putrequest("POST", "/v1/completions")
            conn.putheader("Content-Length", str(64 << 20))
            conn.putheader("Expect", "100-continue")
            conn.endheaders()
            self.assertEqual(conn.getresponse().status, 413)
        finally:
            conn.close()
        self.assertEqual(self.complete(prompt=PROMPT, max_tokens=2)["usage"]["completion_tokens"], 2)
        # The router's metrics count the HTTP API's answers, its own errors included.
        self.assertEqual(self.http_count("/v1/completions", 400), bad_json_before + 3)
        self.assertEqual(self.http_count("other", 404), other_before + 1)
        self.assertGreater(self.http_count("/v1/completions", 200), 0)

    def test_closing_a_stream_cancels_its_generation(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        conn.request("POST", "/v1/completions", body=json.dumps({
            "prompt": PROMPT, "max_tokens": self.info.context_length - 16, "ignore_eos": True,
            "stream": True}),
            headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        self.assertEqual(response.status, 200)
        self.assertEqual(response.read(6), b"data: ")
        self.assertTrue(fleet.wait_until(
            lambda: self.cluster.worker_stats(0).running_requests == 1, 10))
        conn.sock.close()
        conn.close()
        self.assertTrue(fleet.wait_until(
            lambda: self.cluster.worker_stats(0).running_requests == 0, 10),
            "the worker still generates for a client that left")

    def test_tokenize_answers_as_the_tokenize_rpc(self):
        expected = self.cluster.stub.Tokenize(
            pb.TokenizeRequest(text=PROMPT.encode(), add_special_tokens=True), timeout=10)
        status, response = post(self.http_port, "/tokenize",
                                {"prompt": PROMPT, "return_token_strs": True})
        self.assertEqual(status, 200, response)
        self.assertEqual(response["tokens"], list(expected.token_ids))
        self.assertEqual(response["count"], len(expected.token_ids))
        self.assertEqual(response["max_model_len"], self.info.context_length)
        self.assertEqual(response["token_strs"][1:], [p.decode() for p in expected.pieces[1:]])
        status, error = post(self.http_port, "/tokenize", {"prompt": PROMPT, "model": "nope"})
        self.assertEqual(status, 404, error)

    def test_detokenize_gives_back_the_tokenized_prompt(self):
        status, tokens = post(self.http_port, "/tokenize", {"prompt": PROMPT})
        self.assertEqual(status, 200, tokens)
        status, text = post(self.http_port, "/detokenize", {"tokens": tokens["tokens"],
                                                            "model": self.info.model_name})
        self.assertEqual(status, 200, text)
        # As the Detokenize RPC writes it (vLLM's too): BOS as its text.
        expected = self.cluster.stub.Detokenize(pb.DetokenizeRequest(token_ids=tokens["tokens"]),
                                                timeout=10).text
        self.assertEqual(text, {"prompt": expected})
        self.assertTrue(expected.endswith(PROMPT))
        status, error = post(self.http_port, "/detokenize", {"tokens": [1, "x"]})
        self.assertEqual(status, 400, error)
        self.assertIn("tokens[1]", error["error"]["message"])
        status, error = post(self.http_port, "/detokenize", {"tokens": [self.info.vocab_size]})
        self.assertEqual(status, 400, error)
        status, error = post(self.http_port, "/detokenize", {"tokens": [1], "model": "nope"})
        self.assertEqual(status, 404, error)

    def test_return_token_ids_gives_the_prompts_and_the_replys_ids(self):
        expected = self.cluster.stub.Tokenize(
            pb.TokenizeRequest(text=PROMPT.encode(), add_special_tokens=True), timeout=10)
        _, ids, _ = grpc_generate(self.cluster.stub, PROMPT, 10)
        response = self.complete(prompt=PROMPT, max_tokens=10, temperature=0,
                                 return_token_ids=True)
        choice = response["choices"][0]
        self.assertEqual(choice["prompt_token_ids"], list(expected.token_ids))
        self.assertEqual(choice["token_ids"], ids)
        # Streamed: the prompt's ids on the first chunk, every generated id on some chunk.
        status, _, text = request(self.http_port, "POST", "/v1/completions", {
            "prompt": PROMPT, "max_tokens": 10, "temperature": 0, "stream": True,
            "return_token_ids": True})
        self.assertEqual(status, 200)
        chunks = [c["choices"][0] for c in events(text)[:-1]]
        self.assertEqual(chunks[0]["prompt_token_ids"], list(expected.token_ids))
        self.assertFalse(any("prompt_token_ids" in c for c in chunks[1:]))
        self.assertEqual([i for c in chunks for i in c["token_ids"]], ids)
        # Going on in ids from text: the same continuation as the text would give.
        again = self.complete(prompt=choice["prompt_token_ids"] + choice["token_ids"][:4],
                              max_tokens=6, temperature=0, return_token_ids=True)
        self.assertEqual(again["choices"][0]["token_ids"], ids[4:])
        self.assertNotIn("token_ids", self.complete(prompt=PROMPT, max_tokens=2)["choices"][0])

    def test_embeddings_are_embeds_values(self):
        expected = self.cluster.stub.Embed(pb.EmbedRequest(inputs=[
            pb.EmbedInput(text=PROMPT.encode()), pb.EmbedInput(text=b"The cat")]), timeout=30)
        status, response = post(self.http_port, "/v1/embeddings",
                                {"input": [PROMPT, "The cat"], "model": self.info.model_name})
        self.assertEqual(status, 200, response)
        self.assertEqual(response["object"], "list")
        self.assertEqual([d["index"] for d in response["data"]], [0, 1])
        for got, want in zip(response["data"], expected.embeddings):
            self.assertEqual(len(got["embedding"]), len(want.values))
            for a, b in zip(got["embedding"], want.values):
                self.assertAlmostEqual(a, b, places=6)
        self.assertEqual(response["usage"]["prompt_tokens"],
                         sum(e.prompt_tokens for e in expected.embeddings))
        status, packed = post(self.http_port, "/v1/embeddings",
                              {"input": PROMPT, "encoding_format": "base64"})
        self.assertEqual(status, 200, packed)
        raw = base64.b64decode(packed["data"][0]["embedding"])
        values = struct.unpack(f"<{len(raw) // 4}f", raw)
        self.assertEqual(list(values), list(expected.embeddings[0].values))


def greedy_text(test, max_tokens):
    return test.complete(prompt=PROMPT, max_tokens=max_tokens, temperature=0)["choices"][0]["text"]


WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Rome"]}},
                          "required": ["city"]}}


class ChatFleet(unittest.TestCase):
    """A router with --http-port in front of one worker serving a ChatML checkpoint."""

    @classmethod
    def setUpClass(cls):
        cls.model_dir = tempfile.mkdtemp(prefix="ringserve-chat-")
        write_checkpoint(cls.model_dir)
        cls.worker = fleet.Process(
            [os.path.join(BIN_DIR, "ringserve-worker"), "--model", cls.model_dir, "--port", "0",
             "--host", "127.0.0.1", "--id", "chat0", "--kv-memory", "64MiB", "--threads", "1"],
            "chat0")
        cls.http_port = fleet.free_port()
        cls.router = fleet.start_router(BIN_DIR, [cls.worker],
                                        extra=["--http-port", str(cls.http_port),
                                               "--served-model-name", "tiny-chat"])
        ok = lambda: request(cls.http_port, "GET", "/v1/models", timeout=2)[0] == 200  # noqa
        if not fleet.wait_until(lambda: _quiet(ok), 15):
            raise RuntimeError("the router never reached the worker")

    @classmethod
    def tearDownClass(cls):
        cls.router.terminate()
        cls.worker.terminate()


class ChatTest(ChatFleet):
    TOOLS = [{"type": "function", "function": WEATHER}]

    def chat(self, **body):
        status, response = post(self.http_port, "/v1/chat/completions",
                                {"model": "tiny-chat", "temperature": 0, **body})
        self.assertEqual(status, 200, response)
        return response

    def test_models_uses_the_served_name(self):
        status, _, text = request(self.http_port, "GET", "/v1/models")
        self.assertEqual(json.loads(text)["data"][0]["id"], "tiny-chat")

    def test_a_reply_and_its_usage(self):
        response = self.chat(messages=[{"role": "user", "content": "Hi there"}], max_tokens=8)
        self.assertEqual(response["object"], "chat.completion")
        choice = response["choices"][0]
        self.assertEqual(choice["message"]["role"], "assistant")
        # The checkpoint's greedy pick is <|im_end|>: an empty reply that stopped.
        self.assertEqual(choice["message"]["content"], "")
        self.assertEqual(choice["finish_reason"], "stop")
        self.assertGreater(response["usage"]["prompt_tokens"], 10)
        self.assertEqual(response["usage"]["completion_tokens"], 1)

    def test_a_required_call_whole_and_streamed(self):
        body = {"messages": [{"role": "user", "content": "Weather in Oslo?"}],
                "tools": self.TOOLS, "tool_choice": "required", "max_tokens": 400}
        response = self.chat(**body)
        choice = response["choices"][0]
        self.assertEqual(choice["finish_reason"], "tool_calls")
        self.assertIsNone(choice["message"]["content"])
        call = choice["message"]["tool_calls"][0]
        self.assertEqual(call["type"], "function")
        self.assertEqual(call["function"]["name"], "get_weather")
        arguments = json.loads(call["function"]["arguments"])
        self.assertIn(arguments["city"], ("Paris", "Rome"))

        status, _, text = request(self.http_port, "POST", "/v1/chat/completions",
                                  {"model": "tiny-chat", "temperature": 0, "stream": True, **body})
        self.assertEqual(status, 200)
        data = events(text)
        self.assertEqual(data[-1], "[DONE]")
        self.assertEqual(data[0]["choices"][0]["delta"]["role"], "assistant")
        deltas = [d for c in data[:-1] for d in c["choices"][0]["delta"].get("tool_calls", [])]
        self.assertEqual(deltas[0]["function"]["name"], "get_weather")
        self.assertTrue(deltas[0]["id"].startswith("call_"))
        # Streamed arguments are the text as generated; a whole call's are re-serialized.
        self.assertEqual(json.loads("".join(d["function"]["arguments"] for d in deltas)),
                         arguments)
        self.assertEqual(data[-2]["choices"][0]["finish_reason"], "tool_calls")

    def test_a_json_schema_reply(self):
        # The checkpoint pads JSON with the most whitespace the layout allows (see chat_test.py):
        # the value needs a few hundred tokens.
        schema = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}},
                  "required": ["answer"]}
        response = self.chat(messages=[{"role": "user", "content": "Yes?"}], max_tokens=256,
                             response_format={"type": "json_schema",
                                              "json_schema": {"name": "a", "schema": schema}})
        self.assertEqual(response["choices"][0]["finish_reason"], "stop")
        value = json.loads(response["choices"][0]["message"]["content"])
        self.assertIn(value["answer"], ("yes", "no"))


def typed_events(text):
    """(type, data) of each Server-Sent Event of a Responses API stream."""
    out = []
    for event in text.split("\n\n"):
        if not event:
            continue
        head, data = event.split("\n", 1)
        assert head.startswith("event: ") and data.startswith("data: "), event
        out.append((head[len("event: "):], json.loads(data[len("data: "):])))
    return out


class ResponsesTest(ChatFleet):
    """OpenAI's Responses API: a stored response is its conversation's session on the worker,
    which previous_response_id forks, so a continuation computes only its new input."""

    def respond(self, expect=200, **body):
        status, response = post(self.http_port, "/v1/responses",
                                {"model": "tiny-chat", "temperature": 0, **body})
        self.assertEqual(status, expect, response)
        return response

    def chat_prompt_tokens(self, messages):
        status, response = post(self.http_port, "/v1/chat/completions",
                                {"model": "tiny-chat", "messages": messages, "max_tokens": 1})
        self.assertEqual(status, 200, response)
        return response["usage"]["prompt_tokens"]

    def test_a_stored_response_is_continued_from_its_cached_conversation(self):
        first = self.respond(input="Hi there", instructions="Be kind.", max_output_tokens=8)
        self.assertEqual(first["object"], "response")
        self.assertTrue(first["id"].startswith("resp_"))
        self.assertEqual(first["status"], "completed")
        self.assertEqual(first["model"], "tiny-chat")
        self.assertEqual(first["instructions"], "Be kind.")
        self.assertEqual(first["max_output_tokens"], 8)
        message = first["output"][-1]
        self.assertEqual(message["type"], "message")
        self.assertEqual(message["content"][0]["type"], "output_text")
        reply = message["content"][0]["text"]
        history = [{"role": "system", "content": "Be kind."},
                   {"role": "user", "content": "Hi there"}]
        self.assertEqual(first["usage"]["input_tokens"], self.chat_prompt_tokens(history))

        # Twice from the same response: each continuation is its own fork of it.
        for _ in range(2):
            second = self.respond(input="Again", previous_response_id=first["id"],
                                  max_output_tokens=8)
            self.assertEqual(second["status"], "completed")
            self.assertNotEqual(second["id"], first["id"])
            self.assertEqual(second["previous_response_id"], first["id"])
            # The context is the whole conversation as a chat of it renders...
            conversation = history + [{"role": "assistant", "content": reply},
                                      {"role": "user", "content": "Again"}]
            self.assertEqual(second["usage"]["input_tokens"],
                             self.chat_prompt_tokens(conversation))
            # ... and what the first response held was not computed again.
            self.assertGreaterEqual(second["usage"]["input_tokens_details"]["cached_tokens"],
                                    first["usage"]["input_tokens"])
        third = self.respond(input="And again", previous_response_id=second["id"])
        self.assertGreater(third["usage"]["input_tokens"], second["usage"]["input_tokens"])

    def test_a_streamed_response_is_the_same_reply_as_typed_events(self):
        body = {"model": "tiny-chat", "temperature": 0, "input": "Hi there",
                "max_output_tokens": 8}
        whole = self.respond(**{k: v for k, v in body.items() if k != "model"})
        status, headers, text = request(self.http_port, "POST", "/v1/responses",
                                        {**body, "stream": True})
        self.assertEqual(status, 200, text)
        self.assertTrue(headers["Content-Type"].startswith("text/event-stream"))
        stream = typed_events(text)
        types = [t for t, _ in stream]
        self.assertEqual(types[:2], ["response.created", "response.in_progress"])
        self.assertEqual(types[-1], "response.completed")
        self.assertEqual([d["sequence_number"] for _, d in stream], list(range(len(stream))))
        completed = stream[-1][1]["response"]
        self.assertEqual(completed["output"][-1]["content"][0]["text"],
                         whole["output"][-1]["content"][0]["text"])
        self.assertEqual(completed["usage"]["output_tokens"], whole["usage"]["output_tokens"])
        deltas = "".join(d["delta"] for t, d in stream if t == "response.output_text.delta")
        self.assertEqual(deltas, whole["output"][-1]["content"][0]["text"])
        # The streamed response is stored too.
        after = self.respond(input="Again", previous_response_id=completed["id"])
        self.assertEqual(after["status"], "completed")

    def test_a_required_call_and_its_result_in_the_next_response(self):
        tools = [{"type": "function", **WEATHER}]
        first = self.respond(input="Weather in Oslo?", tools=tools, tool_choice="required",
                             max_output_tokens=400)
        calls = [item for item in first["output"] if item["type"] == "function_call"]
        self.assertEqual(len(calls), 1, first)
        self.assertEqual(calls[0]["name"], "get_weather")
        self.assertIn(json.loads(calls[0]["arguments"])["city"], ("Paris", "Rome"))
        self.assertTrue(calls[0]["call_id"])

        status, _, text = request(self.http_port, "POST", "/v1/responses",
                                  {"model": "tiny-chat", "temperature": 0, "stream": True,
                                   "input": "Weather in Oslo?", "tools": tools,
                                   "tool_choice": "required", "max_output_tokens": 400})
        self.assertEqual(status, 200, text)
        stream = typed_events(text)
        arguments = "".join(d["delta"] for t, d in stream
                            if t == "response.function_call_arguments.delta")
        self.assertEqual(json.loads(arguments), json.loads(calls[0]["arguments"]))
        done = [d["item"] for t, d in stream if t == "response.output_item.done"]
        self.assertEqual(done[-1]["type"], "function_call")

        result = self.respond(previous_response_id=first["id"], tools=tools,
                              input=[{"type": "function_call_output",
                                      "call_id": calls[0]["call_id"], "output": "18C"}],
                              max_output_tokens=8)
        self.assertEqual(result["status"], "completed")
        self.assertGreaterEqual(result["usage"]["input_tokens_details"]["cached_tokens"],
                                first["usage"]["input_tokens"])

    def sessions(self):
        from ringserve.v1 import admin_pb2, admin_pb2_grpc
        with grpc.insecure_channel(self.worker.address) as channel:
            return admin_pb2_grpc.AdminStub(channel).GetStats(
                admin_pb2.GetStatsRequest(), timeout=5).workers[0].sessions

    def test_a_continuation_keeps_a_session_only_when_stored_and_served(self):
        stored = self.respond(input="Hi")
        before = self.sessions()
        self.respond(input="Again", previous_response_id=stored["id"])
        self.assertEqual(self.sessions(), before + 1)
        # Refused by the worker after the fork (past the context): the fork is closed.
        error = self.respond(expect=400, input="Again", previous_response_id=stored["id"],
                             max_output_tokens=100000)["error"]
        self.assertIn("max_tokens", error["message"])
        self.respond(input="Again", previous_response_id=stored["id"], store=False)
        self.assertTrue(fleet.wait_until(lambda: self.sessions() == before + 1, 5),
                        self.sessions())

    def test_only_stored_responses_can_be_continued(self):
        gone = lambda body: self.respond(expect=404, input="Again", **body)  # noqa: E731
        unstored = self.respond(input="Hi", store=False)
        self.assertFalse(unstored["store"])
        error = gone({"previous_response_id": unstored["id"]})["error"]
        self.assertIn("previous_response_id", error["message"])

        stored = self.respond(input="Hi")
        # An unstored continuation leaves the response it continued, and nothing else.
        branch = self.respond(input="Again", previous_response_id=stored["id"], store=False)
        gone({"previous_response_id": branch["id"]})
        self.respond(input="Again", previous_response_id=stored["id"])

        status, _, text = request(self.http_port, "DELETE", "/v1/responses/" + stored["id"])
        self.assertEqual(status, 200, text)
        self.assertEqual(json.loads(text), {"id": stored["id"], "object": "response.deleted",
                                            "deleted": True})
        gone({"previous_response_id": stored["id"]})
        status, _, _ = request(self.http_port, "DELETE", "/v1/responses/" + stored["id"])
        self.assertEqual(status, 404)
        status, _, text = request(self.http_port, "GET", "/v1/responses/" + stored["id"])
        self.assertEqual(status, 501, text)
        metrics = request(self.http_port, "GET", "/metrics")[2]
        for sample in ('{code="200",endpoint="/v1/responses"}',
                       '{code="404",endpoint="/v1/responses/{id}"}'):
            self.assertIn("ringserve_router_http_requests_total" + sample, metrics)
        self.respond(expect=400, input="x", previous_response_id="chatcmpl-1")
        self.respond(expect=400, input=[{"role": "user",
                                         "content": [{"type": "input_image"}]}])


class MessagesTest(ChatFleet):
    """Anthropic's Messages API on the same chat checkpoint: the same reply as the chat endpoint,
    streamed as content-block events, a required tool call and its result, the token count."""

    def message(self, expect=200, headers=None, **body):
        status, _, text = request(self.http_port, "POST", "/v1/messages",
                                  {"model": "tiny-chat", "max_tokens": 8, "temperature": 0,
                                   **body}, headers)
        self.assertEqual(status, expect, text)
        return json.loads(text) if not body.get("stream") else text

    def test_a_reply_is_the_chats_and_its_tokens_are_counted(self):
        messages = [{"role": "user", "content": "Hi there"}]
        reply = self.message(system="Be kind.", messages=messages,
                             headers={"x-api-key": "anything", "anthropic-version": "2023-06-01"})
        self.assertEqual(reply["type"], "message")
        self.assertTrue(reply["id"].startswith("msg_"))
        self.assertEqual(reply["role"], "assistant")
        self.assertEqual(reply["model"], "tiny-chat")
        self.assertEqual(reply["stop_reason"], "end_turn")
        status, chat = post(self.http_port, "/v1/chat/completions",
                            {"model": "tiny-chat", "max_tokens": 8, "temperature": 0,
                             "messages": [{"role": "system", "content": "Be kind."}, *messages]})
        self.assertEqual(status, 200, chat)
        self.assertEqual(reply["content"], [{"type": "text",
                                             "text": chat["choices"][0]["message"]["content"]}])
        usage = reply["usage"]
        self.assertEqual(usage["input_tokens"] + usage["cache_read_input_tokens"],
                         chat["usage"]["prompt_tokens"])
        self.assertEqual(usage["output_tokens"], chat["usage"]["completion_tokens"])
        status, count = post(self.http_port, "/v1/messages/count_tokens",
                             {"model": "tiny-chat", "system": "Be kind.", "messages": messages})
        self.assertEqual(status, 200, count)
        self.assertEqual(count, {"input_tokens": chat["usage"]["prompt_tokens"]})

        stream = typed_events(self.message(system="Be kind.", messages=messages, stream=True))
        types = [t for t, _ in stream]
        self.assertEqual(types[0], "message_start")
        self.assertEqual(types[-2:], ["message_delta", "message_stop"])
        self.assertEqual(stream[-2][1]["delta"]["stop_reason"], "end_turn")
        # message_start already counts the context (the cached part is known at the end).
        self.assertEqual(stream[0][1]["message"]["usage"]["input_tokens"],
                         chat["usage"]["prompt_tokens"])
        text = "".join(d["delta"]["text"] for t, d in stream if t == "content_block_delta")
        self.assertEqual(text, reply["content"][0]["text"])

    def test_a_required_tool_and_its_result(self):
        tools = [{"name": WEATHER["name"], "description": WEATHER["description"],
                  "input_schema": WEATHER["parameters"]}]
        ask = [{"role": "user", "content": "Weather in Oslo?"}]
        reply = self.message(messages=ask, tools=tools, tool_choice={"type": "any"},
                             max_tokens=400)
        self.assertEqual(reply["stop_reason"], "tool_use")
        uses = [b for b in reply["content"] if b["type"] == "tool_use"]
        self.assertEqual(len(uses), 1, reply)
        self.assertEqual(uses[0]["name"], "get_weather")
        self.assertIn(uses[0]["input"]["city"], ("Paris", "Rome"))

        stream = typed_events(self.message(messages=ask, tools=tools, max_tokens=400,
                                           tool_choice={"type": "any"}, stream=True))
        partial = "".join(d["delta"]["partial_json"] for t, d in stream
                          if t == "content_block_delta" and d["delta"]["type"] == "input_json_delta")
        self.assertEqual(json.loads(partial), uses[0]["input"])

        answer = self.message(tools=tools, messages=[
            *ask, {"role": "assistant", "content": reply["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0]["id"],
                                          "content": "18C"}]}])
        self.assertEqual(answer["stop_reason"], "end_turn")

    def test_errors_are_anthropics(self):
        error = self.message(expect=400, messages=[{"role": "user", "content": [
            {"type": "image", "source": {}}]}])
        self.assertEqual(error["type"], "error")
        self.assertEqual(error["error"]["type"], "invalid_request_error")
        self.assertIn("messages[0].content[0].type", error["error"]["message"])
        error = self.message(expect=400, max_tokens=100000,
                             messages=[{"role": "user", "content": "x"}])
        self.assertEqual(error["error"]["type"], "invalid_request_error")


def _quiet(predicate):
    try:
        return predicate()
    except OSError:
        return False


class WorkerHttpTest(unittest.TestCase):
    """A worker serving the API itself (ringserve-worker --http-port), no router."""

    @classmethod
    def setUpClass(cls):
        cls.http_port = fleet.free_port()
        cls.worker = fleet.start_worker(BIN_DIR, SHARED_DIR, "alone",
                                        extra=["--http-port", str(cls.http_port)])
        cls.channel = grpc.insecure_channel(cls.worker.address)
        cls.stub = rpc.InferenceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.worker.terminate()

    def test_the_worker_answers_as_its_grpc_api_does(self):
        status, models = post(self.http_port, "/v1/completions",
                              {"prompt": PROMPT, "max_tokens": 10, "temperature": 0})
        self.assertEqual(status, 200, models)
        text, _, final = grpc_generate(self.stub, PROMPT, 10)
        self.assertEqual(models["choices"][0]["text"], text)
        self.assertEqual(models["usage"]["prompt_tokens"], final.usage.prompt_tokens)
        status, _, listed = request(self.http_port, "GET", "/v1/models")
        self.assertEqual(status, 200)
        info = self.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        self.assertEqual(json.loads(listed)["data"][0]["id"], info.model_name)
        status, _, streamed = request(self.http_port, "POST", "/v1/completions", {
            "prompt": PROMPT, "max_tokens": 10, "temperature": 0, "stream": True})
        self.assertEqual(status, 200)
        self.assertEqual("".join(c["choices"][0]["text"] for c in events(streamed)[:-1]), text)
        status, _, metrics = request(self.http_port, "GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertIn('ringserve_worker_http_requests_total{code="200",endpoint="/v1/completions"}',
                      metrics)
        self.assertIn("ringserve_worker_requests_total", metrics)

    def test_a_worker_that_takes_only_certified_clients_refuses_an_http_port(self):
        run = subprocess.run([os.path.join(BIN_DIR, "ringserve-worker"),
                              *fleet.model_args(BIN_DIR, SHARED_DIR), "--http-port", "1",
                              "--tls-client-ca", "/nonexistent/ca.pem"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertIn("--tls-client-ca", run.stderr)

    def test_a_token_file_without_an_http_port_is_refused(self):
        run = subprocess.run([os.path.join(BIN_DIR, "ringserve-worker"),
                              *fleet.model_args(BIN_DIR, SHARED_DIR),
                              "--auth-token-file", "/nonexistent/tokens"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertIn("--http-port", run.stderr)


class WorkerHttpAuthTest(unittest.TestCase):
    """A worker's HTTP API behind its own tokens (--auth-token-file, else RINGSERVE_AUTH_TOKEN),
    as vLLM's --api-key guards its API: /health and /metrics stay open."""

    def start(self, extra, env=None):
        port = fleet.free_port()
        worker = fleet.start_worker(BIN_DIR, SHARED_DIR, "guarded",
                                    extra=["--http-port", str(port), *extra], env=env)
        self.addCleanup(worker.terminate)
        return port

    def check(self, port, token):
        body = {"prompt": PROMPT, "max_tokens": 2}
        status, error = post(port, "/v1/completions", body)
        self.assertEqual(status, 401, error)
        self.assertIn("Bearer", error["error"]["message"])
        self.assertEqual(post(port, "/v1/completions", body,
                              {"Authorization": "Bearer wrong"})[0], 401)
        status, reply = post(port, "/v1/completions", body, {"Authorization": "Bearer " + token})
        self.assertEqual(status, 200, reply)
        self.assertEqual(request(port, "GET", "/health")[0], 200)
        self.assertEqual(request(port, "GET", "/metrics")[0], 200)

    def test_tokens_from_a_file(self):
        path = os.path.join(tempfile.mkdtemp(prefix="ringserve-tokens-"), "tokens")
        with open(path, "w") as f:
            f.write("# clients\nfirst-token\nsecond-token\n")
        self.check(self.start(["--auth-token-file", path]), "second-token")

    def test_a_token_from_the_environment(self):
        self.check(self.start([], env={**os.environ, "RINGSERVE_AUTH_TOKEN": "env-token"}),
                   "env-token")


class AuthTest(unittest.TestCase):
    def test_http_requests_need_the_routers_token(self):
        worker = fleet.start_worker(BIN_DIR, SHARED_DIR, "a0")
        port = fleet.free_port()
        os.environ["RINGSERVE_AUTH_TOKEN"] = "s3cret"
        try:
            router = fleet.start_router(BIN_DIR, [worker], extra=["--http-port", str(port)])
        finally:
            del os.environ["RINGSERVE_AUTH_TOKEN"]
        try:
            body = {"prompt": PROMPT, "max_tokens": 2}
            good = {"Authorization": "Bearer s3cret"}
            self.assertTrue(fleet.wait_until(
                lambda: _quiet(lambda: post(port, "/v1/completions", body, good)[0] == 200), 15))
            status, error = post(port, "/v1/completions", body)
            self.assertEqual(status, 401, error)
            self.assertIn("bearer token", error["error"]["message"])
            self.assertEqual(post(port, "/v1/completions", body,
                                  {"Authorization": "Bearer wrong"})[0], 401)
            self.assertEqual(request(port, "GET", "/v1/models")[0], 401)
            # Anthropic's clients send the token as x-api-key.
            self.assertEqual(post(port, "/v1/completions", body, {"x-api-key": "s3cret"})[0], 200)
            self.assertEqual(post(port, "/v1/completions", body, {"x-api-key": "wrong"})[0], 401)
            # The Messages API answers in Anthropic's error shape, its catalog lookup included.
            status, error = post(port, "/v1/messages",
                                 {"max_tokens": 2, "messages": [{"role": "user", "content": "x"}]})
            self.assertEqual(status, 401, error)
            self.assertEqual(error["type"], "error")
            self.assertEqual(error["error"]["type"], "authentication_error")
        finally:
            router.terminate()
            worker.terminate()


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:])
