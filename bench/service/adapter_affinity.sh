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
shape=$("$bin/ringserve-model" info --preset llama-110m | sed -n 's/^config: //p')
ROOT="$root" python3 - "$library" "$shape" <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ["ROOT"], "tools", "gpu"))
import peft_adapter
library, config = sys.argv[1], sys.argv[2]
fields = dict(item.split("=", 1) for item in config.split())
shape = {k: int(fields[k]) for k in ("dim", "hidden_dim", "layers", "heads", "kv_heads", "head_dim")}
shape["head_dim"] = shape["head_dim"] or shape["dim"] // shape["heads"]  # 0: dim / heads
for i in range(8):
    peft_adapter.write_adapter(os.path.join(library, f"a{i}"), shape, rank=16, seed=i + 1)
PY
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
