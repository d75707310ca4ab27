#!/usr/bin/env bash
# ringserve's GPU check in one command, on a machine with an NVIDIA GPU (issue 5): builds
# with CUDA, runs the CUDA-relevant tests, the end-to-end correctness checks and the
# Llama-3-8B-shape benchmarks with their ceilings and baseline measured in the same call,
# and writes check.json (every number), check.md (the table) and logs.tar.gz to $OUT (or
# bench/gpu-results/). Each stage has a time box and a deadline over the whole run; a
# failed or timed-out stage is recorded and the rest go on. Never changes GPU settings.
#
#   deploy/gpu/check.sh [--dry-run] [--deadline-s 560] [--skip a,b] [--only a,b] [--force]
#                       [--box-scale N]  (every stage's time box times N: slow machines)
#
# On a bare machine (the device tool's), run deploy/gpu/prepare.sh here first and carry
# build-gpucarry: its sysroot.tar.xz supplies the build dependencies, shared/ the reference
# data, and prebuilt.tar.xz the binaries, used instead of building when this checkout's
# sources hash as they did when prepare.sh built them (RINGSERVE_GPU_PREBUILT=0: never).
# --dry-run, or no visible GPU, prints the plan and exits 0; --force runs anyway (to try the
# build stages on a machine without one). RINGSERVE_GPU_DEPS=sysroot uses the
# carried packages even where the system has its own; RINGSERVE_CMAKE_ARGS adds to CMake's;
# RINGSERVE_GPU_DEVICE picks the device (cuda:0; cpu runs the pipeline's plumbing).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=deploy/gpu/targets.sh
source "$root/deploy/gpu/targets.sh"
carry=${RINGSERVE_GPU_CARRY:-$root/build-gpucarry}
build=${RINGSERVE_BUILD_DIR:-$root/build-gpu}
work=${RINGSERVE_GPU_WORK:-/tmp/ringserve-gpu-check}
out=${OUT:-$root/bench/gpu-results}
sysroot=${RINGSERVE_SYSROOT:-$GPU_SYSROOT}
# The prebuilt binaries find their libraries at the default sysroot (their RPATH).
prebuilt=0
if [[ -f $carry/prebuilt.tar.xz && ${RINGSERVE_GPU_PREBUILT:-1} != 0 &&
      $sysroot == "$GPU_SYSROOT" ]]; then
  prebuilt=1
fi
device=${RINGSERVE_GPU_DEVICE:-cuda:0}
deadline_s=560 dry_run=0 skip="" only="" force=0 box_scale=1
while (($#)); do
  case $1 in
    --dry-run) dry_run=1; shift ;;
    --deadline-s) deadline_s=$2; shift 2 ;;
    --skip) skip=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --force) force=1; shift ;;
    --box-scale) box_scale=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
# Every stage after these needs the binaries they unpack or build (--skip still drops them).
[[ -n $only ]] && only="deps,configure,build,$only"
if [[ -n ${RINGSERVE_SHARED_DIR:-} ]]; then
  shared=$RINGSERVE_SHARED_DIR
elif [[ -d $carry/shared ]]; then
  shared=$carry/shared
else
  shared=$root/../shared
fi
jobs=$(nproc)
python=${PYTHON:-python3}
bin=$build/bin

