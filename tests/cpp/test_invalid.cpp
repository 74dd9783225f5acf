// Every documented error: the StatusCode, a message that names the problem,
// and no output written. Also the C ABI, and the GPU entry points of a build
// without CUDA / of a CUDA build on a machine without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "fasttopk/fasttopk.h"
#include "fasttopk/fasttopk.hpp"
#include "test_util.hpp"

#ifndef FASTTOPK_TEST_WITH_CUDA
#define FASTTOPK_TEST_WITH_CUDA 0
#endif
#if FASTTOPK_TEST_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

extern "C" int fasttopk_test_c_abi_smoke(char* message, size_t message_len);

namespace fasttopk_test {
namespace {

constexpr std::size_t kBytesUntouched = 0xdeadbeefu;

/// Which entry points a case goes through.
enum Entry : unsigned {
  kTopkHost = 1u,
  kHostWorkspaceSize = 2u,
  kTopk = 4u,           ///< only checked where CUDA is compiled in
  kWorkspaceSize = 8u,  ///< only checked where CUDA is compiled in
};
constexpr unsigned kHostEntries = kTopkHost | kHostWorkspaceSize;
constexpr unsigned kAllEntries = kTopkHost | kHostWorkspaceSize | kTopk | kWorkspaceSize;

const char* entry_name(unsigned e) {
  switch (e) {
    case kTopkHost:
      return "topk_host";
    case kHostWorkspaceSize:
      return "host_workspace_size";
    case kTopk:
      return "topk";
    case kWorkspaceSize:
      return "workspace_size";
  }
  return "?";
}

/// A valid 4 x 10 problem (k = 3) on host memory with guarded outputs.
class Invalid : public ::testing::Test {
 protected:
  void SetUp() override {
    for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
      Matrix m(d, 4, 10);
      fill(m, Dist::kRandn, 1, true);
      inputs_.push_back(std::move(m));
    }
    values_ = GuardedBuffer(4 * 10, 8, kValueFill);
    indices_ = GuardedBuffer(4 * 10, 8, kIndexFill);
    k_per_row_.assign(4, 2);
    lengths_.assign(4, 10);
    workspace_.assign(1 << 16, 0);
  }

  TopKParams valid(DType d = DType::kFloat32) const {
    TopKParams p;
    p.input = inputs_[static_cast<size_t>(d)].data();
    p.dtype = d;
    p.rows = 4;
    p.cols = 10;
    p.k = 3;
    p.values = const_cast<void*>(values_.data());
    p.indices = const_cast<void*>(indices_.data());
    p.index_type = IndexType::kInt64;
    return p;
  }

  /// Calls each entry point of `entries` with `p` and checks the code, that
  /// the message names each of `needles`, and that nothing was written.
  void expect_error(const TopKParams& p, StatusCode code,
                    std::initializer_list<std::string> needles, unsigned entries = kAllEntries,
                    int num_threads = 0) {
    for (unsigned e : {kTopkHost, kHostWorkspaceSize, kTopk, kWorkspaceSize}) {
      if (!(entries & e)) continue;
      if ((e == kTopk || e == kWorkspaceSize) && !fasttopk::cuda_compiled()) continue;
      SCOPED_TRACE(entry_name(e));
      values_.refill();
      indices_.refill();
      std::size_t bytes = kBytesUntouched;
      Status s;
      switch (e) {
        case kTopkHost:
          s = fasttopk::topk_host(p, workspace_.data(), workspace_.size() * 8, num_threads);
          break;
        case kHostWorkspaceSize:
          s = fasttopk::host_workspace_size(p, num_threads, &bytes);
          break;
        case kTopk:
          s = fasttopk::topk(p, nullptr, 0, nullptr);
          break;
        case kWorkspaceSize:
          s = fasttopk::workspace_size(p, &bytes);
          break;
      }
      EXPECT_EQ(s.code(), code) << "got " << code_str(s.code()) << ": " << s.message();
      EXPECT_TRUE(message_names(s, needles));
      EXPECT_TRUE(values_.untouched());
      EXPECT_TRUE(indices_.untouched());
      EXPECT_EQ(bytes, kBytesUntouched) << "the bytes output was written on error";
    }
  }

