// Algorithm family "split_row": rows split across CTAs, one launch.
//
// For few long rows (decode: batch 1-64 over 32k-256k vocabularies) one CTA
// per row would leave most SMs idle, and the time is all latency. Each row is
// cut into `splits` chunks, one CTA each:
//
//   phase A (every CTA): read the chunk once, keep its rank keys in shared
//     memory, and select the chunk's exact local top k_c = min(k_row, chunk
//     length) by packed (key, ~index) value (block_select_packed). Those
//     candidates go to the workspace. Any element of the row's top k is in
//     its own chunk's top k_c, so the union of candidates contains the answer.
//   phase B (the last CTA of the row to finish, found with an atomic ticket
//     after a __threadfence, no spin-waiting): load the row's candidates into
//     shared memory, select the top k_row of them, bitonic-sort them and
//     write values, indices and sentinels.
//
// Packed values are unique, so both selections and the sort are exact and
// independent of CTA timing and atomic order: the output is deterministic
// (sorted == false also returns the sorted order). With splits == 1 a CTA
// does both phases without the workspace round trip: this is the
// "row_per_cta" family for many short rows.
//
// The per-row tickets are zeroed by a cudaMemsetAsync in the same call (the
// second of at most two operations), so no state survives between calls.
#include <algorithm>
#include <atomic>
#include <cstdint>

#include "cuda/algorithms.hpp"
#include "cuda/common.cuh"
#include "cuda/radix_select.cuh"

