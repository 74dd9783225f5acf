// Block-level radix select: the k-th largest rank key among a set of keys
// that the block can enumerate (any number of times).
//
// Used by every family that selects inside one CTA. The algorithm is the
// classic MSD radix select over 8-bit digits:
//
//   prefix = 0, remaining = k
//   for each digit, most significant first:
//     histogram the digit of every key whose higher digits equal `prefix`
//     walk the 256 bins from the top: the bin where the running count first
//     reaches `remaining` holds the k-th key; fix that digit in `prefix`
//     and subtract the count of the bins above it from `remaining`
//
// Afterwards `prefix` is the k-th largest key T exactly, and `remaining` is
// how many of the keys equal to T belong to the top k (1 <= remaining <=
// count(T)); the keys greater than T number k - remaining. The result does
// not depend on the order in which keys are enumerated or on atomic
// ordering: histogram counts are order-independent. That is what makes the
// selection deterministic; ties at T are then resolved by index (lowest
// first) by the caller.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace fasttopk::detail {

constexpr int kRadixBits = 8;
constexpr int kRadixBins = 1 << kRadixBits;

struct RadixSelectShared {
  uint32_t histogram[kRadixBins];
  uint32_t warp_totals[kRadixBins / 32];
  uint32_t prefix;
  uint32_t remaining;
};

/// The bin holding rank `remaining` (1-based, counting from the top digit)
/// of a full 256-bin histogram. Called by all threads of the block (>= 256
/// threads); returns true in exactly one thread, which receives the digit,
/// the count of the bins above it and its own count. Reads only its
/// arguments and the histogram, so callers must pass `remaining` read
/// before any thread can rewrite it. Contains one __syncthreads().
__device__ __forceinline__ bool find_rank_bin(const uint32_t* histogram, uint32_t* warp_totals,
                                              uint32_t remaining, uint32_t* digit, uint32_t* above,
                                              uint32_t* in_bin) {
  const int t = threadIdx.x;
  const int lane = t & 31;
  const int warp = t >> 5;
  uint32_t count = 0;
  uint32_t inclusive = 0;
  // Scan the bins from the highest digit down: thread t owns digit 255 - t.
  if (t < kRadixBins) {
    count = histogram[kRadixBins - 1 - t];
    inclusive = count;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const uint32_t other = __shfl_up_sync(0xffffffffu, inclusive, offset);
      if (lane >= offset) inclusive += other;
    }
    if (lane == 31) warp_totals[warp] = inclusive;
  }
  __syncthreads();
  if (t >= kRadixBins) return false;
  for (int w = 0; w < warp; ++w) inclusive += warp_totals[w];
  const uint32_t exclusive = inclusive - count;
  if (exclusive >= remaining || inclusive < remaining) return false;
  *digit = static_cast<uint32_t>(kRadixBins - 1 - t);
  *above = exclusive;
  *in_bin = count;
  return true;
}

/// Fixes the next digit of a 32-bit select: updates s.prefix and
/// s.remaining. Ends with a __syncthreads().
__device__ __forceinline__ void radix_choose_digit(RadixSelectShared& s, int shift) {
  // Read before find_rank_bin's barrier: the winning thread rewrites it, and a
  // thread reading after that write could "win" a second time.
  const uint32_t remaining = s.remaining;
  uint32_t digit, above, in_bin;
  if (find_rank_bin(s.histogram, s.warp_totals, remaining, &digit, &above, &in_bin)) {
    s.prefix |= digit << shift;
    s.remaining = remaining - above;
  }
  __syncthreads();
}

/// Selects the k-th largest key (1 <= k <= number of keys). `for_each_key(f)`
/// must call f(key) once for every key owned by the calling thread (the
/// threads' key sets together form the whole set). All threads call this.
/// On return (after a barrier) s.prefix is the threshold key T and
/// s.remaining the number of keys equal to T inside the top k.
template <int kKeyBits, typename ForEachKey>
__device__ __forceinline__ void block_radix_select(RadixSelectShared& s, uint32_t k,
                                                   ForEachKey&& for_each_key) {
  if (threadIdx.x == 0) {
    s.prefix = 0;
    s.remaining = k;
  }
#pragma unroll 1
  for (int shift = kKeyBits - kRadixBits; shift >= 0; shift -= kRadixBits) {
    for (int i = threadIdx.x; i < kRadixBins; i += blockDim.x) s.histogram[i] = 0;
    __syncthreads();
    // Keys whose digits above `shift` match the prefix found so far.
    const uint32_t high_mask = shift + kRadixBits >= 32 ? 0u : ~((1u << (shift + kRadixBits)) - 1u);
    const uint32_t prefix = s.prefix;
    for_each_key([&](uint32_t key) {
      if (((key ^ prefix) & high_mask) == 0) {
        atomicAdd(&s.histogram[(key >> shift) & (kRadixBins - 1)], 1u);
      }
    });
    __syncthreads();
    radix_choose_digit(s, shift);
  }
}

}  // namespace fasttopk::detail

