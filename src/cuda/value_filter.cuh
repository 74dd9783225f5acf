// Value-domain candidate filter: test raw fp32/fp16/bf16 words against a key
// threshold without computing each element's rank key.
//
// Filtering kernels keep elements whose rank key (keys.hpp) is >= a floor
// key F. Computing a key costs 6-10 instructions per element (NaN test, sign
// flip, direction); for a stream where few elements pass, that is most of
// the work. Instead the floor is turned once into a raw value t
// (admission_bits, keys.hpp), and an element x is admitted when
//   largest:  !(x < t)   (x >= t, or x is NaN)     -- set.geu
//   smallest:  x <= t    (never NaN)                -- set.le
// one compare per fp32 element, one per *pair* of fp16/bf16 elements
// (set.*.f16x2 / bf16x2 producing a 0xffff lane mask).
//
// Invariant: the admitted set is a SUPERSET of {key(x) >= F}. Rank keys are
// monotone in the float order for non-NaN values, with two differences that
// only ever admit more: -0.0 and +0.0 compare equal as floats (but have
// different keys), and F is clamped to the range of non-NaN keys before it
// is turned into a value (a floor among the NaN keys admits +inf as well, a
// floor below -inf's key admits everything). NaN ranks first for largest
// (admitted by the unordered compare) and last for smallest (key 0, never
// admitted, as no floor is below 1). Callers compute the exact key of each
// admitted element, so the extra elements only cost pool space.
//
// Words and hit bits: a lane's tile is a sequence of 32-bit words (one fp32
// element, or two 16-bit elements: slot 2p in the low half of word p, slot
// 2p + 1 in the high half). The hit mask has one bit per slot (Mask: 32 or
// 64 bits). hit_bits(admits(word p), p) sets bit p for fp32; for 16-bit
// types each 32-bit half of the mask serves 16 words, word p setting bits
// p % 16 (low element) and 16 + p % 16 (high element) of half p / 16, so a
// single AND with a constant places both results. slot_bit(j) is slot j's
// bit and slot_of_bit maps a set bit back to its slot.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "keys.hpp"

namespace fasttopk::detail {

template <typename Format>
struct ValueFilter;

template <>
struct ValueFilter<Fp32Bits> {
  static constexpr int kPerWord = 1;

  /// All ones when the word's element is admitted by threshold t, else 0.
  static __device__ __forceinline__ uint32_t admits(uint32_t word, uint32_t t, bool largest) {
    const float x = __uint_as_float(word);
    const float limit = __uint_as_float(t);
    return (largest ? !(x < limit) : (x <= limit)) ? 0xffffffffu : 0u;
  }
  /// Word p's admits() result as hit bits (its one bit).
  template <typename Mask>
  static __device__ __forceinline__ Mask hit_bits(uint32_t admitted, int p) {
    return static_cast<Mask>(admitted & (1u << p));
  }
  template <typename Mask>
  static __device__ __forceinline__ constexpr Mask slot_bit(int j) {
    return Mask{1} << j;
  }
  static __device__ __forceinline__ int slot_of_bit(int b) { return b; }

  /// The best of two words' elements in the requested order, ignoring NaN
  /// (a NaN loses to any number): the result's key never exceeds the best
  /// key of the inputs, so group maxima built with it are lower bounds.
  static __device__ __forceinline__ uint32_t fold(uint32_t a, uint32_t b, bool largest) {
    const float x = __uint_as_float(a);
    const float y = __uint_as_float(b);
    return __float_as_uint(largest ? fmaxf(x, y) : fminf(x, y));
  }
  /// The rank keys of a word's elements.
  static __device__ __forceinline__ void keys(uint32_t word, bool largest, uint32_t (&out)[1]) {
    out[0] = rank_key<Fp32Bits>(word, largest);
  }
};

/// fp16 and bf16: two elements per word, compared and folded as pairs.
template <typename Format, typename Pair>
struct PairValueFilter {
  static constexpr int kPerWord = 2;

  static __device__ __forceinline__ Pair as_pair(uint32_t word) {
    Pair p;
    static_assert(sizeof(p) == sizeof(word), "a pair is one word");
    memcpy(&p, &word, sizeof(word));
    return p;
  }
  static __device__ __forceinline__ uint32_t as_word(Pair p) {
    uint32_t word;
    memcpy(&word, &p, sizeof(word));
    return word;
  }
  /// 0xffff in each half whose element is admitted by threshold t (the
  /// 16-bit raw threshold in the low half of `t`).
  static __device__ __forceinline__ uint32_t admits(uint32_t word, uint32_t t, bool largest) {
    const Pair limit = as_pair(t | (t << 16));
    return largest ? __hgeu2_mask(as_pair(word), limit) : __hle2_mask(as_pair(word), limit);
  }
  /// Word p's admits() result as hit bits: its two bits, in half p / 16.
  template <typename Mask>
  static __device__ __forceinline__ Mask hit_bits(uint32_t admitted, int p) {
    return static_cast<Mask>(admitted & (0x00010001u << (p % 16))) << (32 * (p / 16));
  }
  template <typename Mask>
  static __device__ __forceinline__ constexpr Mask slot_bit(int j) {
    return Mask{1} << ((j / 2) % 16 + 16 * (j % 2) + 32 * (j / 32));
  }
  static __device__ __forceinline__ int slot_of_bit(int b) {
    return 2 * ((b & 15) + 16 * (b >> 5)) + ((b >> 4) & 1);
  }
  /// Element-wise best of the two pairs (slot parity kept), NaN ignored.
  static __device__ __forceinline__ uint32_t fold(uint32_t a, uint32_t b, bool largest) {
    return as_word(largest ? __hmax2(as_pair(a), as_pair(b)) : __hmin2(as_pair(a), as_pair(b)));
  }
  static __device__ __forceinline__ void keys(uint32_t word, bool largest, uint32_t (&out)[2]) {
    out[0] = rank_key<Format>(word & 0xffffu, largest);
    out[1] = rank_key<Format>(word >> 16, largest);
  }
};

template <>
struct ValueFilter<Fp16Bits> : PairValueFilter<Fp16Bits, __half2> {};
template <>
struct ValueFilter<Bf16Bits> : PairValueFilter<Bf16Bits, __nv_bfloat162> {};

}  // namespace fasttopk::detail
