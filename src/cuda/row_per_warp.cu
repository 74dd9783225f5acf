// Algorithm family "row_per_warp": many rows at memory speed, and few long
// rows split across warps.
//
// One warp owns one row segment: the segment is read once with 16-byte loads
// straight into registers, tile by tile, and filtering, selection and sort
// happen in the warp with no block barriers, so one segment's selection
// overlaps the loads of the next tile and of other warps' segments.
//
// With many rows (MoE routers, small vocabularies, large-batch decode) a
// segment is a whole row and the warp writes the row's output. With fewer
// rows than resident warps (256 x 128k, 1024 x 32000, decode batches) each
// row is cut into `segments` segments so that every resident warp streams
// one; each segment's sorted top k goes to the workspace, and the last warp
// of the row to finish (an atomic ticket) merges the lists.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "cuda/algorithms.hpp"
#include "cuda/common.cuh"
#include "cuda/value_filter.cuh"
#include "cuda/warp_select.cuh"

namespace fasttopk::detail {
namespace {

constexpr int kWarpsPerCta = 4;
constexpr int kThreads = 32 * kWarpsPerCta;
constexpr int kMaxK = 128;         // largest k this family takes
constexpr int kMaxCols = 1 << 30;  // tile arithmetic stays in int
#ifndef FASTTOPK_TUNE_RPW_CTAS_PER_SM
#define FASTTOPK_TUNE_RPW_CTAS_PER_SM 4
#endif
// Persistent grid: CTAs per SM (each warp then loops over segments, prefetching).
constexpr int kCtasPerSm = FASTTOPK_TUNE_RPW_CTAS_PER_SM;
// Packed values one warp keeps in shared memory: the filter's candidate pool
// (kPoolCapacity of them) and the merge's window of the segment lists.
constexpr int kPoolStorage = 512;
#ifndef FASTTOPK_TUNE_RPW_POOL
#define FASTTOPK_TUNE_RPW_POOL 512
#endif
constexpr int kPoolCapacity = FASTTOPK_TUNE_RPW_POOL;
static_assert(kPoolCapacity <= kPoolStorage, "the pool lives in the warp's storage");
constexpr int kGroupsPerLaneMax = 8;  // group maxima per lane for the threshold
#ifndef FASTTOPK_TUNE_RPW_RANK_POOL
#define FASTTOPK_TUNE_RPW_RANK_POOL 64
#endif
// Pools of at most this many candidates are ranked by counting at the end of
// a segment (rank_small_pool) instead of select + sort; at most 64.
constexpr uint32_t kRankPoolMax = FASTTOPK_TUNE_RPW_RANK_POOL;
static_assert(kRankPoolMax <= 64, "rank_small_pool holds two values per lane");
#ifndef FASTTOPK_TUNE_RPW_RANK_AFTER_SELECT
#define FASTTOPK_TUNE_RPW_RANK_AFTER_SELECT 1
#endif
// Larger pools with k <= kRankPoolMax: radix passes only until <=
// kRankPoolMax values remain at or above the cut, which are then ranked by
// counting (instead of an exact select and a sort).
constexpr bool kRankAfterSelect = FASTTOPK_TUNE_RPW_RANK_AFTER_SELECT != 0;
#ifndef FASTTOPK_TUNE_RPW_BIN_RANK
#define FASTTOPK_TUNE_RPW_BIN_RANK 1
#endif
#ifndef FASTTOPK_TUNE_RPW_BIN_RANK_POOL
#define FASTTOPK_TUNE_RPW_BIN_RANK_POOL 512
#endif
// The end of a segment ranks its pool by bins (warp_rank_by_bins: one
// histogram pass, no select, no sort): 0 never, 1 pools of more than
// kRankPoolMax candidates (instead of select + counting rank, or select +
// sort for k > 64), 2 every pool. Pools of more than kBinRankPoolMax, and
// pools whose values crowd into a few bins, take the other ends. Measured
// on the H100 (docs/perf-notes.md v35), 0 -> 1: 4096x2048 k64 fp32 19.45 ->
// 15.89 µs, 4096x4096 k64 bf16 21.02 -> 17.55, 4096x3000 k100 bf16 32.89 ->
// 24.13; 2 also takes the pools of <= 64, where counting is cheaper
// (16384x1000 k8 fp32 30.37 -> 36.32 µs). The knob is for A/B timings.
// Pools of 257-512 candidates went from the select to bins in v35b
// (FASTTOPK_TUNE_RPW_BIN_RANK_POOL 256 -> 512): 2048x4096 k128 fp16 15.41 ->
// 12.75 µs, 256x151936 k50 bf16 segments 38.47 -> 37.59, no shape slower.
constexpr int kBinRank = FASTTOPK_TUNE_RPW_BIN_RANK;
constexpr uint32_t kBinRankPoolMax = FASTTOPK_TUNE_RPW_BIN_RANK_POOL;
#ifndef FASTTOPK_TUNE_RPW_SPECULATE
#define FASTTOPK_TUNE_RPW_SPECULATE 1
#endif
// Segments longer than their first tile take the first tile's threshold at
// a rank below k (threshold_rank), but not below kMinGuessRank (or
// kMinGuessRankLong on segments of eight tiles or more): fewer candidates,
// and a segment whose pool ends short takes the slow path.
constexpr bool kSpeculate = FASTTOPK_TUNE_RPW_SPECULATE != 0;
constexpr int kMinGuessRank = 32;
constexpr int kMinGuessRankLong = 20;
// 2048-element tiles for fp16/bf16 rows longer than 1024 (tile_slots_for;
// measured on the H100, docs/perf-notes.md v10). The override is for sweeps.
#ifndef FASTTOPK_TUNE_RPW_WIDE16
#define FASTTOPK_TUNE_RPW_WIDE16 1
#endif
constexpr bool kWideTiles16 = FASTTOPK_TUNE_RPW_WIDE16 != 0;
#ifndef FASTTOPK_TUNE_RPW_MIN_SEGMENT
#define FASTTOPK_TUNE_RPW_MIN_SEGMENT 2048
#endif
// Rows are only split into segments of at least this many elements (shorter
// ones are mostly fixed cost), at most kMaxSegments of them, and segment
// lengths are multiples of kSegmentGranule (so segments start 16-byte aligned
// relative to the row start).
constexpr int kMinSegment = FASTTOPK_TUNE_RPW_MIN_SEGMENT;
#ifndef FASTTOPK_TUNE_RPW_ABLATE
#define FASTTOPK_TUNE_RPW_ABLATE 0
#endif
// Development ablations of split rows, for timing only (the results are
// wrong): 1 no merge, 2 no end of segment (no select, list, ticket or merge).
// docs/perf-notes.md v29b; scripts/probe-phases shows the same phases.
constexpr int kAblate = FASTTOPK_TUNE_RPW_ABLATE;
constexpr int kSegmentGranule = 1024;
constexpr int kMaxSegments = 64;
#ifndef FASTTOPK_TUNE_RPW_CHAIN_MERGE
#define FASTTOPK_TUNE_RPW_CHAIN_MERGE 1
#endif
// Split rows of at most kChainMaxSegments segments whose lists fit the
// warp's pool and stage storage together are merged by bitonic merges of the
// sorted lists (merge_sorted_lists), the others by merge_segments' select
// over the lists' windows. Measured (docs/perf-notes.md v32b): faster with
// 2-11 lists (256x128256 k50 bf16 -1.3 µs, 7x10240 k101 fp32 -4.5), slower
// with 16 (128x65536 k50 +0.8, 128x128256 k8 +0.6); 12-15 unmeasured. The
// knob (0: always the select) is for A/B timings.
constexpr bool kChainMerge = FASTTOPK_TUNE_RPW_CHAIN_MERGE != 0;
constexpr int kChainMaxSegments = 12;

/// How rows are cut into segments (host-side plan, passed to the kernel).
struct SegmentPlan {
  int segments;        // warps per row; 1: a warp owns a whole row
  int segment_length;  // elements per segment (the last one may be shorter)
  int window;          // leading list entries per segment the merge reads first
};

/// One warp's shared memory. The histogram is reused for the k winners after
/// the select (256 counters = 128 packed values >= kMaxK). Whole rows need
/// only the filter's pool; split rows also the merge's window. `stage` holds
/// the current tile's raw vectors of lanes with admitted elements (vector u
/// of lane l at stage[u * 32 + l]: conflict-free 16-byte stores), so that
/// the append can fetch an admitted element by a dynamic slot number.
template <int kPoolSlots, int kStageVectors>
struct alignas(16) WarpScratch {
  uint32_t histogram[256];
  uint64_t pool[kPoolSlots];
  uint4 stage[kStageVectors * 32];
};

/// Packed values that fit the storage from `pool` to the end of a warp's
/// scratch (pool and stage: the merge of sorted lists stages the row's lists
/// there), less two for the 16-byte alignment of the copy.
template <typename Scratch>
constexpr int list_staging_capacity() {
  static_assert(offsetof(Scratch, stage) == offsetof(Scratch, pool) + sizeof(Scratch::pool),
                "pool and stage are contiguous");
  return static_cast<int>((sizeof(Scratch) - offsetof(Scratch, pool)) / sizeof(uint64_t)) - 2;
}
static_assert(sizeof(uint32_t) * 256 >= sizeof(uint64_t) * kMaxK, "winners alias the histogram");

/// out[i] = the largest of in[i * kIn / kOut .. (i + 1) * kIn / kOut): the
/// maxima of kOut consecutive groups of a lane's values.
template <int kOut, int kIn>
__device__ __forceinline__ void group_maxima(const uint32_t (&in)[kIn], uint32_t (&out)[kOut]) {
  static_assert(kIn % kOut == 0, "equal groups");
#pragma unroll
  for (int i = 0; i < kOut; ++i) {
    out[i] = 0;
#pragma unroll
    for (int m = 0; m < kIn / kOut; ++m) out[i] = max(out[i], in[i * (kIn / kOut) + m]);
  }
}

/// A lower bound of the row's k-th largest key, from group maxima: the lane's
/// keys are split into kGroups groups, and T is the k-th largest of the warp's
/// 32 * kGroups group maxima. Those k maxima are k distinct elements with keys
/// >= T, so the k-th largest key of the row is >= T and every element of the
/// top k has a key >= T. More groups than k / 32 make T tighter (fewer
/// candidates) at the price of a longer search here. Requires 32 * kGroups >= k.
///
/// With several groups per lane (k > 16) the k-th largest maximum is found
/// by a bit search, two key bits per step from the top: the three candidates
/// t | 01, t | 10, t | 11 of a step are counted at once (each a warp
/// __reduce_add_sync), and t takes the largest candidate that >= k maxima
/// reach. Only the top kSearchBits key bits are searched (the rest stay 0),
/// so T is the k-th largest maximum rounded down to a multiple of
/// 2^(kKeyBits - kSearchBits): still a lower bound, looser by less than 1/128
/// of an octave for fp32. Eight dependent steps of independent compares
/// replace a bitonic sort's 21-36 dependent stages (measured on the H100,
/// docs/perf-notes.md v9: 4096 x 4096 fp32 k64 45.5 -> 42.2 us). With one
/// group per lane the 15-stage bitonic sort of 32 values is the cheaper
/// one (16384 x 1000 fp32 k8: 45.9 vs 48.6 us).
template <int kKeyBits, int kGroups>
__device__ __forceinline__ uint32_t group_max_threshold(const uint32_t (&maxima)[kGroupsPerLaneMax],
                                                        int k) {
  uint32_t g[kGroups];
  group_maxima(maxima, g);
  if constexpr (kGroups == 1) {
    warp_bitonic_sort_descending<uint32_t, 1>(g);
    return __shfl_sync(kFullWarp, g[0], k - 1);  // rank k - 1 lives in lane k - 1
  } else {
    constexpr int kSearchBits = 16;
    uint32_t t = 0;
#pragma unroll
    for (int shift = kKeyBits - 2; shift >= kKeyBits - kSearchBits; shift -= 2) {
      uint32_t count[3] = {0, 0, 0};
#pragma unroll
      for (int c = 0; c < 3; ++c) {
        const uint32_t candidate = t | (static_cast<uint32_t>(c + 1) << shift);
#pragma unroll
        for (int i = 0; i < kGroups; ++i) count[c] += g[i] >= candidate ? 1u : 0u;
        count[c] = __reduce_add_sync(kFullWarp, count[c]);
      }
      const uint32_t reached = (count[0] >= static_cast<uint32_t>(k) ? 1u : 0u) +
                               (count[1] >= static_cast<uint32_t>(k) ? 1u : 0u) +
                               (count[2] >= static_cast<uint32_t>(k) ? 1u : 0u);
      t |= reached << shift;  // counts fall as the candidate rises: reached = the largest digit
    }
    return t;
  }
}

/*
 * The rank (1 .. k) of the first tile's group maxima that sets a segment's
 * threshold. Rank k gives a lower bound of the segment's k-th largest key
 * from the first tile alone (group_max_threshold), but a segment of several
 * tiles then admits k candidates or more from every tile: for a 2048-element
 * row at k = 64, ~170 where 64 are needed. A lower rank raises T; T is then
 * a guess, not a bound, and is safe all the same: if at least k elements of
 * the segment are >= T, its top k are among them, and the pool ends with at
 * least k values; otherwise the pool ends short, which the end of the
 * segment detects (pool_count < k), and the slow path selects exactly.
 *
 * rank = k (f + 1/4), f = the first tile's share of the segment (3k/4 on two
 * tiles, k/2 on four), at most k and at least 32, or 20 from eight tiles up
 * (a low rank makes T noisy; with many tiles the expected count is a large
 * multiple of k). A short pool must stay rare, not only on average: one
 * slow segment late in a launch delays the whole launch by about a row's
 * time several times over. For independent values of any continuous
 * distribution the count is distribution-free; a simulation of the kernel's
 * group layout (the first tile sampled, the rest's count from the binomial
 * tail) puts the short-pool rate at <= 1.4e-6 a segment for k = 33-128 on
 * 1.5-64 tiles (k = 40 on two tiles; k = 64 on two or four tiles ~1e-7),
 * where the rule k (1 + f) / 2 without a floor reached 1e-3 on 1.5 tiles at
 * k = 33 (docs/perf-notes.md v24). Sorted rows do not fail (the first
 * tile's T then sits deep inside a run of large values); rows do where about
 * 3k/4 outliers sit in the first tile, one per group (a GPU test builds such
 * rows), and they take the slow path.
 */
__device__ __forceinline__ int threshold_rank(int k, int length, int first_tile_elements) {
  if (!kSpeculate || k <= kMinGuessRank || first_tile_elements >= length) return k;
  // Float math: any rank gives exact results, so rounding only moves the
  // speed, and an integer division would cost more than the rest together.
  const float f = __fdividef(static_cast<float>(first_tile_elements), static_cast<float>(length));
  const int guess = static_cast<int>(ceilf(static_cast<float>(k) * (f + 0.25f)));
  const int least = f > 0.125f ? kMinGuessRank : kMinGuessRankLong;
  return min(k, max(least, guess));
}

/// Loads winners[0 .. count) (any order) into registers and sorts them
/// descending: sorted position p = lane * kPerLane + j is v[j]; positions
/// >= count hold packed 0, which ranks below every real value.
template <int kPerLane>
__device__ __forceinline__ void sort_winners(const uint64_t* winners, int count,
                                             uint64_t (&v)[kPerLane]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int p = lane * kPerLane + j;
    v[j] = p < count ? winners[p] : 0ull;
  }
  if (count > 1) warp_bitonic_sort_descending<uint64_t, kPerLane>(v);
}

/// Sorts winners[0 .. count) (any order) descending in registers and calls
/// f(p, value) for every sorted position p < limit (value: packed 0 past
/// count). 32 * kPerLane >= max(count, limit).
template <int kPerLane, typename F>
__device__ __forceinline__ void for_each_sorted_in(const uint64_t* winners, int count, int limit,
                                                   F&& f) {
  const int lane = threadIdx.x & 31;
  uint64_t v[kPerLane];
  sort_winners<kPerLane>(winners, count, v);
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int p = lane * kPerLane + j;
    if (p < limit) f(p, v[j]);
  }
}

