// Algorithm family "split_row": rows split across CTAs, one launch.
//
// For few long rows (decode: batch 1-64 over 32k-256k vocabularies) one CTA
// per row would leave most SMs idle, and the time is all latency. Each row is
// cut into `splits` chunks, one CTA each:
//
//   phase A (every CTA): read the chunk once, keep its rank keys in shared
//     memory, and select the chunk's exact local top k_c = min(k_row, chunk
//     length) by packed (key, ~index) value (block_select_packed). Those
//     candidates go to the workspace. Any element of the row's top k is in
//     its own chunk's top k_c, so the union of candidates contains the answer.
//   phase B (the last CTA of the row to finish, found with an acquire-release
//     atomic ticket, take_ticket, no spin-waiting): load the row's candidates into
//     shared memory, select the top k_row of them, bitonic-sort them and
//     write values, indices and sentinels.
//
// Packed values are unique, so both selections and the sort are exact and
// independent of CTA timing and atomic order: the output is deterministic
// (sorted == false also returns the sorted order). With splits == 1 a CTA
// does both phases without the workspace round trip: this is the
// "row_per_cta" family for many short rows.
//
// Chunks of more than kStreamMinChunk elements (and at least kStreamMinRatio
// times k, unless too long for chip) are not held on chip: phase A streams
// them through registers and keeps only candidates above a rising floor, the
// k-th largest value read so far (stream_chunk_candidates). A chunk then has
// no length limit, so many long rows take one CTA each and phase A's exact
// select runs over a few thousand candidates instead of the whole chunk.
//
// The per-row tickets are zeroed in the same call by a small kernel before
// this one (RowHandoff::reset), so no state survives between calls; this
// kernel is a programmatic dependent of it and waits for it only before its
// ticket, so its launch and phase A overlap the reset.
//
// "row_per_cluster" is the same kernel with the hand-off on chip: the CTAs
// of a row form one thread-block cluster (sm_90+, at most 8 CTAs, all
// resident together by construction), phase A pushes its candidates straight
// into the shared memory of the row's first CTA (distributed shared memory),
// and one cluster barrier replaces the ticket. No workspace, no ticket reset,
// no L2 round trip for the candidates: a single kernel node per call (the
// memset node alone costs ~1.9 µs per call in graph replay on the H100,
// docs/perf-notes.md v8). Because rank 0's pool has room to spare, phase A
// may also skip its exact select: a cheap lower bound of the chunk's k-th
// largest key (chunk_lower_bound) usually lets only ~3k elements through,
// and all of them go to the pool. For k <= 128 phase B then neither selects
// nor sorts: a histogram of the candidates' top key bits isolates the k-th
// one's bin, and the few candidates in and above it are ranked by counting
// (rank_phase_b); a select and a sort remain the fallback. For k > 128 no
// CTA gathers anything: the cluster finds the k-th key's top 16 bits with
// two rounds of 256-bin histograms summed across the cluster, every CTA
// sorts its own candidates and ranks them against everyone's
// (distributed_top_k, a kernel instantiation of its own); heavy ties fall
// back to the select path.
#include <algorithm>
#include <atomic>
#include <cstdint>

#include "cuda/algorithms.hpp"
#include "cuda/common.cuh"
#include "cuda/radix_select.cuh"
#include "cuda/warp_select.cuh"

