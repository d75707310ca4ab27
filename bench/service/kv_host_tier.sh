#!/usr/bin/env bash
# The KV cache's host tier under multi-turn sessions whose histories outgrow the pool:
#   [KV_MEMORY=256MiB] [STATELESS=1] [DEVICE=cpu PRESET=llama-110m] \
#       bench/service/kv_host_tier.sh HOST_MEMORY [BIN_DIR]   (HOST_MEMORY: 0 or a size: 2GiB)
# starts one worker (PRESET with random weights on DEVICE, a KV_MEMORY pool, --kv-host-memory
# HOST_MEMORY unless 0) on port 51190, runs ringserve-bench with 32 sessions of 4 appended
# turns (128 new tokens and 16 generated a turn) in round-robin order, 4 in flight, prints
# its report and the worker's KV lines, and stops. STATELESS=1: the client resends each whole
# conversation without a session, as OpenAI-style clients do (ringserve-bench --stateless).
# On a GPU: DEVICE=cuda:0 PRESET=llama-3-8b with a KV_MEMORY that the sessions outgrow (each
# conversation reaches 576 tokens: 72 MiB at Llama-3-8B bf16, so 32 of them need 2.3 GiB).
# Results: bench/RESULTS.md.
set -euo pipefail
host_memory=${1:?host memory: 0 for none, or a size such as 2GiB}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${2:-$root/build/bin}
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT
host=()
[[ $host_memory != 0 ]] && host=(--kv-host-memory "$host_memory")
"$bin/ringserve-worker" --dummy-weights --preset "${PRESET:-llama-110m}" \
    --device "${DEVICE:-cpu}" --threads 1 --port 51190 --id w \
    --kv-memory "${KV_MEMORY:-256MiB}" "${host[@]}" > /tmp/kv-host-tier-worker.log 2>&1 &
for _ in $(seq 1 120); do
  "$bin/ringserve-cli" --target 127.0.0.1:51190 stats > /dev/null 2>&1 && break
  sleep 0.5
done
grep -m1 listening /tmp/kv-host-tier-worker.log
"$bin/ringserve-bench" --target 127.0.0.1:51190 --sessions 32 --turns 4 --requests 128 \
    --concurrency 4 --prompt-tokens 128 --output-tokens 16 --seed 5 \
    ${STATELESS:+--stateless} | tr '\r' '\n' | tail -12
"$bin/ringserve-cli" --target 127.0.0.1:51190 stats | grep -E '^  kv|requests:'
