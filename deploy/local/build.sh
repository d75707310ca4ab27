#!/usr/bin/env bash
# Configures and builds ringserve into build/ (or $RINGSERVE_BUILD_DIR). Extra arguments go
# to CMake, e.g. -DRINGSERVE_SANITIZE=address.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${RINGSERVE_BUILD_DIR:-$root/build}
jobs=${RINGSERVE_JOBS:-$(nproc)}

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" "$@"
cmake --build "$build" -j "$jobs"
