#!/usr/bin/env python3
"""Checks deploy/docker's Dockerfiles and deploy/local/deps.sh's profiles offline.

No Docker engine is needed. The Dockerfiles are parsed into stages and checked against
the rest of the tree: bases (Debian 12, CUDA only as a copy source), packages installed
only through deps.sh with the stage's profile, a Release Ninja build of CMake targets
that exist, a numeric non-root USER equal to the Kubernetes runAsUser, an exec-form
ENTRYPOINT, EXPOSEd ports equal to the manifests' container ports, every binary the
manifests run present in the image, and a .dockerignore that keeps build trees out while
letting every tracked file in.

deps.sh: each profile prints, the default profile (CI's) contains the build profile,
every package exists in Debian 12 (apt-cache), and each runtime profile covers the shared
libraries that the built binaries of its image load: `ldd` on the binaries in
$RINGSERVE_BIN_DIR, each library mapped to its package with `dpkg -S`. Parts whose tools
or binaries are missing skip; exit 77 (ctest SKIP_RETURN_CODE) without PyYAML.
"""
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import unittest

try:
    import yaml
except ImportError:
    yaml = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCKER = os.path.join(ROOT, "deploy", "docker")
DEPS = os.path.join(ROOT, "deploy", "local", "deps.sh")
DEPS_REL = "deploy/local/deps.sh"
K8S = os.path.join(ROOT, "deploy", "k8s")
BIN = os.environ.get("RINGSERVE_BIN_DIR", "")
OVERLAYS = ("gpu", "cpu-demo")
BIN_DIR_IN_IMAGE = "/usr/local/bin"
# In every Debian image (apt itself needs them), so no profile has to name them.
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}

# Image -> the workload that runs it, its main container, its deps.sh runtime profile and
# whether its build has the CUDA backend.
IMAGES = {
    "Dockerfile.worker": dict(kind="StatefulSet", workload="ringserve-worker", container="worker",
                              profile="runtime-worker", cuda="ON"),
    "Dockerfile.router": dict(kind="Deployment", workload="ringserve-router", container="router",
                              profile="runtime-router", cuda="OFF"),
}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------------------------------
# Dockerfile parsing

class Stage:
    def __init__(self, index, base, name):
        self.index, self.base, self.name = index, base, name
        self.instructions = []  # (KEYWORD, argument text)

    def args(self, keyword):
        return [a for k, a in self.instructions if k == keyword]

    def label(self):
        return self.name or f"stage {self.index}"


