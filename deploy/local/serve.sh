#!/usr/bin/env bash
# Installs missing packages, builds, and serves ringserve: a router plus one worker per GPU
# (two CPU workers without one) on the built-in tiny model unless --model names a real one.
# Ctrl-C (or SIGTERM) drains and stops every process it started, and exits 0; if a worker or
# the router dies on its own, the others are stopped too and serve.sh exits 1, naming it.
#
#   deploy/local/serve.sh [--model PATH [--tokenizer PATH]] [--port 50050] [--host 127.0.0.1]
#                         [--metrics-port PORT] [--http-port PORT] [--cpu-workers N]
#                         [--kv-memory SIZE] [--no-build]
#                         [-- WORKER FLAGS...]
#
# Flags after -- go to every worker as they are (ringserve-worker --help lists them), e.g.
# -- --kv-dtype bf16 --max-seqs 64; serve.sh sets --port, --host, --id, --device,
# --metrics-port, --model, --tokenizer and --threads itself, and refuses them there.
#
# Without a GPU, two CPU workers by default, or one when the memory available (MemAvailable,
# within a cgroup v2 limit) cannot hold two copies of the model's weights plus 512 MiB:
# each worker holds its own, and a second that does not fit would stop serve.sh at start.
# --cpu-workers N starts N regardless.
#
# Ports: the router listens on --host:--port (loopback by default; --host 0.0.0.0 exposes it),
# worker i on 127.0.0.1:(port + 1 + i). /metrics: the router on --metrics-port (default
# port + 1000), worker i on metrics-port + 1 + i; OpenAI's HTTP API (/v1/chat/completions,
# /v1/completions, /v1/embeddings, /v1/models) at the router on --http-port (default
# port + 2000; 0 turns it off); so a second instance needs only another --port, with room
# for its workers (e.g. --port 50150).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${RINGSERVE_BUILD_DIR:-$root/build}

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
model="" tokenizer="" port=50050 host=127.0.0.1 metrics_port="" http_port="" cpu_workers=auto
kv_memory=""
do_build=1
worker_extra=()
while (($#)); do
  case $1 in
    --)
      shift
      worker_extra=("$@")
      for flag in "${worker_extra[@]}"; do
        case ${flag%%=*} in
          --port|--host|--id|--device|--metrics-port|--model|--tokenizer|--threads)
            echo "serve.sh: $flag is serve.sh's to set; give it before -- (see --help)" >&2
            exit 2 ;;
        esac
      done
      break ;;
    --model) model=$2; shift 2 ;;
    --tokenizer) tokenizer=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --host) host=$2; shift 2 ;;
    --metrics-port) metrics_port=$2; shift 2 ;;
    --http-port) http_port=$2; shift 2 ;;
    --cpu-workers) cpu_workers=$2; shift 2 ;;
    --kv-memory) kv_memory=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "serve.sh: unknown argument $1 (worker flags go after --; see --help)" >&2; exit 2 ;;
  esac
done
: "${metrics_port:=$((port + 1000))}"
: "${http_port:=$((port + 2000))}"
for name in port metrics_port http_port cpu_workers; do
  [[ ${!name} =~ ^[0-9]+$ || ($name == cpu_workers && ${!name} == auto) ]] ||
    { echo "serve.sh: --${name//_/-} must be a number" >&2; exit 2; }
done
[[ $cpu_workers == auto ]] || ((cpu_workers > 0)) ||
  { echo "serve.sh: --cpu-workers must be at least 1" >&2; exit 2; }

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
# Bytes this process may still use: MemAvailable, less where a cgroup v2 limit leaves less.
# RINGSERVE_SERVE_AVAILABLE_BYTES stands in for it (tests).
available_bytes() {
  if [[ -n ${RINGSERVE_SERVE_AVAILABLE_BYTES:-} ]]; then
    echo "$RINGSERVE_SERVE_AVAILABLE_BYTES"
    return
  fi
  local avail limit used
  avail=$(awk '/^MemAvailable:/ {print $2 * 1024; exit}' /proc/meminfo 2>/dev/null)
  limit=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || echo max)
  used=$(cat /sys/fs/cgroup/memory.current 2>/dev/null || echo 0)
  if [[ $limit =~ ^[0-9]+$ && $used =~ ^[0-9]+$ ]] && ((limit - used < avail)); then
    avail=$((limit > used ? limit - used : 0))
  fi
  echo "${avail:-0}"
}

# Two CPU workers unless two copies of the weights (as a CPU worker holds them: bf16 and f16
# matrices as they are, everything else f32) would not fit.
auto_cpu_workers() {
  local weights avail need
  weights=$("$bin/ringserve-model" info "$model" ${tokenizer:+--tokenizer "$tokenizer"} 2>/dev/null |
    awk '/^cpu_weight_bytes:/ {print $2; exit}')
  avail=$(available_bytes)
  if [[ ! $weights =~ ^[0-9]+$ || ! $avail =~ ^[0-9]+$ ]] || ((avail == 0 || weights == 0)); then
    echo 2
    return
  fi
  need=$((2 * weights + (512 << 20)))
  if ((need > avail)); then
    echo "serve.sh: one CPU worker: two would hold $((2 * weights >> 20)) MiB of weights" \
      "and $((avail >> 20)) MiB is available (--cpu-workers 2 insists)" >&2
    echo 1
  else
    echo 2
  fi
}

