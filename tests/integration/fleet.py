"""Starts ringserve processes on loopback for integration tests: workers, a router, and
the Python modules of the public API generated from proto/ with protoc."""
import collections
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77  # ctest SKIP_RETURN_CODE


def import_grpc_or_skip():
    try:
        import grpc  # noqa: F401
    except ImportError:
        print("python3-grpcio is not installed: skipping", file=sys.stderr)
        sys.exit(SKIP)


def generate_modules(proto_dir, out_dir):
    """Compiles ringserve/v1/*.proto (messages and stubs) into out_dir and imports it."""
    plugin = "/usr/bin/grpc_python_plugin"
    protos = ["ringserve/v1/inference.proto", "ringserve/v1/admin.proto"]
    subprocess.run(["protoc", f"-I{proto_dir}", f"--python_out={out_dir}",
                    f"--grpc_python_out={out_dir}", f"--plugin=protoc-gen-grpc_python={plugin}",
                    *protos], check=True)
    for package in ("ringserve", "ringserve/v1"):
        open(os.path.join(out_dir, package, "__init__.py"), "a").close()
    sys.path.insert(0, out_dir)


class Process:
    """A ringserve binary that prints 'listening on HOST:PORT' once it serves."""

    def __init__(self, args, name, env=None):
        self.args = args
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=env)
        line = self.proc.stdout.readline()
        match = re.search(r"listening on [^ ]*:(\d+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"{name} did not start: {line!r}; log {self.log.name}:\n"
                               + open(self.log.name).read()[-2000:])
        self.port = int(match.group(1))
        self.address = f"127.0.0.1:{self.port}"

    def log_text(self):
        """What the process has written to stderr so far."""
        with open(self.log.name) as log:
            return log.read()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._close()

    def _close(self):
        self.proc.stdout.close()
        self.log.close()

    def terminate(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self._close()
        return self.proc.returncode


_tiny_dir = None


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(port, method="GET", path="/metrics"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read().decode()
    finally:
        conn.close()


def scrape(port):
    """{(name, labels text): value} of one scrape, after checking the exposition format."""
    status, content_type, body = fetch(port)
    assert status == 200, (status, body)
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    samples, typed = {}, set()
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not an exposition line: {line!r}"
        name, labels, value = match.groups()
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, f"{name} has no # TYPE line"
        samples[(name, labels or "")] = float(value)
    return samples


def tiny_model(bin_dir):
    """A tiny Llama GGUF with a SentencePiece vocabulary, written once per test process by
    `ringserve-model make-tiny` (what serve.sh serves when no model is named)."""
    global _tiny_dir
    if _tiny_dir is None:
        _tiny_dir = tempfile.TemporaryDirectory(prefix="ringserve-tiny-")
        path = os.path.join(_tiny_dir.name, "tiny.gguf")
        subprocess.run([os.path.join(bin_dir, "ringserve-model"), "make-tiny", "--out", path],
                       check=True, capture_output=True)
    return os.path.join(_tiny_dir.name, "tiny.gguf")


def model_args(bin_dir, shared_dir):
    """The real tiny checkpoint when ../shared has it, else make-tiny's model: either way a
    model with a tokenizer and no chat format."""
    model = os.path.join(shared_dir, "models", "stories260K.bin")
    if os.path.exists(model):
        return ["--model", model, "--tokenizer", os.path.join(shared_dir, "models", "tok512.bin")]
    return ["--model", tiny_model(bin_dir)]


def start_worker(bin_dir, shared_dir, worker_id, port=0, extra=(), env=None):
    return Process([os.path.join(bin_dir, "ringserve-worker"), *model_args(bin_dir, shared_dir),
                    "--port", str(port), "--host", "127.0.0.1", "--id", worker_id,
                    "--kv-memory", "64MiB", "--threads", "1", "--drain-timeout-s", "5", *extra],
                   worker_id, env=env)


def start_router(bin_dir, workers, extra=()):
    return Process([os.path.join(bin_dir, "ringserve-router"), "--port", "0", "--host", "127.0.0.1",
                    "--workers", ",".join(w.address for w in workers),
                    "--health-interval-ms", "200", "--health-timeout-ms", "500", *extra], "router")


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def proc_status(pid, field):
    """An integer field of /proc/PID/status (VmRSS is in KiB)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def rss_kib(pid):
    return proc_status(pid, "VmRSS")


def num_threads(pid):
    return proc_status(pid, "Threads")


def sanitizer(pid):
    """"address" or "thread" when the process runs with that sanitizer's runtime, else None."""
    with open(f"/proc/{pid}/maps") as maps:
        text = maps.read()
    return "address" if "libasan" in text else "thread" if "libtsan" in text else None


def health(address, timeout=1.0):
    """grpc.health.v1 Check of the whole server: "SERVING", "NOT_SERVING" or None when it does
    not answer. The health proto is not among the generated modules, so this sends the empty
    request as raw bytes and reads the reply's one enum field (1 SERVING, 2 NOT_SERVING)."""
    import grpc
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            reply = check(b"", timeout=timeout)
        except grpc.RpcError:
            return None
    return {b"\x08\x01": "SERVING", b"\x08\x02": "NOT_SERVING"}.get(reply, repr(reply))


# Statuses after which the same request may be sent again (docs/design.md, "Proxy";
# inference.proto, Admin.Drain): the worker went away or drained, or is overloaded.
RETRIABLE = ("UNAVAILABLE", "ABORTED", "RESOURCE_EXHAUSTED")


def stream(stub, request, timeout, read_delay_s=0.0, stall_after_first_s=0.0, cancel_after=None):
    """Runs one Generate to its end. Returns (status name, token ids, final or None, worker id
    from the initial metadata, status details). A slow reader sleeps read_delay_s after each
    message, a stalled one stall_after_first_s after the first; cancel_after cancels the call
    once that many messages have arrived."""
    import grpc
    call = stub.Generate(request, timeout=timeout)
    ids, final, messages = [], None, 0
    try:
        for message in call:
            ids.extend(message.token_ids)
            if message.HasField("final"):
                final = message.final
            messages += 1
            if cancel_after is not None and messages >= cancel_after:
                call.cancel()
            time.sleep(read_delay_s + (stall_after_first_s if messages == 1 else 0))
        code, details = "OK", ""
    except grpc.RpcError as e:
        code, details = e.code().name, e.details() or ""
    worker = dict(call.initial_metadata() or ()).get("x-ringserve-worker")
    return code, ids, final, worker, details


def generate_request(session, tokens, max_tokens, append=False, expected=None, **fields):
    """A Generate of exactly max_tokens tokens (ignore_eos), greedy unless `sampling` says."""
    from ringserve.v1 import inference_pb2 as pb
    fields.setdefault("sampling", pb.SamplingParams(temperature=0))
    r = pb.GenerateRequest(session_id=session, tokens=pb.TokenIds(ids=tokens), append=append,
                           stop=pb.StopCriteria(max_tokens=max_tokens, ignore_eos=True), **fields)
    if expected is not None:
        r.expected_history_tokens = expected
    return r


def complete_output(ids, final, max_tokens):
    """The stream delivered all it promised: max_tokens tokens and a final that says so."""
    from ringserve.v1 import inference_pb2 as pb
    return (final is not None and final.finish_reason == pb.FINISH_REASON_MAX_TOKENS
            and len(ids) == max_tokens == final.usage.completion_tokens)


def outcome(code, ids, final, max_tokens, details):
    """(outcome, problem): "complete", a status name, or "truncated" with why (an OK stream
    whose output fell short is a lost request even though no error was reported)."""
    if code != "OK":
        return code, f"{code}: {details}"
    if complete_output(ids, final, max_tokens):
        return "complete", None
    return "truncated", f"{len(ids)}/{max_tokens} tokens, final {final}"


class Conversation:
    """A multi-turn session as a careful client keeps it: each turn appends, with
    expected_history_tokens, while the worker's history is known to match the client's; after
    a failed turn, or when the session is gone or stale (NOT_FOUND / FAILED_PRECONDITION,
    inference.proto), the next turn resends the whole context without append."""

    def __init__(self, session, prompt, max_context):
        self.session, self.context, self.max_context = session, list(prompt), max_context
        self.history = None  # the worker's history_tokens after the last good turn

    def done(self):
        return len(self.context) > self.max_context

    def request(self, new_tokens, max_tokens):
        if self.history is None:
            return generate_request(self.session, self.context, max_tokens)
        return generate_request(self.session, new_tokens, max_tokens, append=True,
                                expected=self.history)

    def update(self, request, code, ids, final):
        """Takes a turn's result; returns "resend(CODE)" when the session moved, else None.
        A wrong history length after a good turn raises: the worker lost or doubled tokens."""
        if request.append and code in ("NOT_FOUND", "FAILED_PRECONDITION"):
            self.history = None
            return f"resend({code})"
        if code != "OK" or final is None:
            self.history = None
            return None
        if request.append:
            self.context += list(request.tokens.ids)
        self.context += ids
        self.history = final.history_tokens
        if self.history != len(self.context):
            raise AssertionError(f"{self.session}: history {self.history} != {len(self.context)}")
        return None


class Tally:
    """Outcome counts per request kind, shared by load threads, and the requests that broke a
    rule (each with why), printed as a summary at the end."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts = collections.Counter()  # (kind, outcome) -> n
        self.problems = []

    def add(self, kind, outcome, problem=None):
        with self._lock:
            self.counts[(kind, outcome)] += 1
            if problem is not None:
                self.problems.append(f"{kind}: {problem}")

    def total(self, outcome=None, kind=None):
        with self._lock:
            return sum(n for (k, o), n in self.counts.items()
                       if (outcome is None or o == outcome) and (kind is None or k == kind))

    def summary(self):
        with self._lock:
            kinds = sorted({k for k, _ in self.counts})
            lines = []
            for kind in kinds:
                outcomes = {o: n for (k, o), n in self.counts.items() if k == kind}
                parts = " ".join(f"{o}={n}" for o, n in sorted(outcomes.items()))
                lines.append(f"  {kind:<14} {sum(outcomes.values()):>6}  {parts}")
            return "\n".join(lines)


class Cluster:
    """N workers (ids PREFIX0..) behind one router, and a channel to the router."""

    def __init__(self, bin_dir, shared_dir, prefix, num_workers, worker_extra=(), router_extra=()):
        import grpc
        from ringserve.v1 import admin_pb2_grpc
        from ringserve.v1 import inference_pb2_grpc
        self.bin_dir, self.shared_dir = bin_dir, shared_dir
        self.worker_extra = list(worker_extra)
        self.workers, self.router = [], None
        try:
            for i in range(num_workers):
                self.workers.append(start_worker(bin_dir, shared_dir, f"{prefix}{i}",
                                                 extra=self.worker_extra))
            self.router = start_router(bin_dir, self.workers, extra=router_extra)
        except Exception:
            self.close()
            raise
        self.channel = grpc.insecure_channel(self.router.address)
        self.stub = inference_pb2_grpc.InferenceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        if not wait_until(lambda: len(self.healthy()) == num_workers, 15):
            self.close()
            raise RuntimeError("the workers never became healthy at the router")

    def stats(self, timeout=5):
        """Admin.GetStats through the router: one WorkerStats per healthy worker."""
        from ringserve.v1 import admin_pb2
        return self.admin.GetStats(admin_pb2.GetStatsRequest(), timeout=timeout).workers

    def worker_stats(self, index, timeout=5):
        """Admin.GetStats straight from worker `index` (whether or not the router counts it)."""
        import grpc
        from ringserve.v1 import admin_pb2, admin_pb2_grpc
        with grpc.insecure_channel(self.workers[index].address) as channel:
            return admin_pb2_grpc.AdminStub(channel).GetStats(admin_pb2.GetStatsRequest(),
                                                              timeout=timeout).workers[0]

    def healthy(self):
        """Addresses of the workers the router counts as healthy (it asks only those)."""
        import grpc
        try:
            return {w.address for w in self.stats()}
        except grpc.RpcError:
            return set()

    def restart(self, index):
        """Starts worker `index` again on its old port with its old id (the old one has gone)."""
        old = self.workers[index]
        self.workers[index] = start_worker(self.bin_dir, self.shared_dir, old.name, port=old.port,
                                           extra=self.worker_extra)
        return self.workers[index]

    def close(self):
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        if self.router is not None:
            self.router.terminate()
        for w in self.workers:
            w.terminate()