namespace fasttopk::detail {

// Where a packed select's key digits end in a bin of at most this many values
// (ties of one key: low-entropy 16-bit rows), gather them and rank them
// directly instead of radix-selecting over their index digits (up to three
// more sweeps over every value); 0: never. bf16 rows at k = 512-2048 took
// 30-50% longer than fp32 under split_row: a bf16 key's ties near the k-th
// value (~20 of 12,500 randn values a key) sent every such select through
// the index digits. At 128, against 0 (A/B of 2026-12-07 22:33 UTC, H100,
// split_row forced): 33x100000 k2048 bf16 64.68 -> 58.41 µs, 64x131072 k2048
// bf16 61.96 -> 59.06; fp32 and small k within +-1% (docs/perf-notes.md v53).
#ifndef FASTTOPK_TUNE_SELECT_GATHER_TIES
#define FASTTOPK_TUNE_SELECT_GATHER_TIES 128
#endif
constexpr int kGatherTiesMax = FASTTOPK_TUNE_SELECT_GATHER_TIES;
static_assert(kGatherTiesMax >= 0 && kGatherTiesMax <= kRadixBins / 2,
              "the gathered values live in the histogram's words");

struct PackedSelectShared {
  uint32_t histogram[kRadixBins];  // also holds kGatherTiesMax packed values
  uint32_t warp_totals[kRadixBins / 32];
  unsigned long long prefix;
  uint32_t remaining;
  uint32_t done;  // 0: more digits; 1: prefix is the result; 2: gather the ties next
};

/*
 * Radix select over unique 64-bit packed (key, ~index) values (keys.hpp).
 * Returns P such that exactly k of the values are >= P (1 <= k <= count).
 *
 * Digits are 8 bits, from the top of the key down through the index bits.
 * Because packed values are unique there are no ties to resolve, and a pass
 * can stop early: once the chosen bin holds exactly `remaining` values, every
 * value in it belongs to the top k, so the threshold is the prefix with all
 * lower bits zero. With real data this happens after 2-3 passes.
 *
 * The low word holds ~index; for index < 2^index_bits its bits at and above
 * index_bits are all ones in every value. Those digits are skipped, but
 * their ones are OR-ed into the prefix so that ">= P" stays exact.
 *
 * With kGatherTiesMax > 0: where the key's last digit leaves a bin of at
 * most kGatherTiesMax values (all with the k-th key) and not all of them
 * belong to the top k, one more sweep gathers them into the histogram's
 * words and each is ranked against the others; P is the one of rank
 * `remaining`, so exactly k values are still >= P (the same P as the
 * index digits give).
 *
 * `value_at(i)` returns the packed value i in [0, count); `for_each` order is
 * irrelevant. All threads call this; `kThreads` >= 256.
 */
template <int kKeyBits, int kThreads, typename ValueAt>
__device__ __forceinline__ uint64_t block_select_packed(PackedSelectShared& s, int count,
                                                        uint32_t k, int index_bits,
                                                        ValueAt&& value_at) {
  if (threadIdx.x == 0) {
    s.prefix = 0;
    s.remaining = k;
    s.done = 0;
  }
  const int low_top_shift = ((index_bits - 1) / kRadixBits) * kRadixBits;  // highest varying digit
  const uint32_t low_constant_ones =
      low_top_shift + kRadixBits >= 32 ? 0u : (0xffffffffu << (low_top_shift + kRadixBits));
  int shift = 32 + kKeyBits - kRadixBits;
#pragma unroll 1
  while (true) {
    for (int i = threadIdx.x; i < kRadixBins; i += kThreads) s.histogram[i] = 0;
    // The gather's counter (warp_totals were last read before the previous
    // pass's closing barrier).
    if (kGatherTiesMax > 0 && threadIdx.x == 0) s.warp_totals[0] = 0;
    __syncthreads();
    if (s.done == 1) break;  // uniform: read after the barrier
    if (kGatherTiesMax > 0 && s.done == 2) {
      // The ties of the k-th key: <= kGatherTiesMax values, unique packed.
      uint64_t* ties = reinterpret_cast<uint64_t*>(s.histogram);
      const uint32_t key = static_cast<uint32_t>(s.prefix >> 32);
      for (int i = threadIdx.x; i < count; i += kThreads) {
        const uint64_t v = value_at(i);
        if (static_cast<uint32_t>(v >> 32) == key) ties[atomicAdd(&s.warp_totals[0], 1u)] = v;
      }
      __syncthreads();
      const uint32_t n = s.warp_totals[0];
      if (threadIdx.x < n) {
        const uint64_t v = ties[threadIdx.x];
        uint32_t rank = 0;  // values above v
        for (uint32_t j = 0; j < n; ++j) rank += ties[j] > v ? 1u : 0u;
        if (rank + 1 == s.remaining) s.prefix = v;  // exactly one thread
      }
      if (threadIdx.x == 0) s.done = 1;
      __syncthreads();
      continue;  // the next iteration's barrier, then done
    }
    const unsigned long long prefix = s.prefix;
    const unsigned long long high_mask =
        shift + kRadixBits >= 64 ? 0ull : ~((1ull << (shift + kRadixBits)) - 1ull);
    // Plain shared-memory atomics: on the H100 they beat warp-aggregated
    // increments (__match_any_sync) by 10-25% (docs/perf-notes.md, v2).
    for (int i = threadIdx.x; i < count; i += kThreads) {
      const uint64_t v = value_at(i);
      if (((v ^ prefix) & high_mask) == 0) {
        atomicAdd(&s.histogram[static_cast<uint32_t>(v >> shift) & (kRadixBins - 1)], 1u);
      }
    }
    __syncthreads();
    // Choose the digit. Read before find_rank_bin's barrier: the winner
    // rewrites both.
    const uint32_t remaining = s.remaining;
    const unsigned long long chosen_prefix = s.prefix;
    uint32_t digit, above, in_bin;
    if (find_rank_bin(s.histogram, s.warp_totals, remaining, &digit, &above, &in_bin)) {
      unsigned long long next = chosen_prefix | (static_cast<unsigned long long>(digit) << shift);
      const uint32_t left = remaining - above;
      if (in_bin == left || shift == 0) {
        s.done = 1;
      } else if (shift == 32 && in_bin <= static_cast<uint32_t>(kGatherTiesMax)) {
        s.done = 2;  // the key is found; rank its ties directly
      } else if (shift == 32) {
        next |= low_constant_ones;  // entering the low word: skip constant digits
      }
      s.prefix = next;
      s.remaining = left;
    }
    shift = shift == 32 ? low_top_shift : shift - kRadixBits;
    __syncthreads();
  }
  return s.prefix;
}

/// Sorts `n` (a power of two) packed values in shared memory, descending.
///
/// Barriers: in a stage with stride <= 32, thread t of warp w compares only
/// elements of the 64-element block [64w', 64w' + 64) that its t values map
/// to, and the same threads own the same blocks in every such stage. So
/// between two stages of stride <= 32 a __syncwarp() suffices; a block-wide
/// barrier is needed only around stages with stride >= 64. For n <= 64 the
/// whole sort runs in one warp without block barriers.
template <int kThreads>
__device__ __forceinline__ void block_bitonic_sort_descending(uint64_t* data, int n) {
  // n <= 64: warp 0 sorts alone and the other warps wait at the final
  // barrier, rather than stepping through every stage (measured: idle warps
  // looping over __syncwarp() cost co-resident CTAs 5-8% on the bandwidth
  // shapes). Every __syncthreads() below is on a block-uniform path.
  const bool warp_only = n <= 64;
  if (!warp_only || threadIdx.x < 32) {
    for (int size = 2; size <= n; size <<= 1) {
      for (int stride = size >> 1; stride > 0; stride >>= 1) {
        for (int t = threadIdx.x; t < (n >> 1); t += kThreads) {
          const int i = 2 * t - (t & (stride - 1));
          const int j = i + stride;
          const uint64_t a = data[i];
          const uint64_t b = data[j];
          const bool descending = (i & size) == 0;
          if ((a < b) == descending) {
            data[i] = b;
            data[j] = a;
          }
        }
        const int next_stride = stride > 1 ? stride >> 1 : size;  // first stride of next size
        const bool last = stride == 1 && size == n;
        if (!warp_only && (last || stride >= 64 || next_stride >= 64)) {
          __syncthreads();
        } else {
          __syncwarp();
        }
      }
    }
  }
  if (warp_only) __syncthreads();
}

}  // namespace fasttopk::detail
