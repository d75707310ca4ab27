#!/usr/bin/env python3
"""Runs the gpu-tls overlay's own commands against real processes, on loopback.

Renders deploy/k8s/overlays/gpu-tls, makes its Secrets with components/tls/make-secrets.sh,
writes each Secret key where the pod would mount it (under a temporary root), then starts
a worker and a router with the rendered args (only ports, the device and the model change)
and runs the rendered probes and preStop hook exactly as the kubelet would. So a flag, a
path or a certificate name that does not line up fails here, not in a cluster.

Exit 77 (ctest SKIP_RETURN_CODE) when kubectl, openssl or the binaries are absent.
"""
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import fleet  # noqa: E402
from k8s_manifests_test import container, flags, render  # noqa: E402

BIN = os.environ.get("RINGSERVE_BIN_DIR", "")
MAKE_SECRETS = os.path.join(ROOT, "deploy", "k8s", "components", "tls", "make-secrets.sh")


def pod_of(objects, kind):
    return next(o for o in objects if o["kind"] == kind)["spec"]["template"]["spec"]


class GpuTlsOverlayOnLoopback(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="ringserve-k8s-tls-")
        objects = render("gpu-tls")
        cls.worker_pod = pod_of(objects, "StatefulSet")
        cls.router_pod = pod_of(objects, "Deployment")
        made = subprocess.run([MAKE_SECRETS, "--namespace", "ringserve", "--client", "team-a"],
                              check=True, capture_output=True, text=True)
        secrets = {s["metadata"]["name"]: s for s in yaml.safe_load_all(made.stdout) if s}
        cls.token = next(line.split(": ", 1)[1] for line in made.stderr.splitlines()
                         if line.startswith("token for team-a: "))
        for pod in (cls.worker_pod, cls.router_pod):
            cls.write_mounted_secrets(pod, secrets)
        model = os.path.join(cls.root, "model.gguf")
        subprocess.run([os.path.join(BIN, "ringserve-model"), "make-tiny", "--out", model],
                       check=True, capture_output=True)

        worker = container(cls.worker_pod, "worker")
        cls.worker = fleet.Process(
            [os.path.join(BIN, "ringserve-worker"),
             *cls.local(worker["args"], {"port": "0", "metrics-port": "0", "device": "cpu",
                                         "model": model, "kv-memory": "64MiB",
                                         "drain-timeout-s": "5"}),
             "--host", "127.0.0.1"], "worker")
        router = container(cls.router_pod, "router")
        cls.router = fleet.Process(
            [os.path.join(BIN, "ringserve-router"),
             *cls.local(router["args"], {"port": "0", "metrics-port": "0",
                                         "workers": cls.worker.address}),
             "--host", "127.0.0.1", "--health-interval-ms", "200"], "router")

    @classmethod
    def tearDownClass(cls):
        for name in ("router", "worker"):
            if hasattr(cls, name):
                getattr(cls, name).terminate()
        shutil.rmtree(cls.root, ignore_errors=True)

    @classmethod
    def write_mounted_secrets(cls, pod, secrets):
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            for mount in c.get("volumeMounts", []):
                secret = volumes[mount["name"]].get("secret")
                if not secret:
                    continue
                directory = cls.root + mount["mountPath"]
                os.makedirs(directory, exist_ok=True)
                for key, value in secrets[secret["secretName"]]["data"].items():
                    with open(os.path.join(directory, key), "wb") as f:
                        f.write(base64.b64decode(value))

    @classmethod
    def local(cls, args, overrides):
        """The pod's args with mounted paths under the temporary root and `overrides`."""
        out = []
        for name, value in flags(args).items():
            if name in overrides:
                value = overrides[name]
            elif value.startswith("/etc/ringserve/"):
                value = cls.root + value
            out.append(f"--{name}={value}" if value else f"--{name}")
        return out

    def run_hook(self, command, process):
        """A probe or hook command as the kubelet runs it in the pod, aimed at `process`."""
        args = [os.path.join(BIN, "ringserve-cli")]
        for arg in command[1:]:
            if arg.startswith("--target="):
                arg = f"--target={process.address}"
            elif "=/etc/ringserve/" in arg:
                name, path = arg.split("=", 1)
                arg = f"{name}={self.root}{path}"
            args.append(arg)
        return subprocess.run(args, capture_output=True, text=True, timeout=30)

    def probe(self, pod, name, probe, process):
        result = self.run_hook(container(pod, name)[probe]["exec"]["command"], process)
        self.assertEqual(result.returncode, 0, f"{name} {probe}: {result.stdout}{result.stderr}")
        self.assertIn("SERVING", result.stdout)

    def test_1_probes_pass_over_tls(self):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.probe(self.worker_pod, "worker", probe, self.worker)
        self.assertTrue(fleet.wait_until(lambda: self.run_hook(
            container(self.router_pod, "router")["readinessProbe"]["exec"]["command"],
            self.router).returncode == 0, 10))
        for probe in ("readinessProbe", "livenessProbe"):
            self.probe(self.router_pod, "router", probe, self.router)

    def client(self, *extra):
        router_ca = os.path.join(self.root, "etc/ringserve/tls/ca.crt")
        return subprocess.run(
            [os.path.join(BIN, "ringserve-cli"), f"--target={self.router.address}",
             f"--tls-ca={router_ca}", "--tls-server-name=ringserve", *extra, "generate",
             "--text", "Once", "--max-tokens", "4"],
            capture_output=True, text=True, timeout=30)

    def test_2_clients_need_the_token_and_reach_the_worker_through_the_router(self):
        self.assertTrue(fleet.wait_until(lambda: self.client(f"--token={self.token}").returncode
                                         == 0, 10))
        refused = self.client()
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("UNAUTHENTICATED", refused.stderr)
        self.assertIn("UNAUTHENTICATED", self.client("--token=wrong").stderr)

    def test_3_only_holders_of_the_internal_certificate_reach_the_worker(self):
        ca = os.path.join(self.root, "etc/ringserve/internal/ca.crt")
        without_cert = subprocess.run(
            [os.path.join(BIN, "ringserve-cli"), f"--target={self.worker.address}",
             f"--tls-ca={ca}", "--tls-server-name=ringserve-worker", "--timeout-s=5", "health"],
            capture_output=True, text=True, timeout=30)
        self.assertNotEqual(without_cert.returncode, 0)
        plaintext = subprocess.run(
            [os.path.join(BIN, "ringserve-cli"), f"--target={self.worker.address}",
             "--timeout-s=5", "health"], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(plaintext.returncode, 0)

    def test_4_the_prestop_hook_drains_the_worker(self):
        hook = container(self.worker_pod, "worker")["lifecycle"]["preStop"]["exec"]["command"]
        result = self.run_hook(hook, self.worker)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("0 requests still running", result.stdout)
        readiness = container(self.worker_pod, "worker")["readinessProbe"]["exec"]["command"]
        after = self.run_hook(readiness, self.worker)
        self.assertNotEqual(after.returncode, 0)
        self.assertIn("NOT_SERVING", after.stdout + after.stderr)


if __name__ == "__main__":
    missing = [tool for tool in ("kubectl", "openssl") if shutil.which(tool) is None]
    if missing or not (BIN and os.path.exists(os.path.join(BIN, "ringserve-worker"))):
        print(f"skipping: missing {missing or 'the built binaries'}", file=sys.stderr)
        sys.exit(fleet.SKIP)
    unittest.main(verbosity=2)
