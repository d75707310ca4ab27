#!/usr/bin/env python3
"""Renders every deploy/k8s overlay with `kubectl kustomize` and checks the objects offline.

No cluster is needed. The checks are the mistakes that would break a deployment silently:
selectors that match no pod, a router pointed at a name or port no Service provides, probes
on the wrong port, a worker without its GPU in the gpu overlay, a grace period too short
to drain, a NetworkPolicy that lets anything but routers reach the workers' gRPC port.
When the binaries are built, every flag the manifests pass must appear in their --help.

Exit 77 (ctest SKIP_RETURN_CODE) when kubectl is absent.
"""
import os
import re
import shutil
import subprocess
import sys
import unittest

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "deploy", "k8s")
BIN = os.environ.get("RINGSERVE_BIN_DIR", "")
OVERLAYS = ("gpu", "gpu-tls", "gpu-lora", "cpu-demo")
GRPC_PORT = 50051
METRICS_PORT = 9090


def render(overlay):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(K8S, "overlays", overlay)],
                         check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind, name):
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name}, found {len(found)}")
    return found[0]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def flags(args):
    """--name=value or --name value -> {name: value}."""
    result, i = {}, 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            if "=" in arg:
                name, value = arg[2:].split("=", 1)
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                name, value = arg[2:], args[i + 1]
                i += 1
            else:
                name, value = arg[2:], ""
            result[name] = value
        i += 1
    return result


def container(pod_spec, name):
    return next(c for c in pod_spec["containers"] if c["name"] == name)