/// for_each_sorted_in with the register-sort width for up to max_k values
/// (1, 2 or 4 per lane).
template <typename F>
__device__ __forceinline__ void for_each_sorted(int64_t max_k, const uint64_t* winners, int count,
                                                int limit, F&& f) {
  if (max_k <= 32) {
    for_each_sorted_in<1>(winners, count, limit, f);
  } else if (max_k <= 64) {
    for_each_sorted_in<2>(winners, count, limit, f);
  } else {
    for_each_sorted_in<4>(winners, count, limit, f);
  }
}

/*
 * The exact ranks of a small pool, by counting: calls emit(r, v) for every
 * value v of pool[0 .. n) whose rank r (0 = the largest) is below k, one lane
 * per value. n <= 32 * kPerLane; the values are unique, so the ranks are
 * 0 .. n - 1 once each. Every value is compared with all n (broadcast
 * shared-memory reads, two values per 16-byte load): n / 2 independent steps
 * instead of a radix select's passes and a sort network's dependent stages,
 * but n^2 / 32 compares per lane, so only for small pools. When n is odd,
 * pool[n] is overwritten with packed 0 (it ranks below every value).
 */
template <int kPerLane, typename Emit>
__device__ __forceinline__ void rank_small_pool(uint64_t* pool, uint32_t n, uint32_t k,
                                                Emit&& emit) {
  const int lane = threadIdx.x & 31;
  uint64_t v[kPerLane];
  uint32_t rank[kPerLane];
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const uint32_t t = lane + 32 * j;
    v[j] = t < n ? pool[t] : 0ull;
    rank[j] = 0;
  }
  if (lane == 0 && (n & 1u) != 0) pool[n] = 0ull;
  __syncwarp();
  const ulonglong2* pairs = reinterpret_cast<const ulonglong2*>(pool);
