// topk_host() against the brute-force oracle of test_util.hpp: exact values
// (bitwise) and indices, over a full parameter matrix and the edge cases of
// the contract (fasttopk.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "fasttopk/fasttopk.hpp"
#include "test_util.hpp"

namespace fasttopk_test {
namespace {

// ---------------------------------------------------------------------------
// One topk_host call on a Matrix with guarded outputs.
// ---------------------------------------------------------------------------

struct HostCall {
  int64_t k = 0;
  const int32_t* k_per_row = nullptr;
  const int32_t* row_lengths = nullptr;
  bool largest = true;
  bool sorted = true;
  IndexType index_type = IndexType::kInt64;
  bool want_values = true;
  bool want_indices = true;
  int threads = 0;
  int64_t row_stride_param = -1;  ///< -1: pass the matrix stride (0 when contiguous)

  std::string describe() const {
    std::ostringstream os;
    os << "k=" << k << " k_per_row=" << (k_per_row ? "yes" : "no")
       << " row_lengths=" << (row_lengths ? "yes" : "no") << " largest=" << largest
       << " sorted=" << sorted << " index=" << index_name(index_type) << " values=" << want_values
       << " indices=" << want_indices << " threads=" << threads;
    return os.str();
  }
};

/// A call for k with the per-row arrays (empty: none) and the order.
HostCall host_call(int64_t k, const std::vector<int32_t>& k_per_row,
                   const std::vector<int32_t>& row_lengths, bool largest, bool sorted) {
  HostCall c;
  c.k = k;
  c.k_per_row = k_per_row.empty() ? nullptr : k_per_row.data();
  c.row_lengths = row_lengths.empty() ? nullptr : row_lengths.data();
  c.largest = largest;
  c.sorted = sorted;
  return c;
}

struct HostResult {
  Status status;
  GuardedBuffer values;
  GuardedBuffer indices;
};

TopKParams params_for(const Matrix& m, const HostCall& c) {
  TopKParams p;
  p.input = m.data();
  p.dtype = m.dtype();
  p.rows = m.rows();
  p.cols = m.cols();
  p.row_stride =
      c.row_stride_param >= 0 ? c.row_stride_param : (m.stride() == m.cols() ? 0 : m.stride());
  p.k = c.k;
  p.k_per_row = c.k_per_row;
  p.row_lengths = c.row_lengths;
  p.largest = c.largest;
  p.sorted = c.sorted;
  p.index_type = c.index_type;
  return p;
}

HostResult call_host(const Matrix& m, const HostCall& c) {
  HostResult res{Status(),
                 GuardedBuffer(static_cast<size_t>(m.rows() * c.k),
                               static_cast<size_t>(elem_bytes(m.dtype())), kValueFill),
                 GuardedBuffer(static_cast<size_t>(m.rows() * c.k),
                               static_cast<size_t>(index_bytes(c.index_type)), kIndexFill)};
  TopKParams p = params_for(m, c);
  p.values = c.want_values ? res.values.data() : nullptr;
  p.indices = c.want_indices ? res.indices.data() : nullptr;
  res.status = run_host(p, c.threads);
  return res;
}

/// Status ok, guards intact, unrequested outputs untouched, result == e.
::testing::AssertionResult verify(const HostResult& res, const HostCall& c, const Expected& e) {
  if (!res.status.ok()) {
    return ::testing::AssertionFailure()
           << "topk_host failed: " << code_str(res.status.code()) << ": " << res.status.message();
  }
  if (auto g = res.values.guards_intact(); !g) return g << " (values)";
  if (auto g = res.indices.guards_intact(); !g) return g << " (indices)";
  if (!c.want_values) {
    if (auto u = res.values.untouched(); !u) return u << " (values, not requested)";
  }
  if (!c.want_indices) {
    if (auto u = res.indices.untouched(); !u) return u << " (indices, not requested)";
  }
  return check_output(e, c.sorted, c.want_values ? res.values.data() : nullptr,
                      c.want_indices ? res.indices.data() : nullptr, c.index_type);
}

::testing::AssertionResult run_and_verify(const Matrix& m, const HostCall& c, const Expected& e) {
  return verify(call_host(m, c), c, e);
}

const DType kDTypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16};
const IndexType kIndexTypes[] = {IndexType::kInt32, IndexType::kInt64};

uint64_t seed_of(std::initializer_list<int64_t> parts) {
  uint64_t s = 0x5eed;
  for (int64_t p : parts) s = mix_seed(s, static_cast<uint64_t>(p));
  return s;
}

std::vector<int64_t> k_values(int64_t cols, std::initializer_list<int64_t> extra = {}) {
  std::vector<int64_t> ks = {0, 1, std::min<int64_t>(5, cols), cols};
  for (int64_t k : extra) {
    if (k <= cols) ks.push_back(k);
  }
  std::sort(ks.begin(), ks.end());
  ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
  return ks;
}

// ---------------------------------------------------------------------------
// The test utilities themselves (the oracle must be trustworthy).
// ---------------------------------------------------------------------------

TEST(TestUtil, HalfConversionsRoundTripEveryPattern) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff) != 0) << hex(h, 4);
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << hex(h, 4);
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << hex(h, 4);
  }
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const float f = bf16_to_f32(static_cast<uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f)))) << hex(b, 4);
      continue;
    }
    ASSERT_EQ(f32_to_bf16(f), b) << hex(b, 4);
  }
}

