// Shared helpers of the fasttopk GoogleTest suites: host fp16/bf16
// conversions, deterministic data generators, guarded output buffers, a
// brute-force oracle written from the contract text (independent of src/),
// and an exact comparison of a top-k result against an expected one.
//
// The oracle deliberately does not use src/keys.hpp: it decodes every element
// to a double, ranks NaN / +-0 / +-inf by the rules of fasttopk.hpp and
// stable-sorts (value, index) pairs, so that a mistake in the library's key
// encoding cannot hide behind the same mistake in the test.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "fasttopk/fasttopk.hpp"

namespace fasttopk_test {

using fasttopk::Algorithm;
using fasttopk::DType;
using fasttopk::IndexType;
using fasttopk::Status;
using fasttopk::StatusCode;
using fasttopk::TopKParams;

// ---------------------------------------------------------------------------
// Bit-level float conversions (host only, no CUDA headers).
// ---------------------------------------------------------------------------

inline uint32_t f32_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  return b;
}

inline float bits_f32(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof(f));
  return f;
}

/// fp32 -> IEEE binary16, round to nearest even; NaN stays NaN (quiet).
inline uint16_t f32_to_f16(float f) {
  const uint32_t x = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x1ffu));
  if (a == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
  const int exp = static_cast<int>(a >> 23) - 127;
  if (exp > 15) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp < -25) return sign;  // below half of the smallest subnormal (also fp32 subnormals)
  const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  const int shift = exp >= -14 ? 13 : 13 + (-14 - exp);  // 13..24
  uint32_t q = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  uint32_t out;
  if (exp >= -14) {
    out = (static_cast<uint32_t>(exp + 14) << 10) + q;  // q carries the implicit bit
    if (out >= 0x7c00u) out = 0x7c00u;
  } else {
    out = q;  // subnormal (q == 0x400 is the smallest normal, encoded the same way)
  }
  return static_cast<uint16_t>(sign | out);
}

/// IEEE binary16 -> fp32, exact.
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0x1f) return bits_f32(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    const float mag = std::ldexp(static_cast<float>(m), -24);
    return sign ? -mag : mag;
  }
  return bits_f32(sign | ((e - 15 + 127) << 23) | (m << 13));
}

/// fp32 -> bfloat16, round to nearest even; NaN stays NaN (quiet).
inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float bf16_to_f32(uint16_t b) { return bits_f32(static_cast<uint32_t>(b) << 16); }

inline int elem_bytes(DType d) { return d == DType::kFloat32 ? 4 : 2; }
inline int index_bytes(IndexType t) { return t == IndexType::kInt64 ? 8 : 4; }

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::kFloat32:
      return "fp32";
    case DType::kFloat16:
      return "fp16";
    case DType::kBFloat16:
      return "bf16";
  }
  return "?";
}

inline const char* index_name(IndexType t) { return t == IndexType::kInt64 ? "i64" : "i32"; }

/// Raw bits (in the low 16 or 32 bits) of `f` rounded to dtype `d`.
inline uint32_t from_float(DType d, float f) {
  switch (d) {
    case DType::kFloat32:
      return f32_bits(f);
    case DType::kFloat16:
      return f32_to_f16(f);
    case DType::kBFloat16:
      return f32_to_bf16(f);
  }
  return 0;
}

/// The exact value of raw bits `b` of dtype `d` (NaN for every NaN).
inline double to_double(DType d, uint32_t b) {
  switch (d) {
    case DType::kFloat32:
      return static_cast<double>(bits_f32(b));
    case DType::kFloat16:
      return static_cast<double>(f16_to_f32(static_cast<uint16_t>(b)));
    case DType::kBFloat16:
      return static_cast<double>(bf16_to_f32(static_cast<uint16_t>(b)));
  }
  return 0.0;
}

// Special bit patterns, written out per dtype.
inline uint32_t pos_inf_bits(DType d) {
  return d == DType::kFloat32 ? 0x7f800000u : d == DType::kFloat16 ? 0x7c00u : 0x7f80u;
}
inline uint32_t neg_inf_bits(DType d) {
  return d == DType::kFloat32 ? 0xff800000u : d == DType::kFloat16 ? 0xfc00u : 0xff80u;
}
inline uint32_t pos_zero_bits(DType) { return 0u; }
inline uint32_t neg_zero_bits(DType d) { return d == DType::kFloat32 ? 0x80000000u : 0x8000u; }