def logical_lines(text):
    """Joins backslash continuations and drops comment lines (also inside continuations)."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def substitute(text, variables):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                  lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def parse_dockerfile(path):
    """-> (global ARG defaults, [Stage]) with ARGs substituted into FROM lines."""
    global_args, stages = {}, []
    for line in logical_lines(read(path)):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name] = default.strip('"')
        elif keyword == "FROM":
            words = [w for w in substitute(rest, global_args).split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(len(stages), words[0], name))
        else:
            if not stages:
                raise AssertionError(f"{path}: {keyword} before the first FROM")
            stages[-1].instructions.append((keyword, rest))
    return global_args, stages


def split_flags(text):
    """'--a=b --c=d rest of it' -> ({a: b, c: d}, 'rest of it')."""
    flags = {}
    while text.startswith("--"):
        word, _, text = text.partition(" ")
        name, _, value = word[2:].partition("=")
        flags[name] = value
        text = text.strip()
    return flags, text


def copies(stage):
    """-> [(from stage or None, [sources], destination)] for COPY and ADD."""
    result = []
    for keyword, text in stage.instructions:
        if keyword in ("COPY", "ADD"):
            flags, rest = split_flags(text)
            words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
            result.append((flags.get("from"), words[:-1], words[-1]))
    return result


def run_commands(stage):
    """-> [(mount options dict list, shell command)] for each RUN."""
    result = []
    for text in stage.args("RUN"):
        mounts = []
        while text.startswith("--"):
            word, _, text = text.partition(" ")
            text = text.strip()
            name, _, value = word[2:].partition("=")
            if name == "mount":
                mounts.append(dict(part.split("=", 1) for part in value.split(",") if "=" in part))
        result.append((mounts, text))
    return result


def deps_invocations(stage):
    """-> [profile flag] for each RUN that runs a copy or bind mount of deploy/local/deps.sh."""
    paths = set()
    for source, sources, dest in copies(stage):
        if source is None and DEPS_REL in sources:
            paths.add(dest.rstrip("/") + "/deps.sh" if dest.endswith("/") else dest)
        if source is None and "." in sources:
            paths.add(dest.rstrip("/") + "/" + DEPS_REL)
    found = []
    for mounts, command in run_commands(stage):
        run_paths = set(paths)
        for m in mounts:
            if m.get("type") == "bind" and m.get("source") == DEPS_REL:
                run_paths.add(m["target"])
        for path in run_paths:
            for m in re.finditer(rf"(?:^|[\s;&|]){re.escape(path)}((?:\s+--?[\w-]+)*)", command):
                found.append(m.group(1).split())
    return found


def cmake_executables():
    names = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if not d.startswith(("build", ".", "out"))]
        if "CMakeLists.txt" in filenames:
            text = read(os.path.join(dirpath, "CMakeLists.txt"))
            names.update(re.findall(r"add_executable\(\s*([\w.+-]+)", text))
    return names


def image_binaries(stages):
    """Absolute paths of the programs the final stage copies into BIN_DIR_IN_IMAGE."""
    result = set()
    for source, sources, dest in copies(stages[-1]):
        if source is None or dest.rstrip("/") != BIN_DIR_IN_IMAGE:
            continue
        for src in sources:
            base = os.path.basename(src.rstrip("/"))
            result.add(os.path.join(dest, base) if dest.endswith("/") else dest)
    return result


# ---------------------------------------------------------------------------------------
# Kubernetes manifests: the pod templates of the workloads that run the images

def pod_templates(kind, name):
    """-> [(source, pod template)], rendered per overlay with kubectl, else the base file."""
    if shutil.which("kubectl"):
        result = []
        for overlay in OVERLAYS:
            out = subprocess.run(["kubectl", "kustomize", os.path.join(K8S, "overlays", overlay)],
                                 check=True, capture_output=True, text=True).stdout
            for o in yaml.safe_load_all(out):
                if o and o["kind"] == kind and o["metadata"]["name"] == name:
                    result.append((overlay, o["spec"]["template"]))
        return result
    result = []
    base = os.path.join(K8S, "base")
    for file in sorted(os.listdir(base)):
        for o in yaml.safe_load_all(read(os.path.join(base, file))):
            if o and o.get("kind") == kind and o["metadata"]["name"] == name:
                result.append(("base", o["spec"]["template"]))
    return result


def container(pod, name):
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def repository(image):
    """'registry:5000/a/b:tag' -> 'registry:5000/a/b' (an untagged name means :latest)."""
    image = image.split("@")[0]
    head, _, last = image.rpartition("/")
    return f"{head}/{last.split(':')[0]}" if head else last.split(":")[0]


# ---------------------------------------------------------------------------------------
# deps.sh and the Debian package database

def deps_print(*args):
    return subprocess.run(["bash", DEPS, "--print", *args], capture_output=True, text=True)


def profile(name):
    out = deps_print(name)
    if out.returncode != 0:
        raise AssertionError(f"deps.sh --print {name}: {out.stderr}")
    return out.stdout.split()


def is_debian12():
    try:
        fields = dict(line.split("=", 1) for line in read("/etc/os-release").splitlines()
                      if "=" in line)
    except OSError:
        return False
    return fields.get("ID") == "debian" and fields.get("VERSION_ID", "").strip('"') == "12"


def ldd(binary):
    """-> {soname: resolved path or None when not found}."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (\S+|not found)", line)
        if m:
            libs[m.group(1)] = None if m.group(2) == "not found" else m.group(2)
    return libs


def needed(binary):
    """The DT_NEEDED sonames (the binary's direct dependencies)."""
    out = subprocess.run(["readelf", "-d", binary], check=True, capture_output=True, text=True).stdout
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))