namespace fasttopk::detail {
namespace {

// Tuning constants (measured on the H100, docs/perf-notes.md v3): split_row
// is insensitive to its chunk size and slower at 256 threads for many rows;
// row_per_cta is 31% faster at 256 threads (more CTAs per SM overlap loads).
// The FASTTOPK_TUNE_* override exists for sweeps only.
#ifndef FASTTOPK_TUNE_MIN_CHUNK
#define FASTTOPK_TUNE_MIN_CHUNK 2048
#endif
constexpr int kSplitThreads = 512;
constexpr int kRowThreads = 256;
constexpr int kMaxK = 2048;                         // largest k this family takes
constexpr int kMaxChunk = 16384;                    // keys kept on chip by phase A (64 KB)
constexpr int kMaxCandidates = 24576;               // packed values phase B holds (192 KB)
constexpr int kMinChunk = FASTTOPK_TUNE_MIN_CHUNK;  // below this a CTA is mostly overhead
constexpr int kCtasPerSmTarget = 2;                 // grid size goal for few rows

struct SplitPlan {
  int splits;       // CTAs per row
  int chunk;        // elements per CTA (last one may be shorter)
  int slots;        // candidate slots per CTA = min(k, chunk)
  int index_bits;   // bits needed for an index < cols
  int sort_offset;  // bytes from the start of dynamic smem to the sort buffer
  std::size_t shared_bytes;
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Candidate slots of a plan with `splits` CTAs per row.
int64_t candidates_for(const Problem& q, int64_t splits) {
  return splits * std::min<int64_t>(q.k, ceil_div(q.cols, splits));
}

/// The split of a row: enough CTAs to fill the GPU for few rows, chunks no
/// larger than phase A holds, and candidates no more than phase B holds.
/// Returns false if no split fits (k too large for the row length).
bool make_plan(const Problem& q, const DeviceFacts& device, int forced_splits, SplitPlan* plan) {
  const int64_t min_splits = ceil_div(q.cols, kMaxChunk);
  int64_t splits = forced_splits;
  if (splits <= 0) {
    const int64_t fill = std::max<int64_t>(1, device.sm_count * kCtasPerSmTarget / q.rows);
    splits = std::min<int64_t>(fill, std::max<int64_t>(1, q.cols / kMinChunk));
    // Largest split count within the candidate budget (monotone in splits).
    while (splits > min_splits && candidates_for(q, splits) > kMaxCandidates) --splits;
    splits = std::max(splits, min_splits);
  }
  if (splits > 1 && candidates_for(q, splits) > kMaxCandidates) return false;
  const int64_t chunk = ceil_div(std::max<int64_t>(q.cols, 1), splits);
  if (chunk > kMaxChunk) return false;
  plan->splits = static_cast<int>(splits);
  plan->chunk = static_cast<int>(chunk);
  plan->slots = static_cast<int>(std::min<int64_t>(q.k, chunk));
  plan->index_bits = index_bits_for(q.cols);
  std::size_t sort_capacity = 2;  // power of two >= k (the kernel sorts a power of two)
  while (sort_capacity < static_cast<std::size_t>(q.k)) sort_capacity <<= 1;
  const std::size_t phase_a = static_cast<std::size_t>(chunk) * sizeof(uint32_t);
  const std::size_t phase_b =
      splits > 1 ? static_cast<std::size_t>(splits) * plan->slots * sizeof(uint64_t) : 0;
  const std::size_t sort_offset = align_up(std::max(phase_a, phase_b), 16);
  plan->sort_offset = static_cast<int>(sort_offset);
  plan->shared_bytes = sort_offset + sort_capacity * sizeof(uint64_t);
  return plan->shared_bytes <= device.shared_per_block_optin - sizeof(PackedSelectShared) - 64;
}

/*
 * Grid (rows, splits), kThreads threads (kSplitThreads, or kRowThreads when
 * splits == 1). Dynamic shared memory:
 *   [ region: max(chunk keys as uint32, splits*slots packed uint64) ]
 *   [ sort buffer: sort_capacity packed uint64 ]
 * Invariants: candidates[(row*splits + c)*slots + 0 .. k_c) hold chunk c's
 * exact top k_c packed values once chunk c's CTA has taken its ticket;
 * tickets[row] counts CTAs of the row that have finished phase A.
 */
template <typename Format, int kThreads>
__global__ void __launch_bounds__(kThreads)
    split_row_kernel(Problem q, SplitPlan plan, uint64_t* candidates, uint32_t* tickets) {
  using Bits = typename Format::Bits;
  extern __shared__ __align__(16) unsigned char shared_raw[];
  __shared__ PackedSelectShared select;
  __shared__ uint32_t compact_count;
  __shared__ bool is_last;

  const int64_t row = blockIdx.x;  // x: rows may exceed gridDim.y's 65535
  const int split = blockIdx.y;
  const RowShape shape =
      row_shape(q.k_per_row, q.row_lengths, row, static_cast<int>(q.cols), static_cast<int>(q.k));
  const Bits* in = static_cast<const Bits*>(q.input) + row * q.row_stride;
  uint32_t* keys = reinterpret_cast<uint32_t*>(shared_raw);
  uint64_t* pool = reinterpret_cast<uint64_t*>(shared_raw);
  uint64_t* sorted = reinterpret_cast<uint64_t*>(shared_raw + plan.sort_offset);

  // ---- phase A: this chunk's exact top k_c -------------------------------
  const int begin = split * plan.chunk;
  const int length = max(0, min(plan.chunk, shape.length - begin));
  const int k_chunk = min(shape.k, length);
  const bool largest = q.largest;
  // Several independent loads in flight per thread before the first use.
  constexpr int kLoadBatch = 4;
  for (int base = 0; base < length; base += kThreads * kLoadBatch) {
    Bits loaded[kLoadBatch];
#pragma unroll
    for (int u = 0; u < kLoadBatch; ++u) {
      const int i = base + u * kThreads + static_cast<int>(threadIdx.x);
      loaded[u] = i < length ? in[begin + i] : Bits{0};
    }
#pragma unroll
    for (int u = 0; u < kLoadBatch; ++u) {
      const int i = base + u * kThreads + static_cast<int>(threadIdx.x);
      if (i < length) keys[i] = rank_key<Format>(loaded[u], largest);
    }
  }
  if (threadIdx.x == 0) compact_count = 0;
  __syncthreads();
  auto chunk_value = [&](int i) { return pack_key_index(keys[i], begin + i); };
  uint64_t threshold = 0;
  if (k_chunk > 0 && k_chunk < length) {
    threshold = block_select_packed<Format::kKeyBits, kThreads>(select, length, k_chunk,
                                                                plan.index_bits, chunk_value);
  }
  // Destination of the winners: the workspace, or (one split) the sort buffer.
  uint64_t* winners =
      plan.splits > 1 ? candidates + (row * plan.splits + split) * int64_t{plan.slots} : sorted;
  if (k_chunk > 0) {
    for (int i = threadIdx.x; i < length; i += kThreads) {
      const uint64_t v = chunk_value(i);
      if (v >= threshold) winners[atomicAdd(&compact_count, 1u)] = v;
    }
  }

  int pool_count = k_chunk;
  if (plan.splits > 1) {
    // ---- hand-off: the last CTA of the row continues ----------------------
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) is_last = atomicAdd(&tickets[row], 1u) == plan.splits - 1;
    __syncthreads();
    if (!is_last) return;
    __threadfence();

    // ---- phase B: gather every chunk's candidates -------------------------
    // One coalesced pass over the row's slots (chunk c's slot i at
    // c * slots + i). Slots a chunk did not fill become packed 0, which ranks
    // below every real element (a real packed value has bit 31 set, since
    // indices are < 2^31), and there are always >= k real candidates, so the
    // fillers are never selected.
    pool_count = plan.splits * plan.slots;
    const uint64_t* row_candidates = candidates + row * plan.splits * int64_t{plan.slots};
    for (int t = threadIdx.x; t < pool_count; t += kThreads) {
      const int c = t / plan.slots;
      const int c_length = max(0, min(plan.chunk, shape.length - c * plan.chunk));
      const int c_k = min(shape.k, c_length);
      pool[t] = t - c * plan.slots < c_k ? __ldcg(row_candidates + t) : 0ull;
    }
    if (threadIdx.x == 0) compact_count = 0;
    __syncthreads();
    threshold = 0;
    if (shape.k > 0 && shape.k < pool_count) {
      threshold = block_select_packed<Format::kKeyBits, kThreads>(
          select, pool_count, shape.k, plan.index_bits, [&](int i) { return pool[i]; });
    }
    for (int i = threadIdx.x; i < pool_count; i += kThreads) {
      const uint64_t v = pool[i];
      if (shape.k > 0 && v >= threshold) sorted[atomicAdd(&compact_count, 1u)] = v;
    }
  }

