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
#   prebuilt.tar.xz  the targets check.sh would build (deploy/gpu/targets.sh), built here
#                    with CUDA (sm_80, sm_90) in build-gpuprebuilt/ and linked with the
#                    sysroot's library folder as RPATH, with their ctest files and the hash
#                    of the sources they were built from. On the GPU machine check.sh uses
#                    them when its sources hash the same, and skips its ~8 minutes of
#                    building; otherwise it builds there as before.
# Then: the device tool's run with carry ["build-gpucarry"] and the command
#   deploy/gpu/check.sh
#
#   deploy/gpu/prepare.sh [--out DIR] [--no-sysroot] [--no-prebuilt] [--shared DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$root/build-gpucarry
shared=${RINGSERVE_SHARED_DIR:-$root/../shared}
sysroot=1 prebuilt=1
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --shared) shared=$2; shift 2 ;;
    --no-sysroot) sysroot=0; shift ;;
    --no-prebuilt) prebuilt=0; shift ;;
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
if ((prebuilt)); then
  # shellcheck source=deploy/gpu/targets.sh
  source "$root/deploy/gpu/targets.sh"
  pre=$root/build-gpuprebuilt
  # check.sh unpacks the sysroot here; DT_RPATH (not RUNPATH) also serves the libraries'
  # own dependencies, and dlopen's search for cuBLASLt by soname when the path CMake found
  # here is not there. Folders that do not exist (the sysroot here) are skipped.
  lib=$GPU_SYSROOT/usr/lib/x86_64-linux-gnu
  rpath=$lib:$lib/openblas-pthread:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib
  cmake -S "$root" -B "$pre" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRINGSERVE_CUDA=ON \
    -DRINGSERVE_FUZZ=OFF "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags -Wl,-rpath,$rpath" \
    >"$out/prebuilt-configure.log" 2>&1 || { cat "$out/prebuilt-configure.log"; exit 1; }
  cublaslt=$(sed -n 's/^CUDA_cublasLt_LIBRARY:FILEPATH=//p' "$pre/CMakeCache.txt")
  soname=$(objdump -p "$(readlink -f "$cublaslt")" | awk '$1 == "SONAME" {print $2}')
  read -r -a targets <<<"$(gpu_check_targets "$pre") $(gpu_serve_targets)"
  echo "prepare.sh: building ${#targets[@]} targets in $pre"
  cmake --build "$pre" -j "${RINGSERVE_JOBS:-$(nproc)}" --target "${targets[@]}"
  gpu_build_inputs "$root" >"$pre/build-inputs.txt"
  printf '{"root": "%s", "build": "%s", "digest": "%s", "commit": "%s", "dirty": %s, %s}\n' \
    "$root" "$pre" "$(gpu_build_digest "$root" "$pre/build-inputs.txt")" "$commit" "$dirty" \
    "\"cublaslt\": \"$cublaslt\", \"cublaslt_soname\": \"$soname\"" \
    >"$pre/prebuilt.json"
  # The binaries, ctest's files (gtest_discover_tests writes *_include/_tests.cmake) and
  # the record above; xz's large window stores the code the binaries share once.
  (cd "$pre" && { find bin -type f; find . -name CTestTestfile.cmake -o -name '*_include.cmake' \
    -o -name '*_tests.cmake'; echo build-inputs.txt; echo prebuilt.json; }) >"$pre/packed-files.txt"
  tar -cf - -C "$pre" -T "$pre/packed-files.txt" | xz -9 -T0 >"$out/prebuilt.tar.xz"
  echo "prepare.sh: $out/prebuilt.tar.xz ($(du -h "$out/prebuilt.tar.xz" | cut -f1))"
fi
echo "prepare.sh: done; carry build-gpucarry with deploy/gpu/check.sh"
