#!/usr/bin/env bash
# Run on a development machine before a GPU check through the device tool: fills
# build-gpucarry/ (ignored by git as /build*/) with what deploy/gpu/check.sh needs on a bare
# GPU machine, which has a compiler, CMake, ninja, CUDA and PyTorch but no registry access:
#   shared/          ../shared's models and vectors (the tool sends only the checkout)
#   source.json      this checkout's commit, dirty flag and date (the copy there has no .git)
#   sysroot.tar.xz   Debian 12's packages ringserve builds against (gRPC, protobuf, Abseil,
#                    GoogleTest, Benchmark, OpenBLAS, nlohmann-json, xxHash, prometheus-cpp,
#                    pkgconf): headers, shared libraries, protoc; no static libraries but the
#                    test ones. check.sh unpacks it to a private prefix, never to /.
# Then: the device tool's run with carry ["build-gpucarry"] and the command
#   deploy/gpu/check.sh
#
#   deploy/gpu/prepare.sh [--out DIR] [--no-sysroot] [--shared DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$root/build-gpucarry
shared=${RINGSERVE_SHARED_DIR:-$root/../shared}
sysroot=1
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --shared) shared=$2; shift 2 ;;
    --no-sysroot) sysroot=0; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "prepare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"

# Build dependencies from deploy/local/deps.sh, less compilers and tools the GPU image has,
# plus the run-time libraries they need that an Ubuntu CUDA image may lack.
PACKAGES=(
  libgrpc++-dev libgrpc-dev libgrpc++1.51 libgrpc29 protobuf-compiler-grpc grpc-proto
  libprotobuf-dev libprotobuf32 libprotobuf-lite32 libprotoc32 protobuf-compiler
  libabsl-dev libabsl20220623 libre2-dev libre2-9 libc-ares-dev libc-ares2
  libssl-dev libssl3 zlib1g-dev zlib1g libzstd1
  libgtest-dev libgmock-dev googletest libbenchmark-dev libbenchmark1debian
  libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0
  libgfortran5 libquadmath0
  nlohmann-json3-dev libxxhash-dev libxxhash0
  prometheus-cpp-dev libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0
  libprometheus-cpp-push1.0 libcivetweb-dev libcivetweb1 civetweb libcurl4-openssl-dev libcurl4
  pkgconf pkgconf-bin libpkgconf3
)

if [[ -d $shared ]]; then
  rm -rf "$out/shared"
  mkdir -p "$out/shared"
  for dir in models vectors; do
    [[ -d $shared/$dir ]] && cp -r --no-preserve=mode "$shared/$dir" "$out/shared/"
  done
  echo "prepare.sh: copied $shared/{models,vectors} -> $out/shared"
else
  echo "prepare.sh: no $shared; the GPU check will skip the reference-vector stages" >&2
fi

commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=false
[[ -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] && dirty=true
printf '{"commit": "%s", "dirty": %s, "prepared": "%s"}\n' "$commit" "$dirty" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$out/source.json"

if ((sysroot)); then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get -o APT::Sandbox::User=root download "${PACKAGES[@]}" >/dev/null)
  mkdir "$tmp/root"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/root"; done
  cd "$tmp/root"
  # usrmerge: some packages still install under /lib.
  if [[ -d lib ]]; then
    mkdir -p usr/lib
    cp -a lib/. usr/lib/
    rm -rf lib
  fi
  # Absolute symlinks (libz.so -> /lib/...) would point outside the sysroot: make them
  # relative to their own folder.
  while IFS= read -r link; do
    target=$(readlink "$link")
    inside=usr${target#/usr}
    [[ -e $inside ]] || continue
    ln -sfn "$(realpath --relative-to="$(dirname "$link")" "$inside")" "$link"
  done < <(find . -type l -lname '/*')
  find . -name '*.a' ! -name 'libgtest*' ! -name 'libgmock*' ! -name 'libbenchmark*' -delete
  rm -rf usr/share/doc usr/share/man usr/share/lintian usr/share/bug usr/src
  rm -f usr/lib/x86_64-linux-gnu/openblas-pthread/lib{blas,lapack}.*
  tar -cJf "$out/sysroot.tar.xz" .
  echo "prepare.sh: $out/sysroot.tar.xz ($(du -h "$out/sysroot.tar.xz" | cut -f1))"
fi
echo "prepare.sh: done; carry build-gpucarry with deploy/gpu/check.sh"