/// The documented sentinel value of unused slots: -inf (largest) / +inf (smallest).
inline uint32_t sentinel_value_bits(DType d, bool largest) {
  return largest ? neg_inf_bits(d) : pos_inf_bits(d);
}

/// A few NaNs of both signs and several payloads. None is all-ones (0xffff /
/// 0xffffffff), which the tests use as the "never written" output pattern.
inline std::vector<uint32_t> nan_patterns(DType d) {
  switch (d) {
    case DType::kFloat32:
      return {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800123u, 0x7fa5a5a5u, 0x7fffffffu};
    case DType::kFloat16:
      return {0x7e00u, 0xfe00u, 0x7c01u, 0xfd23u, 0x7e5au, 0x7fffu};
    case DType::kBFloat16:
      return {0x7fc0u, 0xffc0u, 0x7f81u, 0xff92u, 0x7fa5u, 0x7fffu};
  }
  return {};
}

/// Finite specials: +-0, smallest subnormals, largest finite.
inline std::vector<uint32_t> finite_special_patterns(DType d) {
  switch (d) {
    case DType::kFloat32:
      return {0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x7f7fffffu, 0xff7fffffu};
    case DType::kFloat16:
      return {0x0000u, 0x8000u, 0x0001u, 0x8001u, 0x7bffu, 0xfbffu};
    case DType::kBFloat16:
      return {0x0000u, 0x8000u, 0x0001u, 0x8001u, 0x7f7fu, 0xff7fu};
  }
  return {};
}

/// What the tests write where the library must never read: a value that would
/// rank first if it were read (a NaN for largest, -inf for smallest).
inline uint32_t poison_bits(DType d, bool largest) {
  if (!largest) return neg_inf_bits(d);
  return d == DType::kFloat32 ? 0x7fc0beefu : d == DType::kFloat16 ? 0x7ebeu : 0x7fbeu;
}

inline std::string hex(uint64_t v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%0*llx", digits, static_cast<unsigned long long>(v));
  return buf;
}

inline std::string value_str(DType d, uint32_t bits) {
  std::ostringstream os;
  os << hex(bits, elem_bytes(d) * 2) << " (" << to_double(d, bits) << ")";
  return os.str();
}

