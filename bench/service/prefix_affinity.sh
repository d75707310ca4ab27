#!/usr/bin/env bash
# The router's prefix affinity on conversations resent whole without a session:
#   bench/service/prefix_affinity.sh AFFINITY_BYTES WORKERS [BIN_DIR]
# starts WORKERS CPU workers (llama-110m, random weights) and a router with
# --prefix-affinity-bytes AFFINITY_BYTES on ports 51060.., runs ringserve-bench --stateless
# against it, prints its report and stops everything. Results: bench/RESULTS.md.
set -euo pipefail
affinity=${1:?affinity bytes}
count=${2:?worker count}
bin=${3:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin}
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT
workers=""
for i in $(seq 1 "$count"); do
  port=$((51060 + i))
  "$bin/ringserve-worker" --dummy-weights --preset llama-110m --threads 1 --port "$port" \
      --id "w$i" --kv-memory 512MiB > "/tmp/prefix-affinity-w$i.log" 2>&1 &
  workers="$workers,127.0.0.1:$port"
done
sleep 10
"$bin/ringserve-router" --port 51060 --workers "${workers#,}" --health-interval-ms 200 \
    --prefix-affinity-bytes "$affinity" > /tmp/prefix-affinity-router.log 2>&1 &
sleep 2
"$bin/ringserve-bench" --target 127.0.0.1:51060 --stateless --sessions 32 --turns 4 \
    --prompt-tokens 96 --output-tokens 8 --concurrency 8 --seed 3 | tr '\r' '\n' | tail -12
