// fasttopk — exact, sorted, deterministic top-k selection for GPUs (and CPUs).
//
// This is the public C++ API. It is deliberately non-template and includes no
// CUDA or framework headers, so that any C++17 translation unit can use it.
// The full semantics are in docs/semantics.md; the comments here are the
// normative summary.
//
// ---------------------------------------------------------------------------
// One call selects the top k of each of `rows` rows.
//
//   * Input: `rows` rows of `cols` elements, row i starting at
//     input + i * row_stride (all in elements, row_stride >= cols). The start
//     pointer needs only the alignment of its element type; row_stride may be
//     any value >= cols. dtype is fp32, fp16 or bf16.
//   * k: 0 <= k <= cols. k == 0 is valid and writes nothing.
//   * Optional per-row k (`k_per_row`, int32[rows], each in [0, k]) and
//     optional per-row lengths (`row_lengths`, int32[rows], each in
//     [0, cols]): row i considers only its first row_lengths[i] elements and
//     selects k_i = min(k_per_row[i], row_lengths[i]) of them (k_per_row
//     defaults to k, row_lengths to cols). Output slots j >= k_i of row i hold
//     the sentinel: index -1 and value -inf (largest) or +inf (smallest).
//   * Order: the total order of torch.topk. Every NaN (any sign or payload)
//     ranks above +inf, +0.0 ranks above -0.0, and among equal keys the lower
//     index ranks first. For largest == false the order of non-NaN keys is
//     reversed and NaNs rank last. Selection at the k-th boundary therefore
//     keeps the lowest indices.
//   * Output: values (same dtype as the input; may be null) and indices
//     (int32 or int64; may be null, but not both), row-major [rows, k]:
//     row i, slot j at offset i * k + j. With sorted == true (default) the
//     slots are in rank order. With sorted == false the same set is written
//     in an unspecified but deterministic order.
//   * Determinism: the result is a pure function of the input and the
//     parameters: bitwise identical across runs, streams, algorithms and
//     GPUs. Values are copied bit-for-bit from the input (NaN payloads kept).
//
// GPU contract (topk / workspace_size):
//   * Two phases: workspace_size(params) gives the bytes of device scratch the
//     call needs for these params (it may be 0); topk(params, workspace,
//     bytes, stream) runs asynchronously on `stream`. No allocation, no host
//     synchronisation and no state kept between calls: safe to capture in a
//     CUDA graph and to run concurrently on several streams, each call with
//     its own workspace. The workspace must stay untouched until the call has
//     completed on the stream.
//   * input, outputs, k_per_row and row_lengths must be device-accessible
//     memory (cudaMalloc, managed, or mapped pinned memory).
//   * Per-row arrays live on the device, so their contents cannot be checked
//     without a host synchronisation: a row whose k_per_row or row_lengths
//     entry is out of range is written entirely as sentinels (documented, not
//     garbage). The CPU path checks them and returns kInvalidArgument.
//
// CPU contract (topk_host / host_workspace_size): the same semantics, for
// host memory, using up to `num_threads` threads (0 = all hardware threads).
//
// Errors: every function returns a Status. On error nothing is written to
// the outputs and the message says what was wrong.
// ---------------------------------------------------------------------------
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

// Forward declaration of the CUDA runtime's stream handle, identical to the
// runtime's own typedef, so that this header needs no CUDA include.
typedef struct CUstream_st* cudaStream_t;

