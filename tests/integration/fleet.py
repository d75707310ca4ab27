"""Starts ringserve processes on loopback for integration tests: workers, a router, and
the Python modules of the public API generated from proto/ with protoc."""
import os
import re
import signal
import subprocess
import sys
import tempfile
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

    def __init__(self, args, name):
        self.args = args
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"listening on [^ ]*:(\d+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"{name} did not start: {line!r}; log {self.log.name}:\n"
                               + open(self.log.name).read()[-2000:])
        self.port = int(match.group(1))
        self.address = f"127.0.0.1:{self.port}"

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


def model_args(shared_dir):
    """The real tiny checkpoint when ../shared has it, else the built-in tiny preset."""
    model = os.path.join(shared_dir, "models", "stories260K.bin")
    if os.path.exists(model):
        return ["--model", model, "--tokenizer", os.path.join(shared_dir, "models", "tok512.bin")]
    return ["--dummy-weights", "--preset", "tiny"]


def start_worker(bin_dir, shared_dir, worker_id, port=0, extra=()):
    return Process([os.path.join(bin_dir, "ringserve-worker"), *model_args(shared_dir),
                    "--port", str(port), "--host", "127.0.0.1", "--id", worker_id,
                    "--kv-memory", "64MiB", "--threads", "1", "--drain-timeout-s", "5", *extra],
                   worker_id)


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
