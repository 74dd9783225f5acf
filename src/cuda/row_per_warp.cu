// Algorithm family "row_per_warp": many short rows at memory speed.
//
// For batches of many rows (MoE routers, small vocabularies, large-batch
// decode; Auto uses it for k <= 64 at >= 512 rows or <= 2048 columns) one
// warp owns one row: the row is read once with 16-byte loads straight into
// registers, tile by tile, and filtering, selection and sort happen in the
// warp with no block barriers, so one row's selection overlaps the loads of
// the next tile and of other warps' rows.
#include <algorithm>
#include <cstdint>

#include "cuda/algorithms.hpp"
#include "cuda/common.cuh"
#include "cuda/warp_select.cuh"

namespace fasttopk::detail {
namespace {

constexpr int kWarpsPerCta = 4;
constexpr int kThreads = 32 * kWarpsPerCta;
constexpr int kMaxK = 128;         // largest k this family takes
constexpr int kMaxCols = 1 << 30;  // tile arithmetic stays in int
#ifndef FASTTOPK_TUNE_RPW_CTAS_PER_SM
#define FASTTOPK_TUNE_RPW_CTAS_PER_SM 4
#endif
// Persistent grid: CTAs per SM (each warp then loops over rows, prefetching).
constexpr int kCtasPerSm = FASTTOPK_TUNE_RPW_CTAS_PER_SM;
constexpr int kPoolCapacity = 256;    // candidates one warp keeps in shared memory
constexpr int kGroupsPerLaneMax = 8;  // group maxima per lane for the threshold

/// One warp's shared memory. The histogram is reused for the k winners after
/// the select (256 counters = 128 packed values >= kMaxK).
struct alignas(16) WarpScratch {
  uint32_t histogram[256];
  uint64_t pool[kPoolCapacity];
};
static_assert(sizeof(uint32_t) * 256 >= sizeof(uint64_t) * kMaxK, "winners alias the histogram");

/// A lower bound of the row's k-th largest key, from group maxima: the lane's
/// keys are split into kGroups groups, and T is the k-th largest of the warp's
/// 32 * kGroups group maxima. Those k maxima are k distinct elements with keys
/// >= T, so the k-th largest key of the row is >= T and every element of the
/// top k has a key >= T. More groups than k / 32 make T tighter (fewer
/// candidates) at the price of a longer sort here. Requires 32 * kGroups >= k.
template <int kGroups>
__device__ __forceinline__ uint32_t group_max_threshold(const uint32_t (&maxima)[kGroupsPerLaneMax],
                                                        int k) {
  uint32_t g[kGroups];
#pragma unroll
  for (int i = 0; i < kGroups; ++i) {
    g[i] = 0;
#pragma unroll
    for (int m = 0; m < kGroupsPerLaneMax / kGroups; ++m) {
      g[i] = max(g[i], maxima[i * (kGroupsPerLaneMax / kGroups) + m]);
    }
  }
  warp_bitonic_sort_descending<uint32_t, kGroups>(g);
  // Rank k - 1 of the sorted layout lives in lane (k - 1) / kGroups.
  uint32_t mine = 0;
#pragma unroll
  for (int i = 0; i < kGroups; ++i) {
    if (i == (k - 1) % kGroups) mine = g[i];
  }
  return __shfl_sync(kFullWarp, mine, (k - 1) / kGroups);
}

/// Sorts the row's k winners (winners[0 .. k_row), any order) descending and
/// writes output slots 0 .. q.k of the row (sentinels after k_row).
/// 32 * kPerLane >= q.k.
template <typename Format, int kPerLane>
__device__ __forceinline__ void sort_and_write(const Problem& q, const typename Format::Bits* in,
                                               int64_t row, const uint64_t* winners, int k_row) {
  const int lane = threadIdx.x & 31;
  uint64_t v[kPerLane];
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int p = lane * kPerLane + j;
    v[j] = p < k_row ? winners[p] : 0ull;  // packed 0 ranks below every real value
  }
  if (k_row > 1) warp_bitonic_sort_descending<uint64_t, kPerLane>(v);
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int p = lane * kPerLane + j;
    if (p < q.k) {
      write_output<Format>(q, in, row, p,
                           p < k_row ? static_cast<int64_t>(packed_index(v[j])) : -1);
    }
  }
}

