#!/usr/bin/env bash
# Installs missing packages, builds ringserve and runs the whole test suite with ctest.
# Usage: deploy/local/test.sh [ctest args...]   e.g. -L unit, -R Tokenizer
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${RINGSERVE_BUILD_DIR:-$root/build}

"$root/deploy/local/deps.sh"
"$root/deploy/local/build.sh"
ctest --test-dir "$build" --output-on-failure -j "${RINGSERVE_JOBS:-$(nproc)}" "$@"
