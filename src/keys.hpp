// Order keys: the one place that defines fasttopk's total order.
//
// Every element is mapped to an unsigned integer "rank key" such that a
// larger key ranks earlier in the output, for both largest and smallest.
// Ties (equal keys) are then broken by the lower index. All algorithms, on
// the CPU and the GPU, select and sort by (key descending, index ascending),
// which is what makes their results bitwise identical.
//
//   1. Take the raw bits of the value (fp32: 32 bits, fp16/bf16: 16 bits).
//   2. Flip them into an unsigned order: negative values have all bits
//      inverted, non-negative values get the sign bit set. This orders
//      -inf < ... < -0.0 < +0.0 < ... < +inf as unsigned integers, and keeps
//      -0.0 below +0.0, as the contract requires.
//   3. Every NaN (any sign, any payload) becomes the all-ones key: above
//      +inf and equal to every other NaN (ties between NaNs go to the lower
//      index), as torch.topk orders them.
//   4. For smallest, invert the key: non-NaN order reverses and NaN becomes
//      key 0, the last rank — torch.topk(largest=False) also ranks NaN last.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FASTTOPK_HD __host__ __device__ __forceinline__
#else
#define FASTTOPK_HD inline
#endif

namespace fasttopk::detail {

/// Per-dtype facts about the raw bit pattern. `Bits` is the raw storage type.
template <int kBitWidth>
struct FloatBits;

template <>
struct FloatBits<32> {
  using Bits = uint32_t;
  static constexpr int kKeyBits = 32;
  static constexpr uint32_t kSignBit = 0x80000000u;
  static constexpr uint32_t kAbsMask = 0x7fffffffu;
  static constexpr uint32_t kPosInf = 0x7f800000u;  // fp32 +inf
};

/// fp16 and bf16 share everything but the exponent width, i.e. +inf.
struct Fp16Bits {
  using Bits = uint16_t;
  static constexpr int kKeyBits = 16;
  static constexpr uint32_t kSignBit = 0x8000u;
  static constexpr uint32_t kAbsMask = 0x7fffu;
  static constexpr uint32_t kPosInf = 0x7c00u;
};
struct Bf16Bits {
  using Bits = uint16_t;
  static constexpr int kKeyBits = 16;
  static constexpr uint32_t kSignBit = 0x8000u;
  static constexpr uint32_t kAbsMask = 0x7fffu;
  static constexpr uint32_t kPosInf = 0x7f80u;
};
using Fp32Bits = FloatBits<32>;

/// All kKeyBits bits of a key set: the NaN key for largest.
template <typename Format>
FASTTOPK_HD constexpr uint32_t key_mask() {
  return Format::kKeyBits == 32 ? 0xffffffffu : ((1u << Format::kKeyBits) - 1u);
}

/// Rank key of raw bits `b` (see the file comment). The key occupies the low
/// kKeyBits bits of the result.
template <typename Format>
FASTTOPK_HD uint32_t rank_key(uint32_t b, bool largest) {
  constexpr uint32_t kAllOnes = key_mask<Format>();
  uint32_t key;
  if ((b & Format::kAbsMask) > Format::kPosInf) {
    key = kAllOnes;  // NaN
  } else {
    key = (b & Format::kSignBit) ? (~b & kAllOnes) : (b | Format::kSignBit);
  }
  return largest ? key : (~key & kAllOnes);
}

/// rank_key for one order fixed at compile time, written without branches
/// (the CPU path's scans): host compilers turn rank_key's sign test into a
/// branch, which randn rows mispredict half the time (~+5 ns an element),
/// while the masks and the one select here vectorise. Equal to rank_key on
/// every input (tests/cpp/test_keys.cpp checks every 16-bit pattern).
template <typename Format, bool kLargest>
FASTTOPK_HD uint32_t rank_key_branchless(uint32_t b) {
  constexpr uint32_t kAllOnes = key_mask<Format>();
  constexpr int kSignShift = Format::kKeyBits - 1;
  const uint32_t negative_mask = (0u - (b >> kSignShift)) & kAllOnes;  // all ones if negative
  const uint32_t ordered = b ^ (negative_mask | Format::kSignBit);
  const uint32_t key = (b & Format::kAbsMask) > Format::kPosInf ? kAllOnes : ordered;
  return kLargest ? key : key ^ kAllOnes;
}

/// Rank keys of both 16-bit values of a 32-bit word at once (kKeyBits ==
/// 16 formats; the low half is the first value): rank_key of each half, in
/// that half, for every value but NaN (see pair_nan_bits). A negative half
/// b becomes ~b, a positive one b | sign (b ^ 0x8000); smallest complements
/// both. Four operations for two keys where rank_key takes about ten each
/// after the half-word extraction (split_row's streaming loop).
template <typename Format>
FASTTOPK_HD uint32_t rank_key_pair(uint32_t pair, bool largest) {
  static_assert(Format::kKeyBits == 16, "two 16-bit keys a word");
  const uint32_t negative = (pair >> 15) & 0x00010001u;  // bit 0 of each half: its sign
  const uint32_t flip = largest ? 0x80008000u : 0x7fff7fffu;
  return pair ^ flip ^ (negative * 0x7fffu);
}

/// Nonzero iff either 16-bit value of `pair` is NaN (|b| > +inf: adding
/// 0x7fff - inf to |b| carries into the half's top bit, and never across
/// halves), so an OR of it over words says whether any is.
template <typename Format>
FASTTOPK_HD uint32_t pair_nan_bits(uint32_t pair) {
  static_assert(Format::kKeyBits == 16, "two 16-bit values a word");
  constexpr uint32_t kBias = (0x7fffu - Format::kPosInf) * 0x00010001u;
  return ((pair & 0x7fff7fffu) + kBias) & 0x80008000u;
}

/// The raw bits whose rank key is `key`: the inverse of rank_key for every
/// value but NaN. NaN keys (all ones for largest, 0 for smallest) are shared
/// by every NaN payload, so callers read NaN values from the input instead
/// (is_nan_key). Lets kernels write a winner's value from its packed key
/// without a second, dependent read of the input.
template <typename Format>
FASTTOPK_HD uint32_t value_bits_of_key(uint32_t key, bool largest) {
  constexpr uint32_t kAllOnes = key_mask<Format>();
  const uint32_t ordered = largest ? key : (~key & kAllOnes);
  return (ordered & Format::kSignBit) ? (ordered ^ Format::kSignBit) : (~ordered & kAllOnes);
}

/// Whether `key` is the rank key of NaN (see rank_key).
template <typename Format>
FASTTOPK_HD bool is_nan_key(uint32_t key, bool largest) {
  constexpr uint32_t kAllOnes = key_mask<Format>();
  return key == (largest ? kAllOnes : 0u);
}

/// Bits of the sentinel value written to unused output slots: the worst
/// possible non-NaN value in the requested order (-inf for largest, +inf for
/// smallest).
template <typename Format>
FASTTOPK_HD uint32_t sentinel_bits(bool largest) {
  return largest ? (Format::kPosInf | Format::kSignBit) : Format::kPosInf;
}

/// Raw bits t of the value-domain admission test for floor key `floor_key`
/// (src/cuda/value_filter.cuh): the value whose key is the floor clamped to
/// the non-NaN keys [key(-inf), key(+inf)] (the same range in both orders).
/// Admitting x when !(x < t) (largest) or x <= t (smallest) admits every
/// value whose key is >= floor_key, but for one case: floor key 0 in the
/// smallest order, which NaN's key meets and the test never admits
/// (tests/cpp/test_keys.cpp checks both claims).
template <typename Format>
FASTTOPK_HD uint32_t admission_bits(uint32_t floor_key, bool largest) {
  const uint32_t lowest_key = rank_key<Format>(Format::kPosInf | Format::kSignBit, true);
  const uint32_t highest_key = rank_key<Format>(Format::kPosInf, true);
  const uint32_t raised = floor_key < lowest_key ? lowest_key : floor_key;  // max, then min
  const uint32_t clamped = raised > highest_key ? highest_key : raised;
  return value_bits_of_key<Format>(clamped, largest);
}

/// A (key, index) pair packed so that a larger packed value ranks earlier:
/// key in the high 32 bits, the bitwise complement of the index in the low 32
/// (so a lower index is a larger packed value). Indices are < 2^31.
FASTTOPK_HD uint64_t pack_key_index(uint32_t key, uint32_t index) {
  return (static_cast<uint64_t>(key) << 32) | static_cast<uint32_t>(~index);
}
FASTTOPK_HD uint32_t packed_index(uint64_t packed) { return ~static_cast<uint32_t>(packed); }
FASTTOPK_HD uint32_t packed_key(uint64_t packed) { return static_cast<uint32_t>(packed >> 32); }

}  // namespace fasttopk::detail