TEST(TestUtil, HalfConversionRoundsToNearestEven) {
  // Known values.
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00u);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000u);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bffu);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00u);  // ties to even -> inf
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bffu);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001u);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000u);  // tie -> even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001u);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000u);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00u);  // tie -> even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02u);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80u);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f808000u)), 0x3f80u);  // tie -> even
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f818000u)), 0x3f82u);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(bits_f32(0x7f7fffffu)), 0x7f80u);  // overflows to inf
#if defined(__FLT16_MAX__) && !defined(__clang__)
  // Cross-check against the compiler's own _Float16 conversion.
  Rng rng(7);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t bits = static_cast<uint32_t>(rng.next());
    const float f = bits_f32(bits);
    if (std::isnan(f)) continue;
    const _Float16 h = static_cast<_Float16>(f);
    uint16_t hb;
    std::memcpy(&hb, &h, 2);
    ASSERT_EQ(f32_to_f16(f), hb) << hex(bits, 8);
  }
#endif
}

// A hand-written row whose order is spelled out from the contract, checked
// against both the oracle and topk_host.
struct SpecialRow {
  std::vector<uint32_t> bits;
  std::vector<int64_t> largest_order, smallest_order;
};

SpecialRow special_row(DType d) {
  const auto nans = nan_patterns(d);
  const auto fs = finite_special_patterns(d);  // +0 -0 +sub -sub +max -max
  SpecialRow s;
  s.bits = {
      from_float(d, 1.0f),   // 0
      neg_zero_bits(d),      // 1
      nans[0],               // 2  +NaN
      neg_inf_bits(d),       // 3
      pos_zero_bits(d),      // 4
      pos_inf_bits(d),       // 5
      nans[3],               // 6  -NaN with a payload
      from_float(d, -1.0f),  // 7
      pos_zero_bits(d),      // 8
      nans[2],               // 9  +NaN, signalling payload
      fs[4],                 // 10 largest finite
      fs[2],                 // 11 smallest positive subnormal
      fs[3],                 // 12 smallest negative subnormal
      from_float(d, 1.0f),   // 13 == element 0
      nans[1],               // 14 -NaN
      neg_zero_bits(d),      // 15
  };
  s.largest_order = {2, 6, 9, 14, 5, 10, 0, 13, 11, 4, 8, 1, 15, 12, 7, 3};
  s.smallest_order = {3, 7, 12, 1, 15, 4, 8, 11, 0, 13, 10, 5, 2, 6, 9, 14};
  return s;
}