def owning_packages(paths):
    """-> {path: package} through dpkg -S, trying the resolved path and the /usr-merged twin."""
    candidates = {}
    for path in paths:
        real = os.path.realpath(path)
        options = []
        for p in (real, path):
            options.append(p)
            if p.startswith("/usr/lib/"):
                options.append(p[len("/usr"):])
            elif p.startswith("/lib"):
                options.append("/usr" + p)
        candidates[path] = list(dict.fromkeys(options))
    queries = sorted({c for cs in candidates.values() for c in cs})
    out = subprocess.run(["dpkg", "-S", *queries], capture_output=True, text=True).stdout
    owner = {}
    for line in out.splitlines():
        if line.startswith("diversion "):
            continue
        packages, _, file = line.partition(": ")
        owner[file.strip()] = packages.split(",")[0].strip().split(":")[0]
    return {path: next((owner[c] for c in cs if c in owner), None) for path, cs in candidates.items()}


def dependency_closure(packages):
    """Every package apt would install with `packages` (Depends and Pre-Depends, recursively)."""
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                          *sorted(packages)], capture_output=True, text=True).stdout
    closure = set(packages)
    for line in out.splitlines():
        m = re.match(r"\s*\|?(?:Pre)?Depends: (\S+)", line) or re.match(r"^(\S+)$", line) \
            or re.match(r"^    (\S+)$", line)  # a virtual package's providers
        if m and not m.group(1).startswith("<"):
            closure.add(m.group(1).split(":")[0])
    return closure


# ---------------------------------------------------------------------------------------