  std::vector<Matrix> inputs_;
  GuardedBuffer values_, indices_;
  std::vector<int32_t> k_per_row_, lengths_;
  std::vector<uint64_t> workspace_;
};

TEST_F(Invalid, ValidBaselineSucceeds) {
  // The baseline the error cases start from really is valid (so each error
  // below is caused by the one change it makes).
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    TopKParams p = valid(d);
    p.k_per_row = k_per_row_.data();
    p.row_lengths = lengths_.data();
    Status s = fasttopk::topk_host(p, workspace_.data(), workspace_.size() * 8, 0);
    ASSERT_TRUE(s.ok()) << s.message();
    std::size_t bytes = 0;
    ASSERT_TRUE(fasttopk::host_workspace_size(p, 0, &bytes).ok());
  }
}

TEST_F(Invalid, KGreaterThanCols) {
  TopKParams p = valid();
  p.k = 11;
  expect_error(p, StatusCode::kInvalidArgument, {"k", "cols", "11"});
}

TEST_F(Invalid, NegativeRows) {
  TopKParams p = valid();
  p.rows = -1;
  expect_error(p, StatusCode::kInvalidArgument, {"rows", "-1"});
}

TEST_F(Invalid, NegativeCols) {
  TopKParams p = valid();
  p.cols = -2;
  p.k = 0;
  expect_error(p, StatusCode::kInvalidArgument, {"cols", "-2"});
}

TEST_F(Invalid, NegativeK) {
  TopKParams p = valid();
  p.k = -3;
  expect_error(p, StatusCode::kInvalidArgument, {"k", "-3"});
}

TEST_F(Invalid, RowStrideSmallerThanCols) {
  TopKParams p = valid();
  p.row_stride = 9;
  expect_error(p, StatusCode::kInvalidArgument, {"row_stride"});
  p.row_stride = -1;
  expect_error(p, StatusCode::kInvalidArgument, {"row_stride"});
}

TEST_F(Invalid, NullInput) {
  TopKParams p = valid();
  p.input = nullptr;
  expect_error(p, StatusCode::kInvalidArgument, {"input", "null"});
}

TEST_F(Invalid, BothOutputsNull) {
  TopKParams p = valid();
  p.values = nullptr;
  p.indices = nullptr;
  expect_error(p, StatusCode::kInvalidArgument, {"values", "indices"});
}

TEST_F(Invalid, UnalignedInput) {
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    SCOPED_TRACE(dtype_name(d));
    TopKParams p = valid(d);
    p.input = static_cast<const uint8_t*>(p.input) + (d == DType::kFloat32 ? 2 : 1);
    expect_error(p, StatusCode::kInvalidArgument, {"input", "align"});
  }
}

TEST_F(Invalid, UnalignedValues) {
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    SCOPED_TRACE(dtype_name(d));
    TopKParams p = valid(d);
    p.values = static_cast<uint8_t*>(p.values) + (d == DType::kFloat32 ? 2 : 1);
    expect_error(p, StatusCode::kInvalidArgument, {"values", "align"});
    p.indices = nullptr;  // values is the only output
    expect_error(p, StatusCode::kInvalidArgument, {"values", "align"});
  }
}

TEST_F(Invalid, UnalignedIndices) {
  for (IndexType it : {IndexType::kInt32, IndexType::kInt64}) {
    SCOPED_TRACE(index_name(it));
    TopKParams p = valid();
    p.index_type = it;
    p.indices = static_cast<uint8_t*>(p.indices) + (it == IndexType::kInt64 ? 4 : 2);
    expect_error(p, StatusCode::kInvalidArgument, {"indices", "align"});
    p.values = nullptr;
    expect_error(p, StatusCode::kInvalidArgument, {"indices", "align"});
  }
}

