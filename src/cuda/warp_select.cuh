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

// Selects with windows fitted to the values (warp_select_packed_fitted, 1)
// or with aligned 8-bit digits (warp_select_packed, 0). Measured on the H100
// (docs/perf-notes.md v34): 1.3-2.0 µs faster on the whole rows at k = 64-100
// (4096x2048 k64 fp32 20.68 -> 19.42, 4096x4096 k64 bf16 22.94 -> 20.97),
// unchanged elsewhere. The knob is for A/B timings.
#ifndef FASTTOPK_TUNE_WARP_FITTED_SELECT
#define FASTTOPK_TUNE_WARP_FITTED_SELECT 1
#endif
constexpr bool kFittedSelect = FASTTOPK_TUNE_WARP_FITTED_SELECT != 0;

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

/*
 * Bitonic merge, descending, of 32 * kPerLane values held in registers that
 * form a bitonic sequence (rising then falling, or falling then rising) in
 * the layout of warp_bitonic_sort_descending (element e = lane * kPerLane + j
 * in v[j]): log2(32 * kPerLane) half-cleaner stages, strides from half the
 * length down to 1, each element keeping the larger value of its pair when
 * it is the lower one. This is the last size of that sort's loop; alone it
 * merges two sorted runs, e.g. the top N of sorted A and B is the sequence
 * max(A[e], B[N - 1 - e]), which is bitonic.
 */
template <typename T, int kPerLane>
__device__ __forceinline__ void warp_bitonic_merge_descending(T (&v)[kPerLane]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int stride = 16 * kPerLane; stride > 0; stride >>= 1) {
    if (stride < kPerLane) {
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        if ((j & stride) != 0) continue;
        const T a = v[j];
        const T b = v[j | stride];
        v[j] = a > b ? a : b;
        v[j | stride] = a > b ? b : a;
      }
    } else {
      const bool keep_larger = (lane & (stride / kPerLane)) == 0;
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        const T other = __shfl_xor_sync(kFullWarp, v[j], stride / kPerLane);
        v[j] = keep_larger ? (v[j] > other ? v[j] : other) : (v[j] < other ? v[j] : other);
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

/// Adds one to histogram[bin] when `counted`; all 32 lanes call it.
__device__ __forceinline__ void count_in_bin(uint32_t* histogram, uint32_t bin, bool counted) {
#if FASTTOPK_TUNE_WARP_AGGREGATE
  // Candidate pools crowd into a few bins: one atomic per distinct bin.
  const int lane = threadIdx.x & 31;
  const uint32_t peers = __match_any_sync(kFullWarp, counted ? bin : 256u);
  if (counted && lane == __ffs(peers) - 1) atomicAdd(&histogram[bin], __popc(peers));
#else
  if (counted) atomicAdd(&histogram[bin], 1u);
#endif
}

/// Lane l's eight bins of a 256-bin histogram, 8(31-l)+7 down to 8(31-l), so
/// that lane 0 holds the top bins and a warp scan runs from the highest bin
/// down. Two 16-byte loads per lane: conflict-free. Returns their sum.
__device__ __forceinline__ uint32_t lane_bins_descending(const uint4* bins4,
                                                         uint32_t (&counts)[8]) {
  const int lane = threadIdx.x & 31;
  const uint4 lo = bins4[2 * (31 - lane)];
  const uint4 hi = bins4[2 * (31 - lane) + 1];
  counts[0] = hi.w, counts[1] = hi.z, counts[2] = hi.y, counts[3] = hi.x;
  counts[4] = lo.w, counts[5] = lo.z, counts[6] = lo.y, counts[7] = lo.x;
  uint32_t total = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) total += counts[i];
  return total;
}

/// Where rank `remaining` (1-based, from the top) falls in a 256-bin histogram.
struct WarpRankBin {
  uint32_t digit;   // its bin
  uint32_t above;   // values in higher bins (< remaining)
  uint32_t in_bin;  // values in its bin
};

