// Device-side helpers shared by every algorithm family.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "keys.hpp"
#include "problem.hpp"

namespace fasttopk::detail {

/// Per-row parameters after applying the optional per-row arrays:
/// `length` elements are considered and `k` of them selected. A row whose
/// per-row entries are out of range gets k = 0 (all sentinels), as the
/// contract says for device-side per-row arrays.
struct RowShape {
  int length;
  int k;
};

__device__ __forceinline__ RowShape row_shape(const int32_t* k_per_row, const int32_t* row_lengths,
                                              int64_t row, int cols, int k) {
  int length = cols;
  int k_row = k;
  bool valid = true;
  if (row_lengths != nullptr) {
    length = row_lengths[row];
    valid = valid && length >= 0 && length <= cols;
  }
  if (k_per_row != nullptr) {
    k_row = k_per_row[row];
    valid = valid && k_row >= 0 && k_row <= k;
  }
  if (!valid) return RowShape{0, 0};
  return RowShape{length, k_row < length ? k_row : length};
}

/// Writes output slot `slot` of `row` from a winner's packed (key, ~index)
/// value, or the sentinel when valid is false. The value is rebuilt from the
/// key (value_bits_of_key), so no lane waits on a read of the input; only NaN
/// winners, whose payload the key does not hold, are read from the row.
template <typename Format>
__device__ __forceinline__ void write_output(const Problem& q, const typename Format::Bits* row_in,
                                             int64_t row, int64_t slot, uint64_t packed,
                                             bool valid) {
  using Bits = typename Format::Bits;
  const int64_t out = row * q.k + slot;
  const int64_t index = valid ? static_cast<int64_t>(packed_index(packed)) : -1;
  if (q.values != nullptr) {
    const uint32_t key = packed_key(packed);
    Bits bits = static_cast<Bits>(sentinel_bits<Format>(q.largest));
    if (valid) {
      bits = is_nan_key<Format>(key, q.largest)
                 ? row_in[index]
                 : static_cast<Bits>(value_bits_of_key<Format>(key, q.largest));
    }
    static_cast<Bits*>(q.values)[out] = bits;
  }
  if (q.indices != nullptr) {
    if (q.index_type == IndexType::kInt64) {
      static_cast<int64_t*>(q.indices)[out] = index;
    } else {
      static_cast<int32_t*>(q.indices)[out] = static_cast<int32_t>(index);
    }
  }
}

/// Calls f(Format{}) for the problem's dtype: write the body as a generic
/// lambda and recover the type with `using Format = decltype(format);`.
template <typename F>
decltype(auto) dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat16:
      return f(Fp16Bits{});
    case DType::kBFloat16:
      return f(Bf16Bits{});
    case DType::kFloat32:
    default:
      return f(Fp32Bits{});
  }
}

/// Bits needed for every index of a row of `cols` elements (at least 1): the
/// index digits a packed (key, ~index) select has to look at.
inline int index_bits_for(int64_t cols) {
  const uint32_t largest_index = cols > 1 ? static_cast<uint32_t>(cols - 1) : 0u;
  return largest_index == 0 ? 1 : 32 - __builtin_clz(largest_index);
}

constexpr std::size_t align_up(std::size_t bytes, std::size_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

/// Carves consecutive, 256-byte-aligned pieces out of a workspace. Used both
/// to size the workspace (base == nullptr) and to lay it out, so that the two
/// cannot disagree.
class WorkspaceLayout {
 public:
  explicit WorkspaceLayout(void* base) : base_(static_cast<char*>(base)) {}
  template <typename T>
  T* take(std::size_t count) {
    T* p = base_ ? reinterpret_cast<T*>(base_ + offset_) : nullptr;
    offset_ = align_up(offset_ + count * sizeof(T), 256);
    return p;
  }
  std::size_t bytes() const { return offset_; }

 private:
  char* base_;
  std::size_t offset_ = 0;
};

/// The hand-off of rows split across several CTAs or warps: a ticket per row
/// (how many parts of the row have finished) and `per_row` packed candidates
/// per row, where each part leaves its winners for the row's last part.
struct RowHandoff {
  uint32_t* tickets = nullptr;
  uint64_t* candidates = nullptr;

  /// Takes the hand-off's pieces from `w` (sizing when w has no base).
  static RowHandoff take(WorkspaceLayout& w, int64_t rows, int64_t per_row) {
    RowHandoff h;
    h.tickets = w.take<uint32_t>(static_cast<std::size_t>(rows));
    h.candidates = w.take<uint64_t>(static_cast<std::size_t>(rows) * per_row);
    return h;
  }

  /// Zeroes the tickets on `stream`, so that no state survives between calls
  /// (row_handoff.cu). A small kernel, not a memset node: it lets the kernel
  /// after it start at once (griddepcontrol.launch_dependents), so a kernel
  /// launched by launch_programmatic overlaps its launch and its loads with
  /// the reset. That kernel must call wait_for_prerequisite_grids() before
  /// its first ticket; it may read its inputs before that, since it starts
  /// only after the reset kernel has started, which (a normal launch) starts
  /// only after all earlier work on the stream is complete. The memset node
  /// cost ~1.9 µs a call in graph replay on the H100 (docs/perf-notes.md v8,
  /// v30).
  cudaError_t reset(int64_t rows, cudaStream_t stream) const;
};

/// Programmatic dependent launch (sm_90+): wait until the kernels this one
/// depends on have completed and their writes are visible (a no-op when the
/// launch was not programmatic), and allow the next kernel to be scheduled.
__device__ __forceinline__ void wait_for_prerequisite_grids() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void allow_dependent_grids() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

#ifndef FASTTOPK_TUNE_PDL
#define FASTTOPK_TUNE_PDL 1
#endif
/// Whether launch_programmatic asks for programmatic dependent launch (the
/// override is for A/B timings only: docs/perf-notes.md v30).
constexpr bool kProgrammaticLaunch = FASTTOPK_TUNE_PDL != 0;

/// Launches kernel<<<grid, block, shared_bytes, stream>>>(args...) as a
/// programmatic dependent of the kernel before it on the stream where the
/// device has it (`programmatic`: compute capability 9.0 or newer): the
/// kernel may be scheduled before that one completes, so it must call
/// wait_for_prerequisite_grids() before it touches memory the earlier kernel
/// writes (see RowHandoff::reset for what a kernel after the reset may read).
template <typename... Params, typename... Args>
cudaError_t launch_programmatic(bool programmatic, void (*kernel)(Params...), dim3 grid, dim3 block,
                                std::size_t shared_bytes, cudaStream_t stream, Args... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = programmatic && kProgrammaticLaunch;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, args...);
}

