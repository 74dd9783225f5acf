// Algorithm family "block_per_row": the simple, obviously correct GPU path.
//
// It takes every shape the contract allows and is the fallback every fast
// path is tested against. Three stages, all asynchronous on one stream:
//
//   1. block_select_kernel — one CTA per row. A radix select over the row's
//      rank keys (radix_select.cuh; 2 passes for 16-bit keys, 4 for fp32,
//      each re-reading the row from global memory) finds the threshold key T
//      and how many ties at T belong to the top k. A final pass walks the row
//      in index order with a block-wide prefix scan and writes the winners as
//      packed (key, ~index) values (keys.hpp): those above T first, then the
//      lowest-index ties at T. The scan makes the output order a function of
//      the input alone, so even the unsorted result is deterministic.
//   2. (sorted only) cub::DeviceSegmentedRadixSort, descending, over the
//      packed values of each row: packed values are unique, so "descending"
//      is exactly key descending then index ascending. It launches one kernel
//      per digit pass and never synchronises with the host (graph safe);
//      DeviceSegmentedSort is not used because it copies segment counts to
//      the host.
//   3. finalize_kernel — unpacks indices, copies values bit-for-bit from the
//      input, and writes sentinels past each row's effective k.
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "cuda/algorithms.hpp"
#include "cuda/common.cuh"
#include "cuda/radix_select.cuh"