#pragma unroll 4
  for (uint32_t t = 0; t < (n + 1) / 2; ++t) {
    const ulonglong2 e = pairs[t];
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) rank[j] += (e.x > v[j] ? 1u : 0u) + (e.y > v[j] ? 1u : 0u);
  }
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    if (lane + 32 * j < n && rank[j] < k) emit(rank[j], v[j]);
  }
}

/// rank_small_pool for n <= 64 values, one or two a lane.
template <typename Emit>
__device__ __forceinline__ void rank_to_slots(uint64_t* values, uint32_t n, uint32_t k,
                                              Emit&& emit) {
  if (n <= 32) {
    rank_small_pool<1>(values, n, k, emit);
  } else {
    rank_small_pool<2>(values, n, k, emit);
  }
}

/// Sorts the row's k_row winners and writes output slots 0 .. q.k of the row
/// (sentinels after k_row).
template <typename Format>
__device__ __forceinline__ void write_row(const Problem& q, const typename Format::Bits* row_in,
                                          int64_t row, const uint64_t* winners, int k_row) {
  for_each_sorted(q.k, winners, k_row, static_cast<int>(q.k), [&](int p, uint64_t v) {
    write_output<Format>(q, row_in, row, p, v, p < k_row);
  });
}

/// Writes the sentinels of output slots k_row .. q.k of the row (a per-row k
/// below the problem's k).
template <typename Format>
__device__ __forceinline__ void write_sentinels(const Problem& q,
                                                const typename Format::Bits* row_in, int64_t row,
                                                int k_row) {
  const int lane = threadIdx.x & 31;
  for (int64_t p = k_row + lane; p < q.k; p += 32)
    write_output<Format>(q, row_in, row, p, 0, false);
}

/// Ranks values[0 .. n) (n <= 64, a superset of the row's top k_row) by
/// counting and writes output slots 0 .. q.k of the row: the value of rank p
/// < k_row to slot p, sentinels after k_row. The counting counterpart of
/// write_row.
template <typename Format>
__device__ __forceinline__ void write_row_ranked(const Problem& q,
                                                 const typename Format::Bits* row_in, int64_t row,
                                                 uint64_t* values, uint32_t n, int k_row) {
  rank_to_slots(values, n, k_row,
                [&](uint32_t p, uint64_t v) { write_output<Format>(q, row_in, row, p, v, true); });
  write_sentinels<Format>(q, row_in, row, k_row);
}

/// Sorts a segment's k winners and stores them, descending, to list[0 .. k).
__device__ __forceinline__ void store_list(int64_t max_k, const uint64_t* winners, int k,
                                           uint64_t* list) {
  for_each_sorted(max_k, winners, k, k, [&](int p, uint64_t v) { list[p] = v; });
}

/// Elements of a row's segment `segment`: its length and its k.
struct SegmentShape {
  int begin;   // row index of the segment's first element
  int length;  // elements considered
  int k;       // elements selected: min(the row's k, length)
};

__device__ __forceinline__ SegmentShape segment_shape(const SegmentPlan& plan, RowShape row,
                                                      int segment) {
  SegmentShape s;
  s.begin = segment * plan.segment_length;
  s.length = max(0, min(plan.segment_length, row.length - s.begin));
  s.k = min(row.k, s.length);
  return s;
}

/// A segment's data (one warp's unit of work). It is read as tiles of kTile
/// aligned positions: element i sits at aligned position i + offset, where
/// `offset` elements lie between the 16-byte boundary at or below the
/// segment start and the segment start.
template <typename Bits>
struct SegmentRef {
  const Bits* in;  // the segment's first element
  int begin;       // row index of in[0]
  int length;      // elements considered
  int k;           // elements selected
  int offset;      // misalignment of `in` in elements
  int tiles;       // 0 when there is nothing to select (k == 0)
};

template <typename Format, int kTileSlots, bool kSplitRows>
__device__ __forceinline__ SegmentRef<typename Format::Bits> describe_segment(
    const Problem& q, const SegmentPlan& plan, int64_t item) {
  using Bits = typename Format::Bits;
  constexpr int kTile = 32 * kTileSlots;
  const int64_t row = kSplitRows ? item / plan.segments : item;
  const RowShape shape =
      row_shape(q.k_per_row, q.row_lengths, row, static_cast<int>(q.cols), static_cast<int>(q.k));
  const SegmentShape seg =
      kSplitRows ? segment_shape(plan, shape, static_cast<int>(item - row * plan.segments))
                 : SegmentShape{0, shape.length, shape.k};
  SegmentRef<Bits> r;
  r.in = static_cast<const Bits*>(q.input) + row * q.row_stride + seg.begin;
  r.begin = seg.begin;
  r.length = seg.length;
  r.k = seg.k;
  r.offset = static_cast<int>((reinterpret_cast<uintptr_t>(r.in) & 15u) / sizeof(Bits));
  r.tiles = seg.k > 0 ? (seg.length + r.offset + kTile - 1) / kTile : 0;
  return r;
}

__device__ __forceinline__ uint32_t popcount(uint32_t m) { return __popc(m); }
__device__ __forceinline__ uint32_t popcount(uint64_t m) { return __popcll(m); }
__device__ __forceinline__ int lowest_bit(uint32_t m) { return __ffs(m) - 1; }
__device__ __forceinline__ int lowest_bit(uint64_t m) { return __ffsll(m) - 1; }

