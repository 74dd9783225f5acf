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

/// Chooses the digit of the bin that holds rank `remaining`, given a full
/// histogram in shared memory. Called by all threads of the block (the
/// block must have >= 256 threads); updates s.prefix and s.remaining.
/// Ends with a __syncthreads().
__device__ __forceinline__ void radix_choose_digit(RadixSelectShared& s, int shift) {
  const int t = threadIdx.x;
  const int lane = t & 31;
  const int warp = t >> 5;
  uint32_t count = 0;
  uint32_t inclusive = 0;
  // Scan the bins from the highest digit down: thread t owns digit 255 - t.
  if (t < kRadixBins) {
    count = s.histogram[kRadixBins - 1 - t];
    inclusive = count;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const uint32_t other = __shfl_up_sync(0xffffffffu, inclusive, offset);
      if (lane >= offset) inclusive += other;
    }
    if (lane == 31) s.warp_totals[warp] = inclusive;
  }
  __syncthreads();
  if (t < kRadixBins) {
    for (int w = 0; w < warp; ++w) inclusive += s.warp_totals[w];
    const uint32_t exclusive = inclusive - count;
    const uint32_t remaining = s.remaining;
    if (exclusive < remaining && inclusive >= remaining) {
      s.prefix |= static_cast<uint32_t>(kRadixBins - 1 - t) << shift;
      s.remaining = remaining - exclusive;
    }
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
    const uint32_t high_mask =
        shift + kRadixBits >= 32 ? 0u : ~((1u << (shift + kRadixBits)) - 1u);
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