/// Where a row's data lives and how much of it there is. A row is read as
/// tiles of kTile aligned positions: element i sits at aligned position
/// i + offset, where `offset` elements lie between the 16-byte boundary at or
/// below the row start and the row start.
template <typename Bits>
struct RowRef {
  const Bits* in;  // the row's first element
  int length;      // elements considered
  int k;           // elements selected
  int offset;      // misalignment of `in` in elements
  int tiles;       // 0 when there is nothing to select (k == 0)
};

template <typename Format, int kTileSlots>
__device__ __forceinline__ RowRef<typename Format::Bits> describe_row(const Problem& q,
                                                                      int64_t row) {
  using Bits = typename Format::Bits;
  constexpr int kTile = 32 * kTileSlots;
  const RowShape shape =
      row_shape(q.k_per_row, q.row_lengths, row, static_cast<int>(q.cols), static_cast<int>(q.k));
  RowRef<Bits> r;
  r.in = static_cast<const Bits*>(q.input) + row * q.row_stride;
  r.length = shape.length;
  r.k = shape.k;
  r.offset = static_cast<int>((reinterpret_cast<uintptr_t>(r.in) & 15u) / sizeof(Bits));
  r.tiles = shape.k > 0 ? (shape.length + r.offset + kTile - 1) / kTile : 0;
  return r;
}

/// Issues the loads of tile `tile` of row `r` into `raw` (no wait). Lane l's
/// slot j holds aligned position tile * kTile + (j / kVec) * 32 * kVec +
/// l * kVec + j % kVec: a warp's vector loads cover 512 contiguous bytes.
/// Full vectors are one aligned 16-byte load; vectors that straddle the row's
/// ends load their in-row elements one by one (others read as 0 and are
/// masked when converted).
template <typename Bits, int kTileSlots>
__device__ __forceinline__ void load_tile(uint4 (&raw)[kTileSlots * sizeof(Bits) / 16],
                                          const RowRef<Bits>& r, int tile) {
  constexpr int kVec = 16 / sizeof(Bits);
  constexpr int kVectors = kTileSlots / kVec;
  const int lane = threadIdx.x & 31;
  const Bits* aligned = r.in - r.offset;
#pragma unroll
  for (int u = 0; u < kVectors; ++u) {
    const int position = (tile * kVectors + u) * 32 * kVec + lane * kVec;
    const int first = position - r.offset;  // element index of the vector's first slot
    if (first >= 0 && first + kVec <= r.length) {
      raw[u] = __ldg(reinterpret_cast<const uint4*>(aligned + position));
    } else {
      union {
        uint4 v;
        Bits b[kVec];
      } part;
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        const int i = first + e;
        part.b[e] = (i >= 0 && i < r.length) ? r.in[i] : Bits{0};
      }
      raw[u] = part.v;
    }
  }
}

/*
 * Persistent warps; warp w of the grid's W warps takes rows w, w + W, ...
 * Each row is streamed as tiles of 32 * kTileSlots elements through
 * registers, and the next tile (of this row or of the warp's next row) is
 * always in flight while the current one is filtered: one row's selection
 * overlaps the next row's loads.
 *
 *  Filter. A row keeps a pool of candidates (packed (key, ~index), unique) in
 *  the warp's shared memory and a key threshold T with the invariant
 *  "every element of the row's top k that has been seen is in the pool or has
 *  a key >= T and is still to come". Elements with key >= max(T, 1) enter the
 *  pool (one warp prefix sum per tile).
 *   - First tile: T = group_max_threshold, a lower bound of the row's k-th
 *     largest key (k distinct elements of the tile have keys >= T).
 *   - When a tile would overflow the pool, the pool is cut to its exact top k
 *     by warp_select_packed (cut value P) and T becomes key(P) + 1: a later
 *     element with key(P) loses the tie to P on index, so it cannot enter.
 *  Key 0 (padding, and NaN under largest == false) never enters; if fewer
 *  than k elements entered, or a tile overflows even after a cut (heavy
 *  ties: all-equal rows, low-entropy bf16), the row takes the slow path: an
 *  exact select over the whole row re-read from L1/L2.
 *  Finish. Cut the pool to its top k, bitonic-sort the k winners in
 *  registers, write. Packed values are unique, so every step is exact and
 *  independent of timing: deterministic, ties to the lowest index.
 */