# name, time box (s), what it does. Run in this order; hf_prepare runs in the background
# from before configure until hf_compare collects it, sanitize beside the correctness stages
# (ctest, vectors, hf_compare), and is stopped where the timed stages begin, so it never
# takes time from the figures.
STAGES=(
  "info 20 nvidia-smi -L, driver, commit"
  "deps 90 build dependencies: the system's, else build-gpucarry/sysroot.tar.xz unpacked"
  "hf_prepare 300 (background) transformers writes four random GQA models (Llama 3 rope, plain, YaRN, a Mistral sliding window) + reference logits and final hidden states"
  "configure 120 unpack build-gpucarry/prebuilt.tar.xz if this tree's sources hash as it was built, else cmake -G Ninja, CUDA on, CMAKE_CUDA_ARCHITECTURES from the GPU"
  "build 330 ninja (nothing when prebuilt): ringserve-run, ringserve-gpu-roofline, kernels/model/engine tests, *cuda*/*gpu* targets"
  "sanitize 240 (background, stopped before roofline) compute-sanitizer memcheck on kernels_test's device cases, racecheck and synccheck on its attention and sampling ones"
  "ctest 150 every built test (kernels, model, engine, the CUDA backend's), -j$jobs"
  "vectors 90 stories260K vectors: f32 tokens exact on $device, bf16 first-step logits <= 2e-2 of CPU f32"
  "hf_compare 150 ringserve (cpu f32, $device f32/bf16/bf16 tensor-core attention) vs transformers logits: bf16 <= 1e-2 of its f64 and no further than its own bf16; ringserve-run --embed (cpu, $device f32/bf16) vs its final hidden states"
  "roofline 90 ringserve-gpu-roofline: device-to-device copy GB/s, cuBLAS bf16 TFLOP/s at Llama-3-8B shapes"
  "bench 300 ringserve-run bench llama-3-8b bf16: decode B=1 and B=64@1024 (CUDA graphs, and op by op), prefill 2048 (SIMT and tensor-core attention), 256 x 512/256, KV pool at 0.9"
  "baseline 200 transformers batched generate, 256 x 512/256, Llama-3-8B shape bf16"
  "serve_build 150 ninja: ringserve-worker, ringserve-router, ringserve-cli, ringserve-model"
  "serve 90 deploy/local/serve.sh --no-build: one worker per GPU (--device cuda:i), a generate through the router"
  "algo_rows 120 when the bench's product sweep favours another cuBLASLt algorithm row count than the default: decode B=1, B=64@1024 and prefill 2048 again with --matmul-algo-rows it"
  "sampling 90 ringserve-run bench llama-3-8b bf16: decode B=64 and 256@1024 greedy, then temperature 0.8 top_p 0.95 (tokens picked on the device either way)"
  "speculate 90 ringserve-run bench llama-3-8b bf16: generator runs P=1 and 8 of 256/128 tokens, without drafts and with --speculate 4"
  "kv_fp8 60 ringserve-run bench llama-3-8b bf16: decode B=64 and 256@1024 over a bf16 and an fp8 (E4M3) KV cache"
  "kv_host 45 ringserve-kv-copy-bench: Llama-3-8B bf16 KV blocks (2 MiB, 64 rows of one strided copy) to page-locked host memory and back, 1, 16 and 128 at a time (the --kv-host-memory tier's copies)"
  "lora 90 ringserve-run bench llama-3-8b bf16: decode B=1, 64@1024 and prefill 2048, without adapters and with 4 random rank-16 LoRA adapters (sequence i on adapter i mod 4); then 16 requests over the 4 with one slot: the engine's time per swap from host memory"
)

wanted() {
  local name=$1
  [[ -n $only && ",$only," != *",$name,"* ]] && return 1
  [[ ",$skip," == *",$name,"* ]] && return 1
  return 0
}

print_plan() {
  echo "deploy/gpu/check.sh plan (deadline ${deadline_s}s; build dir $build; results $out)"
  for s in "${STAGES[@]}"; do
    read -r name box what <<<"$s"
    wanted "$name" || what="(skipped) $what"
    printf '  %-12s %4ss  %s\n' "$name" "$box" "$what"
  done
  echo "  summary          deploy/gpu/summarize.py -> check.json, check.md, logs.tar.gz"
  echo "reference data: $shared; carried files: $carry"
  ((prebuilt)) && echo "prebuilt binaries: $carry/prebuilt.tar.xz (used if the sources match)"
  true
}

gpu_count() {
  command -v nvidia-smi >/dev/null 2>&1 || { echo 0; return; }
  nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
}

if ((dry_run)); then
  print_plan
  exit 0
fi
if ((!force)) && (($(gpu_count) == 0)); then
  print_plan
  echo "check.sh: no NVIDIA GPU visible (nvidia-smi -L); nothing run"
  exit 0
fi

start_s=$(date +%s)
deadline=$((start_s + deadline_s))
logs=$work/logs
rm -rf "$work"
mkdir -p "$logs" "$out"
: >"$work/stages.tsv"

box_of() {
  local s
  for s in "${STAGES[@]}"; do
    read -r n b _ <<<"$s"
    [[ $n == "$1" ]] && { echo $((b * box_scale)); return; }
  done
  echo 60
}