/// The bin of rank `remaining` (1 <= remaining <= the histogram's total),
/// returned to every lane: a warp scan over the lanes' eight bins each, then
/// the owning lane walks its eight. Reads the histogram only.
__device__ __forceinline__ WarpRankBin warp_find_rank_bin(const uint4* bins4, uint32_t remaining) {
  const int lane = threadIdx.x & 31;
  uint32_t counts[8];
  const uint32_t lane_total = lane_bins_descending(bins4, counts);
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
  return {__shfl_sync(kFullWarp, digit, owner_lane), __shfl_sync(kFullWarp, above, owner_lane),
          __shfl_sync(kFullWarp, in_bin, owner_lane)};
}

/*
 * Warp radix select over unique 64-bit packed (key, ~index) values: returns
 * P such that exactly k of the values are >= P (1 <= k <= number of values),
 * or, with enough > k, such that k to `enough` of them are: the passes stop
 * as soon as the values at or above the chosen digit number at most
 * `enough` (P then has zeros below that digit).
 * The same algorithm as block_select_packed (radix_select.cuh): 8-bit digits
 * from the top down, early exit once the chosen bin holds exactly the values
 * still needed. The result does not depend on enumeration or atomic order.
 *
 * A first sweep ANDs and ORs the values: bits that are equal in every value
 * (the shared sign and exponent of a candidate pool, a 16-bit key's empty
 * upper half, the constant top bits of ~index) go into P at once, and each
 * pass takes the 8 bits below the highest bit that still differs. So no pass
 * is spent on a digit that cannot split the values, and the first pass does
 * not pile every value into one histogram bin (32-way atomic conflicts).
 *
 * `histogram` is this warp's 256 counters (16-byte aligned, not shared with
 * other warps). `for_each(f)` calls f(value, in) with all 32 lanes converged
 * (the histogram update may use warp-collective operations); the values with
 * in == true, over all lanes and calls, form the whole set.
 */
template <typename ForEach>
__device__ __forceinline__ uint64_t warp_select_packed(uint32_t* histogram, uint32_t k,
                                                       uint32_t enough, ForEach&& for_each) {
  constexpr int kBits = 8;
  const int lane = threadIdx.x & 31;
  uint64_t all_and = ~0ull, all_or = 0;
  for_each([&](uint64_t v, bool in) {
    if (in) {
      all_and &= v;
      all_or |= v;
    }
  });
  const uint64_t common_ones =
      (static_cast<uint64_t>(__reduce_and_sync(kFullWarp, static_cast<uint32_t>(all_and >> 32)))
       << 32) |
      __reduce_and_sync(kFullWarp, static_cast<uint32_t>(all_and));
  const uint64_t any_ones =
      (static_cast<uint64_t>(__reduce_or_sync(kFullWarp, static_cast<uint32_t>(all_or >> 32)))
       << 32) |
      __reduce_or_sync(kFullWarp, static_cast<uint32_t>(all_or));
  const uint64_t differing = common_ones ^ any_ones;
  // Every value matches P on the constant bits; passes fill in the others.
  uint64_t prefix = common_ones;
  if (differing == 0) return prefix;  // a single value
  uint4* bins4 = reinterpret_cast<uint4*>(histogram);
  uint32_t remaining = k;
  // Bits fixed by earlier digits. A digit near bit 0 may overlap the one
  // before it; matching on every decided bit keeps the values that an earlier
  // pass already ranked above or below out of the counts.
  uint64_t decided = 0;
  int shift = max(63 - __clzll(differing) - (kBits - 1), 0);
#pragma unroll 1
  while (true) {
    bins4[2 * lane] = make_uint4(0, 0, 0, 0);
    bins4[2 * lane + 1] = make_uint4(0, 0, 0, 0);
    __syncwarp();
    for_each([&](uint64_t v, bool in) {
      const bool counted = in && ((v ^ prefix) & decided) == 0;
      const uint32_t bin = static_cast<uint32_t>(v >> shift) & 255u;
      count_in_bin(histogram, bin, counted);
    });
    __syncwarp();
    const WarpRankBin bin = warp_find_rank_bin(bins4, remaining);
    const uint32_t digit = bin.digit, above = bin.above, in_bin = bin.in_bin;
    // The digit's constant bits are already in prefix; OR keeps them.
    prefix |= static_cast<uint64_t>(digit) << shift;
    decided |= 255ull << shift;
    remaining -= above;
    const uint64_t below = differing & ((1ull << shift) - 1ull);
    if (in_bin == remaining || below == 0) break;
    if (k - remaining + in_bin <= enough) break;  // the values >= prefix: few enough
    shift = max(63 - __clzll(below) - (kBits - 1), 0);
    __syncwarp();  // every lane has read the bins before the next pass clears them
  }
  __syncwarp();
  return prefix;
}