class DockerfileTest(unittest.TestCase):
    file = None

    @classmethod
    def setUpClass(cls):
        cls.spec = IMAGES[cls.file]
        cls.global_args, cls.stages = parse_dockerfile(os.path.join(DOCKER, cls.file))
        cls.final = cls.stages[-1]
        cls.names = {s.name: s for s in cls.stages if s.name}
        cls.build_stages = [s for s in cls.stages
                            if any("cmake " in c for _, c in run_commands(s))]
        cls.binaries = image_binaries(cls.stages)
        cls.pods = pod_templates(cls.spec["kind"], cls.spec["workload"])

    def copy_sources(self):
        """-> {stage name: [stages that COPY --from it]}"""
        users = {}
        for s in self.stages:
            for source, _, _ in copies(s):
                if source:
                    users.setdefault(source, []).append(s)
        return users

    def test_debian_12_builds_and_runs_cuda_is_only_copied(self):
        self.assertTrue(self.build_stages, "no stage runs cmake")
        self.assertNotIn(self.final, self.build_stages, "the image stage compiles")
        self.assertEqual(self.final.base, "debian:12-slim")
        users = self.copy_sources()
        for s in self.stages:
            if s.base in self.names:
                continue
            if s.base.startswith("nvidia/cuda:"):
                m = re.fullmatch(r"nvidia/cuda:(\d+\.\d+\.\d+)-(devel|runtime)-ubuntu\d+\.\d+", s.base)
                self.assertIsNotNone(m, s.base)
                self.assertNotEqual(s, self.final)
                self.assertNotIn(s, self.build_stages)
                copied_into = users.get(s.name, [])
                self.assertTrue(copied_into, f"{s.base} is never copied from")
                # The toolkit goes to the compiler, the runtime libraries to the image.
                want = self.build_stages if m.group(2) == "devel" else [self.final]
                for target in copied_into:
                    self.assertIn(target, want, f"{s.base} copied into {target.label()}")
            else:
                self.assertRegex(s.base, r"^debian:12(\.\d+)?(-slim)?$", s.label())
        has_cuda = any(s.base.startswith("nvidia/cuda:") for s in self.stages)
        self.assertEqual(has_cuda, self.spec["cuda"] == "ON")

    def test_packages_come_from_deps_sh_with_the_stage_profile(self):
        for s in self.stages:
            for _, command in run_commands(s):
                self.assertNotRegex(command, r"\bapt(-get)?\s+(-\S+\s+)*install\b|\bdpkg\s+-i\b",
                                    f"{s.label()} installs packages itself: {command}")
            if s.base.startswith("nvidia/cuda:"):
                continue
            invocations = deps_invocations(s)
            want = "--build" if s in self.build_stages else "--" + self.spec["profile"]
            self.assertEqual(invocations, [[want]], f"{s.label()}: deps.sh runs {invocations}")
        for s in self.build_stages:
            commands = [c for _, c in run_commands(s)]
            deps_at = next(i for i, c in enumerate(commands) if "deps.sh" in c)
            cmake_at = next(i for i, c in enumerate(commands) if "cmake " in c)
            self.assertLess(deps_at, cmake_at)

    def test_release_ninja_build_of_existing_targets(self):
        executables = cmake_executables()
        for s in self.build_stages:
            command = next(c for _, c in run_commands(s) if "cmake " in c)
            defines = dict(re.findall(r"-D(\w+)=(\S+)", command))
            self.assertEqual(defines.get("CMAKE_BUILD_TYPE"), "Release")
            self.assertEqual(defines.get("RINGSERVE_CUDA"), self.spec["cuda"])
            self.assertRegex(command, r"-G\s*Ninja\b")
            m = re.search(r"--target((?:\s+[\w.+-]+)+)", command)
            self.assertIsNotNone(m, "builds every target")
            targets = set(m.group(1).split())
            self.assertLessEqual(targets, executables, "not CMake targets")
            copied = {os.path.basename(b) for b in self.binaries}
            self.assertLessEqual(copied, targets, "copies binaries it did not build")

    def test_runs_as_the_manifests_non_root_user(self):
        users = self.final.args("USER")
        self.assertEqual(len(users), 1, users)
        m = re.fullmatch(r"(\d+)(?::(\d+))?", users[0])
        self.assertIsNotNone(m, f"USER {users[0]}: numeric, so runAsNonRoot can verify it")
        uid, gid = int(m.group(1)), m.group(2) and int(m.group(2))
        self.assertNotEqual(uid, 0)
        self.assertTrue(any(re.search(rf"useradd .*--uid {uid}\b", c) for _, c in
                            run_commands(self.final)), "no account with that uid")
        self.assertTrue(self.pods, "no pod template runs this image")
        for source, pod in self.pods:
            sc = pod["spec"]["securityContext"]
            self.assertEqual(sc["runAsUser"], uid, source)
            if gid is not None and "runAsGroup" in sc:
                self.assertEqual(sc["runAsGroup"], gid, source)

    def test_entrypoint_is_an_exec_form_binary_of_the_image(self):
        entrypoints = self.final.args("ENTRYPOINT")
        self.assertEqual(len(entrypoints), 1)
        # Exec form: the binary is PID 1 and gets SIGTERM (a shell would swallow it).
        argv = json.loads(entrypoints[0])
        self.assertEqual(argv[0], f"{BIN_DIR_IN_IMAGE}/ringserve-{self.spec['container']}")
        self.assertIn(argv[0], self.binaries)
        self.assertIn(os.path.basename(argv[0]), cmake_executables())

    def test_every_command_the_manifests_run_is_in_the_image(self):
        for source, pod in self.pods:
            main = container(pod, self.spec["container"])
            self.assertNotIn("command", main, f"{source}: overrides the ENTRYPOINT")
            for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
                if repository(c["image"]) != repository(main["image"]):
                    continue
                commands = [c.get("command")]
                for hook in c.get("lifecycle", {}).values():
                    commands.append(hook.get("exec", {}).get("command"))
                for command in filter(None, commands):
                    self.assertIn(command[0], self.binaries, f"{source} {c['name']}")

    def test_exposed_ports_are_the_container_ports(self):
        exposed = {int(p.split("/")[0]) for a in self.final.args("EXPOSE") for p in a.split()}
        for source, pod in self.pods:
            ports = {p["containerPort"] for p in container(pod, self.spec["container"])["ports"]}
            self.assertEqual(exposed, ports, source)

    def test_model_volume_mount_point_exists_in_the_image(self):
        mounts = {m["mountPath"] for _, pod in self.pods for c in pod["spec"]["containers"]
                  for m in c.get("volumeMounts", [])}
        made = set()
        for _, command in run_commands(self.final):
            for m in re.finditer(r"mkdir((?:\s+-p)?(?:\s+/[\w/.-]+)+)", command):
                made.update(w for w in m.group(1).split() if w.startswith("/"))
        self.assertEqual(mounts - made, set(), "mount points the image does not create")