namespace fasttopk::detail {
namespace {

// Tuning constants (measured on the H100, docs/perf-notes.md v3): split_row
// is insensitive to its chunk size and slower at 256 threads for many rows;
// row_per_cta is 31% faster at 256 threads (more CTAs per SM overlap loads).
// The FASTTOPK_TUNE_* override exists for sweeps only.
#ifndef FASTTOPK_TUNE_MIN_CHUNK
#define FASTTOPK_TUNE_MIN_CHUNK 2048
#endif
constexpr int kSplitThreads = 512;
constexpr int kRowThreads = 256;
constexpr int kMaxK = 2048;       // largest k this family takes
constexpr int kMaxChunk = 16384;  // keys kept on chip by phase A (64 KB)
// A cluster CTA may hold twice as many (128 KB; the shared-memory check of
// make_plan still applies): one cluster then takes rows up to 262,144
// elements, the 151k-262k vocabularies that split_row served at up to 2.2x the
// time (docs/perf-notes.md v13).
constexpr int kMaxClusterChunk = 32768;
constexpr int kMaxCandidates = 24576;  // packed values phase B holds (192 KB)
// Chunks longer than this stream through registers instead of being held on
// chip (stream_chunk_candidates): a chunk then has no length limit, so many
// long rows take one CTA each (1024 x 128256 k1024 bf16 ran 8 CTAs a row,
// each an exact select over 16,384 keys: 703 µs, 12% of the copy
// bandwidth; docs/perf-notes.md v36). v36 set kMaxChunk; v50 sets 8192,
// so that chunks that would fit on chip stream too where they are long
// against k (kStreamMinRatio): 512x16384 k2048 fp32 took 56.8 µs streamed
// against 67.7 on chip, 512x16384 k1024 bf16 37.5 against 56.4, 1024x16384
// k512 bf16 60.8 against 82.9 (A/B of 2026-12-07 19:26 UTC, H100;
// docs/perf-notes.md v50). Tests stream every chunk with this knob at 1 and
// FASTTOPK_TUNE_STREAM_MIN_RATIO at 0.
#ifndef FASTTOPK_TUNE_STREAM_MIN_CHUNK
#define FASTTOPK_TUNE_STREAM_MIN_CHUNK 8192
#endif
constexpr int kStreamMinChunk = FASTTOPK_TUNE_STREAM_MIN_CHUNK;
// ... but only where a chunk holds at least this many times k elements, if
// the chunks fit on chip otherwise. v36 set 32: 512x32768 k2048 fp32 (a
// ratio of 16) took 164 µs streamed against 149 in two chunks on chip. The
// streamed path has since become 20-45% faster at large k (v41-v46) and the
// on-chip one has not: at 8, which with k <= 2048 streams every chunk longer
// than kMaxChunk, 512x32768 k2048 fp32 takes 75.4 µs against 107.6 on chip,
// 512x24576 k1024 fp32 46.4 against 80.1, 512x20000 k2048 bf16 61.8 against
// 87.4 (A/B of 2026-12-07 17:00 UTC, H100; docs/perf-notes.md v48).
#ifndef FASTTOPK_TUNE_STREAM_MIN_RATIO
#define FASTTOPK_TUNE_STREAM_MIN_RATIO 8
#endif
constexpr int64_t kStreamMinRatio = FASTTOPK_TUNE_STREAM_MIN_RATIO;
// Tiles a streaming thread has in flight; 0: 64 bytes' worth (4 tiles of
// 16-bit values, 2 of fp32). 1 (the next tile loads while this one is
// admitted) beat 64 bytes by 5-9% on every streamed shape measured: the
// extra registers cost more than the deeper queue gains (docs/perf-notes.md
// v36b).
#ifndef FASTTOPK_TUNE_STREAM_DEPTH
#define FASTTOPK_TUNE_STREAM_DEPTH 1
#endif
constexpr int kStreamDepth = FASTTOPK_TUNE_STREAM_DEPTH;
// One-split streaming plans with k above this run 512 threads a CTA (the
// final sort of k values and the selects spread over twice the threads),
// the others kRowThreads. 512 threads pay at k = 2048 (512x131072 fp32:
// -5 to -14%) but cost 10-19% at k = 1024 (docs/perf-notes.md v36b).
#ifndef FASTTOPK_TUNE_STREAM_WIDE_K
#define FASTTOPK_TUNE_STREAM_WIDE_K 1024
#endif
constexpr int kStreamWideK = FASTTOPK_TUNE_STREAM_WIDE_K;
// Streaming kernels (instantiations of their own) are built for this many
// 256-thread CTAs per SM (half as many of 512 threads): <= 64 registers a
// thread, where the on-chip kernels' budget would leave room for fewer.
#ifndef FASTTOPK_TUNE_STREAM_CTAS_PER_SM
#define FASTTOPK_TUNE_STREAM_CTAS_PER_SM 4
#endif
constexpr int kStreamCtasPerSm = FASTTOPK_TUNE_STREAM_CTAS_PER_SM;
// Streaming chunks with kStreamCoarseMinK <= k <= kStreamCoarseMaxK may raise
// their floor by one histogram of the buffer's keys in a window fitted to
// them (stream_chunk_candidates), not by an exact select; a least k of 0:
// always exact. fill_plan decides per plan (plan.coarse_raise): the
// histogram's 2,048 counters and the values kept take the sort buffer, which
// it sizes to >= 1,024 packed values and keeps small enough to cost no CTA
// per SM.
#ifndef FASTTOPK_TUNE_STREAM_COARSE_RAISE
#define FASTTOPK_TUNE_STREAM_COARSE_RAISE 256
#endif
// Measured (session 28, H100, split_row forced, against the exact raise):
// from k = 256 to 512 -4.6 to -8.6% on every streamed shape timed
// (1024x128256 k256 bf16 183.0 -> 167.3 µs, 512x32768 k512 fp32 51.3 ->
// 46.9); at k = 1024 mixed (1024x128256 bf16 -4%, 512x65536 fp32 +10%); at
// k = 2048 +19-20% (512x131072 fp32 164.8 -> 196.8, 1024x128256 bf16 394 ->
// 474). Those plans' larger sort buffer cost a CTA per SM (k = 2048: one of
// two; k = 1024: one of four), which fill_plan now avoids by a smaller room
// (v46). Measured with that room (session 29, H100, split_row forced, cap
// 512 -> 2048): 1024x128256 k1024 bf16 234.9 -> 201.5 µs, 512x65536 k1024
// fp32 84.1 -> 76.6, 512x131072 k1500 fp32 159.7 -> 142.1, k2048 165.5 ->
// 148.3, 1024x128256 k2048 bf16 397.1 -> 348.7 (-9 to -14%); k <= 512 as
// before (+-0.3%).
#ifndef FASTTOPK_TUNE_STREAM_COARSE_RAISE_MAX
#define FASTTOPK_TUNE_STREAM_COARSE_RAISE_MAX 2048
#endif
// The same cap for fp16/bf16 rows (a rule of their own, should the dtypes
// part again: before v46, at k = 1024 the 16-bit shape won where fp32 lost;
// with v46 both gain up to k = 2048).
#ifndef FASTTOPK_TUNE_STREAM_COARSE_RAISE_MAX_16BIT
#define FASTTOPK_TUNE_STREAM_COARSE_RAISE_MAX_16BIT 2048
#endif
constexpr int kStreamCoarseMinK = FASTTOPK_TUNE_STREAM_COARSE_RAISE;
constexpr int kStreamCoarseMaxK = FASTTOPK_TUNE_STREAM_COARSE_RAISE_MAX;
constexpr int kStreamCoarseMaxK16 = FASTTOPK_TUNE_STREAM_COARSE_RAISE_MAX_16BIT;
static_assert(kStreamCoarseMinK >= 0, "0 (off) or the least k of a coarse raise");
constexpr bool coarse_raise_for(int64_t k_chunk, int key_bits) {
  return kStreamCoarseMinK > 0 && k_chunk >= kStreamCoarseMinK &&
         k_chunk <= (key_bits == 16 ? kStreamCoarseMaxK16 : kStreamCoarseMaxK);
}
constexpr int kCoarseBits = 11;
constexpr int kCoarseBins = 1 << kCoarseBits;
// Vectors of 16 bytes each thread loads per tile when phase A streams: 8
// elements a thread for every dtype (two fp32 vectors, one 16-bit vector).
template <typename Format>
constexpr int stream_vectors() {
  return sizeof(typename Format::Bits) == 4 ? 2 : 1;
}
constexpr int kStreamPerThread = 8;  // elements a thread admits per tile
// 16-bit streaming tiles take both keys of a 32-bit word at once
// (rank_key_pair) where a vector holds no NaN: ~4.5 instructions a value
// instead of ~10.5 before the floor test (SASS of the bf16 kernel). 0: the
// per-value path only. 1024x128256 k256 bf16 217 -> 183 µs on the H100
// (docs/perf-notes.md v43).
#ifndef FASTTOPK_TUNE_STREAM_PAIR_KEYS
#define FASTTOPK_TUNE_STREAM_PAIR_KEYS 1
#endif
constexpr bool kStreamPairKeys = FASTTOPK_TUNE_STREAM_PAIR_KEYS != 0;
// Elements per tile of a streaming phase A with `threads` threads.
constexpr int64_t stream_tile(int64_t threads) { return threads * kStreamPerThread; }

constexpr int kMinChunk = FASTTOPK_TUNE_MIN_CHUNK;  // below this a CTA is mostly overhead
constexpr int kCtasPerSmTarget = 2;                 // grid size goal for few rows
#ifndef FASTTOPK_TUNE_CLUSTER_CTAS
#define FASTTOPK_TUNE_CLUSTER_CTAS 8
#endif
constexpr int kMaxClusterCtas = FASTTOPK_TUNE_CLUSTER_CTAS;  // 8: the portable cluster size limit
constexpr int kMinClusterChunk = 1024;                       // cluster: elements per CTA at least
// Cluster hand-offs with k <= kPrefilterMaxK skip phase A's exact select when
// a cheap lower bound of the chunk's k-th largest key lets at most
// prefilter_slots(k) elements through (see the kernel); phase B then selects
// from the larger pool. Simulated on randn chunks of 2k-16k elements with 512
// threads: the bound passes ~2.7k elements (median), 4.5k at the 99th
// percentile; at small k its tail is longer (k = 5: 61 median, up to 309 of
// 148 slots), and then a tighter bound follows before the exact select
// (chunk_lower_bound, docs/perf-notes.md v26).
constexpr int kPrefilterMaxK = 256;
constexpr int64_t prefilter_slots(int64_t k) { return 4 * k + 128; }
// Up to this k the pre-filter starts with its ranked bound (chunk_lower_bound:
// one group maximum a warp either way, so it costs only the rank of the
// warps' values), which leaves ~k + 1 candidates a chunk instead of ~60.
constexpr int kRankedFirstMaxK = 8;
// rank_phase_b ranks a pool of at most this many candidates whole (>= 4
// threads a candidate, <= 32 comparisons each); larger pools go through the
// histogram, which isolates the few candidates around the k-th.
constexpr int kRankWholeMax = 128;
// Distributed cluster plans sort each CTA's part of the set S by key bins
// (sort_by_key_bins) when it has more than this many members, by counting
// (or a bitonic network) otherwise and wherever a bin is crowded. Counting is
// O(n^2 / threads): 64x32768 bf16 k2048 (parts of ~1,000 on 2 CTAs a row)
// spent 34.5 of its 55 µs between the part gathered and every part sorted
// (probe). With bins it took 23.7 µs. Parts of ~256 (one row on 8 CTAs at
// k = 2048) gain too: 1x131072 k2048 fp32 20.97 µs counting, 18.4 with bins;
// parts of ~64 lose: 1x32768 k512 fp32 12.25 -> 13.13, 1x131072 k512 15.91
// -> 16.61; ~128 are even (1x65536 k1024 14.77 / 14.81). 64 is the
// threshold the whole GPU suite ran with; a value between the two measured
// ones (e.g. 160: parts of ~64-128 counted) is the next A/B
// (docs/perf-notes.md v40). The bins alias the chunk's keys, so a plan
// needs chunks of >= kPartBins elements for them. 0: never.
#ifndef FASTTOPK_TUNE_CLUSTER_BIN_SORT_MIN
#define FASTTOPK_TUNE_CLUSTER_BIN_SORT_MIN 64
#endif
constexpr int kBinSortMinPart = FASTTOPK_TUNE_CLUSTER_BIN_SORT_MIN;
constexpr int kPartBinBits = 10;  // 1,024 bins: 4 KB, the key region of a 1,024-element chunk
constexpr int kPartBins = 1 << kPartBinBits;
// A bin with more members than this (ties, or a key far from the rest
// widening the bins) sends the part back to counting or the bitonic network.
constexpr uint32_t kPartBinMaxMembers = 64;
// The same limit for a slice of a distributed row's whole-set ranking
// (rank_by_key_bins with a rank window), where only the slice's ~k / splits
// members are ranked: a bin of 256 costs a thread a few members' 256 shared
// loads at most, less than the bitonic network over all of S it replaces.
// randn bf16 rows crowd single keys near the k-th (simulated, 1x128256:
// 54 members at k = 1024, 88 at k = 2048), which 64 sent to the network.
// Measured (session 29, H100, forced row_per_cluster): 64 instead of 256
// took 64x131072 k2048 bf16 from 58.8 to 120.6 µs and 32x131072 from 42.6
// to 73.4, every CTA then sorting all of S (~2,100 values padded to 4,096)
// by the bitonic network; before the slice (v42's whole-set sort, 64 a bin)
// they took 152.7 and 104.8. 1x128256 k2048 bf16 did not move (18.8): its
// 8 chunks are too short for the whole-set path.
#ifndef FASTTOPK_TUNE_CLUSTER_SLICE_BIN_MAX
#define FASTTOPK_TUNE_CLUSTER_SLICE_BIN_MAX 256
#endif
constexpr uint32_t kSliceBinMaxMembers = FASTTOPK_TUNE_CLUSTER_SLICE_BIN_MAX;
// The slice (each CTA scatters, ranks and writes only its ~k / splits
// members) from this k on; below it every CTA sorts all of S and writes its
// slice from the sorted copy. Measured (session 28, H100, forced
// row_per_cluster): the slice at every k won 2-5% at k >= 1024 (1x128256
// k1024 bf16 16.07 -> 15.21 µs, 64x32768 k2048 bf16 18.24 -> 17.49,
// 32x151936 k1024 fp32 37.12 -> 36.22) and lost 1-7% at k <= 512 (64x131072
// k512 fp32 42.54 -> 45.52: slices of ~64 leave the fixed costs and the
// emits are single scattered writes). 0: always the slice. Session 29
// (H100, against v45's main): at k <= 512 this gate left the cluster
// within +0.5 to +2.8% of main (64x131072 k512 fp32 42.5 -> 43.7, which
// Auto now gives split_row) and the slice at every k lost 1.1-10.8% there.
#ifndef FASTTOPK_TUNE_CLUSTER_SLICE_MIN_K
#define FASTTOPK_TUNE_CLUSTER_SLICE_MIN_K 1024
#endif
constexpr int kSliceMinK = FASTTOPK_TUNE_CLUSTER_SLICE_MIN_K;
// Distributed plans whose chunk's key region holds a copy of the set S and
// the bins skip the part sort and the binary searches: every CTA sorts all of
// S by key bins once the parts are copied and writes its slice of the output
// (distributed_top_k, `whole`). The probe put 1x131072 k2048 fp32's part sort
// at 3.3 µs and its searches and writes at 4.0, 64x32768 k2048 bf16's at 3.7
// and 5.4 (bank conflicts of 16 threads' binary searches, likely). On the
// H100 (v42): 64x32768 k2048 bf16 23.9 -> 18.2 µs, 1x131072 k2048 unmoved.
#ifndef FASTTOPK_TUNE_CLUSTER_WHOLE_SET_SORT
#define FASTTOPK_TUNE_CLUSTER_WHOLE_SET_SORT 1
#endif
constexpr bool kWholeSetSort = FASTTOPK_TUNE_CLUSTER_WHOLE_SET_SORT != 0;
// The whole-set ranking uses kPartBins bins. 4,096 where the key region
// also held them (knob FASTTOPK_TUNE_CLUSTER_WHOLE_SET_BIN_BITS, removed in
// session 29) lost everywhere on the H100 in session 28 (64x131072 k512 fp32
// +27%, 1x131072 k2048 +1%): zeroing and scanning the bins cost more than
// the shorter in-bin ranks saved.
// split_row's and the cluster's rank 0's final sort of k > this winners runs
// by key bins (sort_by_key_bins) instead of the bitonic network, where the
// candidates' region below the sort buffer (dead by then) holds k values and
// the bins; 0: never. The probe put the bitonic sort of 256 winners at 8.1 µs
// of a streamed 1024x128256 k256 bf16 CTA's 80 (docs/perf-notes.md, session
// 26). On the H100 (v41): 512x8192 k2048 fp32 75 -> 32 µs, 1024x128256
// k256 bf16 228 -> 217.
#ifndef FASTTOPK_TUNE_FINAL_BIN_SORT_MIN
#define FASTTOPK_TUNE_FINAL_BIN_SORT_MIN 128
#endif
constexpr int kFinalBinSortMin = FASTTOPK_TUNE_FINAL_BIN_SORT_MIN;
// Pre-filtered cluster plans with k <= kRankMax / 2 end differently: rank 0
// histograms the top kHistogramBits key bits of the candidates and ranks
// those in and above the bin of the k-th one directly when they are at most
// kRankMax (see rank_phase_b).
constexpr int kHistogramBits = 12;
constexpr int kHistogramBins = 1 << kHistogramBits;
constexpr int kRankMax = 256;
// Cluster plans with k > kRankMax / 2 find the k-th key's top 16 bits in two
// rounds of an 8-bit digit, a 256-bin histogram per CTA and round.
constexpr int kDigitBins = 256;
#ifndef FASTTOPK_TUNE_CLUSTER_THREADS
#define FASTTOPK_TUNE_CLUSTER_THREADS 512
#endif
constexpr int kClusterThreads = FASTTOPK_TUNE_CLUSTER_THREADS;
#ifndef FASTTOPK_TUNE_CLUSTER_PDL
#define FASTTOPK_TUNE_CLUSTER_PDL 1
#endif
constexpr int kClusterPdl = FASTTOPK_TUNE_CLUSTER_PDL;  // programmatic dependent launch

struct SplitPlan {
  int splits;            // CTAs per row
  int chunk;             // elements per CTA (last one may be shorter)
  int slots;             // candidate slots per CTA: min(k, chunk); cluster pre-filter: more
  int index_bits;        // bits needed for an index < cols
  int pool_offset;       // bytes from the start of dynamic smem to phase B's pool
  int sort_offset;       // bytes from the start of dynamic smem to the sort buffer
  int histogram_offset;  // bytes to the key histogram (rank or distributed plans), or -1: none
  int set_capacity;      // distributed plans: room for a chunk's candidate set; 0: other plans
  int stream_capacity;   // streaming phase A: candidate buffer entries; 0: the chunk on chip
  int sort_entries;      // the sort buffer's packed values (phase A's scratch when streaming)
  int coarse_raise;      // streaming: 1 where floor raises may be coarse (fill_plan), else 0
  int threads;           // per CTA (ticket plans: kSplitThreads or kRowThreads)
  std::size_t shared_bytes;
};

template <int kWarps>
struct alignas(16) PrefilterShared {
  uint32_t warp_bound[kWarps];
};

/// Where rank 0's phase B finds the k-th candidate (see rank_phase_b).
struct RankBin {
  uint32_t bin;     // histogram bin of the k-th largest candidate
  uint32_t above;   // candidates in higher bins (< k)
  uint32_t in_bin;  // candidates in that bin
};

/// An upper bound of the kernel's static shared memory (the select state,
/// the pre-filter's state and the scan's totals for up to 32 warps, the
/// cluster's per-chunk counts and parts, a few scalars, and up to 16 bytes of
/// alignment padding before each of six variables): the dynamic part of a
/// plan may use the opt-in limit minus this.
constexpr std::size_t kStaticSharedBound =
    sizeof(PackedSelectShared) + sizeof(PrefilterShared<32>) + 32 * sizeof(uint32_t) +
    2 * (kMaxClusterCtas + 1) * sizeof(uint32_t) + 32 + 6 * 16;
/// Shared memory the system keeps per CTA (sm_80 and later: 1 KB).
constexpr std::size_t kSystemSharedPerCta = 1024;
/// CTAs of a plan with `dynamic_bytes` that fit an SM's shared memory (at
/// least 1; shared_per_sm 0, unknown: no limit).
inline int64_t ctas_per_sm_by_shared(const DeviceFacts& device, std::size_t dynamic_bytes) {
  if (device.shared_per_sm == 0) return int64_t{1} << 30;
  return std::max<int64_t>(
      1, static_cast<int64_t>(device.shared_per_sm /
                              (dynamic_bytes + kStaticSharedBound + kSystemSharedPerCta)));
}

/// How a row's CTAs hand their candidates to the CTA that merges.
enum class Handoff {
  kTickets,  // workspace + atomic ticket (any split count; one CTA: no hand-off)
  kCluster,  // distributed shared memory + cluster barrier (2-8 CTAs per row)
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Candidate slots of a plan with `splits` CTAs per row.
int64_t candidates_for(const Problem& q, int64_t splits) {
  return splits * std::min<int64_t>(q.k, ceil_div(q.cols, splits));
}

/// How many candidate slots a distributed cluster plan (k > kRankMax / 2)
/// keeps a CTA for its select path, which it reaches only where heavy ties
/// overflow its set: the pre-filter's 4k + 128 up to kPrefilterMaxK, so
/// that path stays quick, or k alone (lean), which shrinks the plan's
/// shared memory enough to fit a second CTA on an SM (make_plan).
enum class DistributedSlots { kPrefilter, kLean };

/// The rest of a plan once the split count is known. Returns false if it
/// does not fit (candidate budget, chunk or shared-memory limits).
bool fill_plan(const Problem& q, const DeviceFacts& device, int64_t splits, Handoff handoff,
               SplitPlan* plan, DistributedSlots distributed_slots = DistributedSlots::kPrefilter) {
  const int64_t max_chunk = handoff == Handoff::kCluster ? kMaxClusterChunk : kMaxChunk;
  // Chunks of whole 16-byte vectors (8 elements) when the row is split, so
  // that every chunk of an aligned row starts aligned.
  int64_t chunk = ceil_div(std::max<int64_t>(q.cols, 1), splits);
  if (splits > 1) chunk = ceil_div(chunk, 8) * 8;
  // A chunk that fits on chip streams only where it is long against k: at
  // 8192 columns and k = 2048 (a ratio of 4) streaming took 46.4 µs against
  // 32.5 on chip (512 rows fp32, the A/B of v50).
  const bool streaming =
      handoff == Handoff::kTickets && chunk > kStreamMinChunk &&
      (chunk > max_chunk || chunk >= kStreamMinRatio * std::min<int64_t>(q.k, chunk));
  if (chunk > max_chunk && !streaming) return false;
  plan->splits = static_cast<int>(splits);
  plan->chunk = static_cast<int>(chunk);
  // Streaming: room for the k kept, a tile's admissions and a slack of
  // max(k, tile) admissions between two selects (stream_chunk_candidates).
  const int64_t k_chunk = std::min<int64_t>(q.k, chunk);
  plan->threads = handoff == Handoff::kCluster                          ? kClusterThreads
                  : splits > 1 || (streaming && k_chunk > kStreamWideK) ? kSplitThreads
                                                                        : kRowThreads;
  const int64_t tile = stream_tile(plan->threads);
  plan->stream_capacity =
      streaming ? static_cast<int>(k_chunk + tile + std::max<int64_t>(k_chunk, tile)) : 0;
  // Cluster plans for larger k select and rank across the cluster
  // (distributed_top_k); see DistributedSlots for their select path's slots.
  const bool distributed = handoff == Handoff::kCluster && q.k > kRankMax / 2 && splits > 1;
  const bool prefilter = handoff == Handoff::kCluster && q.k <= kPrefilterMaxK &&
                         !(distributed && distributed_slots == DistributedSlots::kLean);
  plan->slots = static_cast<int>(std::min<int64_t>(chunk, prefilter ? prefilter_slots(q.k) : q.k));
  // The candidate budget (slots >= min(k, chunk), so this also bounds the
  // estimate candidates_for() steered the split count by).
  if (splits > 1 && int64_t{splits} * plan->slots > kMaxCandidates) return false;
  plan->index_bits = index_bits_for(q.cols);
  std::size_t sort_capacity = 2;  // power of two >= k (the kernel sorts a power of two)
  while (sort_capacity < static_cast<std::size_t>(q.k)) sort_capacity <<= 1;
  plan->coarse_raise = 0;
  if (streaming && coarse_raise_for(k_chunk, q.element_bytes() * 8)) {
    // A coarse raise keeps up to k + room values, compacted through the sort
    // buffer, whose 2,048 histogram counters need kCoarseBins / 2 entries
    // (stream_chunk_candidates). The room is half the slack where the larger
    // buffer keeps as many CTAs on an SM as the exact raise's plan, else what
    // does: at k = 2048 (512 threads) half the slack took 320 bytes more than
    // two CTAs' share of the H100's 228 KB and at k = 1024 (256 threads)
    // 4.6 KB more than four CTAs', which cost those shapes 10-20% (session
    // 28). A room under an eighth of the slack would mostly fall back to the
    // exact select, so the raise stays exact there.
    const int64_t slack = std::max<int64_t>(k_chunk, tile);
    const std::size_t candidates_bytes =
        align_up(static_cast<std::size_t>(plan->stream_capacity) * sizeof(uint64_t), 16);
    const int64_t by_launch = int64_t{kStreamCtasPerSm} * 256 / plan->threads;
    const int64_t target = std::min(
        by_launch,
        ctas_per_sm_by_shared(device, candidates_bytes + sort_capacity * sizeof(uint64_t)));
    int64_t fit_entries = int64_t{1} << 30;
    if (device.shared_per_sm > 0) {
      const int64_t share = static_cast<int64_t>(device.shared_per_sm) / target;
      fit_entries = (share - static_cast<int64_t>(kStaticSharedBound + kSystemSharedPerCta +
                                                  candidates_bytes)) /
                    16 * 2;  // whole 16-byte steps: histogram_offset aligns the buffer's end
    }
    const int64_t room = std::min(slack / 2, fit_entries - k_chunk);
    const int64_t entries =
        std::max({static_cast<int64_t>(sort_capacity), k_chunk + room, int64_t{kCoarseBins / 2}});
    if (room >= slack / 8 && entries <= fit_entries) {
      sort_capacity = static_cast<std::size_t>(entries);
      plan->coarse_raise = 1;
    }
  }
  plan->sort_entries = static_cast<int>(sort_capacity);
  // Pre-filtered cluster plans: rank 0 ranks up to kRankMax candidates in
  // the keys region once phase A is done (see rank_phase_b).
  const bool histogram = handoff == Handoff::kCluster && q.k <= kRankMax / 2 &&
                         plan->slots > std::min<int64_t>(q.k, chunk);
  // Distributed plans: each CTA's two digit histograms alias its sort
  // buffer (used only on the select path, after the histograms), and a
  // chunk's candidate set and its sorted copy take the two halves of the
  // pool (power-of-two halves: a large set is sorted by the bitonic network).
  plan->set_capacity = 0;
  int64_t pool_entries = int64_t{splits} * plan->slots;
  if (distributed) {
    // Room for |S| up to 2k at least (k plus the k-th key's 16-bit bin; with
    // 2 CTAs per row the select path's pool holds only k per chunk).
    int64_t capacity = 1;
    while (capacity * 2 <= pool_entries / 2) capacity *= 2;
    while (capacity < 2 * q.k) capacity *= 2;
    plan->set_capacity = static_cast<int>(capacity);
    pool_entries = std::max(pool_entries, 2 * capacity);
  }
  const std::size_t phase_a =
      streaming ? static_cast<std::size_t>(plan->stream_capacity) * sizeof(uint64_t)
                : std::max(static_cast<std::size_t>(chunk) * sizeof(uint32_t),
                           histogram ? std::size_t{kRankMax} * sizeof(uint64_t) : std::size_t{0});
  const std::size_t phase_b =
      splits > 1 ? static_cast<std::size_t>(pool_entries) * sizeof(uint64_t) : 0;
  const std::size_t pool_offset = handoff == Handoff::kCluster ? align_up(phase_a, 16) : 0;
  const std::size_t sort_offset = handoff == Handoff::kCluster
                                      ? align_up(pool_offset + phase_b, 16)
                                      : align_up(std::max(phase_a, phase_b), 16);
  const std::size_t histogram_offset = align_up(sort_offset + sort_capacity * sizeof(uint64_t), 16);
  plan->pool_offset = static_cast<int>(pool_offset);
  plan->sort_offset = static_cast<int>(sort_offset);
  plan->histogram_offset = histogram     ? static_cast<int>(histogram_offset)
                           : distributed ? static_cast<int>(sort_offset)
                                         : -1;
  plan->shared_bytes =
      histogram     ? histogram_offset + kHistogramBins * sizeof(uint32_t)
      : distributed ? std::max(histogram_offset, sort_offset + 2 * kDigitBins * sizeof(uint32_t))
                    : histogram_offset;
  return plan->shared_bytes <= device.shared_per_block_optin - kStaticSharedBound;
}

int resident_clusters(const Problem& q, const DeviceFacts& device, const SplitPlan& plan);

/// The split of a row: enough CTAs to fill the GPU for few rows, chunks no
/// larger than phase A holds, and candidates no more than phase B holds.
/// Cluster hand-offs keep phase B's pool apart from phase A's keys (other
/// CTAs write into it while this CTA still selects) and use 2 to
/// kMaxClusterCtas CTAs per row, chosen by two rules measured on the H100
/// (docs/perf-notes.md v14):
///  - every row's cluster resident at once: a second wave costs a whole
///    serial chain (32 x 32000 fp32: 11.0 µs in 8-CTA clusters, of which 30
///    fit at 2 CTAs per SM, 9.7 in 7-CTA ones);
///  - then at most one CTA per SM: two CTAs sharing an SM cost more than a
///    longer chunk (64 x 32000 bf16: 8.7 µs with 2 CTAs per row, 12.8 with 3,
///    18.2 with 8).
/// The largest split count that keeps both; failing that, the largest that
/// keeps the first; failing that, the fewest waves. Returns false if no
/// split fits (k too large for the row length, or the row too long for one
/// cluster).
bool make_plan(const Problem& q, const DeviceFacts& device, int forced_splits, Handoff handoff,
               SplitPlan* plan) {
  const int64_t max_chunk = handoff == Handoff::kCluster ? kMaxClusterChunk : kMaxChunk;
  const int64_t min_splits = ceil_div(q.cols, max_chunk);
  if (handoff == Handoff::kCluster) {
    const int64_t most = std::clamp<int64_t>(q.cols / kMinClusterChunk, 2, kMaxClusterCtas);
    int64_t best_cost = -1;  // waves, then 1 if CTAs share SMs, lower is better
    auto search = [&](DistributedSlots slots) {
      for (int64_t splits = most; splits >= std::max<int64_t>(2, min_splits); --splits) {
        SplitPlan candidate{};
        if (!fill_plan(q, device, splits, handoff, &candidate, slots)) continue;
        const int64_t resident = resident_clusters(q, device, candidate);
        const int64_t waves = ceil_div(q.rows, std::max<int64_t>(1, resident));
        const int64_t cost = 2 * waves + (q.rows * splits > device.sm_count ? 1 : 0);
        if (best_cost < 0 || cost < best_cost) {
          *plan = candidate;
          best_cost = cost;
        }
        if (cost == 2) break;  // one wave, one CTA per SM
      }
    };
    search(DistributedSlots::kPrefilter);
    // Lean slots only where they save a wave or a shared SM: 32 x 131072
    // bf16 k256 took two waves with the pre-filter's slots (39.8 µs of graph
    // time for a 22.6 µs launch) and one with lean ones (22.2 µs), but
    // 16 x 128256 k256, one wave at one CTA per SM either way, went from
    // 16.9 to 19.1 µs with lean ones: the smaller CTAs then also fit two to
    // an SM, and some SMs probably get two (docs/perf-notes.md v38).
    if (best_cost > 2 && q.k > kRankMax / 2 && q.k <= kPrefilterMaxK) {
      search(DistributedSlots::kLean);
    }
    return best_cost >= 0;
  }
  int64_t splits = forced_splits;
  if (splits <= 0) {
    // Enough CTAs for kCtasPerSmTarget per SM, chunks of kMinChunk at least,
    // and the largest split count within the candidate budget (monotone in
    // splits). Chunks of more than kStreamMinChunk stream, so no row is too
    // long (before streaming, a row needed ceil(cols / kMaxChunk) chunks).
    const int64_t fill = std::max<int64_t>(1, device.sm_count * kCtasPerSmTarget / q.rows);
    splits = std::min<int64_t>(fill, std::max<int64_t>(1, q.cols / kMinChunk));
    while (splits > 1 && candidates_for(q, splits) > kMaxCandidates) --splits;
    // Streaming pays where a chunk is long against k (few selects over the
    // buffer); below kStreamMinRatio, or with streaming tuned off for chunks
    // beyond kMaxChunk, the chunks are held on chip if that fits the budget.
    const int64_t chunk = ceil_div(q.cols, splits);
    const int64_t on_chip = std::max(splits, ceil_div(q.cols, kMaxChunk));
    if ((kStreamMinChunk > kMaxChunk || chunk < kStreamMinRatio * std::min<int64_t>(q.k, chunk)) &&
        candidates_for(q, on_chip) <= kMaxCandidates) {
      splits = on_chip;
    }
  }
  return fill_plan(q, device, splits, handoff, plan);
}

/// Elements [0, length) of `first` as 16-byte vectors: `head` elements before
/// the first 16-byte boundary, then `vectors` whole vectors from `body`, then
/// the tail from element `tail_begin` on (both ends element by element).
struct VectorSpan {
  int head, vectors, tail_begin;
  const uint4* body;
};

template <typename Bits>
__device__ __forceinline__ VectorSpan vector_span(const Bits* first, int length) {
  constexpr int kVec = 16 / sizeof(Bits);
  const int misalignment = static_cast<int>(reinterpret_cast<uintptr_t>(first) % 16);
  const int head = min(length, misalignment == 0 ? 0 : (16 - misalignment) / int{sizeof(Bits)});
  const int vectors = (length - head) / kVec;
  return VectorSpan{head, vectors, head + vectors * kVec,
                    reinterpret_cast<const uint4*>(first + head)};
}

/// Loads elements [begin, begin + length) of the row `in` as rank keys into
/// keys[0 .. length): the 16-byte-aligned body as one batch of vector loads
/// (up to kBatch per thread in flight before the first use), the unaligned
/// head and tail element by element. The body's keys are stored 16 bytes at
/// a time where the head leaves them aligned: scalar stores of a vector's
/// 4-8 keys hit the same banks from every lane (the load phase of a 12 KB
/// fp16 chunk took 1.51 µs with them, 1.25 without; docs/perf-notes.md v11).
/// Returns the largest key this thread
/// stored (0 if none). All threads call this.
template <typename Format, int kThreads>
__device__ __forceinline__ uint32_t load_chunk_keys(const typename Format::Bits* in, int begin,
                                                    int length, bool largest, uint32_t* keys) {
  using Bits = typename Format::Bits;
  constexpr int kVec = 16 / sizeof(Bits);
  constexpr int kBatch = 8;
  const Bits* first = in + begin;
  const VectorSpan span = vector_span(first, length);
  const int head = span.head, vectors = span.vectors, tail_begin = span.tail_begin;
  const uint4* body = span.body;
  const bool vector_stores = head % 4 == 0;  // keys + head is 16-byte aligned
  const int t = static_cast<int>(threadIdx.x);
  uint32_t largest_key = 0;
  for (int base = 0; base < vectors; base += kThreads * kBatch) {
    uint4 raw[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int v = base + u * kThreads + t;
      if (v < vectors) raw[u] = __ldg(body + v);
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int v = base + u * kThreads + t;
      if (v < vectors) {
        union {
          uint4 v;
          Bits b[kVec];
        } part;
        part.v = raw[u];
        uint32_t key[kVec];
#pragma unroll
        for (int e = 0; e < kVec; ++e) {
          key[e] = rank_key<Format>(part.b[e], largest);
          largest_key = max(largest_key, key[e]);
        }
        uint32_t* dest = keys + head + v * kVec;
        if (vector_stores) {
#pragma unroll
          for (int e = 0; e < kVec; e += 4) {
            *reinterpret_cast<uint4*>(dest + e) =
                make_uint4(key[e], key[e + 1], key[e + 2], key[e + 3]);
          }
        } else {
#pragma unroll
          for (int e = 0; e < kVec; ++e) dest[e] = key[e];
        }
      }
    }
  }
  if (t < head) {
    keys[t] = rank_key<Format>(first[t], largest);
    largest_key = max(largest_key, keys[t]);
  }
  if (tail_begin + t < length) {
    keys[tail_begin + t] = rank_key<Format>(first[tail_begin + t], largest);
    largest_key = max(largest_key, keys[tail_begin + t]);
  }
  return largest_key;
}

/*
 * Phase A for a chunk too long to keep on chip (plan.stream_capacity > 0:
 * split_row's chunks of more than kStreamMinChunk elements). The chunk
 * streams through registers a tile at a time (kStreamPerThread elements a
 * thread as 16-byte vectors, the next tile's loads in flight while this one
 * is filtered), and only candidates stay in shared memory.
 *
 * Invariant after every tile: cand[0 .. count) holds exactly the elements
 * read so far whose packed value is >= floor, where floor is 0 (every real
 * element: its packed value has bit 31 set) or the k_chunk-th largest
 * packed value among the elements read when it was set. When the next tile
 * could overflow the buffer (count > capacity - tile), a block select finds
 * the k_chunk-th largest candidate P, the k_chunk candidates >= P are kept
 * (compacted through `scratch`, which holds >= k_chunk values) and floor
 * becomes P. The chunk's own k_chunk-th largest value is >= P, so no element
 * of its top k_chunk is ever dropped: at the end cand[0 .. count) holds a
 * superset of it with count >= k_chunk, which the caller selects from. Which
 * values end in cand does not depend on timing or atomic order (only their
 * order in it does), so the result stays deterministic.
 *
 * The coarse raise (plan.coarse_raise: fill_plan's choice): the floor
 * need not be the k_chunk-th value, only at most it. One histogram of the
 * candidates' keys over 2,048 bins fitted to their [least, largest] key
 * range finds the bin B of the k_chunk-th; every candidate whose key is at
 * least B's lower edge E is kept (k_chunk to k_chunk + |B| - 1 of them) and
 * floor becomes E (packed with index bits 0). That is one sweep over the
 * buffer for the window and one for the histogram instead of the exact
 * select's two to four, and its first digit's piling of every key into a
 * few bins. If B holds too many (ties, or a key far from the rest widening
 * the window) so that more than k_chunk + slack / 2 would stay (or more than
 * the scratch holds), the exact select runs instead.
 *
 * Why it pays on long rows: after n elements a new element enters the
 * running top k with probability ~k / n on unordered data, so a chunk of N
 * elements admits ~k ln(N / n0) candidates after the first select at n0;
 * with a slack of capacity - tile - k >= k that is a few selects over a
 * buffer of a few thousand values per chunk, instead of an exact select over
 * every element (the on-chip path). Sorted rows (every element a new
 * maximum) admit whole tiles and select every tile or two: correct, slower.
 *
 * Tile admissions count into one of three counters in turn (added[tile % 3]):
 * every thread reads its tile's counter after the tile's barrier, and thread
 * 0 zeroes the counter of the tile after next while no thread can still read
 * it or add to it yet, so the decision to select is uniform with one barrier
 * per tile. Returns count; all threads call this; 1 <= k_chunk <= length,
 * k_chunk + tile <= capacity, kThreads >= 256.
 */
template <int kThreads, int kPerThread>
__device__ __forceinline__ void find_bin_of_rank(const uint32_t (&counts)[kPerThread], int first,
                                                 uint32_t k, uint32_t* warp_totals, RankBin& found);

/*
 * The least and largest keys (high 32 bits) of the n packed values in
 * `values` (shared memory), folded by each warp into two shared words: the
 * caller set least_word = ~0u and largest_word = 0 before a block barrier
 * that precedes this call and reads them after the next one. The windows of
 * the bin sorts and the coarse raise start here. All threads call this.
 */
template <int kThreads>
__device__ __forceinline__ void fold_key_range(const uint64_t* values, int n, uint32_t& least_word,
                                               uint32_t& largest_word) {
  uint32_t least = ~0u, largest = 0;
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const uint32_t key = static_cast<uint32_t>(values[i] >> 32);
    least = min(least, key);
    largest = max(largest, key);
  }
  least = __reduce_min_sync(kFullWarp, least);
  largest = __reduce_max_sync(kFullWarp, largest);
  if ((threadIdx.x & 31) == 0) {
    atomicMin(&least_word, least);
    atomicMax(&largest_word, largest);
  }
}

template <typename Format, int kThreads>
__device__ __forceinline__ int stream_chunk_candidates(
    const typename Format::Bits* in, int begin, int length, int k_chunk, bool largest, int capacity,
    int index_bits, uint64_t* cand, uint64_t* scratch, int scratch_entries, bool coarse,
    PackedSelectShared& select, RankBin& rank_bin, uint32_t* warp_totals, uint32_t* added,
    uint32_t& compact_count, PhaseProbe& probe) {
  using Bits = typename Format::Bits;
  constexpr int kVec = 16 / sizeof(Bits);
  constexpr int kVectors = stream_vectors<Format>();
  static_assert(kVectors * kVec == kStreamPerThread, "a tile is kStreamPerThread per thread");
  constexpr int kTile = static_cast<int>(stream_tile(kThreads));
  constexpr int kStep = kThreads * kVectors;  // vectors per tile
  const int t = static_cast<int>(threadIdx.x);
  const int lane = t & 31;
  const Bits* first = in + begin;
  const VectorSpan span = vector_span(first, length);
  const int head = span.head, vectors = span.vectors, tail_begin = span.tail_begin;
  const uint4* body = span.body;
  if (t < 3) added[t] = 0;
  __syncthreads();

  // Appends this thread's passing values (bit i of `pass`: value[i]) at
  // count + their rank among the tile's: one atomic per warp.
  auto admit = [&](const uint64_t(&value)[kStreamPerThread], uint32_t pass, int count,
                   uint32_t* counter) {
    const uint32_t n = __popc(pass);
    if (!__any_sync(kFullWarp, n != 0)) return;
    const uint32_t inclusive = warp_inclusive_sum(n);
    uint32_t warp_first = 0;
    if (lane == 31) warp_first = atomicAdd(counter, inclusive);
    uint32_t slot = count + __shfl_sync(kFullWarp, warp_first, 31) + inclusive - n;
#pragma unroll
    for (int i = 0; i < kStreamPerThread; ++i) {
      if (pass >> i & 1u) cand[slot++] = value[i];
    }
  };

  uint64_t floor = 0;
  int count = 0;  // candidates in cand: uniform
  // Keeps the `kept` candidates >= cut (compacted through scratch; the
  // caller has zeroed compact_count before a barrier) and raises the floor
  // to cut: the end of either raise.
  auto keep_from = [&](uint64_t cut, int kept) {
    for (int i = t; i < count; i += kThreads) {
      const uint64_t v = cand[i];
      if (v >= cut) scratch[atomicAdd(&compact_count, 1u)] = v;
    }
    __syncthreads();
    for (int i = t; i < kept; i += kThreads) cand[i] = scratch[i];
    count = kept;
    floor = cut;
    __syncthreads();
  };
  // The coarse raise (see above). Returns false, with cand untouched, where
  // it would keep too many; then the exact select follows.
  auto coarse_raise = [&]() -> bool {
    static_assert(kCoarseBins % kThreads == 0, "whole bins a thread");
    constexpr int kBinsPerThread = kCoarseBins / kThreads;
    uint32_t* bins = reinterpret_cast<uint32_t*>(scratch);  // >= 1,024 values: 8 KB
    uint32_t* window = select.histogram;                    // [0] least key, [1] largest
    for (int i = t; i < kCoarseBins; i += kThreads) bins[i] = 0;
    if (t == 0) {
      window[0] = ~0u;
      window[1] = 0;
      compact_count = 0;
    }
    __syncthreads();
    fold_key_range<kThreads>(cand, count, window[0], window[1]);
    __syncthreads();
    const uint32_t base = window[0];
    // The least shift with (largest - base) >> shift < kCoarseBins.
    const int shift = max(0, 32 - __clz(static_cast<int>(window[1] - base)) - kCoarseBits);
    for (int i = t; i < count; i += kThreads) {
      atomicAdd(&bins[(static_cast<uint32_t>(cand[i] >> 32) - base) >> shift], 1u);
    }
    __syncthreads();
    const int first = (kThreads - 1 - t) * kBinsPerThread;
    uint32_t counts[kBinsPerThread];
#pragma unroll
    for (int i = 0; i < kBinsPerThread; ++i) counts[i] = bins[first + i];
    find_bin_of_rank<kThreads, kBinsPerThread>(counts, first, static_cast<uint32_t>(k_chunk),
                                               warp_totals, rank_bin);
    const int kept = static_cast<int>(rank_bin.above + rank_bin.in_bin);
    const int slack = capacity - kTile - k_chunk;
    if (kept > k_chunk + slack / 2 || kept > scratch_entries) return false;  // uniform
    keep_from(static_cast<uint64_t>(base + (rank_bin.bin << shift)) << 32, kept);
    return true;
  };

  // kDepth tiles in flight (a ring of registers; by default one: the next
  // tile loads while this one is admitted). A tile's registers are refilled
  // once its values are packed, so the next load reuses them and nothing
  // waits on a load before its turn.
  constexpr int kDepth = kStreamDepth > 0 ? kStreamDepth : 64 / (16 * kVectors);
  uint4 ring[kDepth][kVectors] = {};
  auto load = [&](uint4(&dst)[kVectors], int base) {
#pragma unroll
    for (int u = 0; u < kVectors; ++u) {
      const int v = base + u * kThreads + t;
      if (v < vectors) dst[u] = __ldg(body + v);
    }
  };
#pragma unroll
  for (int d = 0; d < kDepth; ++d) load(ring[d], d * kStep);
  int turn = 0;  // the tile's counter: tile % 3
#pragma unroll 1
  for (int ring_base = 0; ring_base < vectors; ring_base += kDepth * kStep) {
#pragma unroll
    for (int d = 0; d < kDepth; ++d) {
      const int base = ring_base + d * kStep;
      if (base >= vectors) break;  // uniform
      const long long tile_start = probe.now();
      uint64_t value[kStreamPerThread];
      uint32_t pass = 0;
#pragma unroll
      for (int u = 0; u < kVectors; ++u) {
        const int v = base + u * kThreads + t;
        union {
          uint4 v;
          Bits b[kVec];
        } part;
        part.v = ring[d][u];
        if constexpr (Format::kKeyBits == 16 && kStreamPairKeys) {
          // Both keys of a word at once (rank_key_pair) unless the vector
          // holds a NaN, whose key the per-value path below canonicalizes.
          const uint32_t words[4] = {part.v.x, part.v.y, part.v.z, part.v.w};
          if ((pair_nan_bits<Format>(words[0]) | pair_nan_bits<Format>(words[1]) |
               pair_nan_bits<Format>(words[2]) | pair_nan_bits<Format>(words[3])) == 0) {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
              const uint32_t keys = rank_key_pair<Format>(words[j], largest);
#pragma unroll
              for (int h = 0; h < 2; ++h) {
                const int e = 2 * j + h;
                const int i = u * kVec + e;
                value[i] = pack_key_index(h == 0 ? keys & 0xffffu : keys >> 16,
                                          begin + head + v * kVec + e);
                if (v < vectors && value[i] >= floor) pass |= 1u << i;
              }
            }
            continue;
          }
        }
#pragma unroll
        for (int e = 0; e < kVec; ++e) {
          const int i = u * kVec + e;
          value[i] =
              pack_key_index(rank_key<Format>(part.b[e], largest), begin + head + v * kVec + e);
          if (v < vectors && value[i] >= floor) pass |= 1u << i;
        }
      }
      const long long packed = probe.now();
      probe.tally(0, packed - tile_start);  // tally 0: waiting for the tile's load, packing
      load(ring[d], base + kDepth * kStep);
      admit(value, pass, count, &added[turn]);
      __syncthreads();
      const long long admitted = probe.now();
      probe.tally(1, admitted - packed);  // tally 1: admission and the tile's barrier
      count += static_cast<int>(added[turn]);
      if (t == 0) added[turn == 0 ? 2 : turn - 1] = 0;  // the tile after next's
      turn = turn == 2 ? 0 : turn + 1;
      if (count > capacity - kTile) {  // uniform
        // The next tile could overflow the buffer: keep the top k_chunk (the
        // coarse raise: a few more), compacted through scratch.
        bool raised = false;
        if constexpr (kStreamCoarseMinK > 0) {
          if (coarse) raised = coarse_raise();
        }
        if (!raised) {
          if (t == 0) compact_count = 0;  // ordered by the select's first barrier
          keep_from(block_select_packed<Format::kKeyBits, kThreads>(
                        select, count, k_chunk, index_bits, [&](int i) { return cand[i]; }),
                    k_chunk);
        }
        probe.tally(2, probe.now() - admitted);  // tally 2: floor raises, and (3) how many
        probe.tally(3, 1);
      }
    }
  }
  // The unaligned head and the tail (< 2 kVec elements): count <= capacity -
  // kTile here, so they fit.
  uint64_t value[kStreamPerThread] = {};
  uint32_t pass = 0;
  if (t < head) {
    value[0] = pack_key_index(rank_key<Format>(first[t], largest), begin + t);
    pass |= value[0] >= floor ? 1u : 0u;
  }
  if (tail_begin + t < length) {
    value[1] =
        pack_key_index(rank_key<Format>(first[tail_begin + t], largest), begin + tail_begin + t);
    pass |= value[1] >= floor ? 2u : 0u;
  }
  admit(value, pass, count, &added[turn]);
  __syncthreads();
  return count + static_cast<int>(added[turn]);
}

// Thread-block cluster primitives (PTX; sm_90+). The barrier is split: an
// arrive that does not block and a wait, so a CTA can arrive early and do
// other work before it needs the others.
__device__ __forceinline__ void cluster_arrive_relaxed() {
#if __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void cluster_arrive_release() {
#if __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void cluster_wait_acquire() {
#if __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
}
/// The generic address of `local` (this CTA's shared memory) in the shared
/// memory of cluster CTA `rank`.
template <typename T>
__device__ __forceinline__ T* cluster_map(T* local, unsigned rank) {
#if __CUDA_ARCH__ >= 900
  uint64_t remote;
  asm volatile("mapa.u64 %0, %1, %2;\n" : "=l"(remote) : "l"(local), "r"(rank));
  return reinterpret_cast<T*>(remote);
#else
  (void)rank;
  __trap();
  return local;
#endif
}

/*
 * A lower bound of the k-th largest key of a chunk, cheap to compute: every
 * thread brings the maximum of the keys it loaded (`thread_max`: the
 * threads' groups of keys are disjoint; 0 for none), every warp takes the
 * m-th largest of its 32 group maxima, and the bound is the c-th largest of
 * the warps' values. If c warps have values >= the bound, each has m groups
 * whose maxima are >= it: c * m >= k distinct elements, so at least k keys
 * are >= the bound and the chunk's top k all are. Two forms:
 *
 *   ranked = false: m = ceil(k / warps) and c = warps, i.e. the smallest
 *     warp value: the cheapest (one min over the warps' values).
 *   ranked = true: m = ceil(k / spread), c = ceil(k / m) <= spread,
 *     spread = min(12, warps): every warp ranks the values (each lane
 *     compares one value with a part of them, shuffles add the parts).
 *
 * The smallest warp value is loose when one warp's maxima are low: simulated
 * on randn chunks (docs/perf-notes.md v26), at k = 5 it let 61 elements
 * through (median) but up to 309, over the pool's 148 slots in 1.4% of
 * chunks, where the ranked form lets 6 through (at most 12). The ranked form
 * costs 0.2-0.3 µs more per launch at k > 8 (one round more, the rank), so
 * there the kernel takes it only when the cheap bound overflows the slots;
 * for k <= kRankedFirstMaxK (m = 1 either way) it comes first, and the
 * small pools it leaves let phase B rank them all at once (rank_phase_b).
 * One block barrier (which also orders shared-memory stores made before the
 * call); all threads call this; 1 <= k <= 32 * spread.
 */
template <int kThreads>
__device__ __forceinline__ uint32_t chunk_lower_bound(uint32_t thread_max, int k, bool ranked,
                                                      PrefilterShared<kThreads / 32>& s) {
  constexpr int kWarps = kThreads / 32;
  static_assert(kWarps <= 32 && (kWarps & (kWarps - 1)) == 0, "warps: a power of two <= 32");
  constexpr int kRankedSpread = kWarps < 12 ? kWarps : 12;
  static_assert(kPrefilterMaxK <= 32 * kRankedSpread, "a warp holds at most 32 group maxima");
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  uint32_t group_max[1] = {thread_max};
  // Two divisions by constants (a runtime divisor would cost a division).
  const int m = ranked ? (k + kRankedSpread - 1) / kRankedSpread : (k + kWarps - 1) / kWarps;
  uint32_t warp_value = 0;  // the m-th largest group maximum of the warp
  if (m <= 8) {
    // m rounds of "take the maximum, retire one lane holding it": a few
    // dependent instructions each, cheaper than a 15-stage sort for small m.
    uint32_t mine = group_max[0];
    for (int round = 0; round < m; ++round) {
      warp_value = __reduce_max_sync(kFullWarp, mine);
      const uint32_t holders = __ballot_sync(kFullWarp, mine == warp_value);
      if (lane == __ffs(holders) - 1) mine = 0;  // 0: the smallest key, never above a real one
    }
  } else {
    warp_bitonic_sort_descending<uint32_t, 1>(group_max);
    warp_value = __shfl_sync(kFullWarp, group_max[0], m - 1);
  }
  if (lane == 0) s.warp_bound[warp] = warp_value;
  __syncthreads();
  if (!ranked) {
    uint32_t bound = s.warp_bound[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) bound = min(bound, s.warp_bound[w]);
    return bound;
  } else {
    // The c-th largest of the kWarps values (with repeats): lane L ranks warp
    // (L % kWarps)'s value v against part L / kWarps of the values; v
    // qualifies when fewer than c values exceed it and at least c are >= it,
    // and every qualifying lane holds the same value.
    const uint32_t c = static_cast<uint32_t>((k + m - 1) / m);  // <= kRankedSpread
    constexpr int kParts = 32 / kWarps;
    constexpr int kPerPart = kWarps / kParts > 0 ? kWarps / kParts : 1;
    const uint32_t mine = s.warp_bound[lane % kWarps];
    const int part = lane / kWarps;
    uint32_t counts = 0;  // low half: values > mine; high half: values >= mine
#pragma unroll
    for (int i = 0; i < kPerPart; ++i) {
      const int w = part * kPerPart + i;  // >= kWarps only with fewer than 8 warps
      const uint32_t other = s.warp_bound[w < kWarps ? w : 0];
      counts += w < kWarps ? (other > mine ? 1u : 0u) + (other >= mine ? 0x10000u : 0u) : 0u;
    }
#pragma unroll
    for (int offset = kWarps; offset < 32; offset <<= 1) {
      counts += __shfl_xor_sync(kFullWarp, counts, offset);
    }
    const uint32_t qualifying =
        __ballot_sync(kFullWarp, (counts & 0xffffu) < c && c <= counts >> 16);
    return __shfl_sync(kFullWarp, mine, __ffs(qualifying) - 1);
  }
}

/// Exclusive prefix sum of `x` over the block's threads in threadIdx order;
/// *total receives the sum over all threads. `warp_totals` holds one entry
/// per warp. One block barrier (callers separate two uses by another).
template <int kThreads>
__device__ __forceinline__ uint32_t block_exclusive_sum(uint32_t x, uint32_t* warp_totals,
                                                        uint32_t* total) {
  constexpr int kWarps = kThreads / 32;
  const int warp = threadIdx.x >> 5;
  const uint32_t inclusive = warp_inclusive_sum(x);
  if ((threadIdx.x & 31) == 31) warp_totals[warp] = inclusive;
  __syncthreads();
  uint32_t before = 0, sum = 0;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    const uint32_t t = warp_totals[w];
    before += w < warp ? t : 0u;
    sum += t;
  }
  *total = sum;
  return before + inclusive - x;
}

