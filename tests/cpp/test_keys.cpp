// White-box tests of the key order (src/keys.hpp) that every algorithm
// shares: kernels write a winner's value back from its rank key, so
// value_bits_of_key must invert rank_key bit for bit on every non-NaN value.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>

#include "keys.hpp"
#include "test_util.hpp"

namespace fasttopk::detail {
namespace {

using fasttopk::DType;
using fasttopk_test::to_double;

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

// rank_key_branchless (the CPU path's scans) must equal rank_key exactly.
template <typename Format>
void expect_branchless_equal(uint32_t b) {
  ASSERT_EQ((rank_key_branchless<Format, true>(b)), rank_key<Format>(b, true))
      << std::hex << "bits 0x" << b << " largest";
  ASSERT_EQ((rank_key_branchless<Format, false>(b)), rank_key<Format>(b, false))
      << std::hex << "bits 0x" << b << " smallest";
}

TEST(Keys, BranchlessKeyEqualsRankKeyOnEvery16BitPattern) {
  for (uint32_t b = 0; b <= 0xffffu; ++b) {
    expect_branchless_equal<Fp16Bits>(b);
    expect_branchless_equal<Bf16Bits>(b);
  }
}

TEST(Keys, BranchlessKeyEqualsRankKeyOnFp32Patterns) {
  const uint32_t edges[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x00800000u,
                            0x80800000u, 0x3f800000u, 0xbf800000u, 0x7fffffffu, 0xffffffffu};
  for (const uint32_t e : edges) {
    for (uint32_t d = 0; d < 4096; ++d) {
      expect_branchless_equal<Fp32Bits>(e + d);
      expect_branchless_equal<Fp32Bits>(e - d);
    }
  }
  std::mt19937 rng(4242);
  for (int i = 0; i < (1 << 22); ++i)
    expect_branchless_equal<Fp32Bits>(static_cast<uint32_t>(rng()));
}

// rank_key_pair must equal rank_key on each half of the word, for every
// non-NaN 16-bit pattern in either half next to any other, and
// pair_nan_bits must flag exactly the words holding a NaN. The halves do not
// interact (no carry crosses them), so every low half is checked against a
// set of high halves and the other way round, plus random words.
template <typename Format>
void check_pair_keys() {
  auto expect_word = [](uint32_t word) {
    const uint32_t lo = word & 0xffffu, hi = word >> 16;
    const bool nan = is_nan_bits<Format>(lo) || is_nan_bits<Format>(hi);
    ASSERT_EQ(pair_nan_bits<Format>(word) != 0, nan) << std::hex << "word 0x" << word;
    if (nan) return;
    for (const bool largest : {true, false}) {
      const uint32_t expected = rank_key<Format>(lo, largest) | rank_key<Format>(hi, largest) << 16;
      ASSERT_EQ(rank_key_pair<Format>(word, largest), expected)
          << std::hex << "word 0x" << word << " largest " << largest;
    }
  };
  const uint32_t others[] = {0x0000u,
                             0x8000u,
                             0x0001u,
                             0x8001u,
                             Format::kPosInf,
                             Format::kPosInf | 0x8000u,
                             Format::kPosInf + 1u,
                             0x7fffu,
                             0xffffu,
                             0x3c00u,
                             0xbc00u};
  for (uint32_t b = 0; b <= 0xffffu; ++b) {
    for (const uint32_t o : others) {
      expect_word(b | o << 16);
      expect_word(o | b << 16);
    }
  }
  std::mt19937 rng(2026);
  for (int i = 0; i < (1 << 20); ++i) expect_word(static_cast<uint32_t>(rng()));
}

TEST(Keys, PairKeysMatchRankKeyFp16) { check_pair_keys<Fp16Bits>(); }
TEST(Keys, PairKeysMatchRankKeyBf16) { check_pair_keys<Bf16Bits>(); }

TEST(Keys, NanKeysAreTheExtremes) {
  EXPECT_TRUE(is_nan_key<Fp32Bits>(0xffffffffu, true));
  EXPECT_TRUE(is_nan_key<Fp32Bits>(0u, false));
  EXPECT_TRUE(is_nan_key<Bf16Bits>(0xffffu, true));
  EXPECT_FALSE(is_nan_key<Bf16Bits>(0xffffu, false));
  // +inf is the largest non-NaN key, one below NaN's.
  EXPECT_EQ(rank_key<Fp32Bits>(0x7f800000u, true), 0xff800000u);
}

// admission_bits turns a floor key into a raw value t; kernels that filter
// in the value domain (row_per_warp, split_row's streaming) admit x when
// !(x < t) (largest) or x <= t (smallest) and must never drop a value whose
// key is >= the floor, the one exception (floor 0, smallest: NaN) aside.
// The float compare is done here on exact doubles (test_util.hpp's decoding,
// independent of keys.hpp); the kernels use the same compare in hardware.
template <typename Format>
void expect_admission_superset(DType dtype, uint32_t x, uint32_t floor_key, bool largest) {
  const uint32_t t = admission_bits<Format>(floor_key, largest);
  const double xv = to_double(dtype, x), tv = to_double(dtype, t);
  const bool admitted = largest ? !(xv < tv) : (xv <= tv);
  const bool must = rank_key<Format>(x, largest) >= floor_key;
  const bool excepted = !largest && floor_key == 0 && is_nan_bits<Format>(x);
  if (must && !excepted) {
    ASSERT_TRUE(admitted) << std::hex << "bits 0x" << x << " floor key 0x" << floor_key << " t 0x"
                          << t << " largest " << largest;
  }
  if (excepted) {
    ASSERT_FALSE(admitted) << std::hex << "NaN 0x" << x << " admitted";
  }
}

template <typename Format>
void check_admission_16bit(DType dtype) {
  std::mt19937 rng(777);
  for (const bool largest : {true, false}) {
    for (uint32_t x = 0; x <= 0xffffu; ++x) {
      const uint32_t key = rank_key<Format>(x, largest);
      // The hardest floors for x (its own key and the next ones), the
      // extremes, and a spread of others.
      const uint32_t floors[] = {
          key, key + 1 > 0xffffu ? key : key + 1, key == 0 ? 0 : key - 1, 0, 1, 0xffffu, 0xfffeu};
      for (const uint32_t f : floors) expect_admission_superset<Format>(dtype, x, f, largest);
      for (int i = 0; i < 64; ++i) {
        expect_admission_superset<Format>(dtype, x, rng() & 0xffffu, largest);
      }
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(Keys, AdmissionIsASupersetOfTheFloorFp16) { check_admission_16bit<Fp16Bits>(DType::kFloat16); }
TEST(Keys, AdmissionIsASupersetOfTheFloorBf16) {
  check_admission_16bit<Bf16Bits>(DType::kBFloat16);
}

TEST(Keys, AdmissionIsASupersetOfTheFloorFp32) {
  std::mt19937 rng(4242);
  auto check = [&](uint32_t x) {
    for (const bool largest : {true, false}) {
      const uint32_t key = rank_key<Fp32Bits>(x, largest);
      const uint32_t floors[] = {
          key,         key == 0xffffffffu ? key : key + 1, key == 0 ? 0 : key - 1, 0, 1,
          0xffffffffu, static_cast<uint32_t>(rng())};
      for (const uint32_t f : floors) {
        expect_admission_superset<Fp32Bits>(DType::kFloat32, x, f, largest);
      }
    }
  };
  const uint32_t edges[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u,
                            0x00800000u, 0x80800000u, 0x3f800000u, 0xbf800000u};
  for (const uint32_t e : edges) {
    for (uint32_t d = 0; d < 4096; ++d) {
      check(e + d);
      check(e - d);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  for (int i = 0; i < (1 << 20); ++i) {
    check(static_cast<uint32_t>(rng()));
    if (::testing::Test::HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace fasttopk::detail
