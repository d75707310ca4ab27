#!/usr/bin/env bash
# Installs missing packages, builds, and serves ringserve: a router plus one worker per GPU
# (two CPU workers without one) on the built-in tiny model unless --model names a real one.
# Ctrl-C (or SIGTERM) drains and stops every process it started.
#
#   deploy/local/serve.sh [--model PATH [--tokenizer PATH]] [--port 50050]
#                         [--cpu-workers 2] [--kv-memory SIZE] [--no-build]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${RINGSERVE_BUILD_DIR:-$root/build}

model="" tokenizer="" port=50050 cpu_workers=2 kv_memory="" do_build=1
while (($#)); do
  case $1 in
    --model) model=$2; shift 2 ;;
    --tokenizer) tokenizer=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --cpu-workers) cpu_workers=$2; shift 2 ;;
    --kv-memory) kv_memory=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "serve.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ((do_build)); then
  "$root/deploy/local/deps.sh"
  "$root/deploy/local/build.sh"
fi
bin=$build/bin
state=${RINGSERVE_STATE_DIR:-${XDG_RUNTIME_DIR:-/tmp}/ringserve-serve}
mkdir -p "$state/logs"

if [[ -z $model ]]; then
  model=$state/tiny.gguf
  [[ -f $model ]] || "$bin/ringserve-model" make-tiny --out "$model" >/dev/null
  echo "serve.sh: no --model: serving the built-in tiny model ($model)"
fi
model_args=(--model "$model")
[[ -n $tokenizer ]] && model_args+=(--tokenizer "$tokenizer")

# One worker per visible GPU when this build has the CUDA backend; else CPU workers that
# split the cores between them.
devices=()
if command -v nvidia-smi >/dev/null && "$bin/ringserve-worker" --help | grep -q "cuda"; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  for ((i = 0; i < gpus; i++)); do devices+=("cuda:$i"); done
fi
if ((${#devices[@]} == 0)); then
  for ((i = 0; i < cpu_workers; i++)); do devices+=(cpu); done
fi
threads=$(( $(nproc) / ${#devices[@]} ))
((threads > 0)) || threads=1

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "serve.sh: stopping (draining ${#pids[@]} processes)"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  exit 0
}
trap stop INT TERM EXIT

# Starts a process whose first stdout line says "listening on HOST:PORT"; waits for it.
start() {
  local name=$1; shift
  local log=$state/logs/$name.log
  "$@" >"$log.out" 2>"$log" &
  pids+=($!)
  for _ in $(seq 1 600); do
    grep -q "listening on" "$log.out" 2>/dev/null && { head -1 "$log.out"; return 0; }
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "serve.sh: $name exited; see $log" >&2; tail -5 "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "serve.sh: $name did not start in 60 s; see $log" >&2
  return 1
}

workers=()
for i in "${!devices[@]}"; do
  wport=$((port + 1 + i))
  args=(--port "$wport" --host 127.0.0.1 --id "worker-$i" --device "${devices[$i]}"
        --metrics-port $((9100 + 1 + i)) "${model_args[@]}")
  [[ ${devices[$i]} == cpu ]] && args+=(--threads "$threads")
  [[ -n $kv_memory ]] && args+=(--kv-memory "$kv_memory")
  start "worker-$i" "$bin/ringserve-worker" "${args[@]}"
  workers+=("127.0.0.1:$wport")
done
start router "$bin/ringserve-router" --port "$port" --workers "$(IFS=,; echo "${workers[*]}")" \
  --metrics-port 9100

cat <<MSG

ringserve is serving on 127.0.0.1:$port (router) with ${#workers[@]} workers (${devices[*]}).
Logs: $state/logs   Metrics: http://127.0.0.1:9100/metrics (router), :9101.. (workers)
Try:
  $bin/ringserve-cli --target 127.0.0.1:$port generate --session demo --text "Once upon a time" --max-tokens 32
  $bin/ringserve-cli --target 127.0.0.1:$port generate --session demo --append --text " The end." --json
  $bin/ringserve-bench --target 127.0.0.1:$port --concurrency 16 --requests 200 --sessions 20 --turns 3
Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
echo "serve.sh: a process exited unexpectedly; see $state/logs" >&2