/// The histogram bin of a packed candidate: its key's top kHistogramBits.
template <int kKeyBits>
__device__ __forceinline__ uint32_t histogram_bin(uint64_t packed) {
  return static_cast<uint32_t>(packed >> (32 + kKeyBits - kHistogramBits));
}

/*
 * The histogram bin that holds the k-th largest member of a set, from the
 * set's histogram of kThreads * kPerThread bins: thread t brings the counts of bins
 * [first, first + kPerThread) with first = (kThreads - 1 - t) * kPerThread
 * (thread 0 the highest bins), one block prefix sum orders them from the
 * top, and the thread whose bins hold rank k writes `found`: bin, `above`
 * (members in higher bins, < k) and `in_bin` (above < k <= above + in_bin).
 * found.in_bin stays ~0u if the set has fewer than k members. Two block
 * barriers; all threads call this; `found` is valid for all after it.
 */
template <int kThreads, int kPerThread>
__device__ __forceinline__ void find_bin_of_rank(const uint32_t (&counts)[kPerThread], int first,
                                                 uint32_t k, uint32_t* warp_totals,
                                                 RankBin& found) {
  uint32_t mine = 0;
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) mine += counts[i];
  if (threadIdx.x == 0) found.in_bin = ~0u;  // ordered before the owner's write by the scan
  uint32_t total;
  const uint32_t before = block_exclusive_sum<kThreads>(mine, warp_totals, &total);
  if (before < k && k <= before + mine) {
    uint32_t run = before;
#pragma unroll
    for (int i = kPerThread - 1; i >= 0; --i) {
      if (run < k && k <= run + counts[i]) {
        found.bin = static_cast<uint32_t>(first + i);
        found.above = run;
        found.in_bin = counts[i];
      }
      run += counts[i];
    }
  }
  __syncthreads();
}