// ---------------------------------------------------------------------------
// Deterministic random numbers (portable: no <random> distributions).
// ---------------------------------------------------------------------------

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15ull + 0x1234567ull) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  /// Uniform integer in [lo, hi] (inclusive).
  int64_t range(int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool coin(double p = 0.5) { return uniform() < p; }
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform();
    const double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(6.283185307179586 * u2);
    has_spare_ = true;
    return r * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

inline uint64_t mix_seed(uint64_t a, uint64_t b) {
  Rng r(a ^ (b * 0xd1b54a32d192ed03ull + 0x632be59bd9b4e019ull));
  return r.next();
}

// ---------------------------------------------------------------------------
// Input matrices.
// ---------------------------------------------------------------------------

/// Distributions of the generated rows.
enum class Dist {
  kRandn,            ///< N(0, 1), rounded to the dtype.
  kUniform,          ///< U(-4, 4), rounded to the dtype.
  kAllEqual,         ///< One value per row, repeated.
  kFewDistinct,      ///< Low entropy: 5 distinct values (massive ties).
  kSpecial,          ///< randn with NaNs (+-, payloads), +-inf, +-0, subnormals mixed in.
  kNegInfTail,       ///< randn prefix, then -inf padding (a padded vocabulary).
  kSortedAscending,  ///< randn sorted ascending along the row.
  kSortedDescending  ///< randn sorted descending along the row.
};
constexpr int kDistCount = 8;

inline const char* dist_name(Dist d) {
  switch (d) {
    case Dist::kRandn:
      return "randn";
    case Dist::kUniform:
      return "uniform";
    case Dist::kAllEqual:
      return "all_equal";
    case Dist::kFewDistinct:
      return "few_distinct";
    case Dist::kSpecial:
      return "special";
    case Dist::kNegInfTail:
      return "neginf_tail";
    case Dist::kSortedAscending:
      return "sorted_asc";
    case Dist::kSortedDescending:
      return "sorted_desc";
  }
  return "?";
}

/// A host matrix of raw element bits: `rows` rows of `cols` elements, row r
/// at element offset + r * stride of the storage. Elements of the storage
/// that are not part of a row (the leading `offset` elements and the padding
/// between rows) are "poison" the library must never read.
class Matrix {
 public:
  Matrix() = default;
  Matrix(DType dtype, int64_t rows, int64_t cols, int64_t stride = 0, int64_t offset = 0)
      : dtype_(dtype),
        rows_(rows),
        cols_(cols),
        stride_(stride == 0 ? cols : stride),
        offset_(offset) {
    const int64_t n = span_elems();
    buf_.assign(static_cast<size_t>((n * elem_bytes(dtype) + 7) / 8 + 1), 0);
  }

  DType dtype() const { return dtype_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t stride() const { return stride_; }
  int64_t offset() const { return offset_; }
  int eb() const { return elem_bytes(dtype_); }

  /// Elements from the storage start to the end of the last row.
  int64_t span_elems() const {
    return rows_ == 0 ? offset_ : offset_ + (rows_ - 1) * stride_ + cols_;
  }
  /// Bytes from the storage start to the end of the last row.
  size_t span_bytes() const { return static_cast<size_t>(span_elems()) * eb(); }
  /// Start of the storage (8-byte aligned).
  const uint8_t* storage() const { return reinterpret_cast<const uint8_t*>(buf_.data()); }
  uint8_t* storage() { return reinterpret_cast<uint8_t*>(buf_.data()); }
  /// The `input` pointer to pass: storage + offset elements.
  const void* data() const { return storage() + offset_ * eb(); }

  uint32_t at_elem(int64_t e) const {
    if (eb() == 4) {
      uint32_t v;
      std::memcpy(&v, storage() + e * 4, 4);
      return v;
    }
    uint16_t v;
    std::memcpy(&v, storage() + e * 2, 2);
    return v;
  }
  void set_elem(int64_t e, uint32_t bits) {
    if (eb() == 4) {
      std::memcpy(storage() + e * 4, &bits, 4);
    } else {
      const uint16_t v = static_cast<uint16_t>(bits);
      std::memcpy(storage() + e * 2, &v, 2);
    }
  }
  uint32_t get(int64_t r, int64_t c) const { return at_elem(offset_ + r * stride_ + c); }
  void set(int64_t r, int64_t c, uint32_t bits) { set_elem(offset_ + r * stride_ + c, bits); }

 private:
  DType dtype_ = DType::kFloat32;
  int64_t rows_ = 0, cols_ = 0, stride_ = 0, offset_ = 0;
  std::vector<uint64_t> buf_;
};

/// Fills every row of `m` from distribution `dist` (deterministic in `seed`)
/// and writes poison (see poison_bits) into every storage element that is not
/// part of a row.
inline void fill(Matrix& m, Dist dist, uint64_t seed, bool largest) {
  const DType d = m.dtype();
  const uint32_t poison = poison_bits(d, largest);
  for (int64_t e = 0; e < m.span_elems(); ++e) m.set_elem(e, poison);
  Rng rng(seed);
  const std::vector<uint32_t> nans = nan_patterns(d);
  const std::vector<uint32_t> finite_specials = finite_special_patterns(d);
  const float few[5] = {-2.0f, -0.5f, 0.0f, 0.75f, 3.0f};
  std::vector<float> tmp;
  for (int64_t r = 0; r < m.rows(); ++r) {
    const int64_t n = m.cols();
    switch (dist) {
      case Dist::kRandn:
        for (int64_t c = 0; c < n; ++c)
          m.set(r, c, from_float(d, static_cast<float>(rng.normal())));
        break;
      case Dist::kUniform:
        for (int64_t c = 0; c < n; ++c) {
          m.set(r, c, from_float(d, static_cast<float>(rng.uniform() * 8.0 - 4.0)));
        }
        break;
      case Dist::kAllEqual: {
        const uint32_t v = from_float(d, static_cast<float>(rng.normal()));
        for (int64_t c = 0; c < n; ++c) m.set(r, c, v);
        break;
      }
      case Dist::kFewDistinct:
        for (int64_t c = 0; c < n; ++c) m.set(r, c, from_float(d, few[rng.range(0, 4)]));
        break;
      case Dist::kSpecial:
        for (int64_t c = 0; c < n; ++c) {
          const double u = rng.uniform();
          uint32_t v;
          if (u < 0.10) {
            v = nans[rng.range(0, static_cast<int64_t>(nans.size()) - 1)];
          } else if (u < 0.16) {
            v = pos_inf_bits(d);
          } else if (u < 0.22) {
            v = neg_inf_bits(d);
          } else if (u < 0.34) {
            v = finite_specials[rng.range(0, static_cast<int64_t>(finite_specials.size()) - 1)];
          } else {
            v = from_float(d, static_cast<float>(rng.normal()));
          }
          m.set(r, c, v);
        }
        break;
      case Dist::kNegInfTail: {
        // A valid prefix of 3/4..all of the row, then -inf padding.
        const int64_t valid = rng.range(std::max<int64_t>(1, (3 * n) / 4), n);
        for (int64_t c = 0; c < n; ++c) {
          m.set(r, c,
                c < valid ? from_float(d, static_cast<float>(rng.normal())) : neg_inf_bits(d));
        }
        break;
      }
      case Dist::kSortedAscending:
      case Dist::kSortedDescending: {
        tmp.resize(static_cast<size_t>(n));
        for (auto& x : tmp) x = static_cast<float>(rng.normal());
        if (dist == Dist::kSortedAscending) {
          std::sort(tmp.begin(), tmp.end());
        } else {
          std::sort(tmp.begin(), tmp.end(), [](float a, float b) { return a > b; });
        }
        for (int64_t c = 0; c < n; ++c) m.set(r, c, from_float(d, tmp[static_cast<size_t>(c)]));
        break;
      }
    }
  }
}

/// Writes poison into the elements of each row at or past its length.
inline void poison_tails(Matrix& m, const std::vector<int32_t>& lengths, bool largest) {
  const uint32_t poison = poison_bits(m.dtype(), largest);
  for (int64_t r = 0; r < m.rows(); ++r) {
    const int64_t len = std::clamp<int64_t>(lengths[static_cast<size_t>(r)], 0, m.cols());
    for (int64_t c = len; c < m.cols(); ++c) m.set(r, c, poison);
  }
}

/// Which optional per-row arrays a case passes.
enum class PerRow { kNone, kK, kLengths, kBoth };
constexpr int kPerRowCount = 4;

inline const char* per_row_name(PerRow p) {
  switch (p) {
    case PerRow::kNone:
      return "none";
    case PerRow::kK:
      return "k_per_row";
    case PerRow::kLengths:
      return "lengths";
    case PerRow::kBoth:
      return "both";
  }
  return "?";
}
inline bool has_k(PerRow p) { return p == PerRow::kK || p == PerRow::kBoth; }
inline bool has_lengths(PerRow p) { return p == PerRow::kLengths || p == PerRow::kBoth; }

/// Per-row k values in [0, k]: a mix of random values and both extremes.
inline std::vector<int32_t> make_k_per_row(int64_t rows, int64_t k, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    switch (r % 4) {
      case 1:
        v[static_cast<size_t>(r)] = static_cast<int32_t>(k);
        break;
      case 2:
        v[static_cast<size_t>(r)] = 0;
        break;
      default:
        v[static_cast<size_t>(r)] = static_cast<int32_t>(rng.range(0, k));
    }
  }
  return v;
}

/// Per-row lengths in [0, cols]: a mix of random values and both extremes.
inline std::vector<int32_t> make_lengths(int64_t rows, int64_t cols, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    switch (r % 4) {
      case 1:
        v[static_cast<size_t>(r)] = static_cast<int32_t>(cols);
        break;
      case 2:
        v[static_cast<size_t>(r)] = 0;
        break;
      default:
        v[static_cast<size_t>(r)] = static_cast<int32_t>(rng.range(0, cols));
    }
  }
  return v;
}

