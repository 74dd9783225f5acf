// Warp-level selection and sorting primitives: the building blocks of
// families where one warp owns a row (row_per_warp.cu). No block barriers:
// every function is called by all 32 lanes of one warp, and only __syncwarp()
// orders their shared-memory accesses.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace fasttopk::detail {

constexpr unsigned kFullWarp = 0xffffffffu;

// Warp-aggregated histogram increments in warp_select_packed (1) or one
// shared atomic per value (0). Measured on the H100 (docs/perf-notes.md, v6):
// aggregation is 2-13% slower on every row_per_warp shape, so 0.
#ifndef FASTTOPK_TUNE_WARP_AGGREGATE
#define FASTTOPK_TUNE_WARP_AGGREGATE 0
#endif

/*
 * Bitonic sort, descending, of 32 * kPerLane values held in registers.
 * Element e = lane * kPerLane + j lives in v[j] of lane `lane`; on return the
 * warp's values are in descending order in that same layout. Stages with a
 * stride below kPerLane compare within a lane; the others exchange with the
 * partner lane (lane ^ stride / kPerLane) by shuffle. All loops unroll, so
 * every register index is static.
 */
template <typename T, int kPerLane>
__device__ __forceinline__ void warp_bitonic_sort_descending(T (&v)[kPerLane]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int size = 2; size <= 32 * kPerLane; size <<= 1) {
#pragma unroll
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      if (stride < kPerLane) {
#pragma unroll
        for (int j = 0; j < kPerLane; ++j) {
          if ((j & stride) != 0) continue;
          const int e = lane * kPerLane + j;
          const bool descending = (e & size) == 0;
          const T a = v[j];
          const T b = v[j | stride];
          if ((a < b) == descending) {
            v[j] = b;
            v[j | stride] = a;
          }
        }
      } else {
#pragma unroll
        for (int j = 0; j < kPerLane; ++j) {
          const int e = lane * kPerLane + j;
          const T other = __shfl_xor_sync(kFullWarp, v[j], stride / kPerLane);
          // The lower element of a descending pair keeps the larger value.
          const bool keep_larger = ((e & stride) == 0) == ((e & size) == 0);
          v[j] = keep_larger ? (v[j] > other ? v[j] : other) : (v[j] < other ? v[j] : other);
        }
      }
    }
  }
}

/// Inclusive prefix sum over the warp's lanes.
__device__ __forceinline__ uint32_t warp_inclusive_sum(uint32_t x) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const uint32_t other = __shfl_up_sync(kFullWarp, x, offset);
    if (lane >= offset) x += other;
  }
  return x;
}

/*
 * Warp radix select over unique 64-bit packed (key, ~index) values: returns
 * P such that exactly k of the values are >= P (1 <= k <= number of values).
 * The same algorithm as block_select_packed (radix_select.cuh): 8-bit digits
 * from the top of the key down through the index bits, early exit once the
 * chosen bin holds exactly the values still needed, constant index digits
 * skipped. The result does not depend on enumeration or atomic order.
 *
 * `histogram` is this warp's 256 counters (16-byte aligned, not shared with
 * other warps). `for_each(f)` calls f(value, in) with all 32 lanes converged
 * (the histogram update may use warp-collective operations); the values with
 * in == true, over all lanes and calls, form the whole set.
 */