/*
 * Ranks the n unique packed values of `set` (shared memory) by counting:
 * the rank of v is the number of members larger than v, so the ranks are a
 * permutation of 0 .. n-1 and rank r is the r-th largest. `group` threads
 * (a power of two <= 32, as many as the block allows) share a member, each
 * counting over every group-th one; members beyond the block's threads go
 * round by round (kOneRound: the caller guarantees n <= kThreads and the
 * round loop is compiled out, as rank_phase_b's code was before it shared
 * this helper). emit(member, value, rank) runs once per member. O(n^2 / threads)
 * work: worth it up to ~1k members, where a bitonic network's barriers cost
 * more. All threads call this (warp shuffles).
 */
template <int kThreads, bool kOneRound, typename Emit>
__device__ __forceinline__ void rank_by_counting(const uint64_t* set, int n, Emit&& emit) {
  const int t = threadIdx.x;
  int group_bits = 5;
  while (group_bits > 0 && (n << group_bits) > kThreads) --group_bits;
  const int group = 1 << group_bits;
  const int part = t & (group - 1);
  const int rounds_end = kOneRound ? 1 : n;
  for (int base = 0; base < rounds_end; base += kThreads >> group_bits) {  // block-uniform
    const int member = base + (t >> group_bits);
    const uint64_t value = member < n ? set[member] : 0ull;
    uint32_t rank = 0;
    if (member < n) {
      // Four independent loads per round keep the shared-memory latency off
      // the critical path.
      int j = part;
      for (; j + 3 * group < n; j += 4 * group) {
        rank += (set[j] > value ? 1u : 0u) + (set[j + group] > value ? 1u : 0u) +
                (set[j + 2 * group] > value ? 1u : 0u) + (set[j + 3 * group] > value ? 1u : 0u);
      }
      for (; j < n; j += group) rank += set[j] > value ? 1u : 0u;
    }
    for (int offset = group >> 1; offset > 0; offset >>= 1) {
      rank += __shfl_xor_sync(kFullWarp, rank, offset);
    }
    if (member < n && part == 0) emit(member, value, rank);
  }
}