// ---------------------------------------------------------------------------
// The oracle.
// ---------------------------------------------------------------------------

/// One element as the contract sees it.
struct OracleKey {
  bool nan;
  double value;   ///< exact value (unused for NaN)
  bool negative;  ///< sign bit (distinguishes -0.0 from +0.0)
};

inline OracleKey oracle_key(DType d, uint32_t bits) {
  const double v = to_double(d, bits);
  return OracleKey{std::isnan(v), v, std::signbit(v)};
}

/// Whether `a` ranks strictly before `b`, from the contract text:
/// every NaN ranks above +inf and NaNs are equal to each other; +0.0 ranks
/// above -0.0; for smallest the order of non-NaN values is reversed and NaNs
/// rank last. (Equal keys are ordered by index by the stable sort.)
inline bool oracle_ranks_before(const OracleKey& a, const OracleKey& b, bool largest) {
  if (a.nan || b.nan) {
    if (a.nan && b.nan) return false;
    return largest ? a.nan : b.nan;
  }
  if (a.value != b.value) return largest ? a.value > b.value : a.value < b.value;
  // Equal values: only +0.0 vs -0.0 can differ here.
  if (a.negative == b.negative) return false;
  return largest ? !a.negative : a.negative;
}

/// Row r's first `n` elements, in rank order (a stable sort of the indices).
inline std::vector<int32_t> oracle_rank_row(const Matrix& m, int64_t r, int64_t n, bool largest) {
  std::vector<OracleKey> keys(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c) keys[static_cast<size_t>(c)] = oracle_key(m.dtype(), m.get(r, c));
  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c) order[static_cast<size_t>(c)] = static_cast<int32_t>(c);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return oracle_ranks_before(keys[static_cast<size_t>(a)], keys[static_cast<size_t>(b)], largest);
  });
  return order;
}

