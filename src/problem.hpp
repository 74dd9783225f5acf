// The validated, normalised form of TopKParams that the CPU path and every
// GPU algorithm receive. Building one is the only place arguments are checked
// (validate.cpp), so algorithms may assume every invariant listed here.
#pragma once

#include <cstdint>

#include "fasttopk/fasttopk.hpp"

namespace fasttopk::detail {

struct Problem {
  const void* input = nullptr;
  DType dtype = DType::kFloat32;
  int64_t rows = 0;        ///< >= 0, <= INT32_MAX
  int64_t cols = 0;        ///< >= 0, <= INT32_MAX
  int64_t row_stride = 0;  ///< >= cols (0 resolved to cols)
  int64_t k = 0;           ///< 0 <= k <= cols
  const int32_t* k_per_row = nullptr;
  const int32_t* row_lengths = nullptr;
  bool largest = true;
  bool sorted = true;
  void* values = nullptr;
  void* indices = nullptr;
  IndexType index_type = IndexType::kInt64;
  Algorithm algorithm = Algorithm::kAuto;

  /// Nothing to compute or write: rows == 0 or k == 0.
  bool empty() const { return rows == 0 || k == 0; }
  int element_bytes() const { return dtype == DType::kFloat32 ? 4 : 2; }
  int index_bytes() const { return index_type == IndexType::kInt64 ? 8 : 4; }
  bool has_per_row() const { return k_per_row != nullptr || row_lengths != nullptr; }
};

enum class MemorySpace { kHost, kDevice };

/// Checks every documented argument rule and fills `problem`. For kDevice it
/// also checks, where the CUDA runtime can tell, that the pointers are
/// device-accessible; for kHost that they are not device-only memory.
Status validate(const TopKParams& params, MemorySpace space, Problem* problem);

/// Whether `algorithm` is a value of the Algorithm enum (api.cpp's table).
bool algorithm_known(Algorithm algorithm);

/// Host path only: checks the contents of the per-row arrays.
Status validate_per_row_host(const Problem& problem);

}  // namespace fasttopk::detail