TEST_F(Invalid, UnalignedPerRowArrays) {
  std::vector<int32_t> buf(8, 1);
  TopKParams p = valid();
  p.k_per_row = reinterpret_cast<const int32_t*>(reinterpret_cast<const uint8_t*>(buf.data()) + 2);
  expect_error(p, StatusCode::kInvalidArgument, {"k_per_row", "align"});
  p = valid();
  p.row_lengths =
      reinterpret_cast<const int32_t*>(reinterpret_cast<const uint8_t*>(buf.data()) + 2);
  expect_error(p, StatusCode::kInvalidArgument, {"row_lengths", "align"});
}

TEST_F(Invalid, BadDType) {
  for (int v : {3, -1, 1000}) {
    SCOPED_TRACE(v);
    TopKParams p = valid();
    p.dtype = static_cast<DType>(v);
    expect_error(p, StatusCode::kInvalidArgument, {"dtype", std::to_string(v)});
  }
}

TEST_F(Invalid, BadIndexType) {
  for (int v : {2, -1}) {
    SCOPED_TRACE(v);
    TopKParams p = valid();
    p.index_type = static_cast<IndexType>(v);
    expect_error(p, StatusCode::kInvalidArgument, {"index_type", std::to_string(v)});
  }
}

TEST_F(Invalid, BadAlgorithm) {
  for (int v : {-1, 99, 100000}) {
    SCOPED_TRACE(v);
    TopKParams p = valid();
    p.algorithm = static_cast<Algorithm>(v);
    expect_error(p, StatusCode::kInvalidArgument, {"algorithm", std::to_string(v)});
  }
}

TEST_F(Invalid, HostWorkspaceTooSmall) {
  for (int threads : {1, 0}) {
    SCOPED_TRACE(threads);
    TopKParams p = valid();
    std::size_t needed = 0;
    ASSERT_TRUE(fasttopk::host_workspace_size(p, threads, &needed).ok());
    if (needed == 0) {
      std::cout << "[   NOTE   ] host workspace is 0 bytes; nothing can be too small\n";
      continue;
    }
    values_.refill();
    indices_.refill();
    Status s = fasttopk::topk_host(p, workspace_.data(), needed - 1, threads);
    EXPECT_EQ(s.code(), StatusCode::kWorkspaceTooSmall) << s.message();
    EXPECT_TRUE(message_names(s, {"workspace"}));
    EXPECT_TRUE(values_.untouched());
    EXPECT_TRUE(indices_.untouched());
    s = fasttopk::topk_host(p, nullptr, 0, threads);
    EXPECT_EQ(s.code(), StatusCode::kWorkspaceTooSmall) << s.message();
    EXPECT_TRUE(message_names(s, {"workspace"}));
    EXPECT_TRUE(values_.untouched());
    EXPECT_TRUE(indices_.untouched());
  }
}

TEST_F(Invalid, HostWorkspaceNullOrMisaligned) {
  TopKParams p = valid();
  std::size_t needed = 0;
  ASSERT_TRUE(fasttopk::host_workspace_size(p, 1, &needed).ok());
  if (needed == 0) GTEST_SKIP() << "host workspace is 0 bytes for this problem";
  Status s = fasttopk::topk_host(p, nullptr, needed, 1);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
  EXPECT_TRUE(message_names(s, {"workspace"}));
  s = fasttopk::topk_host(p, reinterpret_cast<uint8_t*>(workspace_.data()) + 4, needed, 1);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
  EXPECT_TRUE(message_names(s, {"workspace", "align"}));
  EXPECT_TRUE(values_.untouched());
  EXPECT_TRUE(indices_.untouched());
}