/// The full ranking of each row (its considered prefix), reusable for every k.
struct Ranking {
  bool largest = true;
  std::vector<std::vector<int32_t>> order;  ///< per row
};

inline Ranking oracle_rank(const Matrix& m, const int32_t* row_lengths, bool largest) {
  Ranking rk;
  rk.largest = largest;
  rk.order.resize(static_cast<size_t>(m.rows()));
  for (int64_t r = 0; r < m.rows(); ++r) {
    const int64_t n = row_lengths ? row_lengths[r] : m.cols();
    rk.order[static_cast<size_t>(r)] = oracle_rank_row(m, r, n, largest);
  }
  return rk;
}

/// An expected (canonical, sorted) top-k result.
struct Expected {
  DType dtype = DType::kFloat32;
  bool largest = true;
  int64_t rows = 0;
  int64_t k = 0;
  std::vector<int64_t> k_eff;    ///< [rows]: slots holding selected elements
  std::vector<uint32_t> values;  ///< [rows * k] raw bits
  std::vector<int64_t> indices;  ///< [rows * k]
};

/// The expected result from a ranking: the first k_i of each row, then sentinels.
inline Expected oracle_from_ranking(const Matrix& m, const Ranking& rk, int64_t k,
                                    const int32_t* k_per_row) {
  Expected e;
  e.dtype = m.dtype();
  e.largest = rk.largest;
  e.rows = m.rows();
  e.k = k;
  e.k_eff.resize(static_cast<size_t>(m.rows()));
  e.values.assign(static_cast<size_t>(m.rows() * k), sentinel_value_bits(m.dtype(), rk.largest));
  e.indices.assign(static_cast<size_t>(m.rows() * k), -1);
  for (int64_t r = 0; r < m.rows(); ++r) {
    const auto& order = rk.order[static_cast<size_t>(r)];
    const int64_t kr = k_per_row ? k_per_row[r] : k;
    const int64_t ke = std::min<int64_t>(kr, static_cast<int64_t>(order.size()));
    e.k_eff[static_cast<size_t>(r)] = ke;
    for (int64_t j = 0; j < ke; ++j) {
      const int32_t idx = order[static_cast<size_t>(j)];
      e.indices[static_cast<size_t>(r * k + j)] = idx;
      e.values[static_cast<size_t>(r * k + j)] = m.get(r, idx);
    }
  }
  return e;
}

inline Expected oracle_topk(const Matrix& m, int64_t k, const int32_t* k_per_row,
                            const int32_t* row_lengths, bool largest) {
  return oracle_from_ranking(m, oracle_rank(m, row_lengths, largest), k, k_per_row);
}

// ---------------------------------------------------------------------------
// Output buffers with guard zones.
// ---------------------------------------------------------------------------

/// Output fill patterns: values 0xff.. (a NaN no generator produces), indices
/// 0x7f.. (a huge positive index, never valid).
constexpr uint8_t kValueFill = 0xff;
constexpr uint8_t kIndexFill = 0x7f;