/*
 * The merge of a row's segment lists, by the last warp of the row. `lists`
 * holds segment s's sorted (descending) top k_s at lists[s * list_stride ..].
 * Writes n packed values that include the row's top `row.k` to `winners`
 * (any order) and returns n: n = row.k, or up to `enough` (>= row.k) values
 * when the selects may stop early (warp_top_candidates).
 *
 * Fast path: the window, the first `window` entries of every list, goes to
 * the pool in one batch of loads, and its top k (or up to `enough` values
 * including them) at or above a cut P is selected there. Every element of
 * the row's top k is >= the row's k-th largest, which is >= P (at least k
 * values of a subset are >= P). A list entry outside the window is <= the
 * list's last window entry; so if every list that goes on past the window
 * ends its window below P, no element outside the window can be in the top
 * k, and the window's values >= P hold the row's top k. Otherwise (the top k
 * crowds into a few segments: sorted, tied or adversarial rows) those values
 * and the overflowing lists' entries >= P are selected again.
 */
template <typename Scratch>
__device__ __forceinline__ uint32_t merge_segments(const SegmentPlan& plan, RowShape row,
                                                   const uint64_t* lists, int list_stride,
                                                   uint32_t enough, Scratch& scratch,
                                                   uint64_t* winners) {
  const int lane = threadIdx.x & 31;
  const int window = plan.window;
  const int window_slots = plan.segments * window;  // <= kPoolStorage (make_plan)
  constexpr int kBatch = 4;
  uint32_t real = 0;  // window entries that are list entries, not fillers
#pragma unroll 1
  for (int base = 0; base < window_slots; base += 32 * kBatch) {
    uint64_t v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int t = base + u * 32 + lane;
      const int s = t / window;
      const int j = t - s * window;
      const bool in_list = t < window_slots && j < segment_shape(plan, row, s).k;
      v[u] = in_list ? __ldcg(lists + s * list_stride + j) : 0ull;
      real += in_list ? 1u : 0u;
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int t = base + u * 32 + lane;
      if (t < window_slots) scratch.pool[t] = v[u];
    }
  }
  real = __reduce_add_sync(kFullWarp, real);
  __syncwarp();
  // Fillers (packed 0) rank below every list entry; with >= row.k real
  // entries they never rank among the top k (an early-stopping select may
  // keep them as candidates, ranked below every real one).
  bool complete = real >= static_cast<uint32_t>(row.k);
  uint64_t cut = 0;
  uint32_t taken = 0;
  // List s goes on past its window, and its last window entry is at or above
  // the cut: its later entries may rank among the row's top k.
  const auto overflows = [&](int s) {
    return segment_shape(plan, row, s).k > window && scratch.pool[s * window + window - 1] >= cut;
  };
  if (complete) {
    taken = warp_top_candidates(
        scratch.histogram, window_slots, row.k, enough, [&](uint32_t t) { return scratch.pool[t]; },
        winners, cut);
    for (int s = lane; s < plan.segments; s += 32) {
      if (overflows(s)) complete = false;
    }
    complete = __all_sync(kFullWarp, complete);
  }
  if (complete) return taken;
  uint32_t count = 0;
  if (real >= static_cast<uint32_t>(row.k)) {
    // The window's values >= P (now in winners) plus every list entry past
    // a window that ended at or above P, down to P: a superset of the row's
    // top k (any other entry is below P). Entries past the window are sorted,
    // so each list's run ends at its first entry below P. It fits the pool
    // unless many lists overflow (the top k crowds into a few segments and
    // the lists are long): then the select runs over the whole lists in L2.
    uint64_t overflowing = 0;  // bit s: list s goes on past its window at or above P
    for (int s0 = 0; s0 < plan.segments; s0 += 32) {
      const int s = s0 + lane;
      const bool over = s < plan.segments && overflows(s);
      overflowing |= static_cast<uint64_t>(__ballot_sync(kFullWarp, over)) << s0;
    }
    __syncwarp();
    for (uint32_t t = lane; t < taken; t += 32) scratch.pool[t] = winners[t];
    count = taken;
    const uint32_t lane_mask_below = (1u << lane) - 1u;
    while (overflowing != 0 && count <= kPoolStorage) {
      const int s = lowest_bit(overflowing);
      overflowing &= overflowing - 1;
      const int list_length = segment_shape(plan, row, s).k;
      for (int j0 = window; j0 < list_length; j0 += 32) {
        const int j = j0 + lane;
        const uint64_t v = j < list_length ? __ldcg(lists + s * list_stride + j) : 0ull;
        const bool take = j < list_length && v >= cut;
        const uint32_t ballot = __ballot_sync(kFullWarp, take);
        const uint32_t position = count + __popc(ballot & lane_mask_below);
        if (take && position < kPoolStorage) scratch.pool[position] = v;
        count += __popc(ballot);
        if (ballot != kFullWarp) break;  // the list fell below P
      }
    }
    __syncwarp();
  }
  if (count >= static_cast<uint32_t>(row.k) && count <= kPoolStorage) {
    return warp_top_candidates(
        scratch.histogram, count, row.k, enough, [&](uint32_t t) { return scratch.pool[t]; },
        winners, cut);
  } else {
    warp_top_k_packed(
        scratch.histogram, plan.segments * list_stride, row.k,
        [&](uint32_t i) {
          const int s = static_cast<int>(i) / list_stride;
          const int j = static_cast<int>(i) - s * list_stride;
          return j < segment_shape(plan, row, s).k ? __ldcg(lists + i) : 0ull;
        },
        winners);
    return row.k;
  }
}

/// Copies 16 bytes from global `src` to shared `dst` (both 16-byte aligned)
/// without holding registers: cp.async through L2 only (like __ldcg), so it
/// sees what other SMs released. wait_async_copies() waits for the lane's
/// copies; a __syncwarp() after it shows them to the other lanes.
__device__ __forceinline__ void copy_async_16(void* dst, const void* src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const uint32_t shared_address = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address), "l"(src)
               : "memory");
#else
  *static_cast<uint4*>(dst) = __ldcg(static_cast<const uint4*>(src));
#endif
}

__device__ __forceinline__ void wait_async_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

/*
 * The merge of a row's segment lists by the last warp of the row, for rows
 * of few short lists (kChainMaxSegments, list_staging_capacity): `lists` holds
 * segment s's sorted (descending) top k_s at lists[s * list_stride ..], k_s
 * <= list_stride <= 32 * kPerLane = N. Leaves the row's top N, sorted
 * descending, in `top` (sorted position e = lane * kPerLane + j in top[j];
 * packed 0 past the real entries), so its first row.k entries are the row's
 * top k.
 *
 * The lists are copied into the warp's shared `staging` in one batch of
 * 16-byte asynchronous copies (no registers held; the split kernel sits at
 * its register cap). Merging a sorted list B into a sorted run A of N takes
 * one half-cleaner, A[e] = max(A[e], B[N - 1 - e]), which keeps the top N of
 * both (descending against ascending: a bitonic sequence), then the log2(N)
 * stages of a bitonic merge. kWays runs are merged side by side, run w
 * taking lists w, w + kWays, ... (independent shuffles overlap: the chain of
 * dependent stages is ceil(S / kWays) - 1 merges long, not S - 1); then the
 * runs are merged pairwise, B reversed by one shuffle a value. Packed
 * values are unique, so the result is exact and independent of timing and
 * of the merge order. The copy reads whole 16-byte units: at most 8 bytes
 * before and after the lists, which stay inside the hand-off's workspace
 * piece (256-byte aligned and padded, WorkspaceLayout) and are never used.
 */
