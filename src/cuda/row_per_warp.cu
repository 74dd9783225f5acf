// Algorithm family "row_per_warp": many short rows at memory speed.
//
// For batches of rows of up to 4096 elements (MoE routers, small
// vocabularies, large-batch decode) one warp owns one row: the row is read
// once with 16-byte loads straight into registers, and selection and sort
// happen in the warp with no block barriers, so thousands of rows are in
// flight at once and one row's loads overlap other rows' selection.
#include <algorithm>
#include <cstdint>

#include "cuda/algorithms.hpp"
#include "cuda/common.cuh"
#include "cuda/warp_select.cuh"

namespace fasttopk::detail {
namespace {

constexpr int kWarpsPerCta = 4;
constexpr int kThreads = 32 * kWarpsPerCta;
constexpr int kMaxK = 128;            // largest k this family takes
constexpr int kMaxSlots = 128;        // elements per lane: rows up to 32 * 128 = 4096
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

/*
 * One warp per row; kWarpsPerCta rows per CTA; kSlots elements per lane.
 *
 *  1. Load. The row's elements are addressed from the 16-byte boundary at or
 *     below the row start (`offset` elements before it), so every full
 *     vector is one aligned 16-byte load; vectors that straddle the row's
 *     ends load their in-row elements one by one. Lane l's slot j holds the
 *     element at aligned position (j / kVec) * 32 * kVec + l * kVec + j % kVec
 *     (coalesced: a warp's vector loads cover 512 contiguous bytes).
 *     Requires 32 * kSlots >= length + offset.
 *  2. Threshold. T = group_max_threshold (a lower bound of the k-th largest
 *     key), so candidates = elements with key >= T include the whole top k.
 *     For randn rows they are 1-10% of the row.
 *  3. Candidates (packed (key, ~index), unique) go to the warp's pool with one
 *     warp prefix sum; warp_select_packed finds the exact k-th largest packed
 *     value P among them, and the k values >= P are the row's top k.
 *     If the candidates overflow the pool (many ties at T: all-equal rows,
 *     low-entropy bf16) or T is 0, the select runs over the row re-read
 *     from L1/L2 instead: slower, same result.
 *  4. The k winners are bitonic-sorted in registers and written.
 * Packed values are unique, so every step is exact and the output does not
 * depend on timing: deterministic, ties to the lowest index.
 */
template <typename Format, int kSlots>
__global__ void __launch_bounds__(kThreads, kSlots <= 32 ? 8 : 1)
    row_per_warp_kernel(Problem q, int index_bits) {
  using Bits = typename Format::Bits;
  constexpr int kVec = 16 / sizeof(Bits);
  constexpr int kVectors = kSlots / kVec;
  static_assert(kSlots % kVec == 0 && kSlots % kGroupsPerLaneMax == 0, "slot ladder");
  __shared__ WarpScratch scratch_all[kWarpsPerCta];

  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerCta + warp;
  if (row >= q.rows) return;  // whole warps only; no block barriers below
  WarpScratch& scratch = scratch_all[warp];
  const RowShape shape =
      row_shape(q.k_per_row, q.row_lengths, row, static_cast<int>(q.cols), static_cast<int>(q.k));
  const Bits* in = static_cast<const Bits*>(q.input) + row * q.row_stride;
  const int length = shape.length;
  const int k = shape.k;

  // ---- 1. load --------------------------------------------------------------
  const int offset = static_cast<int>((reinterpret_cast<uintptr_t>(in) & 15u) / sizeof(Bits));
  const Bits* aligned = in - offset;
  // Element index of slot j of this lane, minus the slot's constant part.
  const int lane_base = lane * kVec - offset;
  union Vector {
    uint4 v;
    Bits b[kVec];
  };
  Vector raw[kVectors];
#pragma unroll
  for (int u = 0; u < kVectors; ++u) {
    const int first = u * 32 * kVec + lane_base;
    if (first >= 0 && first + kVec <= length) {
      raw[u].v = __ldg(reinterpret_cast<const uint4*>(aligned + first + offset));
    } else {
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        const int i = first + e;
        raw[u].b[e] = (i >= 0 && i < length) ? in[i] : Bits{0};
      }
    }
  }
  auto index_of = [&](int j) { return (j / kVec) * 32 * kVec + lane_base + j % kVec; };
  auto valid = [&](int j) {
    return static_cast<unsigned>(index_of(j)) < static_cast<unsigned>(length);
  };
  uint32_t keys[kSlots];
  const bool largest = q.largest;
#pragma unroll
  for (int j = 0; j < kSlots; ++j) {
    keys[j] = valid(j) ? rank_key<Format>(raw[j / kVec].b[j % kVec], largest) : 0u;
  }