record() {  # name status seconds
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$work/stages.tsv"
  printf '== %-12s %-18s %4ss\n' "$1" "$2" "$3"
}

# A stage's exit status as the stage table names it.
status_of() {
  case $1 in
    0) echo ok ;;
    77) echo skipped ;;
    124|137) echo timeout ;;
    *) echo "failed($1)" ;;
  esac
}

# Runs stage function $1 under its time box (cut to what the deadline leaves), its output
# in $logs/$1.log. timeout(1) signals the stage's whole process group.
stage() {
  local name=$1 box left t0 rc st
  if ! wanted "$name"; then record "$name" skipped 0; return 0; fi
  box=$(box_of "$name")
  left=$((deadline - $(date +%s) - 15))
  if ((left < 20)); then record "$name" skipped-deadline 0; return 1; fi
  ((box > left)) && box=$left
  t0=$(date +%s)
  timeout --kill-after=10 "$box" bash -c "stage_$name" >"$logs/$name.log" 2>&1
  rc=$?
  st=$(status_of "$rc")
  record "$name" "$st" $(($(date +%s) - t0))
  [[ $st == ok || $st == skipped ]] || tail -n 8 "$logs/$name.log" | sed 's/^/   | /'
  [[ $st == ok ]]
}

# ---- stages (each runs in its own bash; everything it needs is exported) ----------------

stage_info() {
  nvidia-smi -L
  # The header names the newest CUDA the driver runs; the binaries need their toolkit's.
  nvidia-smi | head -n 4
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,power.limit,compute_cap \
    --format=csv
  local commit dirty
  if git -C "$root" rev-parse HEAD >/dev/null 2>&1; then
    commit=$(git -C "$root" rev-parse HEAD)
    dirty=$([[ -n $(git -C "$root" status --porcelain --untracked-files=no) ]] && echo true || echo false)
    printf '{"commit": "%s", "dirty": %s, "from": "git"}\n' "$commit" "$dirty" >"$work/source.json"
  elif [[ -f $carry/source.json ]]; then
    cp "$carry/source.json" "$work/source.json"
  else
    echo '{"commit": "unknown"}' >"$work/source.json"
  fi
  cat "$work/source.json"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader \
    >"$work/gpu.csv"
  uname -a; nproc; free -g | head -2
  command -v cmake ninja nvcc g++ "$python" || true
  cmake --version | head -1; nvcc --version | tail -2; g++ --version | head -1
}

native_deps() {
  command -v pkg-config >/dev/null && command -v protoc >/dev/null &&
    command -v grpc_cpp_plugin >/dev/null &&
    pkg-config --exists grpc++ openblas libxxhash absl_base 2>/dev/null &&
    [[ -f /usr/include/gtest/gtest.h && -f /usr/share/grpc-proto/grpc/health/v1/health.proto ]]
}