class WorkerDockerfileTest(DockerfileTest):
    file = "Dockerfile.worker"


class RouterDockerfileTest(DockerfileTest):
    file = "Dockerfile.router"


del DockerfileTest  # only the concrete images run


class ReadmeTest(unittest.TestCase):
    """The README's Kubernetes walkthrough builds what the gpu overlay runs."""

    @classmethod
    def setUpClass(cls):
        cls.readme = read(os.path.join(ROOT, "README.md"))

    def test_builds_name_the_dockerfiles_and_the_overlay_tags(self):
        builds = re.findall(r"docker build -f (\S+) -t \$registry/(\w+):(\S+) \.", self.readme)
        self.assertEqual({os.path.basename(f) for f, _, _ in builds}, set(IMAGES))
        overlay = yaml.safe_load(read(os.path.join(K8S, "overlays", "gpu", "kustomization.yaml")))
        images = {i["name"]: i for i in overlay["images"]}
        for file, name, tag in builds:
            self.assertTrue(os.path.isfile(os.path.join(ROOT, file)), file)
            image = images[IMAGES[os.path.basename(file)]["workload"]]
            self.assertEqual(image["newName"].rsplit("/", 1)[1], name, file)
            self.assertEqual(str(image["newTag"]), tag, file)

    def test_kustomize_paths_exist(self):
        paths = re.findall(r"kubectl (?:apply -k|kustomize) (\S+)", self.readme)
        self.assertTrue(paths)
        for path in paths:
            self.assertTrue(os.path.isfile(os.path.join(ROOT, path, "kustomization.yaml")), path)


class DockerignoreTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.patterns = []
        for line in read(os.path.join(ROOT, ".dockerignore")).splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                cls.patterns.append(line)

    def ignored(self, path):
        """Docker's rules: patterns are relative to the context root, `*` stays inside one
        path element, `**` crosses them, a matched folder takes its contents, `!` re-includes,
        the last matching pattern wins."""
        result = False
        for pattern in self.patterns:
            negate = pattern.startswith("!")
            p = os.path.normpath(pattern.lstrip("!").lstrip("/"))
            regex = "".join({"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(t, re.escape(t))
                            for t in re.split(r"(\*\*|\*|\?)", p))
            parts = path.split("/")
            prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
            if any(re.fullmatch(regex, prefix) for prefix in prefixes):
                result = not negate
        return result

    def test_build_trees_and_git_stay_out(self):
        names = {"build", "build-asan", "build-release", ".git"}
        names.update(d for d in os.listdir(ROOT) if d.startswith("build")
                     and os.path.isdir(os.path.join(ROOT, d)))
        for name in sorted(names):
            self.assertTrue(self.ignored(name + "/CMakeCache.txt"), name)

    @unittest.skipUnless(shutil.which("git") and os.path.isdir(os.path.join(ROOT, ".git")),
                         "not a git checkout")
    def test_every_tracked_file_is_in_the_context(self):
        files = subprocess.run(["git", "-C", ROOT, "ls-files"], check=True, capture_output=True,
                               text=True).stdout.split()
        self.assertIn(DEPS_REL, files)
        self.assertEqual([f for f in files if self.ignored(f)], [])


class DepsProfilesTest(unittest.TestCase):
    PROFILES = ("all", "build", "runtime-worker", "runtime-router")

    @classmethod
    def setUpClass(cls):
        cls.lists = {name: profile(name) for name in cls.PROFILES}

    def test_profiles_print_and_unknown_ones_fail(self):
        for name, packages in self.lists.items():
            self.assertTrue(packages, name)
            self.assertEqual(len(packages), len(set(packages)), f"{name} repeats a package")
            self.assertEqual(profile("--" + name), packages)
        self.assertEqual(deps_print().stdout.split(), self.lists["all"])
        self.assertEqual(deps_print("no-such-profile").returncode, 2)

    def test_default_profile_builds_and_tests(self):
        # CI runs deploy/local/test.sh, which installs the default profile and builds.
        self.assertLessEqual(set(self.lists["build"]), set(self.lists["all"]))
        for tool in ("python3-yaml", "python3-grpcio", "clang", "clang-tidy"):
            self.assertIn(tool, self.lists["all"])

    def test_runtime_profiles_hold_libraries_only(self):
        for name in ("runtime-worker", "runtime-router"):
            for pkg in self.lists[name]:
                self.assertFalse(pkg.endswith("-dev"), f"{name}: {pkg}")
                self.assertNotIn(pkg, self.lists["build"], f"{name}: {pkg} is a build package")
        self.assertLessEqual(set(self.lists["runtime-router"]), set(self.lists["runtime-worker"]))

    @unittest.skipUnless(is_debian12() and shutil.which("apt-cache"), "not Debian 12 with apt")
    def test_every_package_exists_in_debian_12(self):
        packages = sorted({p for ps in self.lists.values() for p in ps})
        out = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages],
                             capture_output=True, text=True).stdout
        known = set(re.findall(r"^Package: (\S+)$", out, re.M))
        missing = [p for p in packages if p not in known]
        if missing and not any("_Packages" in f for f in os.listdir("/var/lib/apt/lists")):
            self.skipTest(f"no apt lists (apt-get update) to look up {missing}")
        self.assertEqual(missing, [])


