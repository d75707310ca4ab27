#!/usr/bin/env bash
# One client's embedding batches through the router to two workers (the router splits each
# batch over the workers its inputs belong to) against the same batches sent to one worker:
#   bench/service/embed_scatter.sh [BIN_DIR] [REPS]
# starts two CPU workers (llama-110m random weights, 1 thread each) on ports 51201-51202 and
# a router on 51200, then alternates, REPS times (default 3), ringserve-bench --embed 16
# (16 inputs of 16 tokens a call, 8 calls, one at a time, a fresh seed each run) straight to
# worker 1 and through the router, printing each run's p50 latency and embeddings/s.
# Results: bench/RESULTS.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${1:-$root/build/bin}
reps=${2:-3}
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT
for i in 1 2; do
  "$bin/ringserve-worker" --dummy-weights --preset llama-110m --threads 1 --port $((51200 + i)) \
      --host 127.0.0.1 --id "e$i" --kv-memory 512MiB > "/tmp/embed-scatter-w$i.log" 2>&1 &
done
"$bin/ringserve-router" --port 51200 --host 127.0.0.1 \
    --workers 127.0.0.1:51201,127.0.0.1:51202 --health-interval-ms 200 \
    > /tmp/embed-scatter-router.log 2>&1 &
for _ in $(seq 1 240); do
  [[ $("$bin/ringserve-cli" --target 127.0.0.1:51200 stats 2>/dev/null | grep -c '^worker') == 2 ]] &&
    break
  sleep 0.5
done
for rep in $(seq 1 "$reps"); do
  for target in 127.0.0.1:51201 127.0.0.1:51200; do
    "$bin/ringserve-bench" --target "$target" --embed 16 --prompt-tokens 16 --requests 8 \
        --concurrency 1 --seed "${rep}${target##*:}" --json 2>/dev/null |
      python3 -c 'import json, sys; r = json.load(sys.stdin)
print(sys.argv[1], sys.argv[2], "ok", r["requests_ok"], "e2e p50 %.0f ms, %.1f embeddings/s"
      % (r["e2e_ms"]["p50"], r["embeddings_per_s"]))' "$rep" "$target"
  done
done