/// The window [base, last] of a set of packed values as four warp
/// reductions tell it: (smallest key, smallest ~index half) .. (largest key,
/// largest ~index half). Every value lies in it: its key is within the key
/// range, and at either end of that range its ~index half is within the
/// halves' range. `for_each(f)` calls f(value, in) as for the selects.
struct PackedWindow {
  uint64_t base, last;
  uint32_t low_min, low_max;  // the ~index halves' range
};

template <typename ForEach>
__device__ __forceinline__ PackedWindow warp_packed_window(ForEach&& for_each) {
  uint32_t key_min = ~0u, key_max = 0, low_min = ~0u, low_max = 0;
  for_each([&](uint64_t v, bool in) {
    if (in) {
      key_min = min(key_min, static_cast<uint32_t>(v >> 32));
      key_max = max(key_max, static_cast<uint32_t>(v >> 32));
      low_min = min(low_min, static_cast<uint32_t>(v));
      low_max = max(low_max, static_cast<uint32_t>(v));
    }
  });
  key_min = __reduce_min_sync(kFullWarp, key_min);
  key_max = __reduce_max_sync(kFullWarp, key_max);
  low_min = __reduce_min_sync(kFullWarp, low_min);
  low_max = __reduce_max_sync(kFullWarp, low_max);
  return PackedWindow{static_cast<uint64_t>(key_min) << 32 | low_min,
                      static_cast<uint64_t>(key_max) << 32 | low_max, low_min, low_max};
}

/*
 * The same contract as warp_select_packed, with windows fitted to the values
 * instead of aligned digits. Each pass bins a window [base, last] of packed
 * values into up to 256 equal bins (width 2^shift, the least that covers
 * it), finds the bin holding the remaining-th largest, and narrows the
 * window to that bin. The first window is [min, max] of the values as far
 * as four warp reductions tell: (smallest key, smallest ~index half) ..
 * (largest key, largest ~index half). Every window is then shrunk to the
 * values that can exist: no value's ~index half lies outside [low_min,
 * low_max], which matters once a window narrows to within a key or two
 * (ties: without it, the ~index halves of a tied key, which differ only in
 * their low bits, would take passes that split nothing). The passes stop
 * when the values >= the window's base number exactly k, or at most
 * `enough`; P is that base. A window of one value always stops (its bin
 * holds the remaining one), so there are at most 8 passes.
 * Why: aligned digits start below the highest bit that differs among the
 * values, and a pool of fp32 or 16-bit candidates that straddles a power of
 * two (randn rows' top 6% lie in [1.6, 4)) differs there in the whole
 * exponent field, so pass 1 put every value into two bins (16-way
 * shared-atomic conflicts) and ranked nothing. Simulated on such pools
 * (docs/perf-notes.md v34): 2.2-2.6 passes -> 1.4-1.6, never more on ties.
 */
