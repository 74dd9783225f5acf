// The dispatcher: problem shape + device -> algorithm family.
//
// Forced algorithms (params.algorithm != kAuto) run if their family accepts
// the shape and fail with kUnsupported otherwise. kAuto walks kAutoRules
// (tuning as data: the first rule whose shape bounds match and whose family
// accepts the problem wins) and ends at the block-per-row fallback, which
// accepts every problem.
#include <cstdint>
#include <string>

#include "cuda/algorithms.hpp"

namespace fasttopk::detail {
namespace {

const AlgorithmFamily* const kFamilies[] = {
    &kBlockPerRowFamily, &kSplitRowFamily,      &kRowPerCtaFamily,
    &kRowPerWarpFamily,  &kRowPerClusterFamily,
};

/// One line of the automatic choice: rows, columns and k within bounds.
/// Bounds are inclusive; -1 = unbounded. min_cluster_waves > 0 also asks
/// that row_per_cluster's plan for the problem take at least that many
/// waves (row_per_cluster_waves): where the cluster's loss follows its wave
/// count rather than a shape bound. min_element_bytes > 0 limits the rule
/// to elements of at least that size (4: fp32 only).
struct AutoRule {
  Algorithm algorithm;
  int64_t min_rows, max_rows;
  int64_t min_cols, max_cols;
  int64_t min_k, max_k;
  int64_t min_cluster_waves = 0;
  int64_t min_element_bytes = 0;
};

// Ordered: the first match whose family accepts the problem wins. The
// thresholds come from tuning/sweep-nvidia-h100-80gb-hbm3.md (made by
// scripts/sweep-dispatch on the H100; the script's header says how to redo
// this for another GPU):
//  - row_per_warp wins for k <= 64 on every shape with >= 512 rows (1.1-2.8x
//    over the next best at 16k-131k columns) and on rows of <= 1000 columns
//    at any batch; for a few rows of 4096 columns row_per_cta is faster.
//  - row_per_warp with rows split across warps beats split_row on 65-384
//    rows of >= 16k columns (256x128256 bf16 82 vs 145 µs, 128x65536 fp32
//    30 vs 45; docs/perf-notes.md v7). On 32 rows of >= 128k columns it is
//    faster cache-warm (32x262144 bf16 41 vs 54) but up to 3x slower with
//    cold inputs (unexplained yet), so it does not take <= 64 rows, except
//    at k = 1 from 100000 columns and 32 rows up, where it is faster both
//    warm and cold (32x128256 k1 bf16 11.6 / 13.6 µs vs row_per_cluster's
//    16.9 / 16.8, 32x151936 k1 fp32 12.4 / 15.8 vs 16.5 / 20.7; gpu-check of
//    2026-11-24 23:17 UTC; at k = 8 the cluster is faster again). Since
//    v19-v23 (cheaper end of a segment and merge, a guessed threshold) it
//    is faster warm and cold on 16-64 rows of >= 200000 columns at k = 50
//    (graph µs warm / cold, row_per_warp vs row_per_cluster, A/B run of
//    2026-11-25 01:38 UTC: 16x262144 bf16 18.1 / 19.5 vs 20.1 / 21.9,
//    32x200000 fp32 20.8 / 24.3 vs 26.3 / 31.0, 32x262144 bf16 20.3 / 22.5
//    vs 29.4 / 31.9, fp32 23.0 / 27.9 vs 30.1 / 34.7, 64x262144 bf16
//    22.5 / 26.5 vs 47.5 / 50.4), while the cluster stays faster on
//    32x131072 (14.6 / 16.2 vs 18.1 / 20.0) and on the shorter rows of the
//    llm suite. A sweep of 24-64 rows of 65536-200000 columns (cold µs,
//    2026-12-07 08:57-09:00 UTC, docs/perf-notes.md v38) moved more of them to
//    row_per_warp: k <= 16 from 24 rows and 65536 columns (0.79-0.96x the
//    cluster's time, 32x131072 bf16 k8 12.9 vs 14.7 µs; 24x131072 was the
//    one loss, 1.02-1.07x) and k <= 64 from 48 rows and 100000 columns
//    (0.49-0.89x; 64x131072 bf16 k64 19.1 vs 27.6). Below 48 rows or at
//    65536 columns the cluster stays faster for k = 32-64. From 33 rows and
//    200000 columns a row needs >= 7 CTAs of the cluster, so more than one
//    wave: split_row takes k > 64 there (0.54-0.80x, 64x200000 bf16 k256
//    48.9 vs 90.9 µs; the cluster rejects k = 2048 at that length anyway).
//    The same holds at k = 512-1024 wherever the cluster needs a second
//    wave: from 33 rows and 100000 columns (>= 4 CTAs a row of at most
//    32768 columns) and from 17 rows and 229377 columns (8 CTAs a row).
//    Sweep of 2026-12-07 15:42-15:44 UTC (graph µs, split_row vs row_per_cluster,
//    docs/perf-notes.md session 29): 64x131072 k512 fp32 33.4 vs 43.8, bf16
//    33.9 vs 41.5, k1024 fp32 38.6 vs 57.2, bf16 39.3 vs 55.3; 32x262144
//    k512 fp32 35.4 vs 59.7, bf16 35.4 vs 58.7, k1024 41.7 vs 61.2, 42.3 vs
//    60.0. At k = 2048 the cluster still wins there (64x131072 fp32 59.9 vs
//    80.0, bf16 58.8 vs 100.8), as it does on one wave (32x131072 k512 fp32
//    22.9 vs 29.0, 64x65536 k1024 21.2 vs 30.5). At 33-64 rows the shape
//    bound alone was wrong both ways (sweep of 2026-12-07 17:01 UTC, H100,
//    docs/perf-notes.md session 30): whether the cluster's plan fits one
//    wave depends on k through its shared memory, and its losses follow the
//    waves, not the rows. On one wave it wins (33x100000 k512 fp32 21.1 vs
//    25.8, bf16 20.2 vs 28.8; 48x100000 k256 fp32 23.5 vs 27.2); on two it
//    loses from k = 256 (48x131072 k256 fp32 38.6 vs 29.8, 64x100000 k256
//    35.8 vs 29.4, k384 37.5 vs 31.5; 33x100000 k1024 fp32 35.3 vs 29.8)
//    and still wins at k = 128 (64x131072 fp32 32.8 vs 35.0). So the rule
//    for 33-64 rows asks the cluster's plan for its waves
//    (row_per_cluster_waves). At 17-32 rows of >= 229377 columns (8 CTAs a
//    row) the sweep of 2026-12-07 19:23 UTC (H100, docs/perf-notes.md
//    session 31) kept split_row at 32 rows (k512 fp32 34.9 vs 56.8, k1024
//    41.0 vs 58.1) and at 24 rows for k = 512 (33.4 vs 38.7), but at 24
//    rows and k = 1024 the cluster won (fp32 39.7 vs 47.6, bf16 41.2 vs
//    50.6, 24x262144 41.4 vs 49.5): 17-24 rows keep split_row to k = 512.
//    At k = 2048 the same sweep kept the cluster at 33-48 rows (33x100000
//    fp32 37.6 vs 45.7, 48x131072 43.0 vs 46.5) and at 64 rows in bf16
//    (64x131072 58.8 vs 62.0), where split_row's streaming floor admits
//    more of bf16's ties, but split_row won 64 rows in fp32 (64x100000
//    44.6 vs 52.9, 64x131072 48.1 vs 59.8; 48 rows: the cluster): a rule
//    for fp32 only, from 49 rows (the crossing between 48 and 64 rows is
//    not measured).
//  - row_per_cluster (split_row's kernel with the hand-off inside a
//    thread-block cluster: no workspace, no memset node) beats every other
//    algorithm on <= 8 rows of 8192-131072 columns at any k (0.59-0.93x the
//    next best) and on 9-32 rows for k <= 64 (0.69-1.00x); with more rows or
//    larger k its 8 CTAs per row lost to split_row (docs/perf-notes.md v8,
//    sweep of 168 shapes, 2026-11-24). Since v13 one cluster takes rows up
//    to 262144 columns, where it beats split_row 1.3-2.2x on 1-32 rows at
//    k <= 50 (32x151936 k50 bf16 17.7 vs 38.6 µs; docs/perf-notes.md v13).
//    Since v14 the CTAs per row shrink so that every cluster is resident at
//    once, one CTA per SM, which takes 33-64 rows too (64x32000 k50 bf16
//    8.7 vs split_row's 20.3 µs, 64x16384 k8 fp32 9.1 vs 14.1). Since v15
//    k > 128 selects and ranks across the cluster (no gather into one CTA,
//    no k-element sort), which beats split_row on 9-32 rows at any k
//    (16x65536 k1024 bf16 18.4 vs 42.8 µs, 32x32000 k256 fp32 15.0 vs 21.7)
//    and on 33-64 rows at k <= 1024 (64x32768 k512 fp32 18.9 vs 27.5,
//    64x8192 k512 15.0 vs row_per_cta's 18.8) and at k = 2048 from 65536
//    columns (64x131072 k2048 bf16 81.5 vs 101.0; gpu-check of 2026-11-24
//    23:17 UTC). Since v40 (parts of the cluster's set sorted by key bins)
//    it also wins at k = 2048 from 8192 columns, where split_row and
//    row_per_cta were faster: 64x8192 fp32 21.8 vs row_per_cta's 33.2 µs,
//    64x32768 fp32 23.9 vs split_row's 40.8, bf16 24.0 vs 42.3 (gpu-check
//    of 2026-12-07 09:59-10:05 UTC).
//  - split_row wins for few long rows (rows <= 64, cols >= 16384) where the
//    cluster rules above do not apply or the cluster rejects the shape, and
//    for k > 64 on long rows; row_per_cta (= split_row with one split) for the
//    rest up to 16384 columns; block_per_row takes what nothing else can
//    (k > 2048; since v36 split_row streams chunks of any length, so no row
//    is too long for it).
constexpr AutoRule kAutoRules[] = {
    {Algorithm::kRowPerWarp, 512, -1, -1, -1, -1, 64},
    {Algorithm::kRowPerWarp, -1, -1, -1, 2048, -1, 64},
    {Algorithm::kRowPerWarp, 65, 384, 16385, -1, -1, 64},
    {Algorithm::kRowPerWarp, 32, 64, 100000, -1, -1, 1},
    {Algorithm::kRowPerWarp, 16, 64, 200000, -1, -1, 64},
    {Algorithm::kRowPerWarp, 24, 64, 65536, -1, -1, 16},
    {Algorithm::kRowPerWarp, 48, 64, 100000, -1, -1, 64},
    {Algorithm::kSplitRow, 33, 64, 200000, -1, -1, 1024},
    {Algorithm::kSplitRow, 33, 64, 100000, -1, 256, 1024, 2},
    {Algorithm::kSplitRow, 49, 64, 100000, -1, 1025, 2048, 0, 4},
    {Algorithm::kSplitRow, 25, 32, 229377, -1, 512, 1024},
    {Algorithm::kSplitRow, 17, 24, 229377, -1, 512, 512},
    {Algorithm::kRowPerCluster, -1, 8, 8192, -1, -1, 2048},
    {Algorithm::kRowPerCluster, 9, 32, 8192, -1, -1, 2048},
    {Algorithm::kRowPerCluster, 33, 64, 8192, -1, -1, 2048},
    {Algorithm::kSplitRow, -1, 64, 8193, -1, -1, 2048},
    {Algorithm::kRowPerCta, -1, -1, -1, 16384, -1, 2048},
    {Algorithm::kSplitRow, -1, -1, 16385, -1, -1, 2048},
    {Algorithm::kBlockPerRow, -1, -1, -1, -1, -1, -1},
};

bool within(int64_t value, int64_t lo, int64_t hi) {
  return (lo < 0 || value >= lo) && (hi < 0 || value <= hi);
}

const AlgorithmFamily* family_of(Algorithm algorithm) {
  for (const AlgorithmFamily* f : kFamilies) {
    if (f->id == algorithm) return f;
  }
  return nullptr;
}

}  // namespace

Status choose_family(const Problem& q, const DeviceFacts& device, const AlgorithmFamily** out,
                     FamilyPlan* plan) {
  if (q.algorithm != Algorithm::kAuto) {
    const AlgorithmFamily* f = family_of(q.algorithm);
    if (f == nullptr) {
      return Status(StatusCode::kUnsupported, std::string("algorithm '") +
                                                  algorithm_name(q.algorithm) +
                                                  "' is not available in this build");
    }
    if (const char* why = f->rejects(q, device, plan)) {
      return Status(StatusCode::kUnsupported, std::string("algorithm '") +
                                                  algorithm_name(q.algorithm) +
                                                  "' cannot run this problem: " + why);
    }
    *out = f;
    return Status();
  }
  for (const AutoRule& rule : kAutoRules) {
    if (!within(q.rows, rule.min_rows, rule.max_rows) ||
        !within(q.cols, rule.min_cols, rule.max_cols) || !within(q.k, rule.min_k, rule.max_k)) {
      continue;
    }
    if (static_cast<int64_t>(q.element_bytes()) < rule.min_element_bytes) continue;
    if (rule.min_cluster_waves > 0 && row_per_cluster_waves(q, device) < rule.min_cluster_waves) {
      continue;
    }
    const AlgorithmFamily* f = family_of(rule.algorithm);
    if (f != nullptr && f->rejects(q, device, plan) == nullptr) {
      *out = f;
      return Status();
    }
  }
  return Status(StatusCode::kUnsupported, "internal: no algorithm accepted the problem");
}

}  // namespace fasttopk::detail