/*
 * Sorts the n packed values of `values` (shared memory) descending by the
 * bitonic network, padded with zeros (which sort last) to the next power of
 * two, which `values` must hold: the fallback where bins crowd. Preceded by a
 * block barrier after the values' stores; ends with one. All threads call
 * this.
 */
template <int kThreads>
__device__ __forceinline__ void sort_padded_by_network(uint64_t* values, int n) {
  int padded = 2;
  while (padded < n) padded <<= 1;
  for (int i = n + static_cast<int>(threadIdx.x); i < padded; i += kThreads) values[i] = 0ull;
  __syncthreads();
  block_bitonic_sort_descending<kThreads>(values, padded);
}

/*
 * Ranks the n unique packed values of `values` (shared memory) descending by
 * bins of their keys and emits those of ranks [rank_lo, rank_hi): O(n) work
 * and five block barriers instead of rank_by_counting's O(n^2 / threads) or
 * a bitonic network's log^2 n stages.
 *  1. The least and largest keys (block min and max) fix bins of 2^shift
 *     keys, shift the least with (largest - least) >> shift < 2^kBinBits
 *     (for fp16/bf16 sets of a few hundred distinct keys, one key a bin).
 *  2. A histogram of the bins, and one block scan from the top bin down
 *     turns it into each bin's first position in descending order. The
 *     owners of the bins that hold ranks rank_lo and rank_hi - 1 publish
 *     them: only bins between those two can hold a wanted rank.
 *  3. Each value of those bins takes a position in its bin's range of
 *     `scratch` by a shared atomic (grouped by bin, in no particular order
 *     within one).
 *  4. Its rank within the bin is the number of bin-mates larger than it;
 *     packed values are unique, so bin start + that rank is the value's rank
 *     in the whole set, which depends only on the values: the result is
 *     deterministic whatever the atomics' order. emit(rank, value) for each
 *     wanted rank, once, by some thread; it must not touch `values`,
 *     `scratch` or `bins` unless rank_lo = 0 and rank_hi = n (see
 *     sort_by_key_bins).
 * Returns false, with `values` untouched and nothing emitted, if some bin
 * holds more than kPartBinMaxMembers (step 4 would be quadratic in it); with
 * a slice (kSlice), if a bin that holds a wanted rank holds more than
 * kSliceBinMaxMembers.
 * Step 4 costs a thread its bin's size in shared loads per value: randn
 * fp32 sets crowd their bins near the least key (the density is highest
 * there), so large sets take more bins where memory allows (kBinBits).
 * `scratch` holds n values and `bins` 2^kBinBits words (both clobbered
 * either way); `words` is shared scratch the caller set to {~0u, 0, 0} before a
 * block barrier that precedes this call, as it did the values' stores.
 * 0 <= rank_lo < rank_hi <= n. No barrier after the emits. All threads call
 * this.
 */
template <int kThreads, bool kSlice, int kBinBits, typename Emit>
__device__ __forceinline__ bool rank_by_key_bins(const uint64_t* values, uint64_t* scratch, int n,
                                                 uint32_t rank_lo, uint32_t rank_hi, uint32_t* bins,
                                                 uint32_t* warp_totals, RankBin& words, Emit emit) {
  constexpr int kBins = 1 << kBinBits;
  static_assert(kBins % kThreads == 0 || kThreads % kBins == 0, "whole bins a thread");
  constexpr int kBinsPerThread = kBins >= kThreads ? kBins / kThreads : 1;
  const int t = threadIdx.x;
  // Words reused once read: the key range (steps 1-2), then the highest and
  // lowest bins that hold a wanted rank (steps 2-4).
  uint32_t& key_min = words.bin;
  uint32_t& key_max = words.above;
  uint32_t& bin_max = words.in_bin;
  uint32_t& top_bin = words.bin;
  uint32_t& bottom_bin = words.above;
  for (int i = t; i < kBins; i += kThreads) bins[i] = 0;
  fold_key_range<kThreads>(values, n, key_min, key_max);
  __syncthreads();  // bins zeroed, the key range final
  const uint32_t lo = key_min;
  const uint32_t span = key_max - lo;  // n >= 1: key_max >= key_min
  const int shift = max(0, (span == 0 ? 0 : 32 - __clz(static_cast<int>(span))) - kBinBits);
  auto bin_of = [&](uint64_t v) { return (static_cast<uint32_t>(v >> 32) - lo) >> shift; };
  for (int i = t; i < n; i += kThreads) atomicAdd(&bins[bin_of(values[i])], 1u);
  __syncthreads();  // histogram complete; key_min and key_max read by all
  // Thread 0 owns the highest bins, so a prefix sum in thread order counts
  // the members above each thread's bins.
  const int first = (kThreads - 1 - t) * kBinsPerThread;
  const bool owner = first >= 0 && first < kBins;
  uint32_t counts[kBinsPerThread];
  uint32_t mine = 0, crowded = 0;
#pragma unroll
  for (int i = 0; i < kBinsPerThread; ++i) {
    counts[i] = owner ? bins[first + i] : 0u;
    mine += counts[i];
    if (!kSlice) crowded = max(crowded, counts[i]);
  }
  uint32_t total;
  uint32_t run = block_exclusive_sum<kThreads>(mine, warp_totals, &total);
  if (owner) {
#pragma unroll
    for (int i = kBinsPerThread - 1; i >= 0; --i) {
      bins[first + i] = run;  // the bin's first position, descending
      if (kSlice) {           // one bin holds each end rank: a single store each
        if (run <= rank_lo && rank_lo < run + counts[i]) top_bin = first + i;
        if (run <= rank_hi - 1 && rank_hi - 1 < run + counts[i]) bottom_bin = first + i;
        // Only bins that hold a wanted rank are ranked: only they can crowd.
        if (run < rank_hi && run + counts[i] > rank_lo) crowded = max(crowded, counts[i]);
      }
      run += counts[i];
    }
  }
  crowded = __reduce_max_sync(kFullWarp, crowded);
  if ((t & 31) == 0) atomicMax(&bin_max, crowded);
  __syncthreads();  // starts written, the words final
  if (bin_max > (kSlice ? kSliceBinMaxMembers : kPartBinMaxMembers)) return false;  // uniform
  // Without a slice every bin is wanted: top kBins - 1, bottom 0.
  const uint32_t top = kSlice ? top_bin : kBins - 1;
  const uint32_t bottom = kSlice ? bottom_bin : 0u;
  const uint32_t begin = kSlice ? bins[top] : 0u;  // the first position of a wanted bin
  if (kSlice) __syncthreads();                     // `begin` read before the atomics move it
  for (int i = t; i < n; i += kThreads) {
    const uint64_t v = values[i];
    const uint32_t b = bin_of(v);
    if (!kSlice || (b >= bottom && b <= top)) scratch[atomicAdd(&bins[b], 1u)] = v;
  }
  __syncthreads();  // grouped by bin; bins[b] (bottom <= b <= top) is now the end of bin b
  const uint32_t end = kSlice ? bins[bottom] : static_cast<uint32_t>(n);
  for (uint32_t p = begin + t; p < end; p += kThreads) {
    const uint64_t v = scratch[p];
    const uint32_t b = bin_of(v);
    const uint32_t bin_begin = (kSlice && b == top) || b + 1 >= kBins ? begin : bins[b + 1];
    const uint32_t bin_end = bins[b];
    uint32_t rank = bin_begin;
    for (uint32_t j = bin_begin; j < bin_end; ++j) rank += scratch[j] > v ? 1u : 0u;
    if (!kSlice || (rank >= rank_lo && rank < rank_hi)) emit(rank, v);
  }
  return true;
}

/*
 * Sorts the n unique packed values of `values` (shared memory) descending, in
 * place: rank_by_key_bins over all ranks, each value written back at its
 * rank. Same contract (false: too crowded, `values` untouched); ends with a
 * block barrier.
 */
template <int kThreads>
__device__ __forceinline__ bool sort_by_key_bins(uint64_t* values, uint64_t* scratch, int n,
                                                 uint32_t* bins, uint32_t* warp_totals,
                                                 RankBin& words) {
  // Every value is in `scratch` before any is written back: the emits follow
  // the barrier after the scatter, and the scatter reads `values` only.
  const bool sorted = rank_by_key_bins<kThreads, false, kPartBinBits>(
      values, scratch, n, 0u, static_cast<uint32_t>(n), bins, warp_totals, words,
      [&](uint32_t rank, uint64_t v) { values[rank] = v; });
  __syncthreads();  // sorted
  return sorted;
}

/*
 * Phase B of a pre-filtered cluster row, when it can avoid a select and a
 * sort. The pool's real candidates (chunk c's first chunk_counts[c] slots)
 * are counted into `histogram` (zeroed by the caller) by histogram_bin, and
 * one block scan finds the bin B holding the k-th largest candidate: `above`
 * candidates lie in higher bins, `in_bin` in B, above < k <= above + in_bin.
 * The candidates in bins >= B, a set S that contains the row's top k, are
 * gathered into `gathered` (one warp-aggregated shared atomic per warp and
 * round); if |S| <= kRankMax each candidate's rank is the number of larger
 * ones in S (several threads per candidate), and rank r < k is written to
 * output slot r: packed values are unique, so the ranks are a permutation
 * and the output is sorted and deterministic. A pool of at most
 * kRankWholeMax candidates (k <= kRankedFirstMaxK: the ranked pre-filter
 * bound leaves ~k + 1 a chunk) is ranked whole, without the histogram.
 * Returns false, having written nothing, if |S| > kRankMax (heavy ties, k
 * near kRankMax); the caller then selects and sorts. All threads call this;
 * 1 <= k <= number of candidates.
 */