template <int kPerLane, int kWays>
__device__ __forceinline__ void merge_sorted_lists(const SegmentPlan& plan, RowShape row,
                                                   const uint64_t* lists, int list_stride,
                                                   uint64_t* staging, uint64_t (&top)[kPerLane]) {
  constexpr int kN = 32 * kPerLane;
  const int lane = threadIdx.x & 31;
  const int segments = plan.segments;
  const int count = segments * list_stride;  // <= list_staging_capacity()
  const int head = static_cast<int>((reinterpret_cast<uintptr_t>(lists) / sizeof(uint64_t)) & 1);
  const uint64_t* aligned = lists - head;
  for (int c = 2 * lane; c < count + head; c += 64) copy_async_16(staging + c, aligned + c);
  wait_async_copies();
  __syncwarp();
  const uint64_t* staged = staging + head;
  // Entry i of list s (packed 0 past its k_s, or past the last list).
  const auto entry = [&](int s, int i) {
    const int k_s = s < segments ? segment_shape(plan, row, s).k : 0;
    return i < k_s ? staged[s * list_stride + i] : 0ull;
  };
  uint64_t run[kWays][kPerLane];
#pragma unroll
  for (int w = 0; w < kWays; ++w) {
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) run[w][j] = entry(w, lane * kPerLane + j);
  }
#pragma unroll 1
  for (int base = kWays; base < segments; base += kWays) {
#pragma unroll
    for (int w = 0; w < kWays; ++w) {
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        const uint64_t other = entry(base + w, kN - 1 - (lane * kPerLane + j));
        run[w][j] = run[w][j] > other ? run[w][j] : other;
      }
    }
#pragma unroll
    for (int w = 0; w < kWays; ++w) warp_bitonic_merge_descending<uint64_t, kPerLane>(run[w]);
  }
#pragma unroll
  for (int width = kWays / 2; width >= 1; width /= 2) {
#pragma unroll
    for (int w = 0; w < width; ++w) {
      if (w + width >= segments) continue;  // run w + width is empty (warp-uniform)
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        // Sorted position N - 1 - e of run w + width: lane 31 - lane, slot kPerLane - 1 - j.
        const uint64_t other = __shfl_sync(kFullWarp, run[w + width][kPerLane - 1 - j], 31 - lane);
        run[w][j] = run[w][j] > other ? run[w][j] : other;
      }
      warp_bitonic_merge_descending<uint64_t, kPerLane>(run[w]);
    }
  }
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) top[j] = run[0][j];
}

/// Issues the loads of tile `tile` of segment `r` into `raw` (no wait). Lane
/// l's slot j holds aligned position tile * kTile + (j / kVec) * 32 * kVec +
/// l * kVec + j % kVec: a warp's vector loads cover 512 contiguous bytes.
/// Full vectors are one aligned 16-byte load; vectors that straddle the
/// segment's ends load their in-row elements one by one; the others read as
/// `fill` (sentinel_bits, the worst non-NaN value: it never raises a group
/// maximum, and the hit mask excludes those positions).
/// Whether tile `tile` of segment `r` (32 * kTileSlots aligned positions)
/// lies wholly inside the segment: no bounds checks needed.
template <int kTileSlots, typename Bits>
__device__ __forceinline__ bool whole_tile(const SegmentRef<Bits>& r, int tile) {
  const int first = tile * 32 * kTileSlots - r.offset;
  return first >= 0 && first + 32 * kTileSlots <= r.length;
}

template <typename Bits, int kTileSlots>
__device__ __forceinline__ void load_tile(uint4 (&raw)[kTileSlots * sizeof(Bits) / 16],
                                          const SegmentRef<Bits>& r, int tile, Bits fill) {
  constexpr int kVec = 16 / sizeof(Bits);
  constexpr int kVectors = kTileSlots / kVec;
  const int lane = threadIdx.x & 31;
  const Bits* aligned = r.in - r.offset;
  if (whole_tile<kTileSlots>(r, tile)) {  // the common case: no per-vector checks
#pragma unroll
    for (int u = 0; u < kVectors; ++u) {
      raw[u] = __ldg(reinterpret_cast<const uint4*>(aligned + (tile * kVectors + u) * 32 * kVec +
                                                    lane * kVec));
    }
    return;
  }
#pragma unroll
  for (int u = 0; u < kVectors; ++u) {
    const int position = (tile * kVectors + u) * 32 * kVec + lane * kVec;
    const int first = position - r.offset;  // element index of the vector's first slot
    if (first >= 0 && first + kVec <= r.length) {
      raw[u] = __ldg(reinterpret_cast<const uint4*>(aligned + position));
    } else {
      union {
        uint4 v;
        Bits b[kVec];
      } part;
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        const int i = first + e;
        part.b[e] = (i >= 0 && i < r.length) ? r.in[i] : fill;
      }
      raw[u] = part.v;
    }
  }
}

/// Word p (0 .. kWords) of a lane's tile, viewed as 32-bit words (layout of
/// load_tile; see value_filter.cuh for the elements of a word).
template <int kVectors>
__device__ __forceinline__ uint32_t tile_word(const uint4 (&raw)[kVectors], int p) {
  const uint4& v = raw[p / 4];
  return p % 4 == 0 ? v.x : p % 4 == 1 ? v.y : p % 4 == 2 ? v.z : v.w;
}

/// The hit mask (value_filter.cuh) of the lane's slots whose element index
/// tile_base + ... lies in [0, length): all ones on whole tiles.
template <typename Format, int kTileSlots, typename Mask>
__device__ __forceinline__ Mask tile_valid_bits(int tile_base, int length) {
  using Filter = ValueFilter<Format>;
  constexpr int kVec = 16 / sizeof(typename Format::Bits);
  Mask valid = 0;
#pragma unroll
  for (int j = 0; j < kTileSlots; ++j) {
    const int i = tile_base + (j / kVec) * 32 * kVec + j % kVec;
    if (static_cast<unsigned>(i) < static_cast<unsigned>(length))
      valid |= Filter::template slot_bit<Mask>(j);
  }
  return valid;
}

/// The hit mask of a lane's kWords tile words (word_at(p)) against raw
/// threshold t: one compare per word, no keys (value_filter.cuh).
template <typename Format, int kWords, typename Mask, typename WordAt>
__device__ __forceinline__ Mask tile_hits(WordAt&& word_at, uint32_t t, bool largest) {
  using Filter = ValueFilter<Format>;
  Mask hits = 0;
  if (largest) {
#pragma unroll
    for (int p = 0; p < kWords; ++p)
      hits |= Filter::template hit_bits<Mask>(Filter::admits(word_at(p), t, true), p);
  } else {
#pragma unroll
    for (int p = 0; p < kWords; ++p)
      hits |= Filter::template hit_bits<Mask>(Filter::admits(word_at(p), t, false), p);
  }
  return hits;
}

/// kGroupsPerLaneMax group maxima (as keys) of a lane's tile: the words are
/// folded in value space (ValueFilter::fold, NaN ignored), then only the
/// folded words get keys. 16-bit words fold pairwise, so their low and high
/// halves are separate groups. Positions outside the segment hold
/// sentinel_bits (-inf for largest, +inf for smallest), so every maximum is either a real element's
/// key or the key of -inf (largest) / +inf (smallest), the lowest non-NaN key; either way the k-th
/// largest maximum stays a lower bound of the segment's k-th largest key whenever the segment has k
/// elements ranked above NaN-for- smallest (otherwise the pool ends up short and the exact slow
/// path runs).
template <typename Format, int kVectors>
__device__ __forceinline__ void tile_group_maxima(const uint4 (&raw)[kVectors], bool largest,
                                                  uint32_t (&maxima)[kGroupsPerLaneMax]) {
  using Filter = ValueFilter<Format>;
  constexpr int kWords = 4 * kVectors;
  constexpr int kGroupWords = kGroupsPerLaneMax / Filter::kPerWord;  // folded words
  static_assert(kWords % kGroupWords == 0, "equal groups");
#pragma unroll
  for (int g = 0; g < kGroupWords; ++g) {
    uint32_t folded = tile_word(raw, g * (kWords / kGroupWords));
#pragma unroll
    for (int m = 1; m < kWords / kGroupWords; ++m) {
      folded = Filter::fold(folded, tile_word(raw, g * (kWords / kGroupWords) + m), largest);
    }
    uint32_t keys[Filter::kPerWord];
    Filter::keys(folded, largest, keys);
#pragma unroll
    for (int h = 0; h < Filter::kPerWord; ++h) maxima[g * Filter::kPerWord + h] = keys[h];
  }
}

