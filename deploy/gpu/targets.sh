# What deploy/gpu/check.sh builds, shared with deploy/gpu/prepare.sh, which builds the same
# targets here so that the GPU machine need not (sourced by both; defines, runs nothing).

# Where check.sh unpacks the carried build dependencies; prepare.sh's prebuilt binaries
# find their libraries there (their RPATH), so both scripts must agree on it.
GPU_SYSROOT=/tmp/ringserve-sysroot

# ringserve-worker and the tools the serve stage runs.
gpu_serve_targets() { echo ringserve-worker ringserve-router ringserve-cli ringserve-model; }

# The test and bench targets of a configured Ninja build in $1: the device suites, plus the
# CUDA backend's own tests and tools, whatever they are called.
gpu_check_targets() {
  local targets=(ringserve-run ringserve-gpu-roofline ringserve-kv-copy-bench kernels_test
                 model_forward_test model_golden_test model_decode_graph_test engine_test
                 engine_model_test)
  mapfile -t -O ${#targets[@]} targets < <(ninja -C "$1" -t targets all 2>/dev/null |
    sed -n 's/^\([A-Za-z0-9_.+-]*\): phony$/\1/p' | grep -Ei 'cuda|gpu' |
    grep -v '^cmake_' | grep -v -x -e ringserve-gpu-roofline -e all | sort -u)
  echo "${targets[@]}"
}

# The sources a build depends on, as paths relative to the checkout, one per line: a
# prebuilt build is used only where these hash as they did when it was built.
gpu_build_inputs() {
  (cd "$1" && find CMakeLists.txt cmake common kernels kvcache worker router proto tools \
    bench tests -type f \( -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \
    -o -name '*.proto' -o -name 'CMakeLists.txt' -o -name '*.cmake' \) 2>/dev/null | LC_ALL=C sort)
}

gpu_build_digest() {  # ROOT FILE_LIST
  (cd "$1" && xargs -d '\n' sha256sum <"$2" 2>&1) | sha256sum | cut -d' ' -f1
}