TEST(TestUtil, OracleMatchesHandWrittenOrder) {
  for (DType d : kDTypes) {
    SCOPED_TRACE(dtype_name(d));
    const SpecialRow s = special_row(d);
    Matrix m(d, 1, static_cast<int64_t>(s.bits.size()));
    for (size_t c = 0; c < s.bits.size(); ++c) m.set(0, static_cast<int64_t>(c), s.bits[c]);
    for (bool largest : {true, false}) {
      const Ranking rk = oracle_rank(m, nullptr, largest);
      const auto& want = largest ? s.largest_order : s.smallest_order;
      ASSERT_EQ(rk.order[0].size(), want.size());
      for (size_t j = 0; j < want.size(); ++j) {
        EXPECT_EQ(rk.order[0][j], want[j]) << "largest=" << largest << " slot " << j;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The main matrix: dtype x rows x cols x largest x per-row x distribution,
// and inside each: k x sorted x index type x num_threads (x which outputs).
// ---------------------------------------------------------------------------

class CpuMatrix : public ::testing::TestWithParam<MatrixParam> {};

TEST_P(CpuMatrix, MatchesOracle) {
  const auto [dtype, rows, cols, largest, per_row, dist] = GetParam();
  const uint64_t seed = seed_of({static_cast<int>(dtype), rows, cols, largest,
                                 static_cast<int>(per_row), static_cast<int>(dist)});
  Matrix m(dtype, rows, cols);
  fill(m, dist, seed, largest);
  std::vector<int32_t> lengths;
  if (has_lengths(per_row)) {
    lengths = make_lengths(rows, cols, seed + 1);
    poison_tails(m, lengths, largest);
  }
  const Ranking rk = oracle_rank(m, lengths.empty() ? nullptr : lengths.data(), largest);
  int rotation = 0;
  for (int64_t k : k_values(cols, {37})) {
    std::vector<int32_t> kpr;
    if (has_k(per_row)) kpr = make_k_per_row(rows, k, seed + 2 + static_cast<uint64_t>(k));
    const Expected e = oracle_from_ranking(m, rk, k, kpr.empty() ? nullptr : kpr.data());
    for (bool sorted : {true, false}) {
      for (IndexType it : kIndexTypes) {
        for (int threads : {1, 0}) {
          HostCall c = host_call(k, kpr, lengths, largest, sorted);
          c.index_type = it;
          c.threads = threads;
          // Both outputs on most calls; values-only and indices-only in turn.
          const int which = rotation++ % 4;
          c.want_values = which != 2;
          c.want_indices = which != 3;
          SCOPED_TRACE(c.describe());
          ASSERT_TRUE(run_and_verify(m, c, e));
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, CpuMatrix, matrix_params(), matrix_name);

/// Each k of `ks` up to m's cols against the brute-force oracle, without and
/// with per-row k and lengths (lengths from `lengths_seed`, k_per_row from
/// `k_seed(k)`), sorted and unsorted; `adjust` sets the rest of each call.
template <typename KSeed, typename Adjust>
void check_ks_against_oracle(const Matrix& m, bool largest, const std::vector<int64_t>& ks,
                             uint64_t lengths_seed, KSeed k_seed, Adjust adjust,
                             const std::string& trace) {
  for (PerRow per_row : {PerRow::kNone, PerRow::kBoth}) {
    std::vector<int32_t> lengths;
    if (has_lengths(per_row)) lengths = make_lengths(m.rows(), m.cols(), lengths_seed);
    const Ranking rk = oracle_rank(m, lengths.empty() ? nullptr : lengths.data(), largest);
    for (const int64_t k : ks) {
      if (k > m.cols()) continue;
      std::vector<int32_t> kpr;
      if (has_k(per_row)) kpr = make_k_per_row(m.rows(), k, k_seed(k));
      const Expected e = oracle_from_ranking(m, rk, k, kpr.empty() ? nullptr : kpr.data());
      for (bool sorted : {true, false}) {
        HostCall c = host_call(k, kpr, lengths, largest, sorted);
        adjust(c);
        SCOPED_TRACE(trace + " " + c.describe());
        ASSERT_TRUE(run_and_verify(m, c, e));
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Every distribution, a few shapes.
// ---------------------------------------------------------------------------

using DistParam = std::tuple<Dist, DType, bool>;
class CpuDistributions : public ::testing::TestWithParam<DistParam> {};

TEST_P(CpuDistributions, MatchesOracle) {
  const auto [dist, dtype, largest] = GetParam();
  const std::pair<int64_t, int64_t> shapes[] = {{5, 777}, {2, 4099}, {9, 64}};
  for (const auto& [rows, cols] : shapes) {
    const uint64_t seed = seed_of({static_cast<int>(dist), static_cast<int>(dtype), largest, rows});
    Matrix m(dtype, rows, cols);
    fill(m, dist, seed, largest);
    ASSERT_NO_FATAL_FAILURE(check_ks_against_oracle(
        m, largest, {1, 13, std::min<int64_t>(300, cols), cols}, seed + 7,
        [&](int64_t) { return seed + 9; },
        [](HostCall& c) { c.index_type = c.sorted ? IndexType::kInt64 : IndexType::kInt32; },
        "rows=" + std::to_string(rows) + " cols=" + std::to_string(cols)));
  }
}

/// Every distribution x dtype x order (CpuDistributions, CpuStreamed).
auto every_distribution() {
  return ::testing::Combine(::testing::Values(Dist::kRandn, Dist::kUniform, Dist::kAllEqual,
                                              Dist::kFewDistinct, Dist::kSpecial, Dist::kNegInfTail,
                                              Dist::kSortedAscending, Dist::kSortedDescending),
                            ::testing::Values(DType::kFloat32, DType::kFloat16, DType::kBFloat16),
                            ::testing::Bool());
}

std::string distribution_name(const ::testing::TestParamInfo<DistParam>& info) {
  return std::string(dist_name(std::get<0>(info.param))) + "_" +
         dtype_name(std::get<1>(info.param)) + (std::get<2>(info.param) ? "_largest" : "_smallest");
}

INSTANTIATE_TEST_SUITE_P(Cpu, CpuDistributions, every_distribution(), distribution_name);

// ---------------------------------------------------------------------------
// The streamed selection (cpu_topk.cpp: a candidate buffer of max(2k, 128)
// entries, plus a 64-element block, behind a threshold key, for rows of
// >= 512 elements that hold buffer and block): every distribution, k on
// both sides of the buffer's bounds (cols 513: k = 224 streams, k = 225
// takes the whole row; cols 4097: k = 2016 and 2017), rows in ascending
// order and per-row k and lengths (rows on both paths in one call). Rows of
// >= 512 elements with 2k + 16 <= cols / 2 start from a sampled floor.
// ---------------------------------------------------------------------------

class CpuStreamed : public ::testing::TestWithParam<DistParam> {};

TEST_P(CpuStreamed, MatchesOracle) {
  const auto [dist, dtype, largest] = GetParam();
  const std::vector<int64_t> ks = {1,   2,   5,   63,  64,  65,   127,  128,  129,
                                   224, 225, 255, 256, 257, 1000, 2016, 2017, 2500};
  for (const int64_t cols : {int64_t{513}, int64_t{4097}, int64_t{40000}}) {
    const int64_t rows = 4;
    const uint64_t seed =
        seed_of({static_cast<int>(dist), static_cast<int>(dtype), largest, static_cast<int>(cols)});
    Matrix m(dtype, rows, cols);
    fill(m, dist, seed, largest);
    ASSERT_NO_FATAL_FAILURE(check_ks_against_oracle(
        m, largest, ks, seed + 3, [&](int64_t k) { return seed + 5 + static_cast<uint64_t>(k); },
        [](HostCall& c) { c.threads = 1; }, "cols=" + std::to_string(cols)));
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, CpuStreamed, every_distribution(), distribution_name);

// ---------------------------------------------------------------------------
// The streamed selection's sampled floor (sampled_floor reads the 128
// positions j * cols / 128; these rows set the even half of them, j * cols /
// 64) on rows built to fool it. "sample best": those
// positions hold the row's best values, so only 16 keys reach the floor
// and for k > 16 the prefix start must take over; "sample worst": they hold
// the worst, so the floor sits lower and lets about twice as many through;
// "sample ties": they hold one value that also fills 300 other positions,
// the floor then sits on a key shared by more elements than k.
// ---------------------------------------------------------------------------

TEST(CpuTopK, SampledFloorFooled) {
  const char* kinds[] = {"sample best", "sample worst", "sample ties"};
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    for (bool largest : {true, false}) {
      for (const int64_t cols : {int64_t{4096}, int64_t{5000}}) {
        for (int kind = 0; kind < 3; ++kind) {
          const int64_t rows = 3;
          const uint64_t seed =
              seed_of({static_cast<int>(d), largest, static_cast<int>(cols), kind});
          Matrix m(d, rows, cols);
          fill(m, Dist::kRandn, seed, largest);
          Rng rng(seed + 1);
          const float sign = largest ? 1.0f : -1.0f;
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < 64; ++j) {
              const int64_t position = j * cols / 64;
              const float v = kind == 0   ? sign * (100.0f + static_cast<float>(j))
                              : kind == 1 ? -sign * (100.0f + static_cast<float>(j))
                                          : sign * 1.5f;
              m.set(r, position, from_float(d, v));
            }
            if (kind == 2) {
              for (int i = 0; i < 300; ++i) {
                m.set(r, rng.range(0, cols - 1), from_float(d, sign * 1.5f));
              }
            }
          }
          const Ranking rk = oracle_rank(m, nullptr, largest);
          for (const int64_t k : {int64_t{1}, int64_t{37}, int64_t{100}, int64_t{500}}) {
            const Expected e = oracle_from_ranking(m, rk, k, nullptr);
            HostCall c = host_call(k, {}, {}, largest, /*sorted=*/true);
            c.threads = 1;
            SCOPED_TRACE(std::string(dtype_name(d)) + " " + kinds[kind] +
                         " cols=" + std::to_string(cols) + " " + c.describe());
            ASSERT_TRUE(run_and_verify(m, c, e));
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Layout: row_stride > cols with poison in the padding, misaligned start.
// ---------------------------------------------------------------------------

using LayoutParam = std::tuple<DType, bool>;
class CpuLayout : public ::testing::TestWithParam<LayoutParam> {};

TEST_P(CpuLayout, StrideAndMisalignedStart) {
  const auto [dtype, largest] = GetParam();
  int variant = 0;
  for (int64_t rows : {1, 3, 17}) {
    for (int64_t cols : {1, 7, 33, 1000}) {
      for (int64_t extra : {0, 1, 3, 64}) {
        for (int64_t offset : {0, 1}) {
          const uint64_t seed =
              seed_of({static_cast<int>(dtype), largest, rows, cols, extra, offset});
          // fill() writes poison (a value that would rank first) into the
          // padding of each row and before the (misaligned) start.
          Matrix m(dtype, rows, cols, cols + extra, offset);
          fill(m, (variant++ % 2) ? Dist::kSpecial : Dist::kRandn, seed, largest);
          ASSERT_EQ(reinterpret_cast<uintptr_t>(m.data()) % elem_bytes(dtype), 0u);
          if (offset) {
            ASSERT_NE(reinterpret_cast<uintptr_t>(m.data()) % 8, 0u);  // really misaligned
          }
          std::vector<int32_t> lengths = make_lengths(rows, cols, seed);
          for (bool use_lengths : {false, true}) {
            const Ranking rk = oracle_rank(m, use_lengths ? lengths.data() : nullptr, largest);
            for (int64_t k : k_values(cols)) {
              const Expected e = oracle_from_ranking(m, rk, k, nullptr);
              for (bool sorted : {true, false}) {
                for (int stride_mode = 0; stride_mode < (extra == 0 ? 2 : 1); ++stride_mode) {
                  HostCall c;
                  c.k = k;
                  c.row_lengths = use_lengths ? lengths.data() : nullptr;
                  c.largest = largest;
                  c.sorted = sorted;
                  c.index_type = (k % 2) ? IndexType::kInt32 : IndexType::kInt64;
                  // With contiguous rows, pass the stride both as 0 and as cols.
                  c.row_stride_param = extra == 0 ? (stride_mode ? cols : 0) : cols + extra;
                  SCOPED_TRACE("rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
                               " stride=" + std::to_string(cols + extra) +
                               " offset=" + std::to_string(offset) + " " + c.describe());
                  ASSERT_TRUE(run_and_verify(m, c, e));
                }
              }
            }
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, CpuLayout,
                         ::testing::Combine(::testing::Values(DType::kFloat32, DType::kFloat16,
                                                              DType::kBFloat16),
                                            ::testing::Bool()),
                         [](const ::testing::TestParamInfo<LayoutParam>& info) {
                           return std::string(dtype_name(std::get<0>(info.param))) +
                                  (std::get<1>(info.param) ? "_largest" : "_smallest");
                         });

// ---------------------------------------------------------------------------
// Edge cases.
// ---------------------------------------------------------------------------

TEST(CpuTopK, HandWrittenSpecialValues) {
  for (DType d : kDTypes) {
    const SpecialRow s = special_row(d);
    const int64_t cols = static_cast<int64_t>(s.bits.size());
    // Two identical rows, the second misaligned by one element with a stride.
    Matrix m(d, 2, cols, cols + 3, 1);
    fill(m, Dist::kRandn, 1, true);
    for (int64_t r = 0; r < 2; ++r) {
      for (int64_t c = 0; c < cols; ++c) m.set(r, c, s.bits[static_cast<size_t>(c)]);
    }
    for (bool largest : {true, false}) {
      const auto& order = largest ? s.largest_order : s.smallest_order;
      for (int64_t k : {int64_t{1}, int64_t{4}, int64_t{9}, cols}) {
        // The expectation straight from the hand-written order.
        Expected e;
        e.dtype = d;
        e.largest = largest;
        e.rows = 2;
        e.k = k;
        e.k_eff = {k, k};
        for (int64_t r = 0; r < 2; ++r) {
          for (int64_t j = 0; j < k; ++j) {
            e.indices.push_back(order[static_cast<size_t>(j)]);
            e.values.push_back(s.bits[static_cast<size_t>(order[static_cast<size_t>(j)])]);
          }
        }
        for (bool sorted : {true, false}) {
          for (IndexType it : kIndexTypes) {
            HostCall c;
            c.k = k;
            c.largest = largest;
            c.sorted = sorted;
            c.index_type = it;
            SCOPED_TRACE(std::string(dtype_name(d)) + " " + c.describe());
            ASSERT_TRUE(run_and_verify(m, c, e));
          }
        }
      }
    }
  }
}

TEST(CpuTopK, NullValuesOrNullIndices) {
  for (DType d : kDTypes) {
    Matrix m(d, 6, 300);
    fill(m, Dist::kFewDistinct, 11, true);
    for (bool largest : {true, false}) {
      const Expected e = oracle_topk(m, 20, nullptr, nullptr, largest);
      for (bool sorted : {true, false}) {
        for (IndexType it : kIndexTypes) {
          for (int which = 0; which < 2; ++which) {
            HostCall c;
            c.k = 20;
            c.largest = largest;
            c.sorted = sorted;
            c.index_type = it;
            c.want_values = which == 0;
            c.want_indices = which == 1;
            SCOPED_TRACE(std::string(dtype_name(d)) + " " + c.describe());
            ASSERT_TRUE(run_and_verify(m, c, e));
          }
        }
      }
    }
  }
}

/// Rows whose elements all rank equal: the selection is indices 0..k-1, and
/// the values are those elements' bits.
TEST(CpuTopK, AllEqualRowsSelectTheLowestIndices) {
  for (DType d : kDTypes) {
    const auto nans = nan_patterns(d);
    // Constant rows of several kinds; the last one holds NaNs of different
    // signs and payloads, which all rank equal.
    const std::vector<uint32_t> constants = {from_float(d, 0.5f), pos_zero_bits(d),
                                             neg_zero_bits(d),    pos_inf_bits(d),
                                             neg_inf_bits(d),     nans[0]};
    for (int64_t cols : {1, 7, 100, 4099}) {
      const int64_t rows = static_cast<int64_t>(constants.size()) + 1;
      Matrix m(d, rows, cols);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          m.set(r, c,
                r < static_cast<int64_t>(constants.size())
                    ? constants[static_cast<size_t>(r)]
                    : nans[static_cast<size_t>(c) % nans.size()]);
        }
      }
      for (bool largest : {true, false}) {
        for (int64_t k : k_values(cols)) {
          for (bool sorted : {true, false}) {
            for (IndexType it : kIndexTypes) {
              HostCall c;
              c.k = k;
              c.largest = largest;
              c.sorted = sorted;
              c.index_type = it;
              SCOPED_TRACE(std::string(dtype_name(d)) + " cols=" + std::to_string(cols) + " " +
                           c.describe());
              HostResult res = call_host(m, c);
              ASSERT_TRUE(res.status.ok()) << res.status.message();
              ASSERT_TRUE(res.values.guards_intact());
              ASSERT_TRUE(res.indices.guards_intact());
              for (int64_t r = 0; r < rows; ++r) {
                std::vector<int64_t> got;
                for (int64_t j = 0; j < k; ++j) {
                  const size_t s = static_cast<size_t>(r * k + j);
                  const int64_t idx = read_index(res.indices.data(), it, s);
                  if (sorted) {
                    ASSERT_EQ(idx, j) << "row " << r;
                  }
                  ASSERT_GE(idx, 0);
                  ASSERT_LT(idx, k);
                  ASSERT_EQ(read_value(res.values.data(), d, s), m.get(r, idx))
                      << "row " << r << " slot " << j << ": value bits not copied";
                  got.push_back(idx);
                }
                std::sort(got.begin(), got.end());
                for (int64_t j = 0; j < k; ++j) ASSERT_EQ(got[static_cast<size_t>(j)], j);
              }
            }
          }
        }
      }
    }
  }
}

/// A padded vocabulary: valid logits, then -inf. When k exceeds the valid
/// count, the -inf padding is selected from its lowest index on.
TEST(CpuTopK, NegInfPaddedVocabulary) {
  for (DType d : kDTypes) {
    const int64_t cols = 1000, valid = 10, k = 50;
    Matrix m(d, 3, cols);
    fill(m, Dist::kRandn, 21, true);
    for (int64_t r = 0; r < 3; ++r) {
      for (int64_t c = valid; c < cols; ++c) m.set(r, c, neg_inf_bits(d));
    }
    for (bool sorted : {true, false}) {
      HostCall c;
      c.k = k;
      c.sorted = sorted;
      HostResult res = call_host(m, c);
      ASSERT_TRUE(res.status.ok()) << res.status.message();
      for (int64_t r = 0; r < 3; ++r) {
        std::vector<int64_t> idx;
        for (int64_t j = 0; j < k; ++j) {
          idx.push_back(
              read_index(res.indices.data(), IndexType::kInt64, static_cast<size_t>(r * k + j)));
        }
        if (sorted) {
          for (int64_t j = valid; j < k; ++j) {
            EXPECT_EQ(idx[static_cast<size_t>(j)], j) << "row " << r << " slot " << j;
            EXPECT_EQ(read_value(res.values.data(), d, static_cast<size_t>(r * k + j)),
                      neg_inf_bits(d));
          }
        }
        std::sort(idx.begin(), idx.end());
        for (int64_t j = 0; j < k; ++j) EXPECT_EQ(idx[static_cast<size_t>(j)], j);
      }
      ASSERT_TRUE(check_output(oracle_topk(m, k, nullptr, nullptr, true), sorted, res.values.data(),
                               res.indices.data(), IndexType::kInt64));
    }
    // Smallest: the -inf padding ranks first, lowest index first.
    HostCall c;
    c.k = k;
    c.largest = false;
    HostResult res = call_host(m, c);
    ASSERT_TRUE(res.status.ok());
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(read_index(res.indices.data(), IndexType::kInt64, static_cast<size_t>(j)),
                valid + j);
    }
    // The real thing: a 50304-wide vocabulary with 50257 valid entries.
    Matrix big(d, 4, 50304);
    fill(big, Dist::kRandn, 22, true);
    for (int64_t r = 0; r < 4; ++r) {
      for (int64_t col = 50257; col < 50304; ++col) big.set(r, col, neg_inf_bits(d));
    }
    for (bool largest : {true, false}) {
      const Ranking rk = oracle_rank(big, nullptr, largest);
      for (int64_t kk : {1, 50, 100}) {
        HostCall cc;
        cc.k = kk;
        cc.largest = largest;
        SCOPED_TRACE(std::string(dtype_name(d)) + " 4x50304 " + cc.describe());
        ASSERT_TRUE(run_and_verify(big, cc, oracle_from_ranking(big, rk, kk, nullptr)));
      }
    }
  }
}

/// bf16 with five distinct values: nearly everything ties.
TEST(CpuTopK, LowEntropyBf16) {
  Matrix m(DType::kBFloat16, 8, 32000);
  fill(m, Dist::kFewDistinct, 31, true);
  for (bool largest : {true, false}) {
    const Ranking rk = oracle_rank(m, nullptr, largest);
    for (int64_t k : {1, 100, 6000, 32000}) {
      const Expected e = oracle_from_ranking(m, rk, k, nullptr);
      for (bool sorted : {true, false}) {
        HostCall c;
        c.k = k;
        c.largest = largest;
        c.sorted = sorted;
        SCOPED_TRACE(c.describe());
        HostResult res = call_host(m, c);
        ASSERT_TRUE(verify(res, c, e));
        if (!sorted) continue;
        // Direct check of the tie rule: within a run of equal values the
        // indices increase.
        for (int64_t r = 0; r < 8; ++r) {
          for (int64_t j = 1; j < k; ++j) {
            const size_t s = static_cast<size_t>(r * k + j);
            if (read_value(res.values.data(), DType::kBFloat16, s) ==
                read_value(res.values.data(), DType::kBFloat16, s - 1)) {
              ASSERT_GT(read_index(res.indices.data(), IndexType::kInt64, s),
                        read_index(res.indices.data(), IndexType::kInt64, s - 1));
            }
          }
        }
      }
    }
  }
}

TEST(CpuTopK, ColsNotMultipleOfEight) {
  std::vector<int64_t> cols_list;
  for (int64_t c = 1; c <= 17; ++c) cols_list.push_back(c);
  for (int64_t c : {31, 33, 63, 65, 127, 129, 255, 257, 1023, 1025}) cols_list.push_back(c);
  for (DType d : kDTypes) {
    for (int64_t cols : cols_list) {
      for (int64_t offset : {0, 1}) {
        Matrix m(d, 3, cols, 0, offset);
        fill(m, Dist::kSpecial, seed_of({static_cast<int>(d), cols, offset}), true);
        for (bool largest : {true, false}) {
          const Ranking rk = oracle_rank(m, nullptr, largest);
          for (int64_t k : {int64_t{1}, (cols + 1) / 2, cols}) {
            for (bool sorted : {true, false}) {
              HostCall c;
              c.k = k;
              c.largest = largest;
              c.sorted = sorted;
              SCOPED_TRACE(std::string(dtype_name(d)) + " cols=" + std::to_string(cols) +
                           " offset=" + std::to_string(offset) + " " + c.describe());
              ASSERT_TRUE(run_and_verify(m, c, oracle_from_ranking(m, rk, k, nullptr)));
            }
          }
        }
      }
    }
  }
}

/// k == cols: the sorted output is a full permutation of the row.
TEST(CpuTopK, KEqualsColsIsAFullSort) {
  for (DType d : kDTypes) {
    for (int64_t cols : {1, 2, 8, 9, 100, 4099}) {
      Matrix m(d, 2, cols);
      fill(m, Dist::kSpecial, seed_of({static_cast<int>(d), cols}), true);
      for (bool largest : {true, false}) {
        HostCall c;
        c.k = cols;
        c.largest = largest;
        HostResult res = call_host(m, c);
        ASSERT_TRUE(verify(res, c, oracle_topk(m, cols, nullptr, nullptr, largest)));
        for (int64_t r = 0; r < 2; ++r) {
          std::vector<int64_t> idx;
          for (int64_t j = 0; j < cols; ++j) {
            idx.push_back(read_index(res.indices.data(), IndexType::kInt64,
                                     static_cast<size_t>(r * cols + j)));
          }
          std::sort(idx.begin(), idx.end());
          for (int64_t j = 0; j < cols; ++j) ASSERT_EQ(idx[static_cast<size_t>(j)], j);
        }
      }
    }
  }
}

/// The sentinel slots, checked against hand-written bit patterns.
TEST(CpuTopK, SentinelSlotsAreExactlyAsDocumented) {
  struct Sentinels {
    DType d;
    uint32_t largest, smallest;
  };
  const Sentinels table[] = {{DType::kFloat32, 0xff800000u, 0x7f800000u},
                             {DType::kFloat16, 0xfc00u, 0x7c00u},
                             {DType::kBFloat16, 0xff80u, 0x7f80u}};
  const std::vector<int32_t> kpr = {0, 3, 6, 2, 6};
  const std::vector<int32_t> lengths = {10, 1, 4, 0, 10};
  const int64_t expect_k[] = {0, 1, 4, 0, 6};
  for (const Sentinels& s : table) {
    Matrix m(s.d, 5, 10);
    fill(m, Dist::kRandn, 41, true);
    for (bool largest : {true, false}) {
      for (IndexType it : kIndexTypes) {
        for (bool sorted : {true, false}) {
          HostCall c;
          c.k = 6;
          c.k_per_row = kpr.data();
          c.row_lengths = lengths.data();
          c.largest = largest;
          c.sorted = sorted;
          c.index_type = it;
          SCOPED_TRACE(std::string(dtype_name(s.d)) + " " + c.describe());
          HostResult res = call_host(m, c);
          ASSERT_TRUE(res.status.ok()) << res.status.message();
          ASSERT_TRUE(res.values.guards_intact());
          ASSERT_TRUE(res.indices.guards_intact());
          for (int64_t r = 0; r < 5; ++r) {
            for (int64_t j = 0; j < 6; ++j) {
              const size_t slot = static_cast<size_t>(r * 6 + j);
              const uint32_t v = read_value(res.values.data(), s.d, slot);
              if (j >= expect_k[r]) {
                EXPECT_EQ(v, largest ? s.largest : s.smallest) << "row " << r << " slot " << j;
                if (it == IndexType::kInt64) {
                  int64_t raw;
                  std::memcpy(&raw, static_cast<const uint8_t*>(res.indices.data()) + slot * 8, 8);
                  EXPECT_EQ(static_cast<uint64_t>(raw), 0xffffffffffffffffull);
                } else {
                  int32_t raw;
                  std::memcpy(&raw, static_cast<const uint8_t*>(res.indices.data()) + slot * 4, 4);
                  EXPECT_EQ(static_cast<uint32_t>(raw), 0xffffffffu);
                }
              } else {
                const int64_t idx = read_index(res.indices.data(), it, slot);
                EXPECT_GE(idx, 0);
                EXPECT_LT(idx, lengths[static_cast<size_t>(r)]);
              }
            }
          }
          ASSERT_TRUE(check_output(oracle_topk(m, 6, kpr.data(), lengths.data(), largest), sorted,
                                   res.values.data(), res.indices.data(), it));
        }
      }
    }
  }
}

/// k == 0 and rows == 0 are valid and write nothing; cols == 0 with k == 0 too.
TEST(CpuTopK, EmptyProblemsWriteNothing) {
  for (DType d : kDTypes) {
    Matrix m(d, 4, 16);
    fill(m, Dist::kRandn, 51, true);
    GuardedBuffer v(64, static_cast<size_t>(elem_bytes(d)), kValueFill);
    GuardedBuffer i(64, 8, kIndexFill);
    TopKParams p;
    p.input = m.data();
    p.dtype = d;
    p.rows = 4;
    p.cols = 16;
    p.k = 0;
    p.values = v.data();
    p.indices = i.data();
    std::vector<int32_t> zeros(4, 0);
    for (int variant = 0; variant < 4; ++variant) {
      TopKParams q = p;
      if (variant == 1) {
        q.rows = 0;
        q.k = 3;
      }
      if (variant == 2) {
        q.cols = 0;
        q.k = 0;
      }
      if (variant == 3) q.k_per_row = zeros.data();
      SCOPED_TRACE("variant " + std::to_string(variant));
      for (int threads : {0, 1, 4}) {
        std::size_t bytes = 12345;
        ASSERT_TRUE(fasttopk::host_workspace_size(q, threads, &bytes).ok());
        std::vector<uint64_t> ws(bytes / 8 + 1);
        Status s = fasttopk::topk_host(q, ws.data(), bytes, threads);
        ASSERT_TRUE(s.ok()) << s.message();
        ASSERT_TRUE(v.untouched());
        ASSERT_TRUE(i.untouched());
      }
    }
  }
}

/// A case big enough for topk_host to use several threads; every thread count
/// (also more threads than rows or cores) gives the oracle's result.
TEST(CpuTopK, LargeMultiThreaded) {
  {
    Matrix m(DType::kFloat32, 512, 20000);
    fill(m, Dist::kRandn, 61, true);
    const Expected e = oracle_topk(m, 50, nullptr, nullptr, true);
    for (int threads : {0, 1, 2, 3, 7, 16, 64}) {
      for (bool sorted : {true, false}) {
        HostCall c;
        c.k = 50;
        c.threads = threads;
        c.sorted = sorted;
        SCOPED_TRACE("fp32 512x20000 " + c.describe());
        ASSERT_TRUE(run_and_verify(m, c, e));
      }
    }
  }
  {
    Matrix m(DType::kBFloat16, 512, 20000, 20003, 1);
    fill(m, Dist::kFewDistinct, 62, false);
    const std::vector<int32_t> lengths = make_lengths(512, 20000, 63);
    const std::vector<int32_t> kpr = make_k_per_row(512, 100, 64);
    const Expected e = oracle_topk(m, 100, kpr.data(), lengths.data(), false);
    for (int threads : {0, 5}) {
      for (bool sorted : {true, false}) {
        HostCall c;
        c.k = 100;
        c.k_per_row = kpr.data();
        c.row_lengths = lengths.data();
        c.largest = false;
        c.sorted = sorted;
        c.threads = threads;
        c.index_type = IndexType::kInt32;
        SCOPED_TRACE("bf16 512x20000 " + c.describe());
        ASSERT_TRUE(run_and_verify(m, c, e));
      }
    }
  }
}

/// More threads than rows.
TEST(CpuTopK, ManyThreadsFewRows) {
  Matrix m(DType::kFloat16, 3, 70000);
  fill(m, Dist::kSpecial, 71, true);
  // k = 33 streams (one thread: too little work for more), k = 35000 selects
  // whole rows (a thread a row).
  for (int64_t k : {int64_t{33}, int64_t{35000}}) {
    const Expected e = oracle_topk(m, k, nullptr, nullptr, true);
    for (int threads : {0, 2, 3, 4, 1000}) {
      HostCall c;
      c.k = k;
      c.threads = threads;
      SCOPED_TRACE(c.describe());
      ASSERT_TRUE(run_and_verify(m, c, e));
    }
  }
}

/// The same call 5 times gives bitwise identical output buffers, sorted or
/// not; the sorted result does not depend on the thread count.
TEST(CpuTopK, Repeatability) {
  for (DType d : kDTypes) {
    Matrix m(d, 300, 3000);
    fill(m, Dist::kFewDistinct, 81, true);
    const std::vector<int32_t> lengths = make_lengths(300, 3000, 82);
    for (bool sorted : {true, false}) {
      for (int threads : {0, 1, 3}) {
        HostCall c;
        c.k = 64;
        c.sorted = sorted;
        c.threads = threads;
        c.row_lengths = lengths.data();
        SCOPED_TRACE(std::string(dtype_name(d)) + " " + c.describe());
        const HostResult first = call_host(m, c);
        ASSERT_TRUE(first.status.ok());
        for (int rep = 0; rep < 4; ++rep) {
          const HostResult again = call_host(m, c);
          ASSERT_TRUE(again.status.ok());
          ASSERT_EQ(std::memcmp(first.values.raw(), again.values.raw(), first.values.total_bytes()),
                    0)
              << "values differ on repetition " << rep;
          ASSERT_EQ(
              std::memcmp(first.indices.raw(), again.indices.raw(), first.indices.total_bytes()), 0)
              << "indices differ on repetition " << rep;
        }
        if (sorted) {
          HostCall one = c;
          one.threads = 1;
          const HostResult single = call_host(m, one);
          ASSERT_EQ(
              std::memcmp(first.values.raw(), single.values.raw(), first.values.total_bytes()), 0);
          ASSERT_EQ(
              std::memcmp(first.indices.raw(), single.indices.raw(), first.indices.total_bytes()),
              0);
        }
      }
    }
  }
}

/// A workspace larger than host_workspace_size() is fine.
TEST(CpuTopK, OversizedWorkspace) {
  Matrix m(DType::kFloat32, 16, 5000);
  fill(m, Dist::kRandn, 91, true);
  const Expected e = oracle_topk(m, 10, nullptr, nullptr, true);
  GuardedBuffer v(160, 4, kValueFill), i(160, 8, kIndexFill);
  TopKParams p;
  p.input = m.data();
  p.rows = 16;
  p.cols = 5000;
  p.k = 10;
  p.values = v.data();
  p.indices = i.data();
  std::size_t bytes = 0;
  ASSERT_TRUE(fasttopk::host_workspace_size(p, 2, &bytes).ok());
  std::vector<uint64_t> ws(bytes / 8 + 4096);
  ASSERT_TRUE(fasttopk::topk_host(p, ws.data(), ws.size() * 8, 2).ok());
  ASSERT_TRUE(v.guards_intact());
  ASSERT_TRUE(i.guards_intact());
  ASSERT_TRUE(check_output(e, true, v.data(), i.data(), IndexType::kInt64));
}

TEST(CpuTopK, Info) {
  EXPECT_TRUE(Status().ok());
  EXPECT_EQ(Status().code(), StatusCode::kSuccess);
  const std::string v = fasttopk::version();
  int dots = 0;
  for (char ch : v) {
    if (ch == '.') {
      ++dots;
    } else {
      EXPECT_TRUE(ch >= '0' && ch <= '9') << v;
    }
  }
  EXPECT_EQ(dots, 2) << v;
  std::set<std::string> names;
  for (StatusCode c :
       {StatusCode::kSuccess, StatusCode::kInvalidArgument, StatusCode::kWorkspaceTooSmall,
        StatusCode::kUnsupported, StatusCode::kCudaError}) {
    const std::string n = fasttopk::status_code_name(c);
    EXPECT_FALSE(n.empty());
    EXPECT_TRUE(names.insert(n).second) << "duplicate status name " << n;
  }
}

}  // namespace
}  // namespace fasttopk_test