template <typename Format, int kThreads>
__device__ __forceinline__ bool rank_phase_b(const Problem& q, const typename Format::Bits* in,
                                             int64_t row, int k, uint32_t* histogram,
                                             const uint64_t* pool, const uint32_t* chunk_counts,
                                             int splits, int slots, uint64_t* gathered,
                                             RankBin& found, uint32_t* warp_totals,
                                             uint32_t& gathered_count, PhaseProbe& probe) {
  constexpr int kPerThread = kHistogramBins / kThreads;
  static_assert(kPerThread % 4 == 0, "bins are read as uint4");
  const int t = threadIdx.x;
  const int lane = t & 31;
  // The real candidates: chunk c's are pool[c * slots + p] for
  // p < chunk_counts[c], numbered g = starts[c] + p over all chunks.
  int starts[kMaxClusterCtas + 1];
  starts[0] = 0;
#pragma unroll
  for (int c = 0; c < kMaxClusterCtas; ++c) {
    starts[c + 1] = starts[c] + (c < splits ? static_cast<int>(chunk_counts[c]) : 0);
  }
  const int candidates = starts[kMaxClusterCtas];
  auto pool_position = [&](int g) {
    int position = g;
#pragma unroll
    for (int c = 1; c < kMaxClusterCtas; ++c) {
      if (g >= starts[c]) position = g - starts[c] + c * slots;
    }
    return position;
  };
  // Ranks the gathered set S by counting; rank r < k is output slot r.
  auto rank_set_and_write = [&](int set_size) {
    rank_by_counting<kThreads, true>(gathered, set_size, [&](int, uint64_t value, uint32_t rank) {
      if (rank < static_cast<uint32_t>(k)) write_output<Format>(q, in, row, rank, value, true);
    });
    probe.mark();  // ranked
    for (int j = k + t; j < q.k; j += kThreads) write_output<Format>(q, in, row, j, 0ull, false);
    return true;
  };
  if (candidates <= kRankWholeMax) {
    // Few candidates (the ranked pre-filter bound at small k): S is the
    // whole pool, no histogram, no bin search, no gather by bin.
    for (int g = t; g < candidates; g += kThreads) gathered[g] = pool[pool_position(g)];
    __syncthreads();
    probe.mark();  // (no bin to find)
    probe.mark();  // set gathered
    return rank_set_and_write(candidates);
  }
  // Thread t holds candidates t + r * kThreads in registers for both passes.
  constexpr int kHeld =
      static_cast<int>((kMaxClusterCtas * prefilter_slots(kRankMax / 2) + kThreads - 1) / kThreads);
  uint64_t held[kHeld];
#pragma unroll
  for (int r = 0; r < kHeld; ++r) {
    const int g = t + r * kThreads;
    held[r] = g < candidates ? pool[pool_position(g)] : 0ull;
    if (g < candidates) atomicAdd(&histogram[histogram_bin<Format::kKeyBits>(held[r])], 1u);
  }
  __syncthreads();
  // Thread t owns bins [first, first + kPerThread), thread 0 the highest.
  const int first = (kThreads - 1 - t) * kPerThread;
  uint32_t counts[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; i += 4) {
    const uint4 c = *reinterpret_cast<const uint4*>(histogram + first + i);
    counts[i] = c.x;
    counts[i + 1] = c.y;
    counts[i + 2] = c.z;
    counts[i + 3] = c.w;
  }
  if (t == 0) gathered_count = 0;
  find_bin_of_rank<kThreads, kPerThread>(counts, first, static_cast<uint32_t>(k), warp_totals,
                                         found);
  probe.mark();  // bin found
  const uint32_t set_size = found.above + found.in_bin;
  if (found.in_bin > static_cast<uint32_t>(kRankMax) || set_size > kRankMax) return false;

  // Gather S.
  const uint32_t bin = found.bin;
#pragma unroll
  for (int r = 0; r < kHeld; ++r) {
    if (r * kThreads + t - lane >= candidates) break;  // warp-uniform
    const uint64_t v = held[r];
    const bool take = t + r * kThreads < candidates && histogram_bin<Format::kKeyBits>(v) >= bin;
    const uint32_t ballot = __ballot_sync(kFullWarp, take);
    uint32_t slot = 0;
    if (lane == 0 && ballot != 0) slot = atomicAdd(&gathered_count, __popc(ballot));
    slot = __shfl_sync(kFullWarp, slot, 0);
    if (take) gathered[slot + __popc(ballot & ((1u << lane) - 1u))] = v;
  }
  __syncthreads();
  probe.mark();  // set gathered
  return rank_set_and_write(static_cast<int>(set_size));
}

/*
 * Both phases of a distributed cluster plan (k > kRankMax / 2): the cluster
 * selects and ranks together, and no CTA gathers the row's candidates
 * (rank 0 selecting over splits * k candidates and sorting k of them took
 * ~30 of 1x131072 k2048's 43 µs; docs/perf-notes.md v15).
 *  1. Two rounds find the top 16 bits P of the row's k-th largest key, 8
 *     bits a round: every CTA counts its keys' digit (round 2: only keys in
 *     round 1's bin) into a 256-bin histogram, a cluster barrier, and every
 *     CTA sums the cluster's histograms through distributed shared memory
 *     and finds the bin of the k-th: all CTAs compute the same answer. The
 *     set S of the row's keys whose top 16 bits are >= P holds the row's top
 *     k: k plus P's bin (for fp16/bf16 P is the whole key: its ties). If
 *     |S| > set_capacity (heavy ties) nothing is written and the caller
 *     takes the select path.
 *  2. Every CTA gathers its part S_c of S (block prefix sum) and sorts it
 *     into `ordered`: by key bins (sort_by_key_bins) for a part of more
 *     than kBinSortMinPart members, otherwise, and where a bin is crowded,
 *     by counting or a bitonic network for a large part; cluster barrier.
 *  3. Every CTA copies all parts side by side into `set` (one bulk pass over
 *     distributed shared memory). The rank of a member v of S_c in S is the
 *     number of larger members in every part, a binary search each (its own
 *     part gives its position). Packed values are unique, so these ranks are
 *     a permutation of 0 .. |S|-1: rank r < k is output slot r, sorted and
 *     deterministic whatever the timing.
 *  4. A last cluster barrier keeps every CTA's parts alive until the others
 *     have copied them.
 * Where the chunk's key region holds a copy of S and kPartBins bins
 * (`whole`, kWholeSetSort), step 2 leaves the part unsorted in `ordered`, and
 * step 3 sorts the whole copied S by key bins in every CTA (the bitonic
 * network where bins crowd) and each CTA writes its contiguous slice of the
 * output slots: the same ranks, without a part sort or binary searches.
 * Distributed shared memory moved only ~20-25 GB/s per SM in the probe (a
 * 4,096-bin histogram round, 128 KB read per CTA, cost ~7 µs), hence the small
 * histograms and the one bulk copy instead of remote loads per search step.
 * On entry: the keys are stored, `histogram` (2 x kDigitBins words) is
 * zeroed (a block barrier since) and the CTA has not arrived at any cluster
 * barrier (round 1's is also the proof that every CTA runs before the first
 * remote access). On a false return the cluster has passed one or two
 * barrier phases (the same for all its CTAs), `set_count` is still 0 and
 * only the histograms were written. All threads call this; k >= 0.
 */
template <typename Format, int kThreads>
__device__ __forceinline__ bool distributed_top_k(const Problem& q, const typename Format::Bits* in,
                                                  int64_t row, int k, uint32_t* keys, int begin,
                                                  int length, int split, const SplitPlan& plan,
                                                  uint32_t* histogram, uint64_t* pool,
                                                  RankBin& found, uint32_t* warp_totals,
                                                  uint32_t& set_count, uint32_t* part_begin,
                                                  PhaseProbe& probe) {
  static_assert(kThreads >= kDigitBins, "a thread per digit bin");
  constexpr int kCountingMax = 1024;  // larger parts sort by bitonic network
  const int t = threadIdx.x;

  // 1. Two rounds of an 8-bit digit (the key's top 16 bits): each CTA
  // counts its keys' digits (round 2: of the keys in round 1's bin) into a
  // 256-bin histogram; after a cluster barrier every CTA sums the cluster's
  // histograms (thread kThreads-1-b: bin b; a remote word per CTA, each CTA
  // starting with its own) and finds the bin holding the k-th. The single
  // 4,096-bin round this replaces spent ~7 µs (probe) reading 128 KB per CTA.
  uint32_t* digits[2] = {histogram, histogram + kDigitBins};
  uint32_t prefix = 0;  // the key's top 8 bits, then top 16, of the k-th largest
  uint32_t above = 0;   // keys of the row above the prefix's bin
  uint32_t rank = static_cast<uint32_t>(k);  // the k-th's rank among the bin's keys
  uint32_t in_bin = 0;
#pragma unroll
  for (int round = 0; round < 2; ++round) {
    const int shift = Format::kKeyBits - 8 * (round + 1);
    for (int i = t; i < length; i += kThreads) {
      const uint32_t key = keys[i];
      if (round == 0 || (key >> (shift + 8)) == prefix) {
        atomicAdd(&digits[round][(key >> shift) & (kDigitBins - 1)], 1u);
      }
    }
    cluster_arrive_release();
    cluster_wait_acquire();                      // every histogram complete (and every CTA running)
    probe.mark();                                // 2, 4: digits counted
    const int bin_of_thread = kThreads - 1 - t;  // thread 0: the highest; >= kDigitBins: empty
    uint32_t counts[1] = {0};
    if (bin_of_thread < kDigitBins) {
#pragma unroll
      for (int d = 0; d < kMaxClusterCtas; ++d) {
        if (d < plan.splits) {
          const int c = split + d < plan.splits ? split + d : split + d - plan.splits;
          counts[0] += cluster_map(digits[round], c)[bin_of_thread];
        }
      }
    }
    __syncthreads();  // everyone has read the previous round's `found`
    find_bin_of_rank<kThreads, 1>(counts, bin_of_thread, rank, warp_totals, found);
    probe.mark();                           // 3, 5: bin found
    if (found.in_bin == ~0u) return false;  // k == 0 (the same for the whole cluster)
    prefix = (prefix << 8) | found.bin;
    above += found.above;
    rank -= found.above;
    in_bin = found.in_bin;
  }
  const uint32_t capacity = static_cast<uint32_t>(plan.set_capacity);
  if (in_bin > capacity || above + in_bin > capacity) return false;

  // 2. This chunk's part of S, sorted (descending) into `ordered`. The
  // members are placed by a block prefix sum of per-thread counts. Where the
  // chunk's key region (dead once the part is gathered) holds a copy of S
  // and the bins, the part stays unsorted in `ordered` instead and every CTA
  // sorts the whole S once the parts are copied (step 3, `whole`).
  uint64_t* set = pool;
  uint64_t* ordered = pool + plan.set_capacity;
  const bool whole =
      kWholeSetSort &&
      static_cast<int64_t>(plan.chunk) * sizeof(uint32_t) >=
          static_cast<int64_t>(plan.set_capacity) * sizeof(uint64_t) + kPartBins * sizeof(uint32_t);
  uint64_t* part = whole ? ordered : set;
  constexpr int kPrefixShift = Format::kKeyBits - 16;
  uint32_t mine = 0;
  for (int i = t; i < length; i += kThreads) mine += (keys[i] >> kPrefixShift) >= prefix ? 1u : 0u;
  uint32_t total;
  uint32_t slot = block_exclusive_sum<kThreads>(mine, warp_totals, &total);
  for (int i = t; i < length; i += kThreads) {
    if ((keys[i] >> kPrefixShift) >= prefix) part[slot++] = pack_key_index(keys[i], begin + i);
  }
  if (t == 0) {
    set_count = total;  // read remotely only after the next cluster barrier
    // sort_by_key_bins' shared words: every thread has read `found`
    // (block_exclusive_sum's barrier), and the one below orders these.
    found = RankBin{~0u, 0u, 0u};
  }
  __syncthreads();
  const int n = static_cast<int>(total);
  probe.mark();  // 6: part gathered
  // The chunk's keys are not read again: their region holds the bins.
  if (whole) {
    // sorted with the others in step 3
  } else if (kBinSortMinPart > 0 && n > kBinSortMinPart && plan.chunk >= kPartBins &&
             sort_by_key_bins<kThreads>(set, ordered, n, keys, warp_totals, found)) {
    for (int i = t; i < n; i += kThreads) ordered[i] = set[i];
  } else if (n <= kCountingMax) {
    rank_by_counting<kThreads, false>(set, n, [&](int, uint64_t v, uint32_t r) { ordered[r] = v; });
  } else {
    sort_padded_by_network<kThreads>(set, n);  // padded to <= set_capacity
    __syncthreads();
    for (int i = t; i < n; i += kThreads) ordered[i] = set[i];
  }
  cluster_arrive_release();
  cluster_wait_acquire();  // every chunk's part sorted
  probe.mark();            // 7: parts sorted

  // 3. Ranks in S. First the cluster's sorted parts are copied side by side
  // into `set` (free again; |S| <= set_capacity) with one bulk pass over
  // distributed shared memory, each CTA starting after its own part so that
  // the CTAs read from different SMs; then every search runs in local shared
  // memory, not one remote load per step.
  if (t < kMaxClusterCtas) {
    part_begin[t + 1] = t >= plan.splits ? 0u : t == split ? n : *cluster_map(&set_count, t);
  }
  __syncthreads();
  if (t == 0) {
    part_begin[0] = 0;
    for (int c = 0; c < kMaxClusterCtas; ++c) part_begin[c + 1] += part_begin[c];
  }
  __syncthreads();
  const uint32_t members = part_begin[kMaxClusterCtas];  // |S|
  const uint32_t start = part_begin[split + 1];
  for (uint32_t g0 = t; g0 < members; g0 += kThreads) {
    uint32_t g = g0 + start;
    if (g >= members) g -= members;
    int c = 0;
#pragma unroll
    for (int d = 1; d < kMaxClusterCtas; ++d) c = g >= part_begin[d] ? d : c;  // the part holding g
    set[g] = cluster_map(ordered, c)[g - part_begin[c]];
  }
  __syncthreads();
  probe.mark();  // 8: parts copied
  if (whole) {
    // CTA c ranks all of S by key bins but scatters, ranks and writes only
    // the members of output slots [c * per, (c + 1) * per). This CTA reads
    // no remote part any more; its own may still be read until everyone
    // arrived (waited for below).
    cluster_arrive_release();
    const int per = (k + plan.splits - 1) / plan.splits;
    const int slice_begin = split * per;
    const int slice_end = min(k, min(static_cast<int>(members), (split + 1) * per));
    uint64_t* scratch = reinterpret_cast<uint64_t*>(keys);
    uint32_t* bins = reinterpret_cast<uint32_t*>(scratch + members);
    auto emit = [&](uint32_t r, uint64_t v) { write_output<Format>(q, in, row, r, v, true); };
    // From kSliceMinK on, only this CTA's slice is ranked (an empty slice:
    // nothing to do); below it, or where its bins crowd (ties, or a key far
    // from the rest), every CTA sorts all of S, by bins below kSliceMinK and
    // else by the network, and writes its slice from the sorted copy. All
    // the conditions are uniform.
    const bool sliced =
        k >= kSliceMinK &&
        (slice_begin >= slice_end ||
         rank_by_key_bins<kThreads, true, kPartBinBits>(
             set, scratch, static_cast<int>(members), static_cast<uint32_t>(slice_begin),
             static_cast<uint32_t>(slice_end), bins, warp_totals, found, emit));
    if (!sliced) {
      if (k >= kSliceMinK || !sort_by_key_bins<kThreads>(set, scratch, static_cast<int>(members),
                                                         bins, warp_totals, found)) {
        sort_padded_by_network<kThreads>(set, static_cast<int>(members));  // <= set_capacity
      }
      for (int r = slice_begin + t; r < slice_end; r += kThreads) {
        write_output<Format>(q, in, row, r, set[r], true);
      }
    }
    if (split == 0) {
      for (int j = k + t; j < q.k; j += kThreads) write_output<Format>(q, in, row, j, 0ull, false);
    }
    probe.mark();             // 9: written
    allow_dependent_grids();  // the next kernel may start launching (it still waits for us)
    cluster_wait_acquire();   // nobody reads this CTA's part any more
    return true;
  }
  const int winners = min(n, k);  // position >= k never ranks < k
  for (int i = t; i < winners; i += kThreads) {
    const uint64_t v = ordered[i];
    uint32_t lo[kMaxClusterCtas], hi[kMaxClusterCtas];
#pragma unroll
    for (int c = 0; c < kMaxClusterCtas; ++c) {
      lo[c] = part_begin[c];
      hi[c] = part_begin[c + 1];
    }
    // lo: members of part c known larger than v end there; hi: smaller from there.
    bool searching = true;
    while (searching) {
      searching = false;
#pragma unroll
      for (int c = 0; c < kMaxClusterCtas; ++c) {
        if (lo[c] < hi[c]) {
          const uint32_t mid = (lo[c] + hi[c]) >> 1;
          if (set[mid] > v) {
            lo[c] = mid + 1;
          } else {
            hi[c] = mid;
          }
          searching = true;
        }
      }
    }
    uint32_t rank = 0;
#pragma unroll
    for (int c = 0; c < kMaxClusterCtas; ++c) rank += lo[c] - part_begin[c];
    if (rank < static_cast<uint32_t>(k)) write_output<Format>(q, in, row, rank, v, true);
  }
  if (split == 0) {
    for (int j = k + t; j < q.k; j += kThreads) write_output<Format>(q, in, row, j, 0ull, false);
  }
  probe.mark();  // 9: written
  // 4. Nobody reads this CTA's parts any more once everyone arrived.
  allow_dependent_grids();  // the next kernel may start launching (it still waits for us)
  cluster_arrive_release();
  cluster_wait_acquire();
  return true;
}

