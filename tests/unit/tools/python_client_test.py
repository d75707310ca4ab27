#!/usr/bin/env python3
"""Runs deploy/python/ringserve_client.py against a server and checks what it prints.

Usage: python_client_test.py EXAMPLE PYTHON_MODULES_DIR BIN_DIR

With RINGSERVE_TARGET=host:port in the environment it talks to that server (a real
worker or router) and passes RINGSERVE_CLIENT_ARGS to the example (e.g. "--tokens 5,6,7"
for a worker without a tokenizer); otherwise it starts ringserve-fake-worker from BIN_DIR. Exits 77 (a
skip for CTest) when python3-grpcio or the generated modules are missing.
"""
import os
import re
import shlex
import subprocess
import sys

SKIP = 77


def main():
    example, modules, bin_dir = sys.argv[1:4]
    try:
        import grpc  # noqa: F401  (only to learn whether python3-grpcio is installed)
    except ImportError:
        print("SKIP: python3-grpcio is not installed for", sys.executable)
        return SKIP
    if not os.path.exists(os.path.join(modules, "ringserve", "v1", "inference_pb2_grpc.py")):
        print("SKIP: no generated modules in", modules, "(build ringserve_python_proto)")
        return SKIP

    fake = None
    target = os.environ.get("RINGSERVE_TARGET")
    if not target:
        fake = subprocess.Popen([os.path.join(bin_dir, "ringserve-fake-worker"), "fake-py", "5"],
                                stdout=subprocess.PIPE, text=True)
        target = fake.stdout.readline().strip()
    try:
        env = dict(os.environ, PYTHONPATH=modules)
        session = f"python-test-{os.getpid()}"
        run = subprocess.run([sys.executable, example, "--target", target, "--session", session,
                              "--max-tokens", "5"]
                             + shlex.split(os.environ.get("RINGSERVE_CLIENT_ARGS", "")),
                             env=env, capture_output=True, text=True, timeout=60)
    finally:
        if fake is not None:
            fake.terminate()
            fake.wait(timeout=10)
    print(run.stdout, run.stderr, sep="\n")
    if run.returncode != 0:
        print("FAIL: the example exited", run.returncode)
        return 1
    turns = re.findall(r"turn (\d): finish=(\w+) worker=(\S*) prompt_tokens=(\d+) "
                       r"cached_tokens=(\d+) completion_tokens=(\d+)", run.stdout)
    if len(turns) != 2:
        print("FAIL: expected two turn summaries")
        return 1
    second = turns[1]
    if not second[2] or turns[0][2] != second[2]:
        print("FAIL: both turns must name the same worker")
        return 1
    if int(second[4]) <= 0:
        print("FAIL: the appended turn reused no cached tokens")
        return 1
    if int(second[5]) != 5 and second[1] == "FINISH_REASON_MAX_TOKENS":
        print("FAIL: max_tokens was not honoured")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