/// `count` elements of `elem_bytes` each, with kGuard bytes before and after;
/// everything starts as `fill`.
class GuardedBuffer {
 public:
  static constexpr size_t kGuard = 64;
  GuardedBuffer() = default;
  GuardedBuffer(size_t count, size_t elem_bytes, uint8_t fill)
      : count_(count), elem_bytes_(elem_bytes), fill_(fill) {
    storage_.assign((total_bytes() + 7) / 8, 0);
    refill();
  }
  size_t count() const { return count_; }
  size_t elem_bytes() const { return elem_bytes_; }
  uint8_t fill_byte() const { return fill_; }
  size_t total_bytes() const { return count_ * elem_bytes_ + 2 * kGuard; }
  uint8_t* raw() { return reinterpret_cast<uint8_t*>(storage_.data()); }
  const uint8_t* raw() const { return reinterpret_cast<const uint8_t*>(storage_.data()); }
  void* data() { return raw() + kGuard; }
  const void* data() const { return raw() + kGuard; }
  void refill() { std::memset(raw(), fill_, total_bytes()); }

  /// The guard zones still hold the fill byte.
  ::testing::AssertionResult guards_intact() const {
    const size_t end = kGuard + count_ * elem_bytes_;
    for (size_t i = 0; i < total_bytes(); ++i) {
      if (i >= kGuard && i < end) continue;
      if (raw()[i] != fill_) {
        return ::testing::AssertionFailure()
               << "guard byte " << (i < kGuard ? "before" : "after") << " the output ("
               << (i < kGuard ? static_cast<int64_t>(kGuard - i) : static_cast<int64_t>(i - end))
               << " bytes out) was overwritten: " << hex(raw()[i], 2);
      }
    }
    return ::testing::AssertionSuccess();
  }
  /// Nothing at all was written (guards and interior hold the fill byte).
  ::testing::AssertionResult untouched() const {
    for (size_t i = 0; i < total_bytes(); ++i) {
      if (raw()[i] != fill_) {
        return ::testing::AssertionFailure()
               << "byte " << static_cast<int64_t>(i) - static_cast<int64_t>(kGuard)
               << " of the output was written although the call must not write";
      }
    }
    return ::testing::AssertionSuccess();
  }

 private:
  size_t count_ = 0, elem_bytes_ = 0;
  uint8_t fill_ = 0;
  std::vector<uint64_t> storage_;
};

inline uint32_t read_value(const void* p, DType d, size_t i) {
  if (elem_bytes(d) == 4) {
    uint32_t v;
    std::memcpy(&v, static_cast<const uint8_t*>(p) + i * 4, 4);
    return v;
  }
  uint16_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(p) + i * 2, 2);
  return v;
}

inline int64_t read_index(const void* p, IndexType t, size_t i) {
  if (t == IndexType::kInt64) {
    int64_t v;
    std::memcpy(&v, static_cast<const uint8_t*>(p) + i * 8, 8);
    return v;
  }
  int32_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(p) + i * 4, 4);
  return v;
}