namespace fasttopk {

/// Element type of the input rows and of the output values.
enum class DType : int32_t { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

/// Element type of the output indices.
enum class IndexType : int32_t { kInt32 = 0, kInt64 = 1 };

/// GPU algorithm. kAuto lets the dispatcher choose from the shape and the
/// device; the others force one family (for tests and benchmarks) and fail
/// with kUnsupported where that family cannot take the shape.
enum class Algorithm : int32_t {
  kAuto = 0,
  /// One CTA per row: radix select in several passes, then a segmented sort.
  /// Takes every shape; the fallback every fast path is tested against.
  kBlockPerRow = 1,
  /// Latency path: each row split across several CTAs in one launch; every
  /// CTA selects its chunk's top k on chip and the last CTA of the row to
  /// finish merges, sorts and writes. k <= 2048.
  kSplitRow = 2,
  /// One CTA per row with the whole row on chip (cols <= 16384, k <= 2048):
  /// one read of the input, selection and sort in shared memory.
  kRowPerCta = 3,
  /// One warp per row (k <= 128, any row length): the row streams through
  /// registers in 1024-element tiles with the next tile in flight, filtered
  /// into a small candidate pool; no block barriers. For many rows; with
  /// fewer rows than a fifth of the resident warps, each row is split across
  /// up to 64 warps whose sorted lists the row's last warp merges (then it
  /// needs a workspace).
  kRowPerWarp = 4,
  /// Latency path without a workspace: like kSplitRow, but the CTAs of a
  /// row (2-8, as many as keep every row's cluster resident at once;
  /// cols <= 262144 where shared memory allows, which at 262144 columns is k
  /// up to about 1200) form one thread-block cluster that works through
  /// distributed shared memory: for k <= 128 the CTAs hand their candidates
  /// to the row's first CTA, for larger k they select and rank together;
  /// one kernel node per call, no memset. Needs compute capability >= 9.0
  /// (Hopper); k <= 2048. Launched with programmatic dependent launch: it may
  /// be scheduled while the previous kernel on the stream is still running,
  /// and waits for that kernel to complete before it reads or writes memory.
  kRowPerCluster = 5,
};

enum class StatusCode : int32_t {
  kSuccess = 0,
  kInvalidArgument = 1,    ///< A parameter is out of its documented range.
  kWorkspaceTooSmall = 2,  ///< workspace_bytes < workspace_size(params).
  kUnsupported = 3,        ///< Valid, but not supported by this build or the
                           ///< forced algorithm (e.g. CUDA not compiled in).
  kCudaError = 4,          ///< The CUDA runtime reported an error.
};

/// The single error channel of the library: a code and a human-readable
/// message naming what was wrong. Default-constructed means success.
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kSuccess; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kSuccess;
  std::string message_;
};

/// Everything one top-k call needs. Sizes are in elements.
struct TopKParams {
  const void* input = nullptr;
  DType dtype = DType::kFloat32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;  ///< >= cols; 0 means cols (contiguous rows).
  int64_t k = 0;

  const int32_t* k_per_row = nullptr;    ///< Optional, [rows], each in [0, k].
  const int32_t* row_lengths = nullptr;  ///< Optional, [rows], each in [0, cols].

  bool largest = true;
  bool sorted = true;

  void* values = nullptr;   ///< [rows, k] of dtype, or null.
  void* indices = nullptr;  ///< [rows, k] of index_type, or null.
  IndexType index_type = IndexType::kInt64;

  Algorithm algorithm = Algorithm::kAuto;  ///< GPU only.
};

/// Bytes of device workspace that topk(params, ...) needs. Validates params.
Status workspace_size(const TopKParams& params, std::size_t* bytes);

/// Runs top-k on the GPU, asynchronously on `stream`.
Status topk(const TopKParams& params, void* workspace, std::size_t workspace_bytes,
            cudaStream_t stream);

/// The algorithm topk(params) would run (kAuto resolved), for reporting.
Status chosen_algorithm(const TopKParams& params, Algorithm* algorithm);

/// Bytes of host workspace that topk_host needs for `num_threads` threads.
Status host_workspace_size(const TopKParams& params, int num_threads, std::size_t* bytes);

/// Runs top-k on the CPU over host memory. num_threads == 0 uses all
/// hardware threads; rows are split across threads.
Status topk_host(const TopKParams& params, void* workspace, std::size_t workspace_bytes,
                 int num_threads = 0);

/// Short names for reports and the Python binding ("auto", "block_per_row"...).
const char* algorithm_name(Algorithm algorithm);

/// The GPU algorithms of the library, kAuto excluded, in enum order: for
/// tests and benchmarks that force each in turn. Index i in [0, count).
int algorithm_count();
Algorithm algorithm_at(int i);

/// Parses a name from algorithm_name() ("auto" included).
Status parse_algorithm(const char* name, Algorithm* algorithm);
const char* status_code_name(StatusCode code);

/// Whether this build contains the CUDA path.
bool cuda_compiled();

/// Library version, "MAJOR.MINOR.PATCH".
const char* version();

}  // namespace fasttopk
