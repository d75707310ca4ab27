#!/usr/bin/env bash
# Installs missing packages, builds, and serves ringserve: a router plus one worker per GPU
# (two CPU workers without one) on the built-in tiny model unless --model names a real one.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$root/deploy/local/deps.sh"
"$root/deploy/local/build.sh"
echo "serve.sh: the gRPC worker and router are not built yet (they come with the service work)."
echo "Meanwhile the offline runner works:"
echo "  build/bin/ringserve-model make-tiny --out /tmp/ringserve-tiny.gguf"
echo "  build/bin/ringserve-run --model /tmp/ringserve-tiny.gguf --prompt 'Hello' --max-tokens 16"
exit 1