template <typename Format, int kTileSlots>
__global__ void __launch_bounds__(kThreads, kCtasPerSm)
    row_per_warp_kernel(Problem q, int index_bits) {
  using Bits = typename Format::Bits;
  constexpr int kVec = 16 / sizeof(Bits);
  constexpr int kVectors = kTileSlots / kVec;
  constexpr int kTile = 32 * kTileSlots;
  static_assert(kTileSlots % kVec == 0 && kTileSlots % kGroupsPerLaneMax == 0, "tile shape");
  __shared__ WarpScratch scratch_all[kWarpsPerCta];

  const int lane = threadIdx.x & 31;
  WarpScratch& scratch = scratch_all[threadIdx.x >> 5];
  uint64_t* winners = reinterpret_cast<uint64_t*>(scratch.histogram);
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerCta;
  const bool largest = q.largest;

  int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerCta + (threadIdx.x >> 5);
  uint4 raw[kVectors];
  RowRef<Bits> next{};
  if (row < q.rows) {
    next = describe_row<Format, kTileSlots>(q, row);
    if (next.tiles > 0) load_tile<Bits, kTileSlots>(raw, next, 0);
  }
  for (; row < q.rows; row += warps) {
    const RowRef<Bits> r = next;
    const int64_t next_row = row + warps;
    next = RowRef<Bits>{};
    if (next_row < q.rows) next = describe_row<Format, kTileSlots>(q, next_row);
    const int k = r.k;

    if (r.tiles == 0 && next.tiles > 0) load_tile<Bits, kTileSlots>(raw, next, 0);
    uint32_t threshold = 0;
    uint32_t pool_count = 0;
    bool slow = false;
    for (int tile = 0; tile < r.tiles; ++tile) {
      // Convert this tile; then put the next tile's loads in flight.
      uint32_t keys[kTileSlots];
      const int tile_base = tile * kTile + lane * kVec - r.offset;
#pragma unroll
      for (int j = 0; j < kTileSlots; ++j) {
        union {
          uint4 v;
          Bits b[kVec];
        } part;
        part.v = raw[j / kVec];
        const int i = tile_base + (j / kVec) * 32 * kVec + j % kVec;
        const bool valid = static_cast<unsigned>(i) < static_cast<unsigned>(r.length);
        keys[j] = valid ? rank_key<Format>(part.b[j % kVec], largest) : 0u;
      }
      if (tile + 1 < r.tiles) {
        load_tile<Bits, kTileSlots>(raw, r, tile + 1);
      } else if (next.tiles > 0) {
        load_tile<Bits, kTileSlots>(raw, next, 0);
      }
      if (slow) continue;  // keep consuming tiles so the prefetch chain holds

      if (tile == 0 && k < r.length) {
        uint32_t maxima[kGroupsPerLaneMax];
#pragma unroll
        for (int g = 0; g < kGroupsPerLaneMax; ++g) {
          maxima[g] = 0;
#pragma unroll
          for (int m = 0; m < kTileSlots / kGroupsPerLaneMax; ++m) {
            maxima[g] = max(maxima[g], keys[g * (kTileSlots / kGroupsPerLaneMax) + m]);
          }
        }
        // About 2k / 32 groups per lane (see group_max_threshold).
        if (k <= 16) {
          threshold = group_max_threshold<1>(maxima, k);
        } else if (k <= 32) {
          threshold = group_max_threshold<2>(maxima, k);
        } else if (k <= 64) {
          threshold = group_max_threshold<4>(maxima, k);
        } else {
          threshold = group_max_threshold<8>(maxima, k);
        }
      }
      uint32_t floor_key = max(threshold, 1u);
      uint32_t mine = 0;
#pragma unroll
      for (int j = 0; j < kTileSlots; ++j) mine += keys[j] >= floor_key ? 1u : 0u;
      uint32_t inclusive = warp_inclusive_sum(mine);
      uint32_t entering = __shfl_sync(kFullWarp, inclusive, 31);
      if (pool_count + entering > kPoolCapacity) {
        // Cut the pool to its exact top k and raise the threshold.
        if (pool_count > static_cast<uint32_t>(k)) {
          const uint64_t cut = warp_top_k_packed<Format::kKeyBits>(
              scratch.histogram, pool_count, k, index_bits,
              [&](uint32_t t) { return scratch.pool[t]; }, scratch.pool);
          pool_count = k;
          const uint32_t cut_key = packed_key(cut);
          threshold = max(threshold, cut_key == 0xffffffffu ? cut_key : cut_key + 1u);
          floor_key = max(threshold, 1u);
          mine = 0;
#pragma unroll
          for (int j = 0; j < kTileSlots; ++j) mine += keys[j] >= floor_key ? 1u : 0u;
          inclusive = warp_inclusive_sum(mine);
          entering = __shfl_sync(kFullWarp, inclusive, 31);
        }
        if (pool_count + entering > kPoolCapacity) {
          slow = true;
          continue;
        }
      }
      uint32_t position = pool_count + inclusive - mine;
#pragma unroll
      for (int j = 0; j < kTileSlots; ++j) {
        if (keys[j] >= floor_key) {
          const int i = tile_base + (j / kVec) * 32 * kVec + j % kVec;
          scratch.pool[position++] = pack_key_index(keys[j], static_cast<uint32_t>(i));
        }
      }
      pool_count += entering;
      __syncwarp();
    }

    // ---- finish the row: exact top k, sort, write --------------------------
    if (k > 0 && !slow && pool_count >= static_cast<uint32_t>(k)) {
      warp_top_k_packed<Format::kKeyBits>(
          scratch.histogram, pool_count, k, index_bits, [&](uint32_t t) { return scratch.pool[t]; },
          winners);
    } else if (k > 0) {
      // Slow path: exact select over the whole row, re-read from L1/L2.
      warp_top_k_packed<Format::kKeyBits>(
          scratch.histogram, r.length, k, index_bits,
          [&](uint32_t i) { return pack_key_index(rank_key<Format>(r.in[i], largest), i); },
          winners);
    }
    __syncwarp();
    if (q.k <= 32) {
      sort_and_write<Format, 1>(q, r.in, row, winners, k);
    } else if (q.k <= 64) {
      sort_and_write<Format, 2>(q, r.in, row, winners, k);
    } else {
      sort_and_write<Format, 4>(q, r.in, row, winners, k);
    }
    __syncwarp();  // the winners (histogram) are read before the next row's select
  }
}