/*
 * Grid (rows, splits), kThreads = plan.threads threads (kSplitThreads, or
 * kRowThreads for one split unless it streams with k > kStreamWideK).
 * Dynamic shared memory:
 *   [ keys: chunk keys as uint32 ]      (tickets: keys and pool share the region;
 *     streaming plans: the candidate buffer, stream_capacity packed uint64)
 *   [ pool: splits*slots packed uint64 ]
 *   [ sort buffer: sort_capacity packed uint64 ] (streaming: also the
 *     compaction scratch)
 * Invariants (tickets): candidates[(row*splits + c)*slots + 0 .. k_c) hold
 * chunk c's exact top k_c packed values once chunk c's CTA has taken its
 * ticket; tickets[row] counts CTAs of the row that have finished phase A.
 * Invariants (cluster; the cluster is (1, splits, 1), so cluster rank ==
 * split): after the second cluster barrier, pool[c*slots .. c*slots +
 * chunk_counts[c]) of the row's rank-0 CTA holds a superset of chunk c's top
 * k_c (its exact top k_c, or every element >= the pre-filter's bound); the
 * rest of the chunk's slots holds packed 0 in plans without a histogram (in
 * plans with one, rank 0 pads them only before a fallback select).
 * The first barrier (arrive at entry, wait before the first remote store)
 * guarantees that rank 0 is running before anyone writes into its shared
 * memory; ranks > 0 exit after their release-arrive, and nobody reads their
 * shared memory.
 */
template <typename Format, int kThreads, Handoff kHandoff, bool kDistributed = false,
          bool kStreaming = false>
__global__ void __launch_bounds__(kThreads, kStreaming ? kStreamCtasPerSm * 256 / kThreads : 0)
    split_row_kernel(Problem q, SplitPlan plan, uint64_t* candidates, uint32_t* tickets) {
  using Bits = typename Format::Bits;
  constexpr bool kCluster = kHandoff == Handoff::kCluster;
  extern __shared__ __align__(16) unsigned char shared_raw[];
  __shared__ PackedSelectShared select;
  __shared__ uint32_t compact_count;
  __shared__ bool is_last;
  // The arrays that are read whole are 16-byte aligned: ptxas reads them as
  // 16-byte vectors, and an unaligned one would be read together with the
  // words before it, which other warps may be writing (a harmless read that
  // compute-sanitizer's racecheck reports as a hazard).
  __shared__ PrefilterShared<kThreads / 32> prefilter;
  __shared__ alignas(16) uint32_t warp_totals[kThreads / 32];
  __shared__ RankBin rank_bin;
  __shared__ alignas(16) uint32_t chunk_counts[kMaxClusterCtas];    // cluster rank 0: real slots
  __shared__ alignas(16) uint32_t part_begin[kMaxClusterCtas + 1];  // distributed: parts' sizes
  PhaseProbe probe(blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0);  // mark 0
  const int split = blockIdx.y;
  uint32_t* histogram = plan.histogram_offset >= 0
                            ? reinterpret_cast<uint32_t*>(shared_raw + plan.histogram_offset)
                            : nullptr;
  // Cluster plans with a histogram: k <= kRankMax / 2 ranks on rank 0
  // (rank_phase_b), larger k selects across the cluster (distributed_top_k).
  // A kernel of its own for distributed plans (plan.set_capacity > 0).
  constexpr bool distributed = kCluster && kDistributed;
  const bool ranked = kCluster && histogram != nullptr && !distributed;

  if constexpr (kCluster) {
    // Zero the histograms (rank 0's for rank_phase_b, every CTA's for
    // distributed_top_k); a block barrier orders it before their use.
    if (ranked ? split == 0 : distributed) {
      const int words = distributed ? 2 * kDigitBins : kHistogramBins;
      for (int i = threadIdx.x; i < words / 4; i += kThreads) {
        reinterpret_cast<uint4*>(histogram)[i] = make_uint4(0, 0, 0, 0);
      }
    }
    // "This CTA runs" (distributed_top_k's first barrier says it later).
    if (!distributed) cluster_arrive_relaxed();
    wait_for_prerequisite_grids();  // launched early (PDL): inputs may still be in the making
  }
  const int64_t row = blockIdx.x;  // x: rows may exceed gridDim.y's 65535
  const RowShape shape =
      row_shape(q.k_per_row, q.row_lengths, row, static_cast<int>(q.cols), static_cast<int>(q.k));
  const Bits* in = static_cast<const Bits*>(q.input) + row * q.row_stride;
  probe.mark();  // 1: inputs may be read
  uint32_t* keys = reinterpret_cast<uint32_t*>(shared_raw);
  uint64_t* pool = reinterpret_cast<uint64_t*>(shared_raw + plan.pool_offset);
  uint64_t* sorted = reinterpret_cast<uint64_t*>(shared_raw + plan.sort_offset);
  uint64_t* keys64 = reinterpret_cast<uint64_t*>(shared_raw);  // rank_phase_b's set, after phase A

  // ---- phase A: this chunk's top k_c (exact, or a pre-filtered superset) --
  const int begin = split * plan.chunk;
  const int length = max(0, min(plan.chunk, shape.length - begin));
  const int k_chunk = min(shape.k, length);
  const bool largest = q.largest;
  // Where phase A's winners come from: the chunk's keys on chip, or (long
  // chunks, ticket plans) the candidates that streaming kept.
  uint64_t* streamed = nullptr;
  int source_count = length;
  uint32_t loaded_max = 0;
  if constexpr (kStreaming) {
    __shared__ uint32_t stream_added[3];
    streamed = keys64;
    source_count = k_chunk == 0 ? 0
                                : stream_chunk_candidates<Format, kThreads>(
                                      in, begin, length, k_chunk, largest, plan.stream_capacity,
                                      plan.index_bits, streamed, sorted, plan.sort_entries,
                                      plan.coarse_raise != 0, select, rank_bin, warp_totals,
                                      stream_added, compact_count, probe);
  } else {
    loaded_max = load_chunk_keys<Format, kThreads>(in, begin, length, largest, keys);
  }
  if (threadIdx.x == 0) compact_count = 0;
  if constexpr (distributed) {
    __syncthreads();  // keys stored, histogram zeroed, compact_count reset
    if (distributed_top_k<Format, kThreads>(q, in, row, shape.k, keys, begin, length, split, plan,
                                            histogram, pool, rank_bin, warp_totals, compact_count,
                                            part_begin, probe)) {
      probe.finish("row_per_cluster distributed");
      return;
    }
    // Here its cluster barriers have shown that every CTA runs; the select
    // path follows.
  }
  // The pre-filter's barrier also publishes the keys; other paths wait here.
  const bool prefiltering = kCluster && k_chunk > 0 && k_chunk < length && plan.slots > k_chunk &&
                            k_chunk <= kPrefilterMaxK;
  if (!prefiltering) __syncthreads();
  probe.mark();  // 2: chunk loaded (stored, when the pre-filter follows)
  auto chunk_value = [&](int i) {
    return streamed != nullptr ? streamed[i] : pack_key_index(keys[i], begin + i);
  };
  uint64_t threshold = 0;                             // the values >= threshold go on
  uint32_t passing = static_cast<uint32_t>(k_chunk);  // how many they are
  // The pre-filter counts its passing values per thread anyway, so a block
  // prefix sum places them (`slot`: this thread's first); the exact select's
  // winners take one shared atomic each (a counting pass more measured 3-6%
  // slower on split_row and k = 2048).
  bool by_prefix_sum = false;
  uint32_t slot = 0;
  if (k_chunk > 0 && k_chunk < source_count) {
    if constexpr (kCluster) {
      if (prefiltering) {
        const bool ranked_first = k_chunk <= kRankedFirstMaxK;
        uint32_t bound = chunk_lower_bound<kThreads>(loaded_max, k_chunk, ranked_first, prefilter);
        uint32_t total;
        auto place = [&]() {  // this thread's first slot; *total over the block
          uint32_t count = 0;
          for (int i = threadIdx.x; i < length; i += kThreads) count += keys[i] >= bound ? 1u : 0u;
          return block_exclusive_sum<kThreads>(count, warp_totals, &total);
        };
        uint32_t first = place();
        if (total > static_cast<uint32_t>(plan.slots) && !ranked_first) {
          // The cheap bound let too many through (one warp's maxima were
          // low): the ranked bound, then the exact select if that fails too.
          // Its barrier separates the two prefix sums.
          bound = chunk_lower_bound<kThreads>(loaded_max, k_chunk, true, prefilter);
          first = place();
        }
        if (total <= static_cast<uint32_t>(plan.slots)) {
          // A packed value v is >= threshold exactly when its key is >= bound.
          threshold = static_cast<uint64_t>(bound) << 32;
          passing = total;
          slot = first;
          by_prefix_sum = true;
        }
      }
    }
    if (!by_prefix_sum) {
      threshold = block_select_packed<Format::kKeyBits, kThreads>(select, source_count, k_chunk,
                                                                  plan.index_bits, chunk_value);
    }
  }
  probe.mark();  // 3: threshold known
  // Destination of the winners: rank 0's pool (cluster), the workspace
  // (tickets), or (one split) the sort buffer.
  uint64_t* winners = sorted;
  if constexpr (kCluster) {
    // Every CTA of the cluster has started (distributed plans know it already).
    if constexpr (!distributed) cluster_wait_acquire();
    probe.mark();  // 4: cluster running
    winners = cluster_map(pool, 0) + split * plan.slots;
  } else if (plan.splits > 1) {
    winners = candidates + (row * plan.splits + split) * int64_t{plan.slots};
  }
  if (k_chunk > 0) {
    for (int i = threadIdx.x; i < source_count; i += kThreads) {
      const uint64_t v = chunk_value(i);
      if (v >= threshold) winners[by_prefix_sum ? slot++ : atomicAdd(&compact_count, 1u)] = v;
    }
  }
  if constexpr (kCluster) {
    // Rank 0 learns how many slots this chunk filled. Without a histogram
    // the others become packed 0 here, which ranks below every real element
    // (see phase B's gather below); with one, rank 0 pads them itself only
    // if it needs to (rank_phase_b does not).
    if (threadIdx.x == 0) cluster_map(chunk_counts, 0)[split] = passing;
    if (!ranked) {
      for (int t = passing + threadIdx.x; t < plan.slots; t += kThreads) winners[t] = 0ull;
    }
  }

  probe.mark();  // 5 (cluster; 4 otherwise): winners handed on
  int pool_count = k_chunk;
  if (plan.splits > 1) {
    pool_count = plan.splits * plan.slots;
    if constexpr (kCluster) {
      // ---- hand-off on chip: rank 0 continues once every chunk arrived ---
      allow_dependent_grids();  // the next kernel may start launching (it still waits for us)
      cluster_arrive_release();
      if (split != 0) return;
      cluster_wait_acquire();
      probe.mark();  // 6: every chunk's winners in the pool
      if (ranked) {
        if (shape.k > 0 && rank_phase_b<Format, kThreads>(
                               q, in, row, shape.k, histogram, pool, chunk_counts, plan.splits,
                               plan.slots, keys64, rank_bin, warp_totals, compact_count, probe)) {
          probe.finish("row_per_cluster ranked");  // 7: written
          return;
        }
        // Select and sort instead: pad the slots the chunks did not fill.
        for (int i = threadIdx.x; i < pool_count; i += kThreads) {
          const int c = i / plan.slots;
          if (i - c * plan.slots >= static_cast<int>(chunk_counts[c])) pool[i] = 0ull;
        }
      }
    } else {
      // ---- hand-off: the last CTA of the row continues --------------------
      __syncthreads();  // the candidates' stores, then the ticket (take_ticket)
      if (threadIdx.x == 0) {
        wait_for_prerequisite_grids();  // the reset of the tickets is complete (launch_with_plan)
        is_last = take_ticket(&tickets[row]) == plan.splits - 1;
      }
      __syncthreads();  // the other chunks' candidates are visible to every thread
      if (!is_last) return;

      // ---- phase B: gather every chunk's candidates -----------------------
      // One coalesced pass over the row's slots (chunk c's slot i at
      // c * slots + i). Slots a chunk did not fill become packed 0, which
      // ranks below every real element (a real packed value has bit 31 set,
      // since indices are < 2^31), and there are always >= k real
      // candidates, so the fillers are never selected.
      const uint64_t* row_candidates = candidates + row * plan.splits * int64_t{plan.slots};
      for (int t = threadIdx.x; t < pool_count; t += kThreads) {
        const int c = t / plan.slots;
        const int c_length = max(0, min(plan.chunk, shape.length - c * plan.chunk));
        const int c_k = min(shape.k, c_length);
        pool[t] = t - c * plan.slots < c_k ? __ldcg(row_candidates + t) : 0ull;
      }
    }
    if (threadIdx.x == 0) compact_count = 0;
    __syncthreads();
    threshold = 0;
    if (shape.k > 0 && shape.k < pool_count) {
      threshold = block_select_packed<Format::kKeyBits, kThreads>(
          select, pool_count, shape.k, plan.index_bits, [&](int i) { return pool[i]; });
    }
    probe.mark();  // 7: row threshold known
    for (int i = threadIdx.x; i < pool_count; i += kThreads) {
      const uint64_t v = pool[i];
      if (shape.k > 0 && v >= threshold) sorted[atomicAdd(&compact_count, 1u)] = v;
    }
  }

  // ---- sort the k winners and write the row ------------------------------
  int sort_n = 2;
  while (sort_n < shape.k) sort_n <<= 1;
  for (int i = shape.k + threadIdx.x; i < sort_n; i += kThreads) sorted[i] = 0;  // sinks last
  // By key bins where the region below the sort buffer (the chunk's keys or
  // the streamed candidates, and the pool: all read for the last time above)
  // holds k values and the bins.
  const bool by_bins =
      kFinalBinSortMin > 0 && shape.k > kFinalBinSortMin &&
      static_cast<std::size_t>(plan.sort_offset) >=
          static_cast<std::size_t>(shape.k) * sizeof(uint64_t) + kPartBins * sizeof(uint32_t);
  if (by_bins && threadIdx.x == 0) rank_bin = RankBin{~0u, 0u, 0u};  // sort_by_key_bins' words
  __syncthreads();
  probe.mark();  // 8 (cluster): winners gathered
  if (shape.k > 1 &&
      !(by_bins && sort_by_key_bins<kThreads>(sorted, keys64, shape.k,
                                              reinterpret_cast<uint32_t*>(keys64 + shape.k),
                                              warp_totals, rank_bin))) {
    block_bitonic_sort_descending<kThreads>(sorted, sort_n);
  }
  probe.mark();  // 9 (cluster): sorted
  for (int j = threadIdx.x; j < q.k; j += kThreads) {
    const bool valid = j < shape.k;
    write_output<Format>(q, in, row, j, valid ? sorted[j] : 0ull, valid);
  }
  probe.finish(kCluster ? "row_per_cluster" : "split_row");  // 10 (cluster): written
}