/// Takes a part's ticket of its row: atomicAdd(ticket, 1) with
/// acquire-release semantics at GPU scope, by one thread of the part right
/// after a barrier of the part (__syncwarp or __syncthreads), so that the
/// release covers every thread's candidate stores. The part that gets
/// `parts - 1` is the row's last; after another barrier of the part, every
/// earlier part's candidates are visible to all of its threads. This replaces
/// a __threadfence on either side of a relaxed atomicAdd (docs/perf-notes.md
/// v29b: 0.2-0.4 µs less a launch on row_per_warp's split rows).
__device__ __forceinline__ uint32_t take_ticket(uint32_t* ticket) {
  uint32_t previous;
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], 1;"
               : "=r"(previous)
               : "l"(ticket)
               : "memory");
  return previous;
}

/// Phase timing for kernel development, compiled out unless built with
/// -DFASTTOPK_PHASE_PROBE (scripts/probe-phases). The probing thread (one per
/// launch: the caller decides, e.g. thread 0 of CTA 0) stamps clock64() at
/// each mark(); finish() adds the cycles since the first mark to per-mark
/// device totals and every 512 launches prints the mean cycles at each mark.
/// Stamps of one thread on one SM: a barrier right before a mark makes it the
/// time the whole CTA got there.
/// Besides the marks, a phase can add to a few tallies (`tally(i, n)`:
/// e.g. the cycles spent in one step inside a loop, or how often it ran);
/// their means per launch print after the marks as "tallies i:n".
#ifdef FASTTOPK_PHASE_PROBE
static __device__ unsigned long long g_probe_totals[16];  // per translation unit
static __device__ unsigned long long g_probe_tallies[4];
static __device__ unsigned long long g_probe_launches;
#endif
struct PhaseProbe {
#ifdef FASTTOPK_PHASE_PROBE
  static constexpr int kMarks = 16;
  static constexpr int kTallies = 4;
  long long stamps[kMarks];
  long long tallies[kTallies] = {};
  int marks = 0;
  bool active;
  __device__ explicit PhaseProbe(bool probing) : active(probing) { mark(); }
  __device__ __forceinline__ void mark() {
    if (active && marks < kMarks) stamps[marks++] = clock64();
  }
  __device__ __forceinline__ long long now() const { return active ? clock64() : 0; }
  __device__ __forceinline__ void tally(int i, long long n) {
    if (active) tallies[i] += n;
  }
  /// No more stamps, and finish() adds nothing.
  __device__ __forceinline__ void stop() { active = false; }
  __device__ void finish(const char* name) {
    mark();
    if (!active) return;
    for (int i = 1; i < marks; ++i) {
      atomicAdd(&g_probe_totals[i], static_cast<unsigned long long>(stamps[i] - stamps[0]));
    }
    for (int i = 0; i < kTallies; ++i) {
      atomicAdd(&g_probe_tallies[i], static_cast<unsigned long long>(tallies[i]));
    }
    const unsigned long long n = atomicAdd(&g_probe_launches, 1ull) + 1;
    if (n % 512 == 0) {
      printf("probe %s launches %llu mean cycles at marks", name, n);
      for (int i = 1; i < marks; ++i) printf(" %d:%llu", i, g_probe_totals[i] / n);
      printf(" tallies");
      for (int i = 0; i < kTallies; ++i) printf(" t%d=%llu", i, g_probe_tallies[i] / n);
      printf("\n");
    }
  }
#else
  __device__ explicit PhaseProbe(bool) {}
  __device__ __forceinline__ void mark() {}
  __device__ __forceinline__ long long now() const { return 0; }
  __device__ __forceinline__ void tally(int, long long) {}
  __device__ __forceinline__ void stop() {}
  __device__ __forceinline__ void finish(const char*) {}
#endif
};

}  // namespace fasttopk::detail