TEST_F(Invalid, NegativeNumThreads) {
  expect_error(valid(), StatusCode::kInvalidArgument, {"num_threads", "-1"}, kHostEntries, -1);
  expect_error(valid(), StatusCode::kInvalidArgument, {"num_threads", "-7"}, kHostEntries, -7);
}

TEST_F(Invalid, PerRowKOutOfRangeOnHost) {
  for (int32_t bad :
       {4, -1, std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::min()}) {
    SCOPED_TRACE(bad);
    std::vector<int32_t> kpr = {3, 0, bad, 1};
    TopKParams p = valid();
    p.k_per_row = kpr.data();
    expect_error(p, StatusCode::kInvalidArgument, {"k_per_row", "2", std::to_string(bad)},
                 kTopkHost);
  }
}

TEST_F(Invalid, RowLengthsOutOfRangeOnHost) {
  for (int32_t bad :
       {11, -1, std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::min()}) {
    SCOPED_TRACE(bad);
    std::vector<int32_t> lengths = {10, 0, 5, bad};
    TopKParams p = valid();
    p.row_lengths = lengths.data();
    expect_error(p, StatusCode::kInvalidArgument, {"row_lengths", "3", std::to_string(bad)},
                 kTopkHost);
  }
}

TEST_F(Invalid, NullBytesPointer) {
  Status s = fasttopk::host_workspace_size(valid(), 0, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
  EXPECT_TRUE(message_names(s, {"bytes"}));
  s = fasttopk::workspace_size(valid(), nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
  EXPECT_TRUE(message_names(s, {"bytes"}));
  s = fasttopk::chosen_algorithm(valid(), nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
  EXPECT_TRUE(message_names(s, {"algorithm"}));
}

TEST_F(Invalid, GpuAlgorithmForcedOnHost) {
  ASSERT_GE(fasttopk::algorithm_count(), 1);
  for (Algorithm a : gpu_algorithms()) {
    SCOPED_TRACE(fasttopk::algorithm_name(a));
    TopKParams p = valid();
    p.algorithm = a;
    expect_error(p, StatusCode::kInvalidArgument, {"algorithm", fasttopk::algorithm_name(a)},
                 kTopkHost);
  }
}

TEST(Algorithms, EnumerationAndNames) {
  const std::vector<Algorithm> algos = gpu_algorithms();
  ASSERT_GE(algos.size(), 1u);
  std::set<int> ids;
  std::set<std::string> names = {"auto"};
  EXPECT_STREQ(fasttopk::algorithm_name(Algorithm::kAuto), "auto");
  for (Algorithm a : algos) {
    EXPECT_NE(a, Algorithm::kAuto) << "algorithm_at() must not list kAuto";
    EXPECT_TRUE(ids.insert(static_cast<int>(a)).second) << "listed twice: " << static_cast<int>(a);
    const std::string name = fasttopk::algorithm_name(a);
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
    Algorithm parsed = Algorithm::kAuto;
    Status s = fasttopk::parse_algorithm(name.c_str(), &parsed);
    EXPECT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(parsed, a) << name;
  }
  EXPECT_EQ(algos.front(), Algorithm::kBlockPerRow);
  Algorithm parsed = Algorithm::kBlockPerRow;
  ASSERT_TRUE(fasttopk::parse_algorithm("auto", &parsed).ok());
  EXPECT_EQ(parsed, Algorithm::kAuto);
}

TEST(Algorithms, ParseUnknownName) {
  Algorithm a = Algorithm::kBlockPerRow;
  Status s = fasttopk::parse_algorithm("no_such_algorithm", &a);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(message_names(s, {"no_such_algorithm"}));
  EXPECT_EQ(a, Algorithm::kBlockPerRow) << "output written on error";
  s = fasttopk::parse_algorithm("", &a);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = fasttopk::parse_algorithm("AUTO", &a);  // names are exact
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = fasttopk::parse_algorithm(nullptr, &a);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = fasttopk::parse_algorithm("auto", nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a, Algorithm::kBlockPerRow);
}

// ---------------------------------------------------------------------------
// GPU entry points without CUDA / without a GPU.
// ---------------------------------------------------------------------------

TEST_F(Invalid, WithoutCudaGpuEntryPointsAreUnsupported) {
  if (fasttopk::cuda_compiled()) {
    GTEST_SKIP() << "this build has CUDA; the no-CUDA path is tested by the CPU-only build";
  }
  const TopKParams p = valid();
  std::size_t bytes = kBytesUntouched;
  Status s = fasttopk::workspace_size(p, &bytes);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.message();
  EXPECT_TRUE(message_names(s, {"CUDA"}));
  EXPECT_EQ(bytes, kBytesUntouched);
  s = fasttopk::topk(p, workspace_.data(), workspace_.size() * 8, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.message();
  EXPECT_TRUE(message_names(s, {"CUDA"}));
  Algorithm a = Algorithm::kBlockPerRow;
  s = fasttopk::chosen_algorithm(p, &a);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.message();
  EXPECT_TRUE(values_.untouched());
  EXPECT_TRUE(indices_.untouched());
  // Through the C ABI.
  fasttopk_params c;
  fasttopk_params_init(&c);
  c.input = p.input;
  c.rows = p.rows;
  c.cols = p.cols;
  c.k = p.k;
  c.values = p.values;
  c.indices = p.indices;
  char msg[256];
  EXPECT_EQ(fasttopk_workspace_size(&c, &bytes, msg, sizeof(msg)), FASTTOPK_UNSUPPORTED);
  EXPECT_NE(std::string(msg).find("CUDA"), std::string::npos) << msg;
  EXPECT_EQ(fasttopk_topk(&c, nullptr, 0, nullptr, msg, sizeof(msg)), FASTTOPK_UNSUPPORTED);
  EXPECT_NE(std::string(msg).find("CUDA"), std::string::npos) << msg;
  EXPECT_TRUE(values_.untouched());
  EXPECT_TRUE(indices_.untouched());
}

TEST_F(Invalid, CudaBuildWithoutGpuFailsCleanly) {
  if (!fasttopk::cuda_compiled()) {
    GTEST_SKIP() << "built without CUDA (WithoutCudaGpuEntryPointsAreUnsupported covers it)";
  }
#if FASTTOPK_TEST_WITH_CUDA
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaSuccess && count > 0) {
    GTEST_SKIP() << "a GPU is present (" << count
                 << " devices): the no-GPU path is only exercised on machines without one";
  }
  std::cout << "[   INFO   ] no GPU found (cudaGetDeviceCount: " << cudaGetErrorString(e)
            << ", count " << count << "); checking that the GPU entry points fail cleanly\n";
  const TopKParams p = valid();
  std::size_t bytes = kBytesUntouched;
  auto expect_clean_error = [&](const Status& s, const char* what) {
    EXPECT_FALSE(s.ok()) << what << " succeeded without a GPU";
    EXPECT_TRUE(s.code() == StatusCode::kCudaError || s.code() == StatusCode::kUnsupported)
        << what << ": " << code_str(s.code()) << ": " << s.message();
    EXPECT_FALSE(s.message().empty()) << what;
    std::cout << "[   INFO   ] " << what << " -> " << code_str(s.code()) << ": " << s.message()
              << "\n";
  };
  expect_clean_error(fasttopk::workspace_size(p, &bytes), "workspace_size");
  EXPECT_EQ(bytes, kBytesUntouched);
  expect_clean_error(fasttopk::topk(p, nullptr, 0, nullptr), "topk");
  expect_clean_error(fasttopk::topk(p, workspace_.data(), workspace_.size() * 8, nullptr),
                     "topk (with workspace)");
  Algorithm a = Algorithm::kBlockPerRow;
  expect_clean_error(fasttopk::chosen_algorithm(p, &a), "chosen_algorithm");
  for (Algorithm forced : gpu_algorithms()) {
    TopKParams q = p;
    q.algorithm = forced;
    expect_clean_error(fasttopk::topk(q, nullptr, 0, nullptr), fasttopk::algorithm_name(forced));
  }
  EXPECT_TRUE(values_.untouched());
  EXPECT_TRUE(indices_.untouched());
  // The CPU path keeps working.
  Status s = fasttopk::topk_host(p, workspace_.data(), workspace_.size() * 8, 0);
  EXPECT_TRUE(s.ok()) << s.message();
#else
  GTEST_SKIP() << "the test binary was built without the CUDA runtime";
#endif
}

// ---------------------------------------------------------------------------
// C ABI.
// ---------------------------------------------------------------------------

static_assert(FASTTOPK_FLOAT32 == static_cast<int>(DType::kFloat32), "");
static_assert(FASTTOPK_FLOAT16 == static_cast<int>(DType::kFloat16), "");
static_assert(FASTTOPK_BFLOAT16 == static_cast<int>(DType::kBFloat16), "");
static_assert(FASTTOPK_INT32 == static_cast<int>(IndexType::kInt32), "");
static_assert(FASTTOPK_INT64 == static_cast<int>(IndexType::kInt64), "");
static_assert(FASTTOPK_ALGO_AUTO == static_cast<int>(Algorithm::kAuto), "");
static_assert(FASTTOPK_ALGO_BLOCK_PER_ROW == static_cast<int>(Algorithm::kBlockPerRow), "");
static_assert(FASTTOPK_SUCCESS == static_cast<int>(StatusCode::kSuccess), "");
static_assert(FASTTOPK_INVALID_ARGUMENT == static_cast<int>(StatusCode::kInvalidArgument), "");
static_assert(FASTTOPK_WORKSPACE_TOO_SMALL == static_cast<int>(StatusCode::kWorkspaceTooSmall), "");
static_assert(FASTTOPK_UNSUPPORTED == static_cast<int>(StatusCode::kUnsupported), "");
static_assert(FASTTOPK_CUDA_ERROR == static_cast<int>(StatusCode::kCudaError), "");

TEST(CAbi, UsableFromC) {
  char msg[256] = "x";
  EXPECT_EQ(fasttopk_test_c_abi_smoke(msg, sizeof(msg)), 0) << "message: " << msg;
}

TEST(CAbi, ParamsInitMatchesCppDefaults) {
  fasttopk_params c;
  std::memset(&c, 0x5a, sizeof(c));
  fasttopk_params_init(&c);
  const TopKParams cpp;
  EXPECT_EQ(c.input, cpp.input);
  EXPECT_EQ(c.dtype, static_cast<int32_t>(cpp.dtype));
  EXPECT_EQ(c.rows, cpp.rows);
  EXPECT_EQ(c.cols, cpp.cols);
  EXPECT_EQ(c.row_stride, cpp.row_stride);
  EXPECT_EQ(c.k, cpp.k);
  EXPECT_EQ(c.k_per_row, cpp.k_per_row);
  EXPECT_EQ(c.row_lengths, cpp.row_lengths);
  EXPECT_EQ(c.largest != 0, cpp.largest);
  EXPECT_EQ(c.sorted != 0, cpp.sorted);
  EXPECT_EQ(c.values, cpp.values);
  EXPECT_EQ(c.indices, cpp.indices);
  EXPECT_EQ(c.index_type, static_cast<int32_t>(cpp.index_type));
  EXPECT_EQ(c.algorithm, static_cast<int32_t>(cpp.algorithm));
  fasttopk_params_init(nullptr);  // must not crash
}

fasttopk_params c_params(const Matrix& m, int64_t k, void* values, void* indices) {
  fasttopk_params c;
  fasttopk_params_init(&c);
  c.input = m.data();
  c.dtype = static_cast<int32_t>(m.dtype());
  c.rows = m.rows();
  c.cols = m.cols();
  c.row_stride = m.stride();
  c.k = k;
  c.values = values;
  c.indices = indices;
  return c;
}

TEST(CAbi, TopkHostMatchesOracle) {
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    SCOPED_TRACE(dtype_name(d));
    Matrix m(d, 5, 333, 340, 1);
    fill(m, Dist::kSpecial, 3, false);
    const std::vector<int32_t> kpr = make_k_per_row(5, 17, 4);
    const std::vector<int32_t> lengths = make_lengths(5, 333, 5);
    GuardedBuffer v(5 * 17, static_cast<size_t>(elem_bytes(d)), kValueFill);
    GuardedBuffer i(5 * 17, 4, kIndexFill);
    fasttopk_params c = c_params(m, 17, v.data(), i.data());
    c.largest = 0;
    c.sorted = 0;
    c.index_type = FASTTOPK_INT32;
    c.k_per_row = kpr.data();
    c.row_lengths = lengths.data();
    size_t bytes = 0;
    char msg[256] = "not cleared";
    ASSERT_EQ(fasttopk_host_workspace_size(&c, 3, &bytes, msg, sizeof(msg)), FASTTOPK_SUCCESS)
        << msg;
    EXPECT_STREQ(msg, "");
    std::vector<uint64_t> ws(bytes / 8 + 1);
    std::strcpy(msg, "not cleared");
    ASSERT_EQ(fasttopk_topk_host(&c, ws.data(), bytes, 3, msg, sizeof(msg)), FASTTOPK_SUCCESS)
        << msg;
    EXPECT_STREQ(msg, "") << "success must clear the message";
    ASSERT_TRUE(v.guards_intact());
    ASSERT_TRUE(i.guards_intact());
    EXPECT_TRUE(check_output(oracle_topk(m, 17, kpr.data(), lengths.data(), false), false, v.data(),
                             i.data(), IndexType::kInt32));
    // Without a message buffer.
    EXPECT_EQ(fasttopk_topk_host(&c, ws.data(), bytes, 3, nullptr, 0), FASTTOPK_SUCCESS);
  }
}

TEST(CAbi, ErrorsAndMessageTruncation) {
  Matrix m(DType::kFloat32, 2, 10);
  fill(m, Dist::kRandn, 6, true);
  GuardedBuffer v(20, 4, kValueFill), i(20, 8, kIndexFill);
  fasttopk_params c = c_params(m, 11, v.data(), i.data());  // k > cols
  std::vector<uint64_t> ws(1024);

  char full[512];
  ASSERT_EQ(fasttopk_topk_host(&c, ws.data(), ws.size() * 8, 0, full, sizeof(full)),
            FASTTOPK_INVALID_ARGUMENT);
  const std::string message = full;
  EXPECT_NE(message.find("cols"), std::string::npos) << message;
  ASSERT_GT(message.size(), 8u);
  EXPECT_TRUE(v.untouched());
  EXPECT_TRUE(i.untouched());

  // Truncated to message_len - 1 characters plus the NUL; nothing past it.
  for (size_t len : {size_t{1}, size_t{2}, size_t{8}, message.size(), message.size() + 1}) {
    SCOPED_TRACE(len);
    char buf[600];
    std::memset(buf, '#', sizeof(buf));
    ASSERT_EQ(fasttopk_topk_host(&c, ws.data(), ws.size() * 8, 0, buf, len),
              FASTTOPK_INVALID_ARGUMENT);
    const size_t n = std::min(len - 1, message.size());
    EXPECT_EQ(std::string(buf, n), message.substr(0, n));
    EXPECT_EQ(buf[n], '\0');
    for (size_t j = len; j < sizeof(buf); ++j) {
      ASSERT_EQ(buf[j], '#') << "wrote past message_len at " << j;
    }
  }
  // message_len == 0: nothing written at all.
  char buf[16];
  std::memset(buf, '#', sizeof(buf));
  EXPECT_EQ(fasttopk_topk_host(&c, ws.data(), ws.size() * 8, 0, buf, 0), FASTTOPK_INVALID_ARGUMENT);
  for (char ch : buf) EXPECT_EQ(ch, '#');
  // Null message pointer.
  EXPECT_EQ(fasttopk_topk_host(&c, ws.data(), ws.size() * 8, 0, nullptr, 100),
            FASTTOPK_INVALID_ARGUMENT);

  // Other errors map to their codes.
  size_t bytes = kBytesUntouched;
  c.k = 3;
  EXPECT_EQ(fasttopk_host_workspace_size(&c, -1, &bytes, full, sizeof(full)),
            FASTTOPK_INVALID_ARGUMENT);
  EXPECT_NE(std::string(full).find("num_threads"), std::string::npos) << full;
  EXPECT_EQ(bytes, kBytesUntouched);
  ASSERT_EQ(fasttopk_host_workspace_size(&c, 1, &bytes, full, sizeof(full)), FASTTOPK_SUCCESS);
  if (bytes > 0) {
    EXPECT_EQ(fasttopk_topk_host(&c, ws.data(), bytes - 1, 1, full, sizeof(full)),
              FASTTOPK_WORKSPACE_TOO_SMALL);
    EXPECT_NE(std::string(full).find("workspace"), std::string::npos) << full;
  }
  c.dtype = 7;
  EXPECT_EQ(fasttopk_topk_host(&c, ws.data(), ws.size() * 8, 1, full, sizeof(full)),
            FASTTOPK_INVALID_ARGUMENT);
  EXPECT_NE(std::string(full).find("dtype"), std::string::npos) << full;
  c.dtype = FASTTOPK_FLOAT32;
  c.algorithm = FASTTOPK_ALGO_BLOCK_PER_ROW;
  EXPECT_EQ(fasttopk_topk_host(&c, ws.data(), ws.size() * 8, 1, full, sizeof(full)),
            FASTTOPK_INVALID_ARGUMENT);
  EXPECT_NE(std::string(full).find("algorithm"), std::string::npos) << full;
  EXPECT_TRUE(v.untouched());
  EXPECT_TRUE(i.untouched());
}

TEST(CAbi, NullParams) {
  char msg[128];
  size_t bytes = kBytesUntouched;
  std::vector<uint64_t> ws(16);
  EXPECT_EQ(fasttopk_topk_host(nullptr, ws.data(), 128, 0, msg, sizeof(msg)),
            FASTTOPK_INVALID_ARGUMENT);
  EXPECT_NE(std::string(msg).find("params"), std::string::npos) << msg;
  std::strcpy(msg, "");
  EXPECT_EQ(fasttopk_host_workspace_size(nullptr, 0, &bytes, msg, sizeof(msg)),
            FASTTOPK_INVALID_ARGUMENT);
  EXPECT_NE(std::string(msg).find("params"), std::string::npos) << msg;
  std::strcpy(msg, "");
  EXPECT_EQ(fasttopk_workspace_size(nullptr, &bytes, msg, sizeof(msg)), FASTTOPK_INVALID_ARGUMENT);
  EXPECT_NE(std::string(msg).find("params"), std::string::npos) << msg;
  std::strcpy(msg, "");
  EXPECT_EQ(fasttopk_topk(nullptr, nullptr, 0, nullptr, msg, sizeof(msg)),
            FASTTOPK_INVALID_ARGUMENT);
  EXPECT_NE(std::string(msg).find("params"), std::string::npos) << msg;
  EXPECT_EQ(bytes, kBytesUntouched);
  // Without a message buffer too.
  EXPECT_EQ(fasttopk_topk_host(nullptr, nullptr, 0, 0, nullptr, 0), FASTTOPK_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace fasttopk_test