template <typename ForEach>
__device__ __forceinline__ uint64_t warp_select_packed_fitted(uint32_t* histogram, uint32_t k,
                                                              uint32_t enough, ForEach&& for_each) {
  constexpr int kBits = 8;
  const int lane = threadIdx.x & 31;
  const PackedWindow window = warp_packed_window(for_each);
  uint64_t base = window.base;
  uint64_t last = window.last;
  const uint32_t low_min = window.low_min;
  const uint32_t low_max = window.low_max;
  uint4* bins4 = reinterpret_cast<uint4*>(histogram);
  uint32_t remaining = k;
#pragma unroll 1
  while (base != last) {
    // The least shift with (last - base) >> shift < 256.
    const int shift = max(64 - __clzll(last - base) - kBits, 0);
    bins4[2 * lane] = make_uint4(0, 0, 0, 0);
    bins4[2 * lane + 1] = make_uint4(0, 0, 0, 0);
    __syncwarp();
    for_each([&](uint64_t v, bool in) {
      const bool counted = in && v >= base && v <= last;
      const uint32_t bin = static_cast<uint32_t>((v - base) >> shift);
      count_in_bin(histogram, bin, counted);
    });
    __syncwarp();
    const WarpRankBin bin = warp_find_rank_bin(bins4, remaining);
    const uint32_t digit = bin.digit, above = bin.above, in_bin = bin.in_bin;
    // The chosen bin: [base + digit 2^shift, that + 2^shift - 1], within last.
    base += static_cast<uint64_t>(digit) << shift;
    const uint64_t bin_span = (uint64_t{1} << shift) - 1;
    if (last - base > bin_span) last = base + bin_span;
    remaining -= above;
    if (in_bin == remaining) break;               // exactly k values >= base
    if (k - remaining + in_bin <= enough) break;  // the values >= base: few enough
    // Shrink the bin to the values that can exist (it holds in_bin >= 1 of
    // them, so both ends move inward and stay ordered).
    const uint32_t base_low = static_cast<uint32_t>(base);
    if (base_low < low_min) {
      base = (base & ~uint64_t{0xffffffffu}) | low_min;
    } else if (base_low > low_max) {
      base = ((base >> 32) + 1) << 32 | low_min;
    }
    const uint32_t last_low = static_cast<uint32_t>(last);
    if (last_low > low_max) {
      last = (last & ~uint64_t{0xffffffffu}) | low_max;
    } else if (last_low < low_min) {
      last = ((last >> 32) - 1) << 32 | low_max;
    }
    __syncwarp();  // every lane has read the bins before the next pass clears them
  }
  __syncwarp();
  return base;
}

