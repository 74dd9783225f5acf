// CPU top-k. See cpu_topk.hpp and keys.hpp.
//
// Every element is ranked by its packed (rank key, ~index) uint64
// (keys.hpp): "larger packed value" is exactly the contract's order, key
// descending, then index ascending. Packed values are unique (indices
// differ), so the selected set and its order do not depend on the standard
// library's implementation of nth_element and sort.
//
// Per row, one of two selections (select_row):
//  - whole row: pack every element, std::nth_element puts the k largest
//    first in O(n);
//  - streamed (k small against n, the common case: a vocabulary's top 50):
//    a buffer of candidates and a threshold key T, the key of the buffer's
//    k-th best at its last compaction. The row is scanned in index order,
//    and an element is a candidate only if its key is > T: an element with
//    key == T comes after the element that set T (a lower index wins the
//    tie), so it ranks below k elements already seen and never reaches the
//    top k. When the buffer fills, nth_element keeps its k best and raises
//    T. On randn rows almost every element fails the one comparison, which
//    a vectorised block test does 64 at a time: ~0.6 ns an element against
//    the whole row's ~8 (packing 8 bytes an element, then nth_element). A
//    row in ascending order (every element a candidate) costs a compaction
//    every buffer - k elements, the worst case: 1x131072 k50 fp32 ascending
//    ~450 us against ~200 by the whole-row selection (a buffer that doubles
//    where most elements are candidates did not shorten it).
// Then std::sort orders the k winners in O(k log k) where sorted output is
// asked for.
#include "cpu/cpu_topk.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "keys.hpp"