class RuntimeProfileCoversBinariesTest(unittest.TestCase):
    """The libraries each image's binaries load (ldd on this machine's build) come from the
    packages its runtime profile installs, so the image could start them."""

    @classmethod
    def setUpClass(cls):
        missing = [t for t in ("ldd", "readelf", "dpkg") if not shutil.which(t)]
        if missing or not is_debian12():
            raise unittest.SkipTest(f"needs Debian 12 with {missing or 'ldd, readelf, dpkg'}")
        if not BIN or not os.path.isdir(BIN):
            raise unittest.SkipTest("binaries not built (RINGSERVE_BIN_DIR)")
        cls.have_apt = bool(shutil.which("apt-cache"))

    def check_image(self, file):
        spec = IMAGES[file]
        _, stages = parse_dockerfile(os.path.join(DOCKER, file))
        cuda_libs = [w for s in stages if s.base.startswith("nvidia/cuda:")
                     for _, c in run_commands(s) for w in re.findall(r"(lib[\w.+-]*\.so\.\*)", c)]
        packages = set(profile(spec["profile"]))
        closure = dependency_closure(packages | BASE_PACKAGES) if self.have_apt else None
        checked = 0
        for path in sorted(image_binaries(stages)):
            binary = os.path.join(BIN, os.path.basename(path))
            if not os.path.exists(binary):
                continue
            libs = ldd(binary)
            if any(re.match(r"lib(a|t|ub)san\.so", lib) for lib in libs):
                continue  # a sanitizer build; the images are Release builds
            checked += 1
            name = os.path.basename(binary)
            self.assertEqual([l for l, p in libs.items() if p is None], [], f"{name}: not found")
            owners = owning_packages(libs.values())
            direct = needed(binary)
            for lib, path_ in libs.items():
                owner = owners[path_]
                if owner is None:
                    self.assertTrue(path_.startswith("/usr/local/cuda") and
                                    any(fnmatch.fnmatch(lib, g) for g in cuda_libs),
                                    f"{name}: {path_} is in no package and not copied into {file}")
                    continue
                if lib in direct:
                    self.assertIn(owner, packages | BASE_PACKAGES,
                                  f"{name} links {lib} ({owner}): add it to deps.sh {spec['profile']}")
                if closure is not None:
                    self.assertIn(owner, closure,
                                  f"{name} loads {lib} ({owner}), which {spec['profile']} does not bring")
        if not checked:
            self.skipTest(f"none of {file}'s binaries is built in {BIN}")

    def test_worker_image(self):
        self.check_image("Dockerfile.worker")

    def test_router_image(self):
        self.check_image("Dockerfile.router")


if __name__ == "__main__":
    if yaml is None:
        print("PyYAML (python3-yaml) not found: skipping the Dockerfile checks")
        sys.exit(77)
    unittest.main(verbosity=2)
