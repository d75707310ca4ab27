#!/usr/bin/env bash
# Installs the Debian 12 packages ringserve needs; only those that are missing. Every
# package list lives here, and CI (deploy/local/test.sh), serve.sh and the Dockerfiles
# (deploy/docker) all install through this script, so the lists never drift.
#
#   deps.sh [--all]           build, test and lint: what deploy/local/test.sh and CI need
#   deps.sh --build           what compiling needs (the image build stages)
#   deps.sh --runtime-worker  the shared libraries ringserve-worker, -cli and -model load
#   deps.sh --runtime-router  the shared libraries ringserve-router and -cli load
#   deps.sh --print [PROFILE] print a profile's packages, one a line; installs nothing
#
# The names are Debian 12 (bookworm) names. Runtime library packages carry their soname
# (libgrpc++1.51, libprotobuf32) and are named differently on other releases (Ubuntu
# 24.04 has libprotobuf32t64), which is why the images are Debian 12 as well. On another
# system deps.sh says so and tries anyway. tests/deploy/dockerfile_test.py checks that the
# runtime profiles cover every library the built binaries load.
set -euo pipefail

# Compiling. CMake's configure looks for GTest, GMock and Google Benchmark even when only
# the binaries are built, so their headers are part of the build.
BUILD=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc grpc-proto
  libabsl-dev libopenblas-dev nlohmann-json3-dev libxxhash-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# On top of BUILD for development and CI: ccache, the clang fuzzers and sanitizers, the
# format and lint tools, and the Python that the integration and deploy tests run on.
DEV=(
  ccache git googletest
  clang libclang-rt-14-dev clang-format clang-tidy
  python3 python3-grpcio python3-protobuf python3-yaml
  openssl  # the TLS tests make their certificates at run time
)
# What the binaries load (ldd), by the package that ships each library; apt brings their
# own dependencies (libgrpc29 -> libre2-9, libc-ares2, libssl3, ...).
RUNTIME_COMMON=(
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623
  libprometheus-cpp-core1.0 libxxhash0
)
# The worker's CPU kernels call OpenBLAS; -pthread is the variant libopenblas-dev builds
# against (its libopenblas.so.0 is chosen through update-alternatives).
RUNTIME_WORKER=("${RUNTIME_COMMON[@]}" libopenblas0-pthread)
RUNTIME_ROUTER=("${RUNTIME_COMMON[@]}")

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }

profile=all print=0
while (($#)); do
  case $1 in
    --print|--list) print=1 ;;
    --all|all) profile=all ;;
    --build|build) profile=build ;;
    --runtime-worker|runtime-worker) profile=runtime-worker ;;
    --runtime-router|runtime-router) profile=runtime-router ;;
    -h|--help) usage; exit 0 ;;
    *) echo "deps.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

case $profile in
  all) PACKAGES=("${BUILD[@]}" "${DEV[@]}") ;;
  build) PACKAGES=("${BUILD[@]}") ;;
  runtime-worker) PACKAGES=("${RUNTIME_WORKER[@]}") ;;
  runtime-router) PACKAGES=("${RUNTIME_ROUTER[@]}") ;;
esac

if ((print)); then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi

os="unknown system"
if [[ -r /etc/os-release ]]; then
  os=$(. /etc/os-release; [[ ${ID:-} == debian && ${VERSION_ID:-} == 12 ]] && echo debian12 \
         || echo "${PRETTY_NAME:-${ID:-unknown}}")
fi
if [[ $os != debian12 ]]; then
  echo "deps.sh: these are Debian 12 package names and this is $os; trying anyway" >&2
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