namespace fasttopk::detail {
namespace {

// Threads: a thread start costs ~50-80 us on the 2-core CI machine, so each
// thread gets at least kMinNsPerThread of estimated work (estimated_row_ns).
// Measured there (session 32, one vs two threads): 64x1024 k32 fp32 420 ->
// 211 us, 64x4096 k64 fp32 1,200 -> 790, but 4x50304 k5 fp16 (~45 us a row)
// 180 -> 240.
constexpr double kMinNsPerThread = 150e3;

// Streaming pays where the row is long against k: below this many elements
// a row, or where the candidate buffer would hold the whole row, the
// whole-row selection runs.
constexpr int64_t kMinStreamedElements = 512;
// The candidate buffer: kStreamBufferPerK x k entries, at least
// kMinStreamBuffer. Each compaction (nth_element over the buffer) keeps k,
// so it costs ~2 nth_element element-steps for each of the (buffer - k)
// candidates that filled it. A small buffer raises T early: with randn rows,
// T after the first 128 elements is about the top k of 128, after the next
// compaction the top k of a few hundred, and so on, so the share of blocks
// with a candidate (the slow, scalar part of the scan) falls quickly. On the
// 2-core CI machine (session 32, one thread, medians of three runs, each
// the median of 15 x 5 calls; timings there vary up to ~1.7x between runs):
// 1x50304 k50 fp16 485 -> 54 us, 4x50304 k5 fp16 1,492 -> 189, 32x32000 k40
// fp32 7,928 -> 1,606, 1x131072 k2048 fp32 1,016 -> 642, 64x1024 k32 fp32
// 484 -> 437; buffers of 4 k and at least 1,024 were 1.2-2.6x slower.
constexpr int64_t kStreamBufferPerK = 2;
constexpr int64_t kMinStreamBuffer = 128;
// Elements per block of the vectorised threshold test.
constexpr int64_t kBlock = 64;

/// Candidate buffer entries of a streamed selection of k.
inline int64_t stream_buffer(int64_t k) {
  return std::max(kStreamBufferPerK * k, kMinStreamBuffer);
}

/// Whether select_row streams a row of n elements for k (the buffer takes
/// up to a block more than stream_buffer(k): scratch_entries).
inline bool streams(int64_t n, int64_t k) {
  return n >= kMinStreamedElements && stream_buffer(k) + kBlock <= n;
}

/// Expected candidates of a streamed row of n randn elements from the
/// prefix start (a buffer of 2k, a compaction each time it fills).
inline double prefix_candidates(int64_t n, int64_t k) {
  const double kk = static_cast<double>(std::max<int64_t>(k, 1));
  return 2.0 * kk * (1.0 + std::log(static_cast<double>(n) / kk));
}

// The sampled floor (sampled_floor): keys at kSample evenly spaced positions
// of the row; the floor is the sample's key of a rank at which about
// 3 k + kSampleMargin of the row's keys, and at least k, are expected to
// reach it. The rank is at least kSampleMinRank, so that the count that
// reaches it stays near its mean (at rank 1, the sample's maximum, fewer
// than k = 50 of 20,000 randn keys reached it in ~15% of rows).
constexpr int64_t kSample = 128;
constexpr int64_t kSampleMargin = 32;
constexpr int64_t kSampleMinRank = 16;

/// Expected candidates of a random row of n elements from a sampled floor of
/// sample rank `rank`: the keys at or above the rank-th of kSample.
inline double floor_candidates(int64_t n, int64_t rank) {
  return static_cast<double>(rank * n) / static_cast<double>(kSample + 1);
}

/// The sample rank of a streamed row's sampled floor (1-based), or 0 where
/// the row starts from its prefix instead: the floor would let through as
/// many randn candidates as the prefix start or more (long rows against k),
/// or k is large against n.
inline int64_t sample_rank(int64_t n, int64_t k) {
  const int64_t rank = std::max(kSampleMinRank, ((3 * k + kSampleMargin) * kSample + n - 1) / n);
  if (n < 4 * kSample || rank > kSample / 2) return 0;
  return floor_candidates(n, rank) < prefix_candidates(n, k) ? rank : 0;
}

/// A rough model of one row's time on one thread (fitted to the CI
/// machine's randn timings, session 32), for the thread count only. Whole
/// rows: ~8 ns an element (packing, nth_element). Streamed: ~0.6 ns an
/// element for the block test, plus ~20 ns for each candidate (the offer,
/// compactions, the final sort); a random row of n yields about
/// 2 k (1 + ln(n / k)) candidates from the prefix start, rank n / 129 from
/// a sampled floor (plus ~0.5 us for the sample). Rows 64x1024 k32 -> ~3.7
/// us, 1x50304 k50 -> ~46 us (measured ~2-2.5 and 26-54).
inline double estimated_row_ns(int64_t n, int64_t k) {
  const double elements = static_cast<double>(n);
  if (!streams(n, k)) return 8.0 * elements;
  const int64_t rank = sample_rank(n, k);
  if (rank > 0) {
    return 0.6 * elements + 500.0 + 20.0 * floor_candidates(n, rank);
  }
  return 0.6 * elements + 20.0 * prefix_candidates(n, k);
}

/// Scratch entries a thread needs for rows of at most `cols` elements and
/// k_i <= k: a streamed row uses stream_buffer(k_i) + kBlock <= n entries
/// (also <= stream_buffer(k) + kBlock), a row selected whole n <= cols, and
/// such a row has n < 512 or n < stream_buffer(k_i) + kBlock. So one
/// thread's scratch is independent of the per-row arrays' contents, and
/// small where rows stream (4.5 KB at 50304 columns and k = 50, where a row
/// of packed values would be 400 KB).
inline int64_t scratch_entries(int64_t cols, int64_t k) {
  return std::min(cols, std::max(kMinStreamedElements - 1, stream_buffer(k) + kBlock));
}

/// A key that about 3 k + kSampleMargin of row[0, n)'s keys reach (at least
/// k of them unless the sample is far off), from a strided sample; false
/// where it would not pay (the prefix start expects fewer candidates: long
/// rows against k) or no useful floor exists (k large against n, or the
/// floor would be the lowest key, 0). Only a first filter: select_row
/// checks that k keys reached it.
template <typename Format, bool kLargest>
bool sampled_floor(const typename Format::Bits* row, int64_t n, int64_t k, uint32_t* floor) {
  const int64_t rank = sample_rank(n, k);
  if (rank == 0) return false;
  uint32_t keys[kSample];
  for (int64_t j = 0; j < kSample; ++j) {
    keys[j] = rank_key_branchless<Format, kLargest>(row[j * n / kSample]);
  }
  std::nth_element(keys, keys + rank - 1, keys + kSample, std::greater<uint32_t>());
  *floor = keys[rank - 1];
  return *floor > 0;
}

/// Puts the k best packed (key, ~index) values of row[0, n) in scratch[0, k),
/// in no particular order; 0 < k <= n. scratch holds scratch_entries(n, k)
/// entries: n where the row is selected whole, stream_buffer(k) + kBlock
/// where it streams.
template <typename Format, bool kLargest>
void select_row(const typename Format::Bits* row, int64_t n, int64_t k, uint64_t* scratch) {
  std::greater<uint64_t> ranks_before;
  auto pack_first = [&](int64_t m) {  // scratch[0, m) = packed row[0, m)
    for (int64_t i = 0; i < m; ++i) {
      scratch[i] =
          pack_key_index(rank_key_branchless<Format, kLargest>(row[i]), static_cast<uint32_t>(i));
    }
  };
  if (!streams(n, k)) {
    pack_first(n);
    if (k < n) std::nth_element(scratch, scratch + k - 1, scratch + n, ranks_before);
    return;
  }
  // Candidates are the keys above `threshold`; the buffer holds up to
  // `buffer` of them between compactions, plus a block's worth (a block's
  // candidates are appended without branches, then compacted if needed).
  const int64_t buffer = stream_buffer(k);
  int64_t count = 0;
  uint32_t threshold = 0;
  auto compact = [&] {
    std::nth_element(scratch, scratch + k - 1, scratch + count, ranks_before);
    threshold = packed_key(scratch[k - 1]);
    count = k;
  };
  // Scans row[i, n) (every candidate ranks below the k best of the earlier
  // ones that set `threshold`, or reaches the sampled floor).
  auto scan = [&](int64_t i) {
    for (; i + kBlock <= n; i += kBlock) {
      uint32_t keys[kBlock];
      uint32_t any_above = 0;
      for (int64_t j = 0; j < kBlock; ++j) {  // branch-free: vectorised
        keys[j] = rank_key_branchless<Format, kLargest>(row[i + j]);
        any_above |= keys[j] > threshold ? 1u : 0u;
      }
      if (any_above == 0) continue;
      for (int64_t j = 0; j < kBlock; ++j) {  // branch-free append
        scratch[count] = pack_key_index(keys[j], static_cast<uint32_t>(i + j));
        count += keys[j] > threshold ? 1 : 0;
      }
      if (count >= buffer) compact();
    }
    for (; i < n; ++i) {
      const uint32_t key = rank_key_branchless<Format, kLargest>(row[i]);
      if (key <= threshold) continue;
      scratch[count++] = pack_key_index(key, static_cast<uint32_t>(i));
      if (count == buffer) compact();
    }
  };
  // The prefix start: the first `buffer` elements fill the buffer, and T is
  // then their k-th best; an equal key later loses the tie, so `key <= T`
  // rejects exactly.
  auto scan_from_prefix = [&] {
    pack_first(buffer);
    count = buffer;
    compact();
    scan(buffer);
  };
  uint32_t floor = 0;
  if (sampled_floor<Format, kLargest>(row, n, k, &floor)) {
    // Candidates: the keys >= floor (later compactions raise T as above).
    // Where k of them exist, they hold the row's top k; the sample misses
    // that rarely, and the prefix start then runs instead.
    threshold = floor - 1;
    scan(0);
    if (count < k) scan_from_prefix();
  } else {
    scan_from_prefix();
  }
  if (count > k) compact();
}

template <typename Format, bool kLargest>
void run_rows(const Problem& q, int64_t row_begin, int64_t row_end, uint64_t* scratch) {
  using Bits = typename Format::Bits;
  const Bits* input = static_cast<const Bits*>(q.input);
  Bits* values = static_cast<Bits*>(q.values);
  const Bits sentinel = static_cast<Bits>(sentinel_bits<Format>(kLargest));

  for (int64_t r = row_begin; r < row_end; ++r) {
    const Bits* row = input + r * q.row_stride;
    const int64_t n = q.row_lengths ? q.row_lengths[r] : q.cols;
    const int64_t k_row = q.k_per_row ? q.k_per_row[r] : q.k;
    const int64_t k_eff = std::min(k_row, n);

    if (k_eff > 0) select_row<Format, kLargest>(row, n, k_eff, scratch);
    if (q.sorted) std::sort(scratch, scratch + k_eff, std::greater<uint64_t>());

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
      return q.largest ? run_rows<Fp32Bits, true>(q, row_begin, row_end, scratch)
                       : run_rows<Fp32Bits, false>(q, row_begin, row_end, scratch);
    case DType::kFloat16:
      return q.largest ? run_rows<Fp16Bits, true>(q, row_begin, row_end, scratch)
                       : run_rows<Fp16Bits, false>(q, row_begin, row_end, scratch);
    case DType::kBFloat16:
      return q.largest ? run_rows<Bf16Bits, true>(q, row_begin, row_end, scratch)
                       : run_rows<Bf16Bits, false>(q, row_begin, row_end, scratch);
  }
}

}  // namespace

int host_threads_used(const Problem& q, int num_threads) {
  if (q.empty()) return 0;
  // hardware_concurrency() reads /proc on Linux (~20 us): ask once.
  static const int64_t hardware_threads = std::thread::hardware_concurrency();
  int64_t threads = num_threads > 0 ? num_threads : hardware_threads;
  threads = std::max<int64_t>(threads, 1);
  // An estimate from q.k and q.cols: per-row k and lengths only shorten rows.
  const double by_work =
      static_cast<double>(q.rows) * estimated_row_ns(q.cols, q.k) / kMinNsPerThread;
  threads = std::min(threads, q.rows);
  if (by_work < static_cast<double>(threads))
    threads = std::max<int64_t>(1, static_cast<int64_t>(by_work));
  return static_cast<int>(threads);
}

std::size_t host_workspace_bytes(const Problem& q, int num_threads) {
  return static_cast<std::size_t>(host_threads_used(q, num_threads)) *
         static_cast<std::size_t>(scratch_entries(q.cols, q.k)) * sizeof(uint64_t);
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
  const int64_t per_thread = scratch_entries(q.cols, q.k);
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (int t = 0; t < threads; ++t) {
    const int64_t begin = q.rows * t / threads;
    const int64_t end = q.rows * (t + 1) / threads;
    pool.emplace_back(run_rows_any, std::cref(q), begin, end, scratch + t * per_thread);
  }
  for (auto& thread : pool) thread.join();
}

}  // namespace fasttopk::detail
