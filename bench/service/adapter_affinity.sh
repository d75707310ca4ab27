#!/usr/bin/env bash
# The router's --adapter-affinity with more LoRA adapters than slots:
#   bench/service/adapter_affinity.sh on|off [BIN_DIR]
# writes eight rank-16 PEFT adapters at llama-110m's shape into a temporary --lora-dir
# library, starts two CPU workers (random weights, --max-loras 2, the library) and a router
# (--adapter-affinity when "on") on ports 51090.., runs ringserve-bench with one-off requests
# spread over the eight adapters, then prints its report and each worker's adapter counters
# (swaps from host memory, adapters found) and stops everything. Results: bench/RESULTS.md.
set -euo pipefail
mode=${1:?on or off}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${2:-$root/build/bin}
library=$(mktemp -d /tmp/adapter-affinity.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$library"' EXIT
python3 "$root/tools/gpu/peft_adapter.py" library "$bin" llama-110m 16 "$library" \
    a0 a1 a2 a3 a4 a5 a6 a7
workers=""
for i in 1 2; do
  port=$((51090 + i))
  "$bin/ringserve-worker" --dummy-weights --preset llama-110m --threads 1 --port "$port" \
      --id "w$i" --kv-memory 512MiB --lora-dir "$library" --max-loras 2 --max-cpu-loras 8 \
      > "/tmp/adapter-affinity-w$i.log" 2>&1 &
  workers="$workers,127.0.0.1:$port"
done
affinity=()
[[ $mode == on ]] && affinity=(--adapter-affinity)
"$bin/ringserve-router" --port 51090 --workers "${workers#,}" --health-interval-ms 200 \
    "${affinity[@]}" > /tmp/adapter-affinity-router.log 2>&1 &
for _ in $(seq 1 120); do
  [[ $("$bin/ringserve-cli" --target 127.0.0.1:51090 stats 2>/dev/null | grep -c '^worker') == 2 ]] &&
    break
  sleep 0.5
done
adapters=()
for i in $(seq 0 7); do adapters+=(--adapter "a$i"); done
"$bin/ringserve-bench" --target 127.0.0.1:51090 --requests 96 --concurrency 16 \
    --prompt-tokens 64 --output-tokens 16 --seed 3 "${adapters[@]}" | tr '\r' '\n' | tail -12
"$bin/ringserve-cli" --target 127.0.0.1:51090 stats | grep -E '^worker|LoRA adapters'
grep -c "LoRA adapter found" /tmp/adapter-affinity-w1.log /tmp/adapter-affinity-w2.log