# Unpacks the carried Debian packages to $sysroot and writes $work/cmake-deps.args, the
# CMake arguments that build against them: .pc files and wrappers point into the sysroot,
# and the binaries carry it as RPATH (DT_RPATH, so the libraries' own dependencies resolve
# there too) instead of needing LD_LIBRARY_PATH.
stage_deps() {
  : >"$work/cmake-deps.args"
  # Prebuilt binaries were linked against the carried libraries, not the system's.
  if [[ ${RINGSERVE_GPU_DEPS:-} != sysroot ]] && ((!prebuilt)) && native_deps; then
    echo "deps: the system has them"
    return 0
  fi
  [[ -f $carry/sysroot.tar.xz ]] || {
    echo "deps: missing here and no $carry/sysroot.tar.xz (run deploy/gpu/prepare.sh and carry it)"
    return 1
  }
  rm -rf "$sysroot"
  mkdir -p "$sysroot"
  if command -v xz >/dev/null; then
    tar -xJf "$carry/sysroot.tar.xz" -C "$sysroot"
  else  # minimal images may lack xz; Python's tarfile reads it
    "$python" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$carry/sysroot.tar.xz" "$sysroot"
  fi
  local lib=$sysroot/usr/lib/x86_64-linux-gnu
  find "$sysroot" -name '*.pc' -print0 |
    xargs -0 sed -i -E "s#=/usr(/|\$)#=$sysroot/usr\1#; s#(-[IL])/usr/#\1$sysroot/usr/#g"
  mkdir -p "$sysroot/wrap"
  for tool in protoc grpc_cpp_plugin pkgconf; do
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
      "$lib" "$sysroot/usr/bin/$tool" >"$sysroot/wrap/$tool"
    chmod +x "$sysroot/wrap/$tool"
  done
  ln -sf pkgconf "$sysroot/wrap/pkg-config"
  cat >"$work/cmake-deps.args" <<ARGS
-DCMAKE_PREFIX_PATH=$sysroot/usr
-DPKG_CONFIG_EXECUTABLE=$sysroot/wrap/pkg-config
-DProtobuf_PROTOC_EXECUTABLE=$sysroot/wrap/protoc
-DGRPC_CPP_PLUGIN=$sysroot/wrap/grpc_cpp_plugin
-DGRPC_PROTO_DIR=$sysroot/usr/share/grpc-proto
-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags -Wl,-rpath,$lib -Wl,-rpath-link,$lib
-DCMAKE_SHARED_LINKER_FLAGS=-Wl,-rpath-link,$lib
ARGS
  cat >"$work/pkg-config.env" <<ENV
export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$lib/openblas-pthread/pkgconfig:$sysroot/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=
ENV
  echo "deps: unpacked $(du -sh "$sysroot" | cut -f1) to $sysroot"
  cat "$work/cmake-deps.args"
}

stage_hf_prepare() {
  # Two threads: the build runs beside it.
  OMP_NUM_THREADS=2 "$python" "$root/tools/gpu/hf_compare.py" prepare --work "$work/hf" --hf-device cuda
}

cuda_arch() {
  local cap
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  [[ $cap =~ ^[0-9]+$ ]] && echo "$cap" || echo 90
}