  // ---- sort the k winners and write the row ------------------------------
  int sort_n = 2;
  while (sort_n < shape.k) sort_n <<= 1;
  for (int i = shape.k + threadIdx.x; i < sort_n; i += kThreads) sorted[i] = 0;  // sinks last
  __syncthreads();
  if (shape.k > 1) block_bitonic_sort_descending<kThreads>(sorted, sort_n);
  for (int j = threadIdx.x; j < q.k; j += kThreads) {
    const int64_t index = j < shape.k ? static_cast<int64_t>(packed_index(sorted[j])) : -1;
    write_output<Format>(q, in, row, j, index);
  }
}

const char* rejects_split(const Problem& q, const DeviceFacts& device) {
  if (q.k > kMaxK) return "k > 2048";
  SplitPlan plan;
  if (!make_plan(q, device, 0, &plan)) return "the row is too long for this k (candidate budget)";
  return nullptr;
}

std::size_t workspace_split(const Problem& q, const DeviceFacts& device) {
  SplitPlan plan;
  make_plan(q, device, 0, &plan);
  if (plan.splits == 1) return 0;
  WorkspaceLayout w(nullptr);
  RowHandoff::take(w, q.rows, int64_t{plan.splits} * plan.slots);
  return w.bytes();
}

/// Raises `kernel`'s dynamic shared-memory limit to the device's opt-in
/// maximum, once per device (the default 48 KB counts static + dynamic
/// together, and make_plan sizes up to the opt-in limit). Cached like the
/// device facts: an attribute set costs host time on every call otherwise.
template <typename Format, int kThreads>
cudaError_t allow_full_shared_memory(const DeviceFacts& device) {
  // One flag set per kernel instantiation (keyed by the template arguments,
  // not by the kernel's type, which every instantiation shares).
  static std::atomic<uint64_t> raised_on_device{0};  // bit d: done on device d (< 64)
  auto kernel = split_row_kernel<Format, kThreads>;
  const uint64_t bit = uint64_t{1} << device.device;
  if (raised_on_device.load(std::memory_order_acquire) & bit) return cudaSuccess;
  cudaFuncAttributes attributes{};
  cudaError_t e = cudaFuncGetAttributes(&attributes, kernel);
  if (e != cudaSuccess) return e;
  e = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
      static_cast<int>(device.shared_per_block_optin - attributes.sharedSizeBytes));
  if (e == cudaSuccess) raised_on_device.fetch_or(bit, std::memory_order_release);
  return e;
}

int launch_with_plan(const Problem& q, const DeviceFacts& device, const SplitPlan& plan,
                     void* workspace, cudaStream_t stream) {
  RowHandoff handoff;
  if (plan.splits > 1) {
    WorkspaceLayout w(workspace);
    handoff = RowHandoff::take(w, q.rows, int64_t{plan.splits} * plan.slots);
    const cudaError_t e = handoff.reset(q.rows, stream);
    if (e != cudaSuccess) return e;
  }
  uint64_t* const candidates = handoff.candidates;
  uint32_t* const tickets = handoff.tickets;
  return dispatch_dtype(q.dtype, [&](auto format) -> int {
    using Format = decltype(format);
    const dim3 grid(static_cast<unsigned>(q.rows), plan.splits);
    if (plan.splits > 1) {
      cudaError_t e = allow_full_shared_memory<Format, kSplitThreads>(device);
      if (e != cudaSuccess) return e;
      split_row_kernel<Format, kSplitThreads>
          <<<grid, kSplitThreads, plan.shared_bytes, stream>>>(q, plan, candidates, tickets);
    } else {
      cudaError_t e = allow_full_shared_memory<Format, kRowThreads>(device);
      if (e != cudaSuccess) return e;
      split_row_kernel<Format, kRowThreads>
          <<<grid, kRowThreads, plan.shared_bytes, stream>>>(q, plan, candidates, tickets);
    }
    return cudaGetLastError();
  });
}

int launch_split(const Problem& q, const DeviceFacts& device, void* workspace,
                 cudaStream_t stream) {
  SplitPlan plan;
  make_plan(q, device, 0, &plan);
  return launch_with_plan(q, device, plan, workspace, stream);
}

// The same kernel with one CTA per row: no workspace, no hand-off.
const char* rejects_row(const Problem& q, const DeviceFacts& device) {
  if (q.k > kMaxK) return "k > 2048";
  if (q.cols > kMaxChunk) return "cols > 16384";
  SplitPlan plan;
  if (!make_plan(q, device, 1, &plan)) return "shared memory";
  return nullptr;
}

std::size_t workspace_row(const Problem&, const DeviceFacts&) { return 0; }

int launch_row(const Problem& q, const DeviceFacts& device, void* workspace, cudaStream_t stream) {
  SplitPlan plan;
  make_plan(q, device, 1, &plan);
  return launch_with_plan(q, device, plan, workspace, stream);
}

}  // namespace

const AlgorithmFamily kSplitRowFamily = {Algorithm::kSplitRow, rejects_split, workspace_split,
                                         launch_split};
const AlgorithmFamily kRowPerCtaFamily = {Algorithm::kRowPerCta, rejects_row, workspace_row,
                                          launch_row};

}  // namespace fasttopk::detail