template <int kKeyBits, typename ForEach>
__device__ __forceinline__ uint64_t warp_select_packed(uint32_t* histogram, uint32_t k,
                                                       int index_bits, ForEach&& for_each) {
  constexpr int kBits = 8;
  const int lane = threadIdx.x & 31;
  const int low_top_shift = ((index_bits - 1) / kBits) * kBits;  // highest varying index digit
  const uint32_t low_constant_ones =
      low_top_shift + kBits >= 32 ? 0u : (0xffffffffu << (low_top_shift + kBits));
  uint4* bins4 = reinterpret_cast<uint4*>(histogram);
  uint64_t prefix = 0;
  uint32_t remaining = k;
  int shift = 32 + kKeyBits - kBits;
#pragma unroll 1
  while (true) {
    bins4[2 * lane] = make_uint4(0, 0, 0, 0);
    bins4[2 * lane + 1] = make_uint4(0, 0, 0, 0);
    __syncwarp();
    const uint64_t high_mask = shift + kBits >= 64 ? 0ull : ~((1ull << (shift + kBits)) - 1ull);
    for_each([&](uint64_t v, bool in) {
      const bool counted = in && ((v ^ prefix) & high_mask) == 0;
      const uint32_t bin = static_cast<uint32_t>(v >> shift) & 255u;
#if FASTTOPK_TUNE_WARP_AGGREGATE
      // Candidate pools crowd into a few bins: one atomic per distinct bin.
      const uint32_t peers = __match_any_sync(kFullWarp, counted ? bin : 256u);
      if (counted && lane == __ffs(peers) - 1) atomicAdd(&histogram[bin], __popc(peers));
#else
      if (counted) atomicAdd(&histogram[bin], 1u);
#endif
    });
    __syncwarp();
    // Lane l owns bins 8(31-l) .. 8(31-l)+7, so lane 0 holds the top bins and
    // the warp scan runs from the highest digit down. Two 16-byte loads per
    // lane: conflict-free.
    const uint4 lo = bins4[2 * (31 - lane)];
    const uint4 hi = bins4[2 * (31 - lane) + 1];
    const uint32_t counts[8] = {hi.w, hi.z, hi.y, hi.x, lo.w, lo.z, lo.y, lo.x};  // descending
    uint32_t lane_total = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) lane_total += counts[i];
    const uint32_t inclusive = warp_inclusive_sum(lane_total);
    const uint32_t exclusive = inclusive - lane_total;
    const bool owner = exclusive < remaining && remaining <= inclusive;
    const int owner_lane = __ffs(__ballot_sync(kFullWarp, owner)) - 1;
    uint32_t digit = 0, above = 0, in_bin = 0;
    if (owner) {
      uint32_t run = exclusive;
      bool found = false;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        if (!found && run + counts[i] >= remaining) {
          found = true;
          digit = 8u * (31 - lane) + 7u - i;
          above = run;
          in_bin = counts[i];
        }
        run += counts[i];
      }
    }
    digit = __shfl_sync(kFullWarp, digit, owner_lane);
    above = __shfl_sync(kFullWarp, above, owner_lane);
    in_bin = __shfl_sync(kFullWarp, in_bin, owner_lane);
    prefix |= static_cast<uint64_t>(digit) << shift;
    remaining -= above;
    if (in_bin == remaining || shift == 0) break;
    if (shift == 32) {
      prefix |= low_constant_ones;  // entering the low word: skip constant digits
      shift = low_top_shift;
    } else {
      shift -= kBits;
    }
    __syncwarp();  // every lane has read the bins before the next pass clears them
  }
  __syncwarp();
  return prefix;
}

/// The exact top k of `count` unique packed values: writes the values >= the
/// k-th largest to dest[0 .. min(k, count)) in no particular order and
/// returns that cut (0 when count <= k, i.e. every value is kept).
/// `value_at(i)` gives value i in [0, count); dest may be the storage that
/// value_at reads (in-place compaction: a value only moves to a lower slot,
/// and every lane reads before any lane writes in each round).
template <int kKeyBits, typename ValueAt>
__device__ __forceinline__ uint64_t warp_top_k_packed(uint32_t* histogram, uint32_t count,
                                                      uint32_t k, int index_bits,
                                                      ValueAt&& value_at, uint64_t* dest) {
  const int lane = threadIdx.x & 31;
  uint64_t cut = 0;
  if (count > k) {
    cut = warp_select_packed<kKeyBits>(histogram, k, index_bits, [&](auto&& f) {
      for (uint32_t base = 0; base < count; base += 32) {
        const uint32_t i = base + lane;
        f(i < count ? value_at(i) : 0ull, i < count);
      }
    });
  }
  const uint32_t lane_mask_below = (1u << lane) - 1u;
  uint32_t taken = 0;
  for (uint32_t base = 0; base < count; base += 32) {
    const uint32_t i = base + lane;
    const uint64_t v = i < count ? value_at(i) : 0ull;
    const bool take = i < count && v >= cut;
    const uint32_t ballot = __ballot_sync(kFullWarp, take);
    __syncwarp();
    if (take) dest[taken + __popc(ballot & lane_mask_below)] = v;
    taken += __popc(ballot);
  }
  __syncwarp();
  return cut;
}

}  // namespace fasttopk::detail