/// Compares an actual result with `e`, exactly: values bitwise, indices
/// exactly. sorted: slot by slot. Unsorted: the first k_i slots of each row
/// must hold the same multiset of (index, value) as expected (compared after
/// sorting both canonically) and the slots >= k_i exactly the sentinels.
/// `values` / `indices` may be null (not requested).
inline ::testing::AssertionResult check_output(const Expected& e, bool sorted, const void* values,
                                               const void* indices, IndexType index_type) {
  const DType d = e.dtype;
  const uint32_t sentinel = sentinel_value_bits(d, e.largest);
  std::vector<std::pair<int64_t, uint32_t>> got, want;
  std::vector<uint32_t> got_v, want_v;
  for (int64_t r = 0; r < e.rows; ++r) {
    const int64_t ke = e.k_eff[static_cast<size_t>(r)];
    // Sentinel slots, identical in both modes.
    for (int64_t j = ke; j < e.k; ++j) {
      const size_t s = static_cast<size_t>(r * e.k + j);
      if (values && read_value(values, d, s) != sentinel) {
        return ::testing::AssertionFailure()
               << "row " << r << " slot " << j << " (k_i = " << ke << "): value "
               << value_str(d, read_value(values, d, s)) << ", expected the sentinel "
               << value_str(d, sentinel);
      }
      if (indices && read_index(indices, index_type, s) != -1) {
        return ::testing::AssertionFailure()
               << "row " << r << " slot " << j << " (k_i = " << ke << "): index "
               << read_index(indices, index_type, s) << ", expected the sentinel -1";
      }
    }
    if (sorted) {
      for (int64_t j = 0; j < ke; ++j) {
        const size_t s = static_cast<size_t>(r * e.k + j);
        if (indices && read_index(indices, index_type, s) != e.indices[s]) {
          return ::testing::AssertionFailure()
                 << "row " << r << " slot " << j << ": index " << read_index(indices, index_type, s)
                 << ", expected " << e.indices[s] << " (expected value "
                 << value_str(d, e.values[s]) << ")";
        }
        if (values && read_value(values, d, s) != e.values[s]) {
          return ::testing::AssertionFailure()
                 << "row " << r << " slot " << j << ": value "
                 << value_str(d, read_value(values, d, s)) << ", expected "
                 << value_str(d, e.values[s]) << " (expected index " << e.indices[s] << ")";
        }
      }
      continue;
    }
    // Unsorted: compare as multisets.
    const size_t base = static_cast<size_t>(r * e.k);
    if (indices) {
      got.clear();
      want.clear();
      for (int64_t j = 0; j < ke; ++j) {
        const size_t s = base + static_cast<size_t>(j);
        got.emplace_back(read_index(indices, index_type, s),
                         values ? read_value(values, d, s) : 0u);
        want.emplace_back(e.indices[s], values ? e.values[s] : 0u);
      }
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
      for (size_t j = 0; j < got.size(); ++j) {
        if (got[j] != want[j]) {
          return ::testing::AssertionFailure()
                 << "row " << r << " (unsorted, k_i = " << ke << "): after sorting by index, "
                 << "element " << j << " is (index " << got[j].first << ", value "
                 << (values ? value_str(d, got[j].second) : std::string("-"))
                 << "), expected (index " << want[j].first << ", value "
                 << (values ? value_str(d, want[j].second) : std::string("-")) << ")";
        }
      }
    } else if (values) {
      got_v.clear();
      want_v.clear();
      for (int64_t j = 0; j < ke; ++j) {
        got_v.push_back(read_value(values, d, base + static_cast<size_t>(j)));
        want_v.push_back(e.values[base + static_cast<size_t>(j)]);
      }
      std::sort(got_v.begin(), got_v.end());
      std::sort(want_v.begin(), want_v.end());
      for (size_t j = 0; j < got_v.size(); ++j) {
        if (got_v[j] != want_v[j]) {
          return ::testing::AssertionFailure()
                 << "row " << r << " (unsorted, values only, k_i = " << ke
                 << "): the multisets of value bits differ at sorted position " << j << ": "
                 << value_str(d, got_v[j]) << " vs expected " << value_str(d, want_v[j]);
        }
      }
    }
  }
  return ::testing::AssertionSuccess();
}

/// An Expected built from a sorted result with both outputs (e.g. topk_host's).
inline Expected expected_from_output(DType d, bool largest, int64_t rows, int64_t k,
                                     const void* values, const void* indices,
                                     IndexType index_type) {
  Expected e;
  e.dtype = d;
  e.largest = largest;
  e.rows = rows;
  e.k = k;
  e.k_eff.assign(static_cast<size_t>(rows), 0);
  e.values.resize(static_cast<size_t>(rows * k));
  e.indices.resize(static_cast<size_t>(rows * k));
  for (int64_t r = 0; r < rows; ++r) {
    int64_t ke = 0;
    for (int64_t j = 0; j < k; ++j) {
      const size_t s = static_cast<size_t>(r * k + j);
      e.values[s] = read_value(values, d, s);
      e.indices[s] = read_index(indices, index_type, s);
      if (e.indices[s] != -1) ke = j + 1;
    }
    e.k_eff[static_cast<size_t>(r)] = ke;
  }
  return e;
}

// ---------------------------------------------------------------------------
// Running the CPU path.
// ---------------------------------------------------------------------------