# The carried prebuilt build, when it was built from these sources: unpacked to $build with
# its recorded paths rewritten to this checkout's, and run once to show its libraries load.
unpack_prebuilt() {
  local tmp=$work/prebuilt recorded_root recorded_build digest want cublaslt soname dir
  rm -rf "$tmp" && mkdir -p "$tmp"
  if command -v xz >/dev/null; then
    tar -xJf "$carry/prebuilt.tar.xz" -C "$tmp" || return 1
  else
    "$python" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$carry/prebuilt.tar.xz" "$tmp" || return 1
  fi
  read -r recorded_root recorded_build want cublaslt soname < <("$python" -c 'import json, sys
p = json.load(open(sys.argv[1]))
print(p["root"], p["build"], p["digest"], p["cublaslt"], p["cublaslt_soname"])' "$tmp/prebuilt.json")
  digest=$(gpu_build_digest "$root" "$tmp/build-inputs.txt")
  if [[ $digest != "$want" ]]; then
    echo "prebuilt: built from other sources (digest $want, this tree $digest); building here"
    return 1
  fi
  # cuBLASLt is opened at run time: by the path CMake found there, else by soname through
  # the binaries' RPATH (CUDA's usual folders) or the loader's cache.
  if [[ ! -e $cublaslt ]] && ! ldconfig -p 2>/dev/null | grep -q "$soname "; then
    for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib ""; do
      [[ -n $dir && -e $dir/$soname ]] && break
    done
    if [[ -z $dir ]]; then
      echo "prebuilt: neither $cublaslt nor $soname is where the binaries look; building here"
      return 1
    fi
  fi
  rm -rf "$build" && mkdir -p "$(dirname "$build")" && mv "$tmp" "$build"
  find "$build" -name '*.cmake' -print0 |
    xargs -0 sed -i "s#$recorded_build#$build#g; s#$recorded_root#$root#g"
  if ! "$build/bin/kernels_test" --gtest_list_tests >/dev/null; then
    echo "prebuilt: kernels_test does not start here; building here"
    rm -rf "$build"
    return 1
  fi
  # Listing never touches the GPU; this does (a driver older than the binaries' CUDA fails
  # it, where this machine's own toolkit may still build binaries that run).
  if ! RINGSERVE_EXPECT_GPU=1 "$build/bin/kernels_test" --gtest_brief=1 \
      --gtest_filter='CudaBackendStartTest.*'; then
    echo "prebuilt: the CUDA backend does not start on $device with these binaries; building here"
    rm -rf "$build"
    return 1
  fi
  touch "$build/.prebuilt"
  cp "$build/prebuilt.json" "$work/prebuilt.json"
  echo "prebuilt: using $(find "$build/bin" -type f | wc -l) binaries built by prepare.sh"
  cat "$build/prebuilt.json"
}

stage_configure() {
  if ((prebuilt)) && unpack_prebuilt; then return 0; fi
  rm -f "$build/.prebuilt" "$work/prebuilt.json"
  local args=() extra=()
  [[ -f $work/pkg-config.env ]] && source "$work/pkg-config.env"
  mapfile -t args <"$work/cmake-deps.args"
  read -r -a extra <<<"${RINGSERVE_CMAKE_ARGS:-}"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRINGSERVE_CUDA=ON \
    -DRINGSERVE_FUZZ=OFF -DRINGSERVE_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES="$(cuda_arch)" \
    -DRINGSERVE_SHARED_DIR="$shared" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${args[@]}" \
    "${extra[@]}"
}

stage_build() {
  [[ -f $build/.prebuilt ]] && { echo "build: prebuilt by prepare.sh; nothing to build"; return 0; }
  [[ -f $work/pkg-config.env ]] && source "$work/pkg-config.env"
  local targets
  read -r -a targets < <(gpu_check_targets "$build")
  echo "targets: ${targets[*]}"
  # -k 0: a target that fails leaves the others to build, so later stages can still run.
  cmake --build "$build" -j "$jobs" --target "${targets[@]}" -- -k 0
}

stage_ctest() {
  # gtest_discover_tests adds <target>_NOT_BUILT for executables this build left out;
  # integration, deploy and tools tests need the serving binaries. A prebuilt build's tests
  # read the reference data from where it is here, not where it was built.
  # RINGSERVE_EXPECT_GPU: a CUDA backend that cannot start fails CudaBackendStartTest instead
  # of skipping every device case.
  RINGSERVE_EXPECT_GPU=1 RINGSERVE_SHARED_DIR=$shared ctest --test-dir "$build" -j "$jobs" --timeout 120 --output-on-failure \
    -E '_NOT_BUILT$|^integration\.|^deploy\.|^tools\.|_fuzz'
}

stage_vectors() {
  "$python" "$root/tools/gpu/vectors_check.py" --bin "$bin" --shared "$shared" \
    --device "$device" --work "$work/vectors" --out "$work/vectors.json"
}

stage_hf_compare() {
  local rc
  wait_for_hf_prepare
  rc=$(cat "$work/hf_prepare.rc" 2>/dev/null || echo 1)
  [[ $rc == 0 ]] || { echo "hf_prepare failed ($rc):"; tail -20 "$logs/hf_prepare.log"; return 1; }
  "$python" "$root/tools/gpu/hf_compare.py" compare --work "$work/hf" --bin "$bin" \
    --device "$device" --out "$work/hf_compare.json"
}

wait_for_hf_prepare() {
  while [[ ! -f $work/hf_prepare.rc ]]; do sleep 1; done
}

stage_roofline() {
  "$bin/ringserve-gpu-roofline" >"$work/roofline.json"
  local rc=$?
  cat "$work/roofline.json"
  return $rc
}

stage_bench() {
  local dtype=(--dtype bf16) attention=(--step-attention simt,tensor-core)
  if ! "$bin/ringserve-run" bench --help 2>&1 | grep -q -- --dtype; then
    echo "bench: ringserve-run has no --dtype flag: the backend's default dtype (kv_pool.dtype)"
    dtype=()
  fi
  # The step bench (decode and prefill, a few seconds) once per attention kernel.
  if ! "$bin/ringserve-run" bench --help 2>&1 | grep -q -- --step-attention; then
    attention=()
  fi
  # The weight products again with cuBLASLt's algorithm chosen for each of these row counts
  # (a few seconds): which one serves decode and prefill best (stage algo_rows).
  local sweep=(--product-algo-rows 8,16,32,64,128,256)
  "$bin/ringserve-run" bench --help 2>&1 | grep -q -- --product-algo-rows || sweep=()
  "$bin/ringserve-run" bench --device "$device" "${dtype[@]}" "${attention[@]}" "${sweep[@]}" --dummy-weights \
    --preset llama-3-8b --decode-batch 1,64 --context 1024 --decode-steps 32 --compare-eager \
    --prefill-tokens 2048 --prefill-reps 5 --parallel 256 --prompt-tokens 512 \
    --gen-tokens 256 --kv-fraction 0.9 --json >"$work/bench.json"
  local rc=$?
  cat "$work/bench.json"
  return $rc
}

stage_baseline() {
  local left=$((deadline - $(date +%s) - 40))
  ((left > 150)) && left=150
  "$python" "$root/tools/gpu/hf_generate_baseline.py" --requests 256 --prompt-tokens 512 \
    --gen-tokens 256 --time-budget-s "$left" --out "$work/baseline.json"
}

stage_serve_build() {
  [[ -f $build/.prebuilt ]] && { echo "serve_build: prebuilt by prepare.sh"; return 0; }
  [[ -f $work/pkg-config.env ]] && source "$work/pkg-config.env"
  local targets
  read -r -a targets < <(gpu_serve_targets)
  cmake --build "$build" -j "$jobs" --target "${targets[@]}"
}

stage_serve() {
  local port=50350 log=$work/serve.out pid ok=1
  RINGSERVE_BUILD_DIR=$build RINGSERVE_STATE_DIR=$work/serve \
    "$root/deploy/local/serve.sh" --no-build --port "$port" --kv-memory 2GiB >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do
    grep -q "ringserve is serving" "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  cat "$log"
  if grep -q "workers (cuda:0" "$log"; then
    "$bin/ringserve-cli" --target "127.0.0.1:$port" generate --session gpu-check \
      --text "Once upon a time" --max-tokens 16 --json && ok=0
  else
    echo "serve: serve.sh did not start a worker on cuda:0"
  fi
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  return $ok
}

# What device sampling costs a decode step: the same steps greedy and with top_p.
stage_sampling() {
  local common=(--device "$device" --dtype bf16 --dummy-weights --preset llama-3-8b --parallel none
    --decode-batch 64,256 --context 1024 --decode-steps 16 --json)
  "$bin/ringserve-run" bench "${common[@]}" >"$work/sampling_greedy.json" || return 1
  "$bin/ringserve-run" bench "${common[@]}" --temperature 0.8 --top-p 0.95 \
    >"$work/sampling_top_p.json" || return 1
  "$bin/ringserve-run" bench "${common[@]}" --temperature 0.8 --top-p 0.95 --logprobs 5 \
    >"$work/sampling_logprobs.json" || return 1
  cat "$work/sampling_greedy.json" "$work/sampling_top_p.json" "$work/sampling_logprobs.json"
}

# What an fp8 KV cache gives decode: the same steps over a bf16 cache and an fp8 one (half
# the KV bytes, widened in the SIMT attention's tile loads).
stage_kv_fp8() {
  "$bin/ringserve-run" bench --help 2>&1 | grep -q -- "--kv-dtype" ||
    { echo "kv_fp8: ringserve-run has no --kv-dtype"; return 77; }
  local common=(--device "$device" --dtype bf16 --dummy-weights --preset llama-3-8b --parallel none
    --decode-batch 64,256 --context 1024 --decode-steps 16 --json)
  "$bin/ringserve-run" bench "${common[@]}" >"$work/kv_bf16.json" || return 1
  "$bin/ringserve-run" bench "${common[@]}" --kv-dtype fp8 >"$work/kv_fp8.json" || return 1
  cat "$work/kv_bf16.json" "$work/kv_fp8.json"
}

# What serving LoRA adapters costs: the same decode steps and prefill without adapters and
# with four rank-16 adapters on every projection, the sequences spread over them.
stage_lora() {
  "$bin/ringserve-run" bench --help 2>&1 | grep -q -- "--adapters" ||
    { echo "lora: ringserve-run has no --adapters"; return 77; }
  local common=(--device "$device" --dtype bf16 --dummy-weights --preset llama-3-8b --parallel none
    --decode-batch 1,64 --context 1024 --decode-steps 16 --prefill-tokens 2048 --json)
  "$bin/ringserve-run" bench "${common[@]}" >"$work/lora_off.json" || return 1
  local adapters=(--lora a=random:16 --lora b=random:16 --lora c=random:16 --lora d=random:16
    --adapters 4)
  "$bin/ringserve-run" bench "${common[@]}" "${adapters[@]}" >"$work/lora_on.json" || return 1
  # One slot for four adapters: requests take turns, each turn a swap from host memory.
  "$bin/ringserve-run" bench --device "$device" --dtype bf16 --dummy-weights --preset llama-3-8b \
    --parallel 16 --prompt-tokens 128 --gen-tokens 16 --json "${adapters[@]}" --max-loras 1 \
    >"$work/lora_swap.json" || return 1
  cat "$work/lora_off.json" "$work/lora_on.json" "$work/lora_swap.json"
}

# What the KV cache's host tier (--kv-host-memory) pays per block: KvStorage's copies of
# whole blocks out to page-locked host memory and back, as the runner runs them before a pass.
stage_kv_host() {
  [[ -x $bin/ringserve-kv-copy-bench ]] ||
    { echo "kv_host: ringserve-kv-copy-bench was not built"; return 77; }
  RINGSERVE_BENCH_DEVICE=$device "$bin/ringserve-kv-copy-bench" --benchmark_format=json \
    --benchmark_min_time=0.2 >"$work/kv_host.json" || return 1
  cat "$work/kv_host.json"
}

# What speculative decoding's verifying passes cost and give at small batches: the generator
# runs without drafts and with --speculate 4. With random weights how often drafts are right
# says nothing of real text; the decode rate at a given acceptance does.
stage_speculate() {
  "$bin/ringserve-run" bench --help 2>&1 | grep -q -- --speculate ||
    { echo "speculate: ringserve-run has no --speculate"; return 77; }
  local common=(--device "$device" --dtype bf16 --dummy-weights --preset llama-3-8b
    --parallel 1,8 --prompt-tokens 256 --gen-tokens 128 --json)
  "$bin/ringserve-run" bench "${common[@]}" >"$work/speculate_off.json" || return 1
  "$bin/ringserve-run" bench "${common[@]}" --speculate 4 >"$work/speculate_on.json" || return 1
  cat "$work/speculate_off.json" "$work/speculate_on.json"
}

# The step bench again with the algorithm row count the bench's product sweep favours, when
# that is not the configured one: the decode and prefill figures a change of default would
# give, measured in this call (skipped, 77, when the default is best or nothing was swept).
stage_algo_rows() {
  local rows rc
  [[ -f $work/bench.json ]] || { echo "algo_rows: no bench.json"; return 77; }
  rows=$("$python" "$root/deploy/gpu/summarize.py" --pick-algo-rows "$work/bench.json") || return 1
  [[ -n $rows ]] || { echo "algo_rows: the configured row count is best (or nothing was swept)"; return 77; }
  echo "algo_rows: the sweep favours $rows rows; the step bench again with --matmul-algo-rows $rows"
  "$bin/ringserve-run" bench --device "$device" --dtype bf16 --dummy-weights --preset llama-3-8b \
    --matmul-algo-rows "$rows" --decode-batch 1,64 --context 1024 --decode-steps 32 \
    --prefill-tokens 2048 --prefill-reps 5 --parallel none --json >"$work/bench_algo_rows.json"
  rc=$?
  cat "$work/bench_algo_rows.json"
  return $rc
}

# Real-device cases only (the emulated ones run on the CPU). memcheck: out-of-bounds and
# misaligned accesses, and errors the kernels return; racecheck: shared-memory hazards, which
# the emulation's one-warp-at-a-time schedule cannot show.
stage_sanitize() {
  local sanitizer
  sanitizer=$(command -v compute-sanitizer) ||
    sanitizer=${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer
  [[ -x $sanitizer ]] || { echo "sanitize: no compute-sanitizer here"; return 77; }
  [[ -x $bin/kernels_test ]] || { echo "sanitize: kernels_test was not built"; return 1; }
  local device_cases='*cuda_0*:Dtypes/CudaDtypeTest.*/cuda_*' rc=0
  "$sanitizer" --tool memcheck --error-exitcode 3 --print-limit 20 "$bin/kernels_test" \
    --gtest_filter="$device_cases" --gtest_brief=1 || rc=1
  "$sanitizer" --tool racecheck --error-exitcode 3 --print-limit 20 "$bin/kernels_test" \
    --gtest_filter="*Attention*cuda_0*:*SampleRows*cuda_0*:*LogprobRows*cuda_0*:Dtypes/CudaDtypeTest.*Attention*/cuda_*" \
    --gtest_brief=1 ||
    rc=1
  # synccheck: barriers in divergent code and shuffles with lanes missing from their mask.
  "$sanitizer" --tool synccheck --error-exitcode 3 --print-limit 20 "$bin/kernels_test" \
    --gtest_filter="*Attention*cuda_0*:*SampleRows*cuda_0*:*LogprobRows*cuda_0*" --gtest_brief=1 ||
    rc=1
  return $rc
}

export root carry build work out sysroot device shared jobs python bin logs deadline prebuilt
export -f stage_info native_deps stage_deps stage_hf_prepare cuda_arch unpack_prebuilt \
  stage_configure gpu_check_targets gpu_serve_targets gpu_build_digest stage_build stage_ctest stage_vectors stage_hf_compare wait_for_hf_prepare \
  stage_roofline stage_bench stage_baseline stage_serve_build stage_serve stage_sampling \
  stage_algo_rows stage_sanitize stage_speculate stage_kv_fp8 stage_kv_host stage_lora

# Starts stage $1 in the background under its time box; $work/$1.rc holds its exit status
# once it has ended (77 at once when it is not wanted), and the stage table its row.
background_stage() {
  local name=$1
  if ! wanted "$name"; then
    record "$name" skipped 0 >/dev/null
    echo 77 >"$work/$name.rc"
    return
  fi
  ( t0=$(date +%s)
    timeout --kill-after=10 "$(box_of "$name")" bash -c "stage_$name" >"$logs/$name.log" 2>&1 &
    echo $! >"$work/$name.pid"
    wait $!
    rc=$?
    echo "$rc" >"$work/$name.rc.tmp"
    st=$(status_of "$rc")
    [[ $st == failed* && -f $work/$name.stopped ]] && st=stopped
    record "$name" "$st" $(($(date +%s) - t0)) >/dev/null
    mv "$work/$name.rc.tmp" "$work/$name.rc" ) &
}

# Ends background stage $1 now if it is still running (timeout(1) passes the signal to the
# stage's process group), and waits until its row is recorded.
stop_background_stage() {
  local name=$1
  while [[ ! -f $work/$name.pid && ! -f $work/$name.rc ]]; do sleep 0.1; done
  if [[ ! -f $work/$name.rc ]]; then
    : >"$work/$name.stopped"
    kill -TERM "$(cat "$work/$name.pid")" 2>/dev/null
  fi
  while [[ ! -f $work/$name.rc ]]; do sleep 1; done
}

print_plan
stage info
stage deps
background_stage hf_prepare
if stage configure; then
  stage build
  background_stage sanitize
  stage ctest
  stage vectors
  stage hf_compare
  stop_background_stage sanitize
  stage roofline
  stage bench
fi
wait_for_hf_prepare
stage baseline
if [[ -x $bin/ringserve-run ]] && stage serve_build; then
  stage serve
fi
[[ -x $bin/ringserve-run ]] && stage algo_rows
[[ -x $bin/ringserve-run ]] && stage sampling
[[ -x $bin/ringserve-run ]] && stage speculate
[[ -x $bin/ringserve-run ]] && stage kv_fp8
[[ -x $bin/ringserve-kv-copy-bench ]] && stage kv_host
[[ -x $bin/ringserve-run ]] && stage lora
grep -P '^(hf_prepare|sanitize)\t' "$work/stages.tsv" |
  awk -F'\t' '{printf "== %-12s %-18s %4ss (background)\n", $1, $2, $3}'

"$python" "$root/deploy/gpu/summarize.py" --work "$work" --out "$out" \
  --elapsed-s $(($(date +%s) - start_s))
tar -czf "$out/logs.tar.gz" -C "$work" --exclude='hf/*/model.safetensors' \
  --exclude='hf/*/*.jsonl' --exclude='hf/*/reference.json' --exclude='serve' . 2>/dev/null
echo "check.sh: $(($(date +%s) - start_s))s; results in $out (check.json, check.md, logs.tar.gz)"