class OverlayTest(unittest.TestCase):
    overlay = None

    @classmethod
    def setUpClass(cls):
        cls.objects = render(cls.overlay)
        cls.namespace = next(o["metadata"]["name"] for o in cls.objects if o["kind"] == "Namespace")
        cls.worker = one(cls.objects, "StatefulSet", "ringserve-worker")
        cls.router = one(cls.objects, "Deployment", "ringserve-router")
        cls.worker_pod = cls.worker["spec"]["template"]
        cls.router_pod = cls.router["spec"]["template"]

    def test_every_object_is_in_the_overlay_namespace(self):
        for o in self.objects:
            if o["kind"] != "Namespace":
                self.assertEqual(o["metadata"].get("namespace"), self.namespace, o["metadata"]["name"])

    def test_workload_selectors_match_their_pods(self):
        for w in (self.worker, self.router):
            labels = w["spec"]["template"]["metadata"]["labels"]
            self.assertTrue(selects(w["spec"]["selector"]["matchLabels"], labels), w["metadata"]["name"])

    def test_services_select_pods_and_target_named_ports(self):
        pods = {"ringserve-worker": self.worker_pod, "ringserve-router": self.router_pod}
        for svc in by_kind(self.objects, "Service"):
            matched = [name for name, pod in pods.items()
                       if selects(svc["spec"]["selector"], pod["metadata"]["labels"])]
            self.assertEqual(len(matched), 1, f"Service {svc['metadata']['name']} selects {matched}")
            pod = pods[matched[0]]
            port_names = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            for port in svc["spec"]["ports"]:
                self.assertIn(port["targetPort"], port_names, svc["metadata"]["name"])

    def test_worker_service_is_headless_and_named_by_the_statefulset(self):
        svc = one(self.objects, "Service", self.worker["spec"]["serviceName"])
        self.assertEqual(svc["spec"]["clusterIP"], "None")
        self.assertFalse(svc["spec"].get("publishNotReadyAddresses", False))
        self.assertTrue(selects(svc["spec"]["selector"], self.worker_pod["metadata"]["labels"]))

    def test_router_resolves_the_worker_service(self):
        args = flags(container(self.router_pod["spec"], "router")["args"])
        m = re.fullmatch(r"dns:([a-z0-9.-]+):(\d+)", args["workers"])
        self.assertIsNotNone(m, args["workers"])
        host, port = m.group(1), int(m.group(2))
        svc_name = host.split(".")[0]
        svc = one(self.objects, "Service", svc_name)
        if "." in host:
            self.assertEqual(host.split(".")[1], self.namespace)
        self.assertIn(port, [p["port"] for p in svc["spec"]["ports"]])
        self.assertTrue(selects(svc["spec"]["selector"], self.worker_pod["metadata"]["labels"]))

    def test_ports_probes_and_args_agree(self):
        for pod, name in ((self.worker_pod, "worker"), (self.router_pod, "router")):
            c = container(pod["spec"], name)
            args = flags(c["args"])
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            self.assertEqual(int(args["port"]), ports["grpc"])
            self.assertEqual(int(args["metrics-port"]), ports["metrics"])
            if name == "router":  # OpenAI's HTTP API
                self.assertEqual(int(args["http-port"]), ports["http"])
            for probe in ("readinessProbe", "livenessProbe"):
                check = c[probe]
                if "grpc" in check:
                    self.assertEqual(check["grpc"]["port"], ports["grpc"], f"{name} {probe}")
                else:  # TLS: the kubelet cannot probe it, ringserve-cli in the pod does
                    cmd = check["exec"]["command"]
                    self.assertEqual(cmd[-1], "health", f"{name} {probe}")
                    self.assertIn(f"--target=127.0.0.1:{ports['grpc']}", cmd, f"{name} {probe}")
            ann = pod["metadata"]["annotations"]
            self.assertEqual(ann["prometheus.io/scrape"], "true")
            self.assertEqual(int(ann["prometheus.io/port"]), ports["metrics"])

    def test_worker_drains_before_it_stops(self):
        spec = self.worker_pod["spec"]
        c = container(spec, "worker")
        cmd = c["lifecycle"]["preStop"]["exec"]["command"]
        self.assertIn("drain", cmd)
        self.assertIn(f"--target=127.0.0.1:{GRPC_PORT}", cmd)
        grace = spec["terminationGracePeriodSeconds"]
        self.assertGreaterEqual(grace, 30)
        # The hook must wait for in-flight requests, and give up inside the grace period.
        self.assertIn("--wait", cmd[cmd.index("drain"):])
        self.assertLess(float(flags(cmd)["timeout-s"]), grace)
        # Without the hook (it failed), SIGTERM's own drain also ends inside the grace.
        self.assertLess(int(flags(c["args"])["drain-timeout-s"]), grace)
        router = self.router_pod["spec"]
        self.assertLess(int(flags(container(router, "router")["args"])["drain-timeout-s"]),
                        router["terminationGracePeriodSeconds"])
        self.assertIn("startupProbe", c)
        self.assertIn("--id=$(POD_NAME)", c["args"])
        env = {e["name"]: e for e in c["env"]}
        self.assertEqual(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name")

    def test_model_volume_is_mounted_and_holds_the_model_flag(self):
        spec = self.worker_pod["spec"]
        c = container(spec, "worker")
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        volumes = {v["name"] for v in spec["volumes"]}
        self.assertIn("models", volumes)
        self.assertTrue(flags(c["args"])["model"].startswith(mounts["models"] + "/"))

    def test_pods_run_as_non_root_with_read_only_root(self):
        for pod in (self.worker_pod, self.router_pod):
            self.assertTrue(pod["spec"]["securityContext"]["runAsNonRoot"])
            for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
                sc = c["securityContext"]
                self.assertFalse(sc["allowPrivilegeEscalation"], c["name"])
                self.assertTrue(sc["readOnlyRootFilesystem"], c["name"])
                self.assertEqual(sc["capabilities"]["drop"], ["ALL"], c["name"])
            for c in pod["spec"]["containers"]:
                self.assertIn("requests", c["resources"], c["name"])
                self.assertIn("memory", c["resources"]["limits"], c["name"])

    def test_routers_are_replicated_and_spread(self):
        self.assertGreaterEqual(self.router["spec"]["replicas"], 2)
        terms = self.router_pod["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"]
        term = terms[0]["podAffinityTerm"]
        self.assertEqual(term["topologyKey"], "kubernetes.io/hostname")
        self.assertTrue(selects(term["labelSelector"]["matchLabels"], self.router_pod["metadata"]["labels"]))

    def test_disruption_budgets_cover_both_workloads(self):
        covered = set()
        for pdb in by_kind(self.objects, "PodDisruptionBudget"):
            sel = pdb["spec"]["selector"]["matchLabels"]
            for name, pod in (("worker", self.worker_pod), ("router", self.router_pod)):
                if selects(sel, pod["metadata"]["labels"]):
                    covered.add(name)
        self.assertEqual(covered, {"worker", "router"})

    def test_only_routers_reach_the_worker_grpc_port(self):
        policies = [p for p in by_kind(self.objects, "NetworkPolicy")
                    if selects(p["spec"]["podSelector"]["matchLabels"], self.worker_pod["metadata"]["labels"])]
        self.assertEqual(len(policies), 1)
        policy = policies[0]
        self.assertIn("Ingress", policy["spec"]["policyTypes"])
        routers_allowed = False
        for rule in policy["spec"]["ingress"]:
            ports = {p["port"] for p in rule.get("ports", [])}
            if not ports or GRPC_PORT in ports:
                routers_allowed = True
                sources = rule.get("from", [])
                self.assertTrue(sources, "gRPC port open to every pod")
                for src in sources:
                    self.assertTrue(selects(src["podSelector"]["matchLabels"],
                                            self.router_pod["metadata"]["labels"]))
                    self.assertNotIn("namespaceSelector", src)
        self.assertTrue(routers_allowed, "routers cannot reach the workers' gRPC port")

    @unittest.skipUnless(BIN and os.path.exists(os.path.join(BIN, "ringserve-worker")),
                         "binaries not built")
    def test_every_flag_is_one_the_binaries_accept(self):
        for pod, name, binary in ((self.worker_pod, "worker", "ringserve-worker"),
                                  (self.router_pod, "router", "ringserve-router")):
            usage = subprocess.run([os.path.join(BIN, binary), "--help"], capture_output=True,
                                   text=True).stdout
            c = container(pod["spec"], name)
            for flag in flags(c["args"]):
                self.assertRegex(usage, rf"--{re.escape(flag)}\b", f"{binary} --{flag}")
            # Probes and hooks that run ringserve-cli: its global and command flags.
            hooks = [c[p]["exec"]["command"] for p in ("startupProbe", "readinessProbe",
                                                       "livenessProbe") if "exec" in c.get(p, {})]
            if "lifecycle" in c:
                hooks.append(c["lifecycle"]["preStop"]["exec"]["command"])
            for cmd in hooks:
                self.assertEqual(os.path.basename(cmd[0]), "ringserve-cli")
                command = next(a for a in cmd[1:] if not a.startswith("--"))
                cli_usage = subprocess.run([os.path.join(BIN, "ringserve-cli"), command, "--help"],
                                           capture_output=True, text=True)
                text = cli_usage.stdout + cli_usage.stderr
                for flag in flags(cmd[1:]):
                    self.assertRegex(text, rf"--{re.escape(flag)}\b", f"ringserve-cli --{flag}")


class GpuOverlayTest(OverlayTest):
    overlay = "gpu"

    def test_each_worker_gets_one_gpu(self):
        c = container(self.worker_pod["spec"], "worker")
        self.assertEqual(c["resources"]["limits"]["nvidia.com/gpu"], 1)
        self.assertEqual(flags(c["args"])["device"], "cuda:0")
        self.assertEqual(self.worker_pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
                         "ringserve-models")

    def test_images_come_from_a_registry_with_a_tag(self):
        for pod in (self.worker_pod, self.router_pod):
            for c in pod["spec"]["containers"]:
                self.assertRegex(c["image"], r"^[^/]+\.[^/]+/.+:[^:]+$")


def mounted_files(pod_spec, c, secrets):
    """Path -> (secret name, key) for every Secret key the container mounts."""
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    files = {}
    for m in c.get("volumeMounts", []):
        secret = volumes[m["name"]].get("secret")
        if secret:
            for key in secrets.get(secret["secretName"], ()):
                files[f"{m['mountPath']}/{key}"] = (secret["secretName"], key)
    return files


class GpuTlsOverlayTest(GpuOverlayTest):
    overlay = "gpu-tls"
    # The Secrets components/tls documents, with the keys it reads.
    secrets = {"ringserve-tls": ("tls.crt", "tls.key", "ca.crt"),
               "ringserve-internal": ("tls.crt", "tls.key", "ca.crt"),
               "ringserve-auth": ("tokens",)}

    def file_flags(self, pod, name):
        """Every --*-ca/-cert/-key/-file flag of the container's args and its exec hooks."""
        c = container(pod["spec"], name)
        lists = [c["args"]]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in c:
                lists.append(c[probe]["exec"]["command"])
        if "lifecycle" in c:
            lists.append(c["lifecycle"]["preStop"]["exec"]["command"])
        found = []
        for args in lists:
            found += [(k, v) for k, v in flags(args).items()
                      if re.search(r"(-ca|-cert|-key|-file)$", k)]
        return c, found

    def test_every_tls_and_token_file_is_a_mounted_secret_key(self):
        for pod, name in ((self.worker_pod, "worker"), (self.router_pod, "router")):
            c, file_flags = self.file_flags(pod, name)
            files = mounted_files(pod["spec"], c, self.secrets)
            self.assertTrue(file_flags, name)
            for flag, path in file_flags:
                self.assertIn(path, files, f"{name} --{flag}")
            # Secret files are root-owned 0440: the pod's group must be able to read them.
            self.assertEqual(pod["spec"]["securityContext"]["fsGroup"],
                             pod["spec"]["securityContext"]["runAsGroup"], name)

    def test_both_hops_are_tls_and_workers_admit_only_routers(self):
        worker = flags(container(self.worker_pod["spec"], "worker")["args"])
        router = flags(container(self.router_pod["spec"], "router")["args"])
        for key in ("tls-cert", "tls-key", "tls-client-ca"):
            self.assertIn(key, worker)
        for key in ("tls-cert", "tls-key", "auth-token-file", "worker-tls-ca", "worker-tls-cert",
                    "worker-tls-key"):
            self.assertIn(key, router)
        # The router's client certificate is signed by the CA the workers require.
        self.assertEqual(worker["tls-client-ca"], router["worker-tls-ca"])
        self.assertEqual(worker["tls-cert"], router["worker-tls-cert"])
        # The worker's own probes name the worker certificate's name, as the router does.
        c = container(self.worker_pod["spec"], "worker")
        probe = flags(c["readinessProbe"]["exec"]["command"])
        self.assertEqual(probe["tls-server-name"], router["worker-tls-server-name"])
        self.assertEqual(probe["tls-cert"], worker["tls-cert"])
        drain = flags(c["lifecycle"]["preStop"]["exec"]["command"])
        self.assertEqual(drain["tls-ca"], worker["tls-client-ca"])


class GpuLoraOverlayTest(GpuOverlayTest):
    overlay = "gpu-lora"

    def test_workers_find_adapters_on_a_read_only_volume_and_routers_group_them(self):
        spec = self.worker_pod["spec"]
        c = container(spec, "worker")
        args = flags(c["args"])
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        self.assertEqual(mounts["adapters"]["mountPath"], args["lora-dir"])
        self.assertTrue(mounts["adapters"]["readOnly"])
        claim = volumes["adapters"]["persistentVolumeClaim"]
        self.assertEqual(claim["claimName"], "ringserve-adapters")
        self.assertTrue(claim["readOnly"])
        # --lora-dir needs slots; host memory holds at least as many adapters as they do.
        self.assertGreater(int(args["max-loras"]), 0)
        self.assertGreaterEqual(int(args["max-cpu-loras"]), int(args["max-loras"]))
        self.assertIn("adapter-affinity", flags(container(self.router_pod["spec"], "router")["args"]))


def gibibytes(quantity):
    """A Kubernetes memory quantity ("160Gi") or a ringserve size ("128GiB") in GiB."""
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", quantity).groups()
    scale = {"Gi": 1, "GiB": 1, "Mi": 1 / 1024, "MiB": 1 / 1024, "Ti": 1024, "TiB": 1024}[unit]
    return float(number) * scale


class GpuKvHostOverlayTest(GpuOverlayTest):
    overlay = "gpu-kv-host"

    def test_the_pods_memory_covers_the_page_locked_host_tier(self):
        c = container(self.worker_pod["spec"], "worker")
        tier = gibibytes(flags(c["args"])["kv-host-memory"])
        self.assertGreaterEqual(tier, 64)
        request = gibibytes(c["resources"]["requests"]["memory"])
        limit = gibibytes(c["resources"]["limits"]["memory"])
        # Page-locked memory is never reclaimed: the request holds it and the process beside.
        self.assertGreaterEqual(request, tier + 16)
        self.assertGreaterEqual(limit, request)


class CpuDemoOverlayTest(OverlayTest):
    overlay = "cpu-demo"

    def test_workers_make_the_tiny_model_without_a_gpu(self):
        spec = self.worker_pod["spec"]
        c = container(spec, "worker")
        self.assertEqual(flags(c["args"])["device"], "cpu")
        self.assertNotIn("nvidia.com/gpu", c["resources"].get("limits", {}))
        init = spec["initContainers"][0]
        self.assertIn("make-tiny", init["command"])
        out = init["command"][init["command"].index("--out") + 1]
        self.assertEqual(out, flags(c["args"])["model"])
        models = next(v for v in spec["volumes"] if v["name"] == "models")
        self.assertIn("emptyDir", models)
        self.assertNotIn("persistentVolumeClaim", models)


del OverlayTest  # only the concrete overlays run

if __name__ == "__main__":
    if shutil.which("kubectl") is None:
        print("kubectl not found: skipping the Kubernetes manifest checks")
        sys.exit(77)
    unittest.main(verbosity=2)