/// The values of `count` unique packed values that are >= a cut P: the exact
/// top k when enough <= k, else between k and `enough` values that include
/// the top k (warp_select_packed). Writes them to dest[0 .. taken) in no
/// particular order, sets `cut` to P (0 when count <= k, i.e. every value is
/// kept) and returns taken. `value_at(i)` gives value i in [0, count); dest
/// may be the storage that value_at reads (in-place compaction: a value only
/// moves to a lower slot, and every lane reads before any lane writes in
/// each round).
template <typename ValueAt>
__device__ __forceinline__ uint32_t warp_top_candidates(uint32_t* histogram, uint32_t count,
                                                        uint32_t k, uint32_t enough,
                                                        ValueAt&& value_at, uint64_t* dest,
                                                        uint64_t& cut) {
  const int lane = threadIdx.x & 31;
  cut = 0;
  if (count > k) {
    const auto for_each = [&](auto&& f) {
      for (uint32_t base = 0; base < count; base += 32) {
        const uint32_t i = base + lane;
        f(i < count ? value_at(i) : 0ull, i < count);
      }
    };
    cut = kFittedSelect ? warp_select_packed_fitted(histogram, k, enough > k ? enough : k, for_each)
                        : warp_select_packed(histogram, k, enough > k ? enough : k, for_each);
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
  return taken;
}

/*
 * The exact ranks of the top k of n unique packed values, by one histogram
 * pass and no select or sort ("rank by bins"): calls emit(r, v) for every
 * value v of pool[0 .. n) whose rank r (0 = the largest) is below k, one
 * lane per value, and returns true. Or returns false, having emitted
 * nothing, when more than kMaxBinMates values share a bin that is not wholly
 * below rank k (few distinct keys, or an outlier that stretches the window);
 * the caller then selects and ranks the usual way. pool is not modified.
 *
 * The window [min, max] of the values (warp_packed_window, as in
 * warp_select_packed_fitted) is cut into up to 256 equal bins, and every
 * value is counted in its bin. A scan from the top bin down gives each bin
 * its offset, the number of values in higher bins. The values are copied to
 * `grouped` by bin (a second round of shared atomics hands out the slots of
 * each bin, in any order), and a value's rank is
 * its bin's offset plus the number of larger values among its bin-mates.
 * Only the first k + kMaxBinMates positions of `grouped` can hold a value
 * of rank < k. The order inside a bin depends on timing, the ranks do not:
 * exact and deterministic.
 * Why: at k = 64 a whole row's pool holds ~117 candidates, and the select
 * that cut it to 64 (1.4 fitted passes and a compaction) plus the counting
 * rank of the 64 (32 broadcast loads and 128 64-bit compares a lane) were
 * a large part of the row (docs/perf-notes.md v35); this is one pass's
 * shared-memory work plus about one bin-mate read a value.
 * Requires 1 <= k <= n < 65536; `histogram` holds 256
 * counters (16-byte aligned), `grouped` n values; neither overlaps pool.
 */
template <typename Emit>
__device__ __forceinline__ bool warp_rank_by_bins(uint32_t* histogram, const uint64_t* pool,
                                                  uint32_t n, uint32_t k, uint64_t* grouped,
                                                  Emit&& emit) {
  constexpr int kBits = 8;
  constexpr uint32_t kMaxBinMates = 16;
  const int lane = threadIdx.x & 31;
  const PackedWindow window = warp_packed_window([&](auto&& f) {
    for (uint32_t t0 = 0; t0 < n; t0 += 32) {
      const uint32_t t = t0 + lane;
      f(t < n ? pool[t] : 0ull, t < n);
    }
  });
  const uint64_t base = window.base;
  const uint64_t last = window.last;
  const int shift = max(64 - __clzll(last - base) - kBits, 0);  // (last - base) >> shift < 256
  const auto bin_of = [&](uint64_t v) { return static_cast<uint32_t>((v - base) >> shift); };
  uint4* bins4 = reinterpret_cast<uint4*>(histogram);
  bins4[2 * lane] = make_uint4(0, 0, 0, 0);
  bins4[2 * lane + 1] = make_uint4(0, 0, 0, 0);
  __syncwarp();
  for (uint32_t t = lane; t < n; t += 32) atomicAdd(&histogram[bin_of(pool[t])], 1u);
  __syncwarp();
  // Each bin's counter becomes offset | count << 16.
  uint32_t counts[8];
  const uint32_t lane_total = lane_bins_descending(bins4, counts);
  uint32_t run = warp_inclusive_sum(lane_total) - lane_total;
  uint32_t words[8];
  bool crowded = false;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    words[i] = run | counts[i] << 16;
    crowded |= counts[i] > kMaxBinMates && run < k;
    run += counts[i];
  }
  if (__any_sync(kFullWarp, crowded)) {
    __syncwarp();  // every lane has read the bins before the caller reuses them
    return false;
  }
  bins4[2 * (31 - lane)] = make_uint4(words[7], words[6], words[5], words[4]);
  bins4[2 * (31 - lane) + 1] = make_uint4(words[3], words[2], words[1], words[0]);
  __syncwarp();
  // Each value's position: its bin's offset plus a slot in the bin, counted
  // on the offset half (which ends as offset + count).
  for (uint32_t t = lane; t < n; t += 32) {
    const uint64_t v = pool[t];
    grouped[atomicAdd(&histogram[bin_of(v)], 1u) & 0xffffu] = v;
  }
  __syncwarp();
  // A value of rank < k sits in a bin with offset < k, so at a position
  // below k + kMaxBinMates.
  const uint32_t positions = min(n, k + kMaxBinMates);
  for (uint32_t p = lane; p < positions; p += 32) {
    const uint64_t v = grouped[p];
    const uint32_t word = histogram[bin_of(v)];
    const uint32_t mates = word >> 16;  // including v, which is not larger
    const uint32_t offset = (word & 0xffffu) - mates;
    if (offset < k) {
      uint32_t rank = offset;
      if (mates > 1) {
        for (uint32_t m = 0; m < mates; ++m) rank += grouped[offset + m] > v ? 1u : 0u;
      }
      if (rank < k) emit(rank, v);
    }
  }
  return true;
}

/// The exact top k of `count` unique packed values: writes the values >= the
/// k-th largest to dest[0 .. min(k, count)) in no particular order and
/// returns that cut (0 when count <= k, i.e. every value is kept). The
/// storage rules of warp_top_candidates apply.
template <typename ValueAt>
__device__ __forceinline__ uint64_t warp_top_k_packed(uint32_t* histogram, uint32_t count,
                                                      uint32_t k, ValueAt&& value_at,
                                                      uint64_t* dest) {
  uint64_t cut;
  warp_top_candidates(histogram, count, k, k, value_at, dest, cut);
  return cut;
}

}  // namespace fasttopk::detail
