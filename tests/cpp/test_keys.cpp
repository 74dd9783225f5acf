// White-box tests of the key order (src/keys.hpp) that every algorithm
// shares: kernels write a winner's value back from its rank key, so
// value_bits_of_key must invert rank_key bit for bit on every non-NaN value.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>

#include "keys.hpp"

namespace fasttopk::detail {
namespace {

template <typename Format>
bool is_nan_bits(uint32_t b) {
  return (b & Format::kAbsMask) > Format::kPosInf;
}

template <typename Format>
void expect_inverse(uint32_t b) {
  for (const bool largest : {true, false}) {
    const uint32_t key = rank_key<Format>(b, largest);
    EXPECT_EQ(is_nan_key<Format>(key, largest), is_nan_bits<Format>(b))
        << std::hex << "bits 0x" << b << " largest " << largest;
    if (!is_nan_bits<Format>(b)) {
      ASSERT_EQ(value_bits_of_key<Format>(key, largest), b)
          << std::hex << "bits 0x" << b << " largest " << largest;
    }
  }
}

TEST(Keys, ValueBitsOfKeyInvertsEvery16BitPattern) {
  for (uint32_t b = 0; b <= 0xffffu; ++b) {
    expect_inverse<Fp16Bits>(b);
    expect_inverse<Bf16Bits>(b);
  }
}

TEST(Keys, ValueBitsOfKeyInvertsFp32Patterns) {
  // The special values, every pattern around the class boundaries, and random ones.
  const uint32_t edges[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u,
                            0x00800000u, 0x80800000u, 0x3f800000u, 0xbf800000u};
  for (const uint32_t e : edges) {
    for (uint32_t d = 0; d < 4096; ++d) {
      expect_inverse<Fp32Bits>(e + d);
      expect_inverse<Fp32Bits>(e - d);
    }
  }
  std::mt19937 rng(12345);
  for (int i = 0; i < (1 << 22); ++i) expect_inverse<Fp32Bits>(static_cast<uint32_t>(rng()));
}

TEST(Keys, NanKeysAreTheExtremes) {
  EXPECT_TRUE(is_nan_key<Fp32Bits>(0xffffffffu, true));
  EXPECT_TRUE(is_nan_key<Fp32Bits>(0u, false));
  EXPECT_TRUE(is_nan_key<Bf16Bits>(0xffffu, true));
  EXPECT_FALSE(is_nan_key<Bf16Bits>(0xffffu, false));
  // +inf is the largest non-NaN key, one below NaN's.
  EXPECT_EQ(rank_key<Fp32Bits>(0x7f800000u, true), 0xff800000u);
}

}  // namespace
}  // namespace fasttopk::detail
