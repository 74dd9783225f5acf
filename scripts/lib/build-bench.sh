# Sourced by the device-side development scripts (ab-rpw, probe-phases,
# profile-kernel, tune-row-per-warp).
#
# build_bench SRC_DIR BUILD_DIR LOG [CUDA_FLAGS] [JOBS]
#   Configures SRC_DIR into BUILD_DIR (Release, sm_90, examples on, tests
#   off, CMAKE_CUDA_FLAGS=CUDA_FLAGS) and builds fasttopk_bench_cpp, the
#   binary at BUILD_DIR/examples/fasttopk_bench_cpp. Output goes to LOG
#   (overwritten). JOBS defaults to nproc. Returns non-zero if either fails.
build_bench() {
  local src=$1 dir=$2 log=$3 flags=${4:-} jobs=${5:-$(nproc)}
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DFASTTOPK_BUILD_TESTS=OFF -DFASTTOPK_BUILD_EXAMPLES=ON "-DCMAKE_CUDA_FLAGS=$flags" \
    >"$log" 2>&1 &&
    cmake --build "$dir" -j "$jobs" --target fasttopk_bench_cpp >>"$log" 2>&1
}