/// topk_host with a workspace of exactly host_workspace_size() bytes, filled
/// with garbage (the contract promises nothing about its contents; the
/// Python binding passes it uninitialised) and followed by guard words: a
/// write past the workspace is a test failure.
inline Status run_host(const TopKParams& p, int num_threads) {
  constexpr uint64_t kWorkspaceFill = 0xa5a5a5a5a5a5a5a5ull;
  constexpr uint64_t kWorkspaceGuard = 0x5a5a5a5a5a5a5a5aull;
  constexpr std::size_t kGuardWords = 64;
  std::size_t bytes = 0;
  Status s = fasttopk::host_workspace_size(p, num_threads, &bytes);
  if (!s.ok()) return s;
  const std::size_t words = (bytes + 7) / 8;
  std::vector<uint64_t> ws(words + kGuardWords, kWorkspaceGuard);
  std::fill(ws.begin(), ws.begin() + static_cast<std::ptrdiff_t>(words), kWorkspaceFill);
  s = fasttopk::topk_host(p, bytes ? ws.data() : nullptr, bytes, num_threads);
  for (std::size_t i = words; i < ws.size(); ++i) {
    if (ws[i] != kWorkspaceGuard) {
      ADD_FAILURE() << "topk_host wrote past its " << bytes << "-byte workspace (word " << i << ")";
      break;
    }
  }
  return s;
}

/// The CPU path's sorted result with both outputs (int64), as an Expected.
/// Used as the reference for shapes too big for the brute-force oracle.
inline ::testing::AssertionResult host_reference(TopKParams p, Expected* out) {
  p.sorted = true;
  p.index_type = IndexType::kInt64;
  p.algorithm = Algorithm::kAuto;
  GuardedBuffer v(static_cast<size_t>(p.rows * p.k), static_cast<size_t>(elem_bytes(p.dtype)),
                  kValueFill);
  GuardedBuffer i(static_cast<size_t>(p.rows * p.k), 8, kIndexFill);
  p.values = v.data();
  p.indices = i.data();
  Status s = run_host(p, 0);
  if (!s.ok()) {
    return ::testing::AssertionFailure() << "topk_host reference failed: " << s.message();
  }
  *out =
      expected_from_output(p.dtype, p.largest, p.rows, p.k, v.data(), i.data(), IndexType::kInt64);
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------
// Misc.
// ---------------------------------------------------------------------------

inline int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::atoi(v);
}

inline uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 0);
}

/// The message of `s` contains every string of `needles`.
inline ::testing::AssertionResult message_names(const Status& s,
                                                std::initializer_list<std::string> needles) {
  for (const auto& n : needles) {
    if (s.message().find(n) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "message \"" << s.message() << "\" does not mention \"" << n << "\"";
    }
  }
  return ::testing::AssertionSuccess();
}

inline std::string code_str(StatusCode c) {
  return std::string(fasttopk::status_code_name(c)) + " (" + std::to_string(static_cast<int>(c)) +
         ")";
}

/// Every GPU algorithm the library enumerates (kAuto excluded).
inline std::vector<Algorithm> gpu_algorithms() {
  std::vector<Algorithm> v;
  for (int i = 0; i < fasttopk::algorithm_count(); ++i) v.push_back(fasttopk::algorithm_at(i));
  return v;
}

// ---------------------------------------------------------------------------
// The parameter space of the CPU and GPU matrix tests (the same on both, so
// that every GPU case has its CPU twin): dtype x rows x cols x largest x
// per-row option x distribution, and the test name of one point.
// ---------------------------------------------------------------------------
using MatrixParam = std::tuple<DType, int64_t, int64_t, bool, PerRow, Dist>;

inline auto matrix_params() {
  return ::testing::Combine(
      ::testing::Values(DType::kFloat32, DType::kFloat16, DType::kBFloat16),
      ::testing::Values<int64_t>(1, 3, 64), ::testing::Values<int64_t>(1, 7, 33, 1000, 4099),
      ::testing::Bool(),
      ::testing::Values(PerRow::kNone, PerRow::kK, PerRow::kLengths, PerRow::kBoth),
      ::testing::Values(Dist::kRandn, Dist::kSpecial, Dist::kFewDistinct));
}

inline std::string matrix_name(const ::testing::TestParamInfo<MatrixParam>& info) {
  const auto [dtype, rows, cols, largest, per_row, dist] = info.param;
  std::ostringstream os;
  os << dtype_name(dtype) << "_r" << rows << "_c" << cols << (largest ? "_largest" : "_smallest")
     << "_" << per_row_name(per_row) << "_" << dist_name(dist);
  return os.str();
}

}  // namespace fasttopk_test