/// Elements per lane and tile: 8 (256-element tiles) when every row fits one
/// such tile, else 32 (1024-element tiles).
int tile_slots_for(const Problem& q) {
  const int vec = 16 / q.element_bytes();
  const bool aligned = reinterpret_cast<uintptr_t>(q.input) % 16 == 0 &&
                       (q.rows == 1 || (q.row_stride * q.element_bytes()) % 16 == 0);
  const int64_t need = q.cols + (aligned ? 0 : vec - 1);
  return need <= 32 * 8 ? 8 : 32;
}

const char* rejects(const Problem& q, const DeviceFacts&) {
  if (q.k > kMaxK) return "k > 128";
  if (q.cols > kMaxCols) return "cols > 2^30";
  return nullptr;
}

std::size_t workspace(const Problem&, const DeviceFacts&) { return 0; }

template <typename Format>
void launch_for_format(const Problem& q, const DeviceFacts& device, cudaStream_t stream) {
  const int index_bits = index_bits_for(q.cols);
  const int64_t needed = (q.rows + kWarpsPerCta - 1) / kWarpsPerCta;
  const int64_t resident = static_cast<int64_t>(device.sm_count) * kCtasPerSm;
  const unsigned grid = static_cast<unsigned>(std::min(needed, resident));
  if (tile_slots_for(q) == 8) {
    row_per_warp_kernel<Format, 8><<<grid, kThreads, 0, stream>>>(q, index_bits);
  } else {
    row_per_warp_kernel<Format, 32><<<grid, kThreads, 0, stream>>>(q, index_bits);
  }
}

int launch(const Problem& q, const DeviceFacts& device, void*, cudaStream_t stream) {
  return dispatch_dtype(q.dtype, [&](auto format) -> int {
    launch_for_format<decltype(format)>(q, device, stream);
    return cudaGetLastError();
  });
}

}  // namespace

const AlgorithmFamily kRowPerWarpFamily = {Algorithm::kRowPerWarp, rejects, workspace, launch};

}  // namespace fasttopk::detail