/*
 * Persistent warps; warp w of the grid's W warps takes work items w, w + W,
 * ..., item = row * segments + segment. Each segment is streamed as tiles of
 * 32 * kTileSlots elements through registers, and the next tile (of this
 * segment or of the warp's next one) is always in flight while the current
 * one's candidates are appended: one segment's selection overlaps the next
 * one's loads.
 *
 *  Filter. A segment keeps a pool of candidates (packed (key, ~index),
 *  unique) in the warp's shared memory and a key threshold T, with the
 *  invariant "the pool holds the top min(k, m) of the m elements seen so
 *  far whose keys are >= the first tile's T" (and possibly more of them).
 *  So when at least k elements of the segment reach that T (always when T
 *  is a lower bound of its k-th largest key), the pool ends with the
 *  segment's top k. Each tile is tested
 *  against the floor max(T, 1) in value space (value_filter.cuh: one compare
 *  per fp32 element or fp16/bf16 pair, admitting a superset of the keys >=
 *  the floor); only admitted elements get their exact key, fetched by slot
 *  from the lane's staged raw vectors, and enter the pool (one warp prefix
 *  sum per tile).
 *   - First tile: T = group_max_threshold over value-space group maxima, a
 *     lower bound of the segment's k-th largest key, or, for k > 32 on
 *     segments of several tiles, a guess above it (threshold_rank): then
 *     "at least k elements of the segment are >= T" is checked at the end.
 *   - When a tile would overflow the pool, the pool is cut to its exact top k
 *     by warp_top_k_packed (cut value P) and T becomes key(P) + 1: a later
 *     element with key(P) loses the tie to P on index, so it cannot enter;
 *     the tile's hits below the new T are dropped. If the rest still
 *     overflows (sorted, tied or all-equal rows admit whole tiles), it is
 *     appended in parts: fill the pool, cut again, go on.
 *  Key 0 (NaN under largest == false) never enters, nor do positions outside
 *  the segment (hit mask); if fewer than k elements entered (a guessed T
 *  was too high, or NaN under smallest), the segment takes the slow path:
 *  an exact select over the whole segment re-read from L1/L2.
 *  Finish. A pool of 65-256 candidates is ranked by bins (warp_rank_by_bins:
 *  one histogram pass, each value's rank from its bin's offset and its
 *  bin-mates) and every value of rank r < k goes straight to output slot r.
 *  Otherwise (a smaller pool, a larger one, or one whose values crowd into a
 *  few bins), for k <= 64: the pool, or (when it holds more than 64) its
 *  <= 64 values at or above a cut found by one or two radix passes, is
 *  ranked by counting (rank_small_pool), each value straight to its slot;
 *  for k > 64: cut the pool to its exact top k and bitonic-sort the winners
 *  in registers. Several segments per row: the
 *  sorted winners form the segment's list in the workspace; take a ticket
 *  of the row (an acquire-release atomic); the warp that takes the last
 *  ticket merges the row's lists and writes the row: by bitonic merges of
 *  the sorted lists when they are few and short (merge_sorted_lists), else
 *  by a select over their windows (merge_segments, ranked the same way). No
 *  warp waits for another.
 *  Packed values are unique, so every step is exact and independent of
 *  timing: deterministic, ties to the lowest index.
 */
