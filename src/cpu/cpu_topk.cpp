// CPU top-k. See cpu_topk.hpp and keys.hpp.
//
// Per row: pack every considered element as (rank key, ~index) into one
// uint64 (keys.hpp), so that "larger packed value" is exactly the contract's
// order — key descending, then index ascending. std::nth_element then puts
// the k largest packed values first in O(n), and std::sort orders those k in
// O(k log k). Packed values are unique (indices differ), so the selected set
// and its order do not depend on the standard library's implementation.
#include "cpu/cpu_topk.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "keys.hpp"

namespace fasttopk::detail {
namespace {

// Below this many elements per thread, starting a thread costs more than it
// saves (a thread start is ~20-50 us; a row of 64k elements takes ~100 us).
constexpr int64_t kMinElementsPerThread = int64_t{1} << 16;

template <typename Format>
void run_rows(const Problem& q, int64_t row_begin, int64_t row_end, uint64_t* scratch) {
  using Bits = typename Format::Bits;
  const Bits* input = static_cast<const Bits*>(q.input);
  Bits* values = static_cast<Bits*>(q.values);
  const Bits sentinel = static_cast<Bits>(sentinel_bits<Format>(q.largest));

  for (int64_t r = row_begin; r < row_end; ++r) {
    const Bits* row = input + r * q.row_stride;
    const int64_t n = q.row_lengths ? q.row_lengths[r] : q.cols;
    const int64_t k_row = q.k_per_row ? q.k_per_row[r] : q.k;
    const int64_t k_eff = std::min(k_row, n);

    for (int64_t i = 0; i < n; ++i) {
      scratch[i] = pack_key_index(rank_key<Format>(row[i], q.largest), static_cast<uint32_t>(i));
    }
    std::greater<uint64_t> ranks_before;
    if (k_eff > 0 && k_eff < n) {
      std::nth_element(scratch, scratch + k_eff - 1, scratch + n, ranks_before);
    }
    if (q.sorted) std::sort(scratch, scratch + k_eff, ranks_before);

    for (int64_t j = 0; j < q.k; ++j) {
      const bool used = j < k_eff;
      const int64_t index = used ? static_cast<int64_t>(packed_index(scratch[j])) : int64_t{-1};
      const int64_t out = r * q.k + j;
      if (values) values[out] = used ? row[index] : sentinel;
      if (q.indices) {
        if (q.index_type == IndexType::kInt64) {
          static_cast<int64_t*>(q.indices)[out] = index;
        } else {
          static_cast<int32_t*>(q.indices)[out] = static_cast<int32_t>(index);
        }
      }
    }
  }
}

void run_rows_any(const Problem& q, int64_t row_begin, int64_t row_end, uint64_t* scratch) {
  switch (q.dtype) {
    case DType::kFloat32:
      return run_rows<Fp32Bits>(q, row_begin, row_end, scratch);
    case DType::kFloat16:
      return run_rows<Fp16Bits>(q, row_begin, row_end, scratch);
    case DType::kBFloat16:
      return run_rows<Bf16Bits>(q, row_begin, row_end, scratch);
  }
}

}  // namespace

int host_threads_used(const Problem& q, int num_threads) {
  if (q.empty()) return 0;
  // hardware_concurrency() reads /proc on Linux (~20 us): ask once.
  static const int64_t hardware_threads = std::thread::hardware_concurrency();
  int64_t threads = num_threads > 0 ? num_threads : hardware_threads;
  threads = std::max<int64_t>(threads, 1);
  const int64_t by_work = std::max<int64_t>(1, q.rows * q.cols / kMinElementsPerThread);
  return static_cast<int>(std::min({threads, q.rows, by_work}));
}

std::size_t host_workspace_bytes(const Problem& q, int num_threads) {
  return static_cast<std::size_t>(host_threads_used(q, num_threads)) *
         static_cast<std::size_t>(q.cols) * sizeof(uint64_t);
}

void run_host(const Problem& q, void* workspace, int num_threads) {
  const int threads = host_threads_used(q, num_threads);
  if (threads == 0) return;
  uint64_t* scratch = static_cast<uint64_t*>(workspace);
  if (threads == 1) {
    run_rows_any(q, 0, q.rows, scratch);
    return;
  }
  // Contiguous row ranges; each thread owns a disjoint slice of the scratch.
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (int t = 0; t < threads; ++t) {
    const int64_t begin = q.rows * t / threads;
    const int64_t end = q.rows * (t + 1) / threads;
    pool.emplace_back(run_rows_any, std::cref(q), begin, end, scratch + t * q.cols);
  }
  for (auto& thread : pool) thread.join();
}

}  // namespace fasttopk::detail