if ((${#devices[@]} == 0)); then
  [[ $cpu_workers == auto ]] && cpu_workers=$(auto_cpu_workers)
  for ((i = 0; i < cpu_workers; i++)); do devices+=(cpu); done
fi
threads=$(( $(nproc) / ${#devices[@]} ))
((threads > 0)) || threads=1

pids=() names=()
# Drains every process started so far and exits with $1: 0 for Ctrl-C or SIGTERM, the
# script's own status when it fails (a process that did not start), 1 when one died.
stop() {
  trap - INT TERM EXIT
  echo
  echo "serve.sh: stopping (draining ${#pids[@]} processes)"
  ((${#pids[@]} == 0)) || kill -TERM "${pids[@]}" 2>/dev/null || true
  wait
  exit "$1"
}
trap 'stop 0' INT TERM
trap 'stop $?' EXIT

# "status 1", "status 137 (SIGKILL)": how a process ended, from its wait status.
describe_status() {
  local status=$1
  if ((status > 128)); then
    echo "status $status (SIG$(kill -l $((status - 128)) 2>/dev/null || echo "$((status - 128))"))"
  else
    echo "status $status"
  fi
}

# Starts a process whose first stdout line says "listening on HOST:PORT"; waits for it.
start() {
  local name=$1; shift
  local log=$state/logs/$name.log status=0
  "$@" >"$log.out" 2>"$log" &
  pids+=($!) names+=("$name")
  for _ in $(seq 1 600); do
    grep -q "listening on" "$log.out" 2>/dev/null && { head -1 "$log.out"; return 0; }
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      wait "${pids[-1]}" || status=$?
      echo "serve.sh: $name exited with $(describe_status "$status") before listening; see $log" >&2
      tail -5 "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "serve.sh: $name did not start in 60 s; see $log" >&2
  return 1
}

workers=()
for i in "${!devices[@]}"; do
  wport=$((port + 1 + i))
  args=(--port "$wport" --host 127.0.0.1 --id "worker-$i" --device "${devices[$i]}"
        --metrics-port $((metrics_port + 1 + i)) "${model_args[@]}")
  [[ ${devices[$i]} == cpu ]] && args+=(--threads "$threads")
  [[ -n $kv_memory ]] && args+=(--kv-memory "$kv_memory")
  args+=("${worker_extra[@]}")
  start "worker-$i" "$bin/ringserve-worker" "${args[@]}"
  workers+=("127.0.0.1:$wport")
done
start router "$bin/ringserve-router" --host "$host" --port "$port" \
  --workers "$(IFS=,; echo "${workers[*]}")" --metrics-port "$metrics_port" --http-port "$http_port"

# Where clients on this machine reach the router: a wildcard address is not a destination.
target=$host
case $host in
  0.0.0.0) target=127.0.0.1 ;;
  ::|\[::\]) target="[::1]" ;;
esac
cat <<MSG

ringserve is serving on $host:$port (router) with ${#workers[@]} workers (${devices[*]}).
Logs: $state/logs   Metrics: http://$target:$metrics_port/metrics (router), 127.0.0.1:$((metrics_port + 1)).. (workers)
MSG
((http_port)) && cat <<MSG
OpenAI API: http://$target:$http_port/v1 (/v1/completions, /v1/chat/completions, /v1/embeddings, /v1/models)
  curl -s http://$target:$http_port/v1/completions -d '{"prompt": "Once upon a time", "max_tokens": 32}'
MSG
cat <<MSG
Try:
  $bin/ringserve-cli --target $target:$port generate --session demo --text "Once upon a time" --max-tokens 32
  $bin/ringserve-cli --target $target:$port generate --session demo --append --text " The end." --json
  $bin/ringserve-bench --target $target:$port --concurrency 16 --requests 200 --sessions 20 --turns 3
Ctrl-C stops everything.
MSG
# Until Ctrl-C (which runs the trap), watch for a child that ends on its own. Polled: bash
# forgets a job once it has reported it (a signal death is reported at the next command),
# so `wait -n` started after a child was killed waits on for the others.
while :; do
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null && continue
    status=0
    wait "${pids[$i]}" || status=$?
    echo "serve.sh: ${names[$i]} (pid ${pids[$i]}) exited with $(describe_status "$status");" \
      "see $state/logs/${names[$i]}.log" >&2
    stop 1
  done
  sleep 0.5 & wait $!  # a signal interrupts `wait` at once, so the trap runs without delay
done
