#!/usr/bin/env bash
# What a request pays the first time it names an adapter of a --lora-dir library:
#   bench/service/lora_library.sh PRESET RANK [BIN_DIR]
# writes three PEFT adapters of rank RANK at PRESET's shape (random weights) into a temporary
# library, starts one CPU worker (--dummy-weights --preset PRESET --lora-dir it --max-loras 1)
# on port 51080, and for each adapter sends the same 16-token prompt twice (8 tokens out,
# greedy): the first request finds and prepares the adapter, the second finds it held. Prints
# each request's time to first token, the worker's "LoRA adapter found" log lines (ms to read
# and prepare) and stops the worker. Results: bench/RESULTS.md.
set -euo pipefail
preset=${1:?preset, e.g. llama-110m}
rank=${2:?adapter rank}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${3:-$root/build/bin}
library=$(mktemp -d /tmp/lora-library.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$library"' EXIT
python3 "$root/tools/gpu/peft_adapter.py" library "$bin" "$preset" "$rank" "$library" x y z
"$bin/ringserve-worker" --dummy-weights --preset "$preset" --port 51080 --id library \
    --kv-memory 256MiB --lora-dir "$library" --max-loras 1 > /tmp/lora-library-worker.log 2>&1 &
for _ in $(seq 1 120); do
  "$bin/ringserve-cli" --target 127.0.0.1:51080 health > /dev/null 2>&1 && break
  sleep 0.5
done
for name in x y z; do
  for turn in first again; do
    ttft=$("$bin/ringserve-cli" --target 127.0.0.1:51080 generate --adapter "$name" \
        --tokens 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 --max-tokens 8 --temperature 0 \
        --ignore-eos --json | python3 -c \
        'import json,sys; print(json.loads(sys.stdin.read())["usage"]["time_to_first_token_us"])')
    echo "adapter $name $turn: time to first token $((ttft / 1000)) ms"
  done
done
grep "LoRA adapter found" /tmp/lora-library-worker.log || true