template <typename Format, int kTileSlots, bool kSplitRows>
__global__ void __launch_bounds__(kThreads, kCtasPerSm)
    row_per_warp_kernel(Problem q, SegmentPlan plan, uint64_t* lists, uint32_t* tickets) {
  using Bits = typename Format::Bits;
  using Filter = ValueFilter<Format>;
  constexpr int kVec = 16 / sizeof(Bits);
  constexpr int kVectors = kTileSlots / kVec;
  constexpr int kWords = 4 * kVectors;
  constexpr int kTile = 32 * kTileSlots;
  static_assert(kTileSlots % kVec == 0 && kTileSlots % kGroupsPerLaneMax == 0, "tile shape");
  static_assert(kTileSlots <= 32 || (kTileSlots == 64 && sizeof(Bits) == 2),
                "one hit bit per slot: 64-slot tiles for 16-bit types only");
  using Mask = std::conditional_t<(kTileSlots > 32), uint64_t, uint32_t>;  // hit bits
  using Scratch = WarpScratch<kSplitRows ? kPoolStorage : kPoolCapacity, kVectors>;
  __shared__ Scratch scratch_all[kWarpsPerCta];

  const int lane = threadIdx.x & 31;
  Scratch& scratch = scratch_all[threadIdx.x >> 5];
  uint64_t* winners = reinterpret_cast<uint64_t*>(scratch.histogram);
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerCta;
  const int64_t items = kSplitRows ? q.rows * plan.segments : q.rows;
  const bool largest = q.largest;
  const Bits fill = static_cast<Bits>(sentinel_bits<Format>(largest));
  const auto staged_word = [&](int p) {
    return reinterpret_cast<const uint32_t*>(&scratch.stage[(p / 4) * 32 + lane])[p % 4];
  };

  // Launched early (programmatic launch): whole rows wait here for the
  // kernels before them, whose writes may be our input; split rows were
  // launched after the tickets' reset kernel (RowHandoff::reset), so their
  // input is ready and they wait only before their ticket.
  if constexpr (!kSplitRows) wait_for_prerequisite_grids();
  int64_t item = static_cast<int64_t>(blockIdx.x) * kWarpsPerCta + (threadIdx.x >> 5);
  // Split rows (-DFASTTOPK_PHASE_PROBE): the timeline of the warp that merges
  // row 0, from its first instruction through its first item.
  PhaseProbe probe(kSplitRows && lane == 0);
  uint4 raw[kVectors];
  SegmentRef<Bits> next{};
  if (item < items) {
    next = describe_segment<Format, kTileSlots, kSplitRows>(q, plan, item);
    if (next.tiles > 0) load_tile<Bits, kTileSlots>(raw, next, 0, fill);
  }
  for (; item < items; item += warps) {
    const SegmentRef<Bits> r = next;
    const int64_t next_item = item + warps;
    next = SegmentRef<Bits>{};
    if (next_item < items) {
      next = describe_segment<Format, kTileSlots, kSplitRows>(q, plan, next_item);
    }
    const int k = r.k;

    if (r.tiles == 0 && next.tiles > 0) load_tile<Bits, kTileSlots>(raw, next, 0, fill);
    uint32_t threshold = 0;
    uint32_t pool_count = 0;
    for (int tile = 0; tile < r.tiles; ++tile) {
      // Test this tile and stage the lanes' raw vectors that hold candidates;
      // then put the next tile's loads in flight.
      const int tile_base = tile * kTile + lane * kVec - r.offset;
      const bool whole = whole_tile<kTileSlots>(r, tile);  // warp-uniform
      if (tile == 0 && k < r.length) {
        uint32_t maxima[kGroupsPerLaneMax];
        tile_group_maxima<Format>(raw, largest, maxima);
        // About 2k / 32 groups per lane (see group_max_threshold).
        constexpr int kKeyBits = Format::kKeyBits;
        const int rank = threshold_rank(k, r.length, min(kTile - r.offset, r.length));
        if (k <= 16) {
          threshold = group_max_threshold<kKeyBits, 1>(maxima, rank);
        } else if (k <= 32) {
          threshold = group_max_threshold<kKeyBits, 2>(maxima, rank);
        } else if (k <= 64) {
          threshold = group_max_threshold<kKeyBits, 4>(maxima, rank);
        } else {
          threshold = group_max_threshold<kKeyBits, 8>(maxima, rank);
        }
      }
      Mask hits = tile_hits<Format, kWords, Mask>(
          [&](int p) { return tile_word(raw, p); },
          admission_bits<Format>(max(threshold, 1u), largest), largest);
      if (!whole) hits &= tile_valid_bits<Format, kTileSlots, Mask>(tile_base, r.length);
      if (hits != 0) {
#pragma unroll
        for (int u = 0; u < kVectors; ++u) scratch.stage[u * 32 + lane] = raw[u];
      }
      if (tile + 1 < r.tiles) {
        load_tile<Bits, kTileSlots>(raw, r, tile + 1, fill);
      } else if (next.tiles > 0) {
        load_tile<Bits, kTileSlots>(raw, next, 0, fill);
      }
      // Append the admitted elements with their exact keys, each lane's in
      // slot order, at pool[position ..] while position < limit (unbounded
      // when everything fits).
      const Bits* staged = reinterpret_cast<const Bits*>(scratch.stage);
      const auto append = [&](uint32_t position, auto bounded, uint32_t limit) {
        while (hits != 0 && (!decltype(bounded)::value || position < limit)) {
          const int j = Filter::slot_of_bit(lowest_bit(hits));
          hits &= hits - 1;
          const int u = j / kVec;
          const int e = j % kVec;
          const Bits bits = staged[(u * 32 + lane) * kVec + e];
          const int i = tile_base + u * 32 * kVec + e;
          scratch.pool[position++] =
              pack_key_index(rank_key<Format>(bits, largest), static_cast<uint32_t>(r.begin + i));
        }
      };
      uint32_t mine = popcount(hits);
      uint32_t inclusive = warp_inclusive_sum(mine);
      uint32_t entering = __shfl_sync(kFullWarp, inclusive, 31);
      // The hits would overflow the pool: cut the pool to its exact top k
      // (raising the threshold drops hits); if the rest still overflows
      // (sorted, tied or all-equal rows admit whole tiles), fill the pool and
      // cut again. Every round drops or appends hits, so the loop ends.
      bool partly_pooled = false;  // some of this tile's hits are in the pool
      while (pool_count + entering > kPoolCapacity) {
        if (pool_count > static_cast<uint32_t>(k)) {
          const uint64_t cut = warp_top_k_packed(
              scratch.histogram, pool_count, k, [&](uint32_t t) { return scratch.pool[t]; },
              scratch.pool);
          pool_count = k;
          const uint32_t cut_key = packed_key(cut);
          threshold = max(threshold, cut_key == 0xffffffffu ? cut_key : cut_key + 1u);
          // Drop this tile's remaining hits below the cut. If P may come from
          // this tile, a remaining hit with P's key may precede P in the row
          // (a lane's slots are not in index order) and win the tie, so the
          // floor is key(P) then; only later tiles lose every tie with P.
          // A higher floor only removes hits: lanes without hits staged nothing.
          const uint32_t floor = partly_pooled ? cut_key : threshold;
          if (hits != 0) {
            hits &= tile_hits<Format, kWords, Mask>(
                staged_word, admission_bits<Format>(max(floor, 1u), largest), largest);
          }
        } else {
          append(pool_count + inclusive - mine, std::true_type{}, kPoolCapacity);
          __syncwarp();  // the pool is complete before the cut reads it
          pool_count = kPoolCapacity;
          partly_pooled = true;
        }
        mine = popcount(hits);
        inclusive = warp_inclusive_sum(mine);
        entering = __shfl_sync(kFullWarp, inclusive, 31);
      }
      append(pool_count + inclusive - mine, std::false_type{}, 0u);
      pool_count += entering;
      __syncwarp();
      if (tile == 0) probe.mark();
    }

    // ---- finish the segment: exact top k -----------------------------------
    probe.mark();
    const int64_t row = kSplitRows ? item / plan.segments : item;
    if (kSplitRows && kAblate == 2) {
      probe.stop();
      continue;
    }
    const Bits* row_in = static_cast<const Bits*>(q.input) + row * q.row_stride;
    const bool pooled = k > 0 && pool_count >= static_cast<uint32_t>(k);
    bool ranked_by_bins = false;
    if (kBinRank != 0 && pooled && pool_count <= kBinRankPoolMax &&
        pool_count <= sizeof(scratch.stage) / sizeof(uint64_t) &&
        (kBinRank == 2 || pool_count > kRankPoolMax)) {
      // Each value of rank p < k straight to slot p (whole rows) or list entry p.
      const auto emit = [&](uint32_t p, uint64_t v) {
        if constexpr (kSplitRows) {
          lists[item * q.k + p] = v;
        } else {
          write_output<Format>(q, row_in, row, p, v, true);
        }
      };
      // The stage (free at the end of a segment) takes the pool grouped by bin.
      ranked_by_bins = warp_rank_by_bins(scratch.histogram, scratch.pool, pool_count, k,
                                         reinterpret_cast<uint64_t*>(scratch.stage), emit);
      if (ranked_by_bins && !kSplitRows) write_sentinels<Format>(q, row_in, row, k);
    }
    if (!ranked_by_bins) {
      if (pooled && (pool_count <= kRankPoolMax || (kRankAfterSelect && k <= kRankPoolMax))) {
        // Rank by counting, each value straight to its slot: the whole pool
        // when it is small, else the <= kRankPoolMax values at or above a cut
        // that one or two radix passes find (no exact select, no sort).
        uint64_t* ranked = scratch.pool;
        uint32_t n = pool_count;
        if (pool_count > kRankPoolMax) {
          uint64_t cut;
          n = warp_top_candidates(
              scratch.histogram, pool_count, k, kRankPoolMax,
              [&](uint32_t t) { return scratch.pool[t]; }, winners, cut);
          ranked = winners;
        }
        if constexpr (kSplitRows) {
          rank_to_slots(ranked, n, k, [&](uint32_t p, uint64_t v) { lists[item * q.k + p] = v; });
        } else {
          write_row_ranked<Format>(q, row_in, row, ranked, n, k);
        }
      } else {
        if (pooled) {
          warp_top_k_packed(
              scratch.histogram, pool_count, k, [&](uint32_t t) { return scratch.pool[t]; },
              winners);
        } else if (k > 0) {
          // Slow path: exact select over the whole segment, re-read from L1/L2.
          warp_top_k_packed(
              scratch.histogram, r.length, k,
              [&](uint32_t i) {
                return pack_key_index(rank_key<Format>(r.in[i], largest), r.begin + i);
              },
              winners);
        }
        __syncwarp();
        if constexpr (kSplitRows) {
          store_list(q.k, winners, k, lists + item * q.k);
        } else {
          write_row<Format>(q, row_in, row, winners, k);
        }
      }
    }
    if constexpr (kSplitRows) {
      // ---- hand-off: the last warp of the row merges ----------------------
      probe.mark();
      __syncwarp();  // the lists' stores, then the ticket (take_ticket)
      uint32_t last = 0;
      if (lane == 0) {
        wait_for_prerequisite_grids();  // the reset of the tickets is complete
        last = take_ticket(&tickets[row]) == static_cast<uint32_t>(plan.segments - 1);
      }
      last = __shfl_sync(kFullWarp, last, 0);
      probe.mark();
      if (kAblate == 1) last = 0;
      const bool chain = kChainMerge && plan.segments <= kChainMaxSegments &&
                         plan.segments * q.k <= list_staging_capacity<Scratch>();
      if (last != 0 && chain) {
        __syncwarp();  // the other segments' lists are visible to every lane
        const RowShape shape = row_shape(q.k_per_row, q.row_lengths, row, static_cast<int>(q.cols),
                                         static_cast<int>(q.k));
        const uint64_t* row_lists = lists + row * plan.segments * q.k;
        // The row's top N sorted, then every output slot of the row from it.
        const auto merge_and_write = [&](auto per_lane) {
          constexpr int kPerLane = decltype(per_lane)::value;
          constexpr int kMergeWays = kPerLane == 4 ? 2 : 4;  // runs side by side: 16 registers
          uint64_t top[kPerLane];
          merge_sorted_lists<kPerLane, kMergeWays>(plan, shape, row_lists, static_cast<int>(q.k),
                                                   scratch.pool, top);
          probe.mark();
#pragma unroll
          for (int j = 0; j < kPerLane; ++j) {
            const int e = lane * kPerLane + j;
            if (e < q.k) write_output<Format>(q, row_in, row, e, top[j], e < shape.k);
          }
        };
        if (q.k <= 32) {
          merge_and_write(std::integral_constant<int, 1>{});
        } else if (q.k <= 64) {
          merge_and_write(std::integral_constant<int, 2>{});
        } else {
          merge_and_write(std::integral_constant<int, 4>{});
        }
      } else if (last != 0) {
        __syncwarp();  // the other segments' lists are visible to every lane
        const RowShape shape = row_shape(q.k_per_row, q.row_lengths, row, static_cast<int>(q.cols),
                                         static_cast<int>(q.k));
        const bool rank = kRankAfterSelect && shape.k > 0 && shape.k <= kRankPoolMax;
        uint32_t n = 0;
        if (shape.k > 0) {
          n = merge_segments(plan, shape, lists + row * plan.segments * q.k, static_cast<int>(q.k),
                             rank ? kRankPoolMax : shape.k, scratch, winners);
        }
        __syncwarp();
        probe.mark();
        if (rank) {
          write_row_ranked<Format>(q, row_in, row, winners, n, shape.k);
        } else {
          write_row<Format>(q, row_in, row, winners, shape.k);
        }
      } else {
        probe.mark();
      }
      if (!(last != 0 && row == 0)) probe.stop();
      probe.finish("row_per_warp split (marks: tile 0, tiles, end, ticket, merge, write)");
    }
    __syncwarp();  // the winners (histogram) are read before the next select
  }
}