  // ---- 2. threshold ---------------------------------------------------------
  uint32_t threshold = 0;  // 0: every element is a candidate (k == length)
  if (k > 0 && k < length) {
    uint32_t maxima[kGroupsPerLaneMax];
#pragma unroll
    for (int g = 0; g < kGroupsPerLaneMax; ++g) {
      maxima[g] = 0;
#pragma unroll
      for (int m = 0; m < kSlots / kGroupsPerLaneMax; ++m) {
        maxima[g] = max(maxima[g], keys[g * (kSlots / kGroupsPerLaneMax) + m]);
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

  // ---- 3. candidates and exact select ---------------------------------------
  // With threshold >= 1 the padding slots (key 0) are never candidates.
  uint32_t mine = 0;
#pragma unroll
  for (int j = 0; j < kSlots; ++j) mine += keys[j] >= threshold ? 1u : 0u;
  const uint32_t inclusive = warp_inclusive_sum(mine);
  const uint32_t candidates = __shfl_sync(kFullWarp, inclusive, 31);
  uint64_t* winners = reinterpret_cast<uint64_t*>(scratch.histogram);
  const uint32_t lane_mask_below = (1u << lane) - 1u;
  if (k > 0 && threshold > 0 && candidates <= kPoolCapacity) {
    uint32_t position = inclusive - mine;
#pragma unroll
    for (int j = 0; j < kSlots; ++j) {
      if (keys[j] >= threshold) scratch.pool[position++] = pack_key_index(keys[j], index_of(j));
    }
    __syncwarp();
    uint64_t cut = 0;  // every candidate wins when there are exactly k
    if (candidates > static_cast<uint32_t>(k)) {
      cut = warp_select_packed<Format::kKeyBits>(scratch.histogram, k, index_bits, [&](auto&& f) {
        for (uint32_t t = lane; t < candidates; t += 32) f(scratch.pool[t]);
      });
    }
    uint32_t taken = 0;
    for (uint32_t base = 0; base < candidates; base += 32) {
      const uint32_t t = base + lane;
      const uint64_t v = t < candidates ? scratch.pool[t] : 0ull;
      const bool take = t < candidates && v >= cut;
      const uint32_t ballot = __ballot_sync(kFullWarp, take);
      if (take) winners[taken + __popc(ballot & lane_mask_below)] = v;
      taken += __popc(ballot);
    }
  } else if (k > 0) {
    // Slow path: the pool overflowed (many keys tie at the threshold:
    // all-equal rows, low-entropy bf16) or every element is a candidate
    // (k == length). Select over the row again, re-read from L1/L2, so the
    // registers of the fast path stay free.
    auto value_at = [&](int i) { return pack_key_index(rank_key<Format>(in[i], largest), i); };
    uint64_t cut = 0;
    if (k < length) {
      cut = warp_select_packed<Format::kKeyBits>(scratch.histogram, k, index_bits, [&](auto&& f) {
        for (int i = lane; i < length; i += 32) f(value_at(i));
      });
    }
    uint32_t taken = 0;
    for (int base = 0; base < length; base += 32) {
      const int i = base + lane;
      const uint64_t v = i < length ? value_at(i) : 0ull;
      const bool take = i < length && v >= cut;
      const uint32_t ballot = __ballot_sync(kFullWarp, take);
      if (take) winners[taken + __popc(ballot & lane_mask_below)] = v;
      taken += __popc(ballot);
    }
  }
  __syncwarp();

  // ---- 4. sort and write ----------------------------------------------------
  if (q.k <= 32) {
    sort_and_write<Format, 1>(q, in, row, winners, k);
  } else if (q.k <= 64) {
    sort_and_write<Format, 2>(q, in, row, winners, k);
  } else {
    sort_and_write<Format, 4>(q, in, row, winners, k);
  }
}

int bit_width(uint32_t v) { return v == 0 ? 0 : 32 - __builtin_clz(v); }

/// Elements of misalignment a row may start with: 0 when the input and the
/// row stride keep every row on a 16-byte boundary.
int max_row_offset(const Problem& q) {
  const int vec = 16 / q.element_bytes();
  const bool aligned = reinterpret_cast<uintptr_t>(q.input) % 16 == 0 &&
                       (q.rows == 1 || (q.row_stride * q.element_bytes()) % 16 == 0);
  return aligned ? 0 : vec - 1;
}

/// Elements per lane: the smallest rung of the ladder that holds the row.
int slots_for(const Problem& q) {
  const int64_t need = q.cols + max_row_offset(q);
  for (int slots : {8, 32, 64, kMaxSlots}) {
    if (need <= 32 * slots) return slots;
  }
  return 0;
}

const char* rejects(const Problem& q, const DeviceFacts&) {
  if (q.k > kMaxK) return "k > 128";
  if (slots_for(q) == 0) {
    return "cols > 4096 (cols + row misalignment in elements must be <= 4096)";
  }
  return nullptr;
}

std::size_t workspace(const Problem&, const DeviceFacts&) { return 0; }

template <typename Format>
void launch_for_format(const Problem& q, int slots, cudaStream_t stream) {
  const int index_bits = std::max(1, bit_width(static_cast<uint32_t>(q.cols - 1)));
  const unsigned grid = static_cast<unsigned>((q.rows + kWarpsPerCta - 1) / kWarpsPerCta);
  switch (slots) {
    case 8:
      row_per_warp_kernel<Format, 8><<<grid, kThreads, 0, stream>>>(q, index_bits);
      break;
    case 32:
      row_per_warp_kernel<Format, 32><<<grid, kThreads, 0, stream>>>(q, index_bits);
      break;
    case 64:
      row_per_warp_kernel<Format, 64><<<grid, kThreads, 0, stream>>>(q, index_bits);
      break;
    default:
      row_per_warp_kernel<Format, kMaxSlots><<<grid, kThreads, 0, stream>>>(q, index_bits);
      break;
  }
}

int launch(const Problem& q, const DeviceFacts&, void*, cudaStream_t stream) {
  const int slots = slots_for(q);
  return dispatch_dtype(q.dtype, [&](auto format) -> int {
    launch_for_format<decltype(format)>(q, slots, stream);
    return cudaGetLastError();
  });
}

}  // namespace

const AlgorithmFamily kRowPerWarpFamily = {Algorithm::kRowPerWarp, rejects, workspace, launch};

}  // namespace fasttopk::detail