const char* rejects_split(const Problem& q, const DeviceFacts& device, FamilyPlan* out) {
  if (q.k > kMaxK) return "k > 2048";
  SplitPlan plan{};
  if (!make_plan(q, device, 0, Handoff::kTickets, &plan)) {
    return "the plan does not fit (candidate budget or shared memory)";
  }
  out->store(plan);
  return nullptr;
}

std::size_t workspace_split(const Problem& q, const DeviceFacts&, const FamilyPlan& stored) {
  const SplitPlan plan = stored.load<SplitPlan>();
  if (plan.splits == 1) return 0;
  WorkspaceLayout w(nullptr);
  RowHandoff::take(w, q.rows, int64_t{plan.splits} * plan.slots);
  return w.bytes();
}

/// Raises `kernel`'s dynamic shared-memory limit to the device's opt-in
/// maximum, once per device (the default 48 KB counts static + dynamic
/// together, and make_plan sizes up to the opt-in limit). Cached like the
/// device facts: an attribute set costs host time on every call otherwise.
template <typename Format, int kThreads, Handoff kHandoff, bool kDistributed = false,
          bool kStreaming = false>
cudaError_t allow_full_shared_memory(const DeviceFacts& device) {
  // One flag set per kernel instantiation (keyed by the template arguments,
  // not by the kernel's type, which every instantiation shares).
  static std::atomic<uint64_t> raised_on_device{0};  // bit d: done on device d (< 64)
  auto kernel = split_row_kernel<Format, kThreads, kHandoff, kDistributed, kStreaming>;
  const uint64_t bit = uint64_t{1} << device.device;
  if (raised_on_device.load(std::memory_order_acquire) & bit) return cudaSuccess;
  cudaFuncAttributes attributes{};
  cudaError_t e = cudaFuncGetAttributes(&attributes, kernel);
  if (e != cudaSuccess) return e;
  e = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
      static_cast<int>(device.shared_per_block_optin - attributes.sharedSizeBytes));
  if (e == cudaSuccess && kHandoff == Handoff::kCluster && kMaxClusterCtas > 8) {
    e = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
  }
  if (e == cudaSuccess) raised_on_device.fetch_or(bit, std::memory_order_release);
  return e;
}

/// One ticket-plan launch: several splits wait for the tickets' reset
/// (programmatic launch: the launch and phase A overlap the reset; the kernel
/// waits for it before its ticket, RowHandoff::reset); one split is a plain
/// launch.
template <typename Format, int kThreads, bool kStreaming>
int launch_tickets(const Problem& q, const DeviceFacts& device, const SplitPlan& plan,
                   uint64_t* candidates, uint32_t* tickets, cudaStream_t stream) {
  const cudaError_t e =
      allow_full_shared_memory<Format, kThreads, Handoff::kTickets, false, kStreaming>(device);
  if (e != cudaSuccess) return e;
  auto* kernel = split_row_kernel<Format, kThreads, Handoff::kTickets, false, kStreaming>;
  const dim3 grid(static_cast<unsigned>(q.rows), plan.splits);
  if (plan.splits > 1) {
    return launch_programmatic(device.cc_major >= 9, kernel, grid, dim3(kThreads),
                               plan.shared_bytes, stream, q, plan, candidates, tickets);
  }
  kernel<<<grid, kThreads, plan.shared_bytes, stream>>>(q, plan, candidates, tickets);
  return cudaGetLastError();
}

int launch_with_plan(const Problem& q, const DeviceFacts& device, const SplitPlan& plan,
                     void* workspace, cudaStream_t stream) {
  RowHandoff handoff;
  if (plan.splits > 1) {
    WorkspaceLayout w(workspace);
    handoff = RowHandoff::take(w, q.rows, int64_t{plan.splits} * plan.slots);
    const cudaError_t e = handoff.reset(q.rows, stream);
    if (e != cudaSuccess) return e;
  }
  uint64_t* const candidates = handoff.candidates;
  uint32_t* const tickets = handoff.tickets;
  return dispatch_dtype(q.dtype, [&](auto format) -> int {
    using Format = decltype(format);
    // plan.threads (fill_plan) picks the instantiation: kSplitThreads for
    // several splits or a wide streaming k, kRowThreads otherwise.
    const bool wide = plan.threads == kSplitThreads;
    if (plan.stream_capacity > 0) {
      return wide ? launch_tickets<Format, kSplitThreads, true>(q, device, plan, candidates,
                                                                tickets, stream)
                  : launch_tickets<Format, kRowThreads, true>(q, device, plan, candidates, tickets,
                                                              stream);
    }
    return wide ? launch_tickets<Format, kSplitThreads, false>(q, device, plan, candidates, tickets,
                                                               stream)
                : launch_tickets<Format, kRowThreads, false>(q, device, plan, candidates, tickets,
                                                             stream);
  });
}

int launch_split(const Problem& q, const DeviceFacts& device, const FamilyPlan& plan,
                 void* workspace, cudaStream_t stream) {
  return launch_with_plan(q, device, plan.load<SplitPlan>(), workspace, stream);
}

// The same kernel with one CTA per row: no workspace, no hand-off.
const char* rejects_row(const Problem& q, const DeviceFacts& device, FamilyPlan* out) {
  if (q.k > kMaxK) return "k > 2048";
  if (q.cols > kMaxChunk) return "cols > 16384";
  SplitPlan plan{};
  if (!make_plan(q, device, 1, Handoff::kTickets, &plan)) return "shared memory";
  out->store(plan);
  return nullptr;
}

std::size_t no_workspace(const Problem&, const DeviceFacts&, const FamilyPlan&) { return 0; }

int launch_row(const Problem& q, const DeviceFacts& device, const FamilyPlan& plan, void* workspace,
               cudaStream_t stream) {
  return launch_with_plan(q, device, plan.load<SplitPlan>(), workspace, stream);
}

/// The cluster kernel for a plan, its shared-memory limit raised: the
/// distributed kernel (k > kRankMax / 2) is an instantiation of its own, so
/// that the other plans' kernel carries none of its code.
template <typename Format>
cudaError_t cluster_kernel(const SplitPlan& plan, const DeviceFacts& device,
                           void (**kernel)(Problem, SplitPlan, uint64_t*, uint32_t*)) {
  if (plan.set_capacity > 0) {
    *kernel = split_row_kernel<Format, kClusterThreads, Handoff::kCluster, true>;
    return allow_full_shared_memory<Format, kClusterThreads, Handoff::kCluster, true>(device);
  }
  *kernel = split_row_kernel<Format, kClusterThreads, Handoff::kCluster, false>;
  return allow_full_shared_memory<Format, kClusterThreads, Handoff::kCluster, false>(device);
}

/// The launch of `rows` rows of `plan`, each row one cluster of plan.splits
/// CTAs, as launch_cluster makes it and resident_clusters asks about it.
/// attributes[0] is the cluster shape, attributes[1] programmatic dependent
/// launch: the kernel may be scheduled while the previous kernel on the
/// stream finishes (it waits in griddepcontrol.wait before touching memory),
/// hiding part of the launch latency (~0.3 µs per call in graph replay on
/// the H100, docs/perf-notes.md v8).
cudaLaunchConfig_t cluster_launch_config(const SplitPlan& plan, int64_t rows, cudaStream_t stream,
                                         cudaLaunchAttribute (&attributes)[2]) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(rows), static_cast<unsigned>(plan.splits));
  config.blockDim = dim3(kClusterThreads);
  config.dynamicSmemBytes = plan.shared_bytes;
  config.stream = stream;
  attributes[0] = cudaLaunchAttribute{};
  attributes[0].id = cudaLaunchAttributeClusterDimension;
  attributes[0].val.clusterDim.x = 1;
  attributes[0].val.clusterDim.y = static_cast<unsigned>(plan.splits);
  attributes[0].val.clusterDim.z = 1;
  attributes[1] = cudaLaunchAttribute{};
  attributes[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[1].val.programmaticStreamSerializationAllowed = kClusterPdl;
  config.attrs = attributes;
  config.numAttrs = 2;
  return config;
}

/// How many clusters of `splits` CTAs of the cluster kernel, each with
/// `shared_bytes` of dynamic shared memory, the device holds at once
/// (cudaOccupancyMaxActiveClusters: it knows how the GPCs pack clusters,
/// which a CTAs-per-SM count does not; on the H100 at 2 CTAs per SM, 30
/// clusters of 8, 32 of 7, 62 of 4). Cached per device, dtype, split count
/// and the CTAs per SM the shared memory allows, which with the fixed
/// thread count decide the answer; a failed query means "no limit known"
/// (the largest split count then wins, as before the query existed).
int resident_clusters(const Problem& q, const DeviceFacts& device, const SplitPlan& plan) {
  constexpr int kUnknown = 1 << 30;
  constexpr int kCachedDevices = 16;
  constexpr int kSharedClasses = 5;  // CTAs per SM by shared memory: 1, 2, 3, 4, more
  constexpr int kKernels = 3 * 2;    // cluster kernel instantiations: dtype x distributed or not
  static std::atomic<int> cache[kCachedDevices][kKernels][kMaxClusterCtas + 1][kSharedClasses] = {};
  const int splits = plan.splits;
  const std::size_t shared_bytes = plan.shared_bytes;
  const int shared_class = static_cast<int>(std::clamp<int64_t>(
                               ctas_per_sm_by_shared(device, shared_bytes), 1, kSharedClasses)) -
                           1;
  const int kernel_id = static_cast<int>(q.dtype) % 3 * 2 + (plan.set_capacity > 0 ? 1 : 0);
  std::atomic<int>* cached = device.device >= 0 && device.device < kCachedDevices
                                 ? &cache[device.device][kernel_id][splits][shared_class]
                                 : nullptr;
  if (cached != nullptr) {
    const int known = cached->load(std::memory_order_relaxed);
    if (known != 0) return known;
  }
  const int resident = dispatch_dtype(q.dtype, [&](auto format) -> int {
    using Format = decltype(format);
    void (*kernel)(Problem, SplitPlan, uint64_t*, uint32_t*) = nullptr;
    if (cluster_kernel<Format>(plan, device, &kernel) != cudaSuccess) return kUnknown;
    cudaLaunchAttribute attributes[2];
    cudaLaunchConfig_t config = cluster_launch_config(plan, 1, nullptr, attributes);
    config.numAttrs = 1;  // the cluster shape only: the query has no stream
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess ||
        clusters <= 0) {
      (void)cudaGetLastError();  // the query's error is not the caller's
      return kUnknown;
    }
    return clusters;
  });
  if (cached != nullptr) cached->store(resident, std::memory_order_relaxed);
  return resident;
}

// The same kernel with a row's CTAs in one cluster: no workspace, one node.
// Plans in *plan where the family takes the problem (rejects_cluster).
const char* cluster_plan(const Problem& q, const DeviceFacts& device, SplitPlan* plan) {
  if (device.cc_major < 9) return "thread-block clusters need compute capability 9.0 or newer";
  if (q.k > kMaxK) return "k > 2048";
  if (q.rows > int64_t{0x7fffffff}) return "rows > 2^31 - 1";
  if (!make_plan(q, device, 0, Handoff::kCluster, plan)) {
    return "the row does not fit one cluster of 8 CTAs for this k (cols > 262144, or candidates "
           "or shared memory over budget)";
  }
  return nullptr;
}

const char* rejects_cluster(const Problem& q, const DeviceFacts& device, FamilyPlan* out) {
  SplitPlan plan{};
  const char* why = cluster_plan(q, device, &plan);
  if (why == nullptr) out->store(plan);
  return why;
}

int launch_cluster(const Problem& q, const DeviceFacts& device, const FamilyPlan& stored, void*,
                   cudaStream_t stream) {
  const SplitPlan plan = stored.load<SplitPlan>();
  return dispatch_dtype(q.dtype, [&](auto format) -> int {
    using Format = decltype(format);
    void (*kernel)(Problem, SplitPlan, uint64_t*, uint32_t*) = nullptr;
    const cudaError_t e = cluster_kernel<Format>(plan, device, &kernel);
    if (e != cudaSuccess) return e;
    cudaLaunchAttribute attributes[2];
    const cudaLaunchConfig_t config = cluster_launch_config(plan, q.rows, stream, attributes);
    return cudaLaunchKernelEx(&config, kernel, q, plan, static_cast<uint64_t*>(nullptr),
                              static_cast<uint32_t*>(nullptr));
  });
}

}  // namespace

int64_t row_per_cluster_waves(const Problem& q, const DeviceFacts& device) {
  SplitPlan plan{};
  if (cluster_plan(q, device, &plan) != nullptr) return 0;
  return ceil_div(q.rows, std::max<int64_t>(1, resident_clusters(q, device, plan)));
}

const AlgorithmFamily kSplitRowFamily = {Algorithm::kSplitRow, rejects_split, workspace_split,
                                         launch_split};
const AlgorithmFamily kRowPerCtaFamily = {Algorithm::kRowPerCta, rejects_row, no_workspace,
                                          launch_row};
const AlgorithmFamily kRowPerClusterFamily = {Algorithm::kRowPerCluster, rejects_cluster,
                                              no_workspace, launch_cluster};

}  // namespace fasttopk::detail