/// Elements per lane and tile: 8 (256-element tiles) when every row fits one
/// such tile, 32 (1024-element tiles) when it fits one of those, else 64 for
/// 16-bit types (2048-element tiles: the same 128 bytes of registers per lane
/// as fp32's 32, half the per-tile overhead per element, and a first tile
/// twice as large for the threshold) and 32 for fp32.
constexpr int widest_tile_slots(int element_bytes) {
  return element_bytes == 2 && kWideTiles16 ? 64 : 32;
}

int tile_slots_for(const Problem& q) {
  const int vec = 16 / q.element_bytes();
  const bool aligned = reinterpret_cast<uintptr_t>(q.input) % 16 == 0 &&
                       (q.rows == 1 || (q.row_stride * q.element_bytes()) % 16 == 0);
  const int64_t need = q.cols + (aligned ? 0 : vec - 1);
  if (need <= 32 * 8) return 8;
  if (need <= 32 * 32) return 32;
  return widest_tile_slots(q.element_bytes());
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Segments per row: enough to give every resident warp a segment when rows
/// are at most a fifth of the resident warps, with segments of >=
/// kMinSegment elements, at most kMaxSegments, and a merge window (about
/// 2k / segments + 4 entries per list, all of a list when that is no more)
/// that fits kPoolStorage. Measured on the H100 (docs/perf-notes.md v7): 8-16
/// segments per row are 1.5x faster than split_row (256x128256, 128x65536),
/// but 2 per row lose to whole rows (1024x32000 fp32: 86-94 vs 72 µs).
SegmentPlan make_plan(const Problem& q, const DeviceFacts& device) {
  constexpr int64_t kMinFill = 5;  // split rows only with >= 5 resident warps per row
  SegmentPlan plan{1, static_cast<int>(q.cols), 0};
  const int64_t resident_warps = int64_t{device.sm_count} * kCtasPerSm * kWarpsPerCta;
  const int64_t fill = resident_warps / std::max<int64_t>(q.rows, 1);
  if (q.k <= 0 || fill < kMinFill || q.cols < 2 * int64_t{kMinSegment}) return plan;
  for (int64_t want = std::min<int64_t>({fill, q.cols / kMinSegment, kMaxSegments}); want >= 2;
       --want) {
    const int64_t length = ceil_div(ceil_div(q.cols, want), kSegmentGranule) * kSegmentGranule;
    const int64_t segments = ceil_div(q.cols, length);
    const int64_t window = std::min<int64_t>(q.k, ceil_div(2 * q.k, segments) + 4);
    if (segments >= 2 && segments * window <= kPoolStorage) {
      plan.segments = static_cast<int>(segments);
      plan.segment_length = static_cast<int>(length);
      plan.window = static_cast<int>(window);
      return plan;
    }
  }
  return plan;
}

const char* rejects(const Problem& q, const DeviceFacts& device, FamilyPlan* plan) {
  if (q.k > kMaxK) return "k > 128";
  if (q.cols > kMaxCols) return "cols > 2^30";
  plan->store(make_plan(q, device));
  return nullptr;
}

/// Split rows need the per-row tickets and the segment lists.
std::size_t workspace(const Problem& q, const DeviceFacts&, const FamilyPlan& stored) {
  const SegmentPlan plan = stored.load<SegmentPlan>();
  if (plan.segments == 1) return 0;
  WorkspaceLayout w(nullptr);
  RowHandoff::take(w, q.rows, plan.segments * q.k);
  return w.bytes();
}

int launch(const Problem& q, const DeviceFacts& device, const FamilyPlan& stored, void* workspace,
           cudaStream_t stream) {
  const SegmentPlan plan = stored.load<SegmentPlan>();
  RowHandoff handoff;  // the segment lists and the row tickets
  if (plan.segments > 1) {
    WorkspaceLayout w(workspace);
    handoff = RowHandoff::take(w, q.rows, plan.segments * q.k);
    const cudaError_t e = handoff.reset(q.rows, stream);
    if (e != cudaSuccess) return e;
  }
  uint64_t* const lists = handoff.candidates;
  uint32_t* const tickets = handoff.tickets;
  const int64_t needed = ceil_div(q.rows * plan.segments, kWarpsPerCta);
  const int64_t resident = static_cast<int64_t>(device.sm_count) * kCtasPerSm;
  const unsigned grid = static_cast<unsigned>(std::min(needed, resident));
  return dispatch_dtype(q.dtype, [&](auto format) -> int {
    using Format = decltype(format);
    // The widest tile: 64 slots for 16-bit types (see tile_slots_for).
    constexpr int kWide = widest_tile_slots(sizeof(typename Format::Bits));
    const int slots = tile_slots_for(q);
    void (*kernel)(Problem, SegmentPlan, uint64_t*, uint32_t*) =
        row_per_warp_kernel<Format, kWide, false>;
    if (plan.segments > 1) {
      kernel = row_per_warp_kernel<Format, kWide, true>;
    } else if (slots == 8) {
      kernel = row_per_warp_kernel<Format, 8, false>;
    } else if (slots == 32) {
      kernel = row_per_warp_kernel<Format, 32, false>;
    }
    // Programmatic: overlaps the launch with the kernel before it (whole
    // rows), or with the tickets' reset (split rows).
    return launch_programmatic(device.cc_major >= 9, kernel, dim3(grid), dim3(kThreads), 0, stream,
                               q, plan, lists, tickets);
  });
}

}  // namespace

const AlgorithmFamily kRowPerWarpFamily = {Algorithm::kRowPerWarp, rejects, workspace, launch};

}  // namespace fasttopk::detail