namespace fasttopk::detail {
namespace {

constexpr int kSelectThreads = 512;
constexpr int kFinalizeThreads = 256;

/// Workspace pieces, in the order they are carved.
struct BlockPerRowWorkspace {
  uint64_t* candidates;  // [rows * k] packed winners, in index order
  uint64_t* sorted;      // [rows * k] packed winners, rank order (sorted only)
  int* segment_begin;    // [rows] first candidate of each row, per sort chunk
  int* segment_end;      // [rows] one past the last candidate
  int* row_k;            // [rows] effective k of each row
  void* sort_temp;       // cub temporary storage
  std::size_t sort_temp_bytes;
};

/// Rows per segmented-sort call, so that rows_per_chunk * k fits in an int
/// (cub's item count).
int64_t rows_per_sort_chunk(const Problem& q) {
  return std::max<int64_t>(1, std::min<int64_t>(q.rows, INT_MAX / std::max<int64_t>(q.k, 1)));
}

std::size_t sort_temp_bytes(const Problem& q) {
  if (!q.sorted) return 0;
  const int64_t chunk = rows_per_sort_chunk(q);
  std::size_t bytes = 0;
  cub::DeviceSegmentedRadixSort::SortKeysDescending(
      nullptr, bytes, static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr),
      static_cast<int>(chunk * q.k), static_cast<int>(chunk), static_cast<const int*>(nullptr),
      static_cast<const int*>(nullptr));
  return bytes;
}

BlockPerRowWorkspace layout(const Problem& q, void* base, std::size_t* total) {
  WorkspaceLayout w(base);
  BlockPerRowWorkspace ws{};
  const std::size_t slots = static_cast<std::size_t>(q.rows) * static_cast<std::size_t>(q.k);
  ws.candidates = w.take<uint64_t>(slots);
  ws.sorted = q.sorted ? w.take<uint64_t>(slots) : nullptr;
  ws.segment_begin = q.sorted ? w.take<int>(q.rows) : nullptr;
  ws.segment_end = q.sorted ? w.take<int>(q.rows) : nullptr;
  ws.row_k = w.take<int>(q.rows);
  ws.sort_temp_bytes = sort_temp_bytes(q);
  ws.sort_temp = ws.sort_temp_bytes ? w.take<char>(ws.sort_temp_bytes) : nullptr;
  if (total) *total = w.bytes();
  return ws;
}

/*
 * One CTA per row: radix select, then an ordered compaction of the winners.
 * Invariants on exit, for row r with effective k_r (0 for an invalid row):
 *   candidates[r*k + 0 .. k_r) = the top k_r packed (key, ~index) of the row,
 *     elements with key > T in index order, then the lowest-index elements
 *     with key == T in index order;
 *   row_k[r] = k_r; segment_begin/end[r] delimit them, relative to the start
 *     of r's sort chunk (sorted only).
 */
template <typename Format>
__global__ void __launch_bounds__(kSelectThreads)
    block_select_kernel(Problem q, BlockPerRowWorkspace ws, int64_t rows_per_chunk) {
  using Bits = typename Format::Bits;
  using BlockScan = cub::BlockScan<uint32_t, kSelectThreads>;
  __shared__ RadixSelectShared select;
  __shared__ typename BlockScan::TempStorage scan_storage;

  const int64_t row = blockIdx.x;
  const RowShape shape =
      row_shape(q.k_per_row, q.row_lengths, row, static_cast<int>(q.cols), static_cast<int>(q.k));
  if (threadIdx.x == 0) {
    ws.row_k[row] = shape.k;
    if (ws.segment_begin != nullptr) {
      const int64_t begin = (row % rows_per_chunk) * q.k;
      ws.segment_begin[row] = static_cast<int>(begin);
      ws.segment_end[row] = static_cast<int>(begin + shape.k);
    }
  }
  if (shape.k == 0) return;

  const Bits* in = static_cast<const Bits*>(q.input) + row * q.row_stride;
  const bool largest = q.largest;
  const int n = shape.length;
  block_radix_select<Format::kKeyBits>(select, static_cast<uint32_t>(shape.k), [&](auto&& f) {
    for (int i = threadIdx.x; i < n; i += kSelectThreads) f(rank_key<Format>(in[i], largest));
  });
  const uint32_t threshold = select.prefix;
  const uint32_t ties_needed = select.remaining;
  const uint32_t above_count = static_cast<uint32_t>(shape.k) - ties_needed;

  // Ordered compaction. Per tile, each thread's flags are packed as
  // (is_above << 16 | is_tie); a tile has 512 elements, so the 16-bit halves
  // of the prefix sums cannot overflow into each other.
  uint64_t* out = ws.candidates + row * q.k;
  uint32_t above_base = 0;
  uint32_t tie_base = 0;
  for (int tile = 0; tile < n; tile += kSelectThreads) {
    const int i = tile + threadIdx.x;
    const uint32_t key = i < n ? rank_key<Format>(in[i], largest) : 0u;
    const bool above = i < n && key > threshold;
    const bool tie = i < n && key == threshold;
    uint32_t position = 0;
    uint32_t tile_total = 0;
    BlockScan(scan_storage)
        .ExclusiveSum((above ? 1u << 16 : 0u) | (tie ? 1u : 0u), position, tile_total);
    if (above) out[above_base + (position >> 16)] = pack_key_index(key, i);
    if (tie) {
      const uint32_t t = tie_base + (position & 0xffffu);
      if (t < ties_needed) out[above_count + t] = pack_key_index(key, i);
    }
    above_base += tile_total >> 16;
    tie_base += tile_total & 0xffffu;
    if (above_base >= above_count && tie_base >= ties_needed) break;  // uniform
    __syncthreads();  // scan_storage is reused by the next tile
  }
}

/*
 * One thread per output slot: unpack, rebuild the value from its key, or
 * write the sentinel.
 */
template <typename Format>
__global__ void __launch_bounds__(kFinalizeThreads)
    finalize_kernel(Problem q, const uint64_t* packed, const int* row_k) {
  using Bits = typename Format::Bits;
  const int64_t total = q.rows * q.k;
  for (int64_t slot = blockIdx.x * int64_t{kFinalizeThreads} + threadIdx.x; slot < total;
       slot += int64_t{gridDim.x} * kFinalizeThreads) {
    const int64_t row = slot / q.k;
    const int64_t j = slot - row * q.k;
    const bool valid = j < row_k[row];
    write_output<Format>(q, static_cast<const Bits*>(q.input) + row * q.row_stride, row, j,
                         valid ? packed[slot] : 0ull, valid);
  }
}

// No plan beyond the problem itself: rejects stores nothing.
const char* rejects(const Problem&, const DeviceFacts&, FamilyPlan*) { return nullptr; }

std::size_t workspace_bytes(const Problem& q, const DeviceFacts&, const FamilyPlan&) {
  std::size_t total = 0;
  layout(q, nullptr, &total);
  return total;
}

int launch(const Problem& q, const DeviceFacts& device, const FamilyPlan&, void* workspace,
           cudaStream_t stream) {
  BlockPerRowWorkspace ws = layout(q, workspace, nullptr);
  const int64_t chunk = rows_per_sort_chunk(q);
  return dispatch_dtype(q.dtype, [&](auto format) -> int {
    using Format = decltype(format);
    block_select_kernel<Format>
        <<<static_cast<unsigned>(q.rows), kSelectThreads, 0, stream>>>(q, ws, chunk);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;

    const uint64_t* packed = ws.candidates;
    if (q.sorted) {
      const int end_bit = 32 + Format::kKeyBits;
      for (int64_t first = 0; first < q.rows; first += chunk) {
        const int64_t rows = std::min(chunk, q.rows - first);
        std::size_t temp_bytes = ws.sort_temp_bytes;
        e = cub::DeviceSegmentedRadixSort::SortKeysDescending(
            ws.sort_temp, temp_bytes, ws.candidates + first * q.k, ws.sorted + first * q.k,
            static_cast<int>(rows * q.k), static_cast<int>(rows), ws.segment_begin + first,
            ws.segment_end + first, 0, end_bit, stream);
        if (e != cudaSuccess) return e;
      }
      packed = ws.sorted;
    }
    const int64_t slots = q.rows * q.k;
    const int64_t blocks = std::min<int64_t>((slots + kFinalizeThreads - 1) / kFinalizeThreads,
                                             int64_t{device.sm_count} * 32);
    finalize_kernel<Format>
        <<<static_cast<unsigned>(blocks), kFinalizeThreads, 0, stream>>>(q, packed, ws.row_k);
    return cudaGetLastError();
  });
}

}  // namespace

const AlgorithmFamily kBlockPerRowFamily = {Algorithm::kBlockPerRow, rejects, workspace_bytes,
                                            launch};

}  // namespace fasttopk::detail
