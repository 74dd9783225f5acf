// The public entry points (C++ and C ABI): validate, dispatch, run.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "cpu/cpu_topk.hpp"
#include "fasttopk/fasttopk.h"
#include "fasttopk/fasttopk.hpp"
#include "problem.hpp"

#if FASTTOPK_WITH_CUDA
#include <cuda_runtime_api.h>

#include "cuda/algorithms.hpp"
#endif

#ifndef FASTTOPK_VERSION_STRING
#define FASTTOPK_VERSION_STRING "0.0.0"
#endif

namespace fasttopk {
namespace detail {
namespace {

struct AlgorithmEntry {
  Algorithm algorithm;
  const char* name;
};
// kAuto first, then every GPU family in enum order.
constexpr AlgorithmEntry kAlgorithmNames[] = {
    {Algorithm::kAuto, "auto"},
    {Algorithm::kBlockPerRow, "block_per_row"},
    {Algorithm::kSplitRow, "split_row"},
    {Algorithm::kRowPerCta, "row_per_cta"},
    {Algorithm::kRowPerWarp, "row_per_warp"},
    {Algorithm::kRowPerCluster, "row_per_cluster"},
};

#if FASTTOPK_WITH_CUDA
/// Validation, device facts and the dispatcher's choice for one GPU call.
struct GpuPlan {
  Problem problem;
  const DeviceFacts* device = nullptr;
  const AlgorithmFamily* family = nullptr;
  FamilyPlan family_plan;  // the family's plan, made once by choose_family
  std::size_t workspace_bytes = 0;
};

Status plan_gpu(const TopKParams& params, GpuPlan* plan) {
  Status s = validate(params, MemorySpace::kDevice, &plan->problem);
  if (!s.ok() || plan->problem.empty()) return s;
  s = current_device_facts(&plan->device);
  if (!s.ok()) return s;
  s = choose_family(plan->problem, *plan->device, &plan->family, &plan->family_plan);
  if (!s.ok()) return s;
  plan->workspace_bytes =
      plan->family->workspace_bytes(plan->problem, *plan->device, plan->family_plan);
  return Status();
}
#endif

#if !FASTTOPK_WITH_CUDA
Status no_cuda() {
  return Status(StatusCode::kUnsupported,
                "fasttopk was built without CUDA (FASTTOPK_ENABLE_CUDA=OFF); use topk_host()");
}
#endif

}  // namespace

bool algorithm_known(Algorithm algorithm) {
  for (const auto& entry : kAlgorithmNames) {
    if (entry.algorithm == algorithm) return true;
  }
  return false;
}

}  // namespace detail

const char* algorithm_name(Algorithm algorithm) {
  for (const auto& entry : detail::kAlgorithmNames) {
    if (entry.algorithm == algorithm) return entry.name;
  }
  return "unknown";
}

int algorithm_count() {
  return static_cast<int>(sizeof(detail::kAlgorithmNames) / sizeof(detail::kAlgorithmNames[0])) - 1;
}

Algorithm algorithm_at(int i) {
  return i >= 0 && i < algorithm_count() ? detail::kAlgorithmNames[i + 1].algorithm
                                         : Algorithm::kAuto;
}

Status parse_algorithm(const char* name, Algorithm* algorithm) {
  if (name == nullptr || algorithm == nullptr) {
    return Status(StatusCode::kInvalidArgument, "name and algorithm must not be null");
  }
  std::string known;
  for (const auto& entry : detail::kAlgorithmNames) {
    if (std::strcmp(entry.name, name) == 0) {
      *algorithm = entry.algorithm;
      return Status();
    }
    known += known.empty() ? "" : ", ";
    known += entry.name;
  }
  return Status(StatusCode::kInvalidArgument,
                std::string("unknown algorithm '") + name + "' (known: " + known + ")");
}

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kSuccess:
      return "success";
    case StatusCode::kInvalidArgument:
      return "invalid argument";
    case StatusCode::kWorkspaceTooSmall:
      return "workspace too small";
    case StatusCode::kUnsupported:
      return "unsupported";
    case StatusCode::kCudaError:
      return "CUDA error";
  }
  return "unknown status";
}

bool cuda_compiled() { return FASTTOPK_WITH_CUDA != 0; }

const char* version() { return FASTTOPK_VERSION_STRING; }

Status workspace_size(const TopKParams& params, std::size_t* bytes) {
  if (bytes == nullptr) return Status(StatusCode::kInvalidArgument, "bytes is null");
#if FASTTOPK_WITH_CUDA
  detail::GpuPlan plan;
  Status s = detail::plan_gpu(params, &plan);
  if (s.ok()) *bytes = plan.workspace_bytes;
  return s;
#else
  (void)params;
  return detail::no_cuda();
#endif
}

Status chosen_algorithm(const TopKParams& params, Algorithm* algorithm) {
  if (algorithm == nullptr) return Status(StatusCode::kInvalidArgument, "algorithm is null");
#if FASTTOPK_WITH_CUDA
  detail::GpuPlan plan;
  Status s = detail::plan_gpu(params, &plan);
  if (s.ok()) *algorithm = plan.family ? plan.family->id : params.algorithm;
  return s;
#else
  (void)params;
  return detail::no_cuda();
#endif
}

Status topk(const TopKParams& params, void* workspace, std::size_t workspace_bytes,
            cudaStream_t stream) {
#if FASTTOPK_WITH_CUDA
  detail::GpuPlan plan;
  Status s = detail::plan_gpu(params, &plan);
  if (!s.ok() || plan.problem.empty()) return s;
  if (workspace_bytes < plan.workspace_bytes) {
    return Status(StatusCode::kWorkspaceTooSmall,
                  "workspace has " + std::to_string(workspace_bytes) + " bytes, this call needs " +
                      std::to_string(plan.workspace_bytes) + " (see workspace_size())");
  }
  if (plan.workspace_bytes > 0) {
    if (workspace == nullptr) {
      return Status(
          StatusCode::kInvalidArgument,
          "workspace is null but " + std::to_string(plan.workspace_bytes) + " bytes are needed");
    }
    if (reinterpret_cast<std::uintptr_t>(workspace) % detail::kWorkspaceAlignment != 0) {
      return Status(StatusCode::kInvalidArgument,
                    "workspace must be aligned to 256 bytes (cudaMalloc's alignment)");
    }
  }
  const int error =
      plan.family->launch(plan.problem, *plan.device, plan.family_plan, workspace, stream);
  if (error != 0) {
    const auto e = static_cast<cudaError_t>(error);
    return Status(StatusCode::kCudaError,
                  std::string("launching '") + algorithm_name(plan.family->id) +
                      "' failed: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
  }
  return Status();
#else
  (void)params;
  (void)workspace;
  (void)workspace_bytes;
  (void)stream;
  return detail::no_cuda();
#endif
}

Status host_workspace_size(const TopKParams& params, int num_threads, std::size_t* bytes) {
  if (bytes == nullptr) return Status(StatusCode::kInvalidArgument, "bytes is null");
  if (num_threads < 0) {
    return Status(StatusCode::kInvalidArgument,
                  "num_threads must be >= 0, got " + std::to_string(num_threads));
  }
  detail::Problem problem;
  Status s = detail::validate(params, detail::MemorySpace::kHost, &problem);
  if (s.ok()) *bytes = detail::host_workspace_bytes(problem, num_threads);
  return s;
}

Status topk_host(const TopKParams& params, void* workspace, std::size_t workspace_bytes,
                 int num_threads) {
  if (num_threads < 0) {
    return Status(StatusCode::kInvalidArgument,
                  "num_threads must be >= 0, got " + std::to_string(num_threads));
  }
  if (params.algorithm != Algorithm::kAuto && detail::algorithm_known(params.algorithm)) {
    // GPU algorithms cannot be forced on the host; say so rather than ignore it.
    return Status(StatusCode::kInvalidArgument,
                  std::string("algorithm '") + algorithm_name(params.algorithm) +
                      "' is a GPU algorithm; topk_host() takes only kAuto");
  }
  detail::Problem problem;
  Status s = detail::validate(params, detail::MemorySpace::kHost, &problem);
  if (!s.ok() || problem.empty()) return s;
  s = detail::validate_per_row_host(problem);
  if (!s.ok()) return s;
  const std::size_t needed = detail::host_workspace_bytes(problem, num_threads);
  if (workspace_bytes < needed) {
    return Status(StatusCode::kWorkspaceTooSmall,
                  "host workspace has " + std::to_string(workspace_bytes) +
                      " bytes, this call needs " + std::to_string(needed) +
                      " (see host_workspace_size())");
  }
  if (needed > 0 && workspace == nullptr) {
    return Status(StatusCode::kInvalidArgument, "workspace is null");
  }
  if (reinterpret_cast<std::uintptr_t>(workspace) % alignof(uint64_t) != 0) {
    return Status(StatusCode::kInvalidArgument, "host workspace must be aligned to 8 bytes");
  }
  detail::run_host(problem, workspace, num_threads);
  return Status();
}

}  // namespace fasttopk

// ----------------------------------------------------------------------------
// C ABI
// ----------------------------------------------------------------------------
namespace {

fasttopk::TopKParams from_c(const fasttopk_params* p) {
  fasttopk::TopKParams q;
  q.input = p->input;
  q.dtype = static_cast<fasttopk::DType>(p->dtype);
  q.rows = p->rows;
  q.cols = p->cols;
  q.row_stride = p->row_stride;
  q.k = p->k;
  q.k_per_row = p->k_per_row;
  q.row_lengths = p->row_lengths;
  q.largest = p->largest != 0;
  q.sorted = p->sorted != 0;
  q.values = p->values;
  q.indices = p->indices;
  q.index_type = static_cast<fasttopk::IndexType>(p->index_type);
  q.algorithm = static_cast<fasttopk::Algorithm>(p->algorithm);
  return q;
}

fasttopk_status_code to_c(const fasttopk::Status& s, char* message, size_t message_len) {
  if (message != nullptr && message_len > 0) {
    const size_t n = std::min(message_len - 1, s.message().size());
    std::memcpy(message, s.message().data(), n);
    message[n] = '\0';
  }
  return static_cast<fasttopk_status_code>(s.code());
}

fasttopk::Status null_params() {
  return fasttopk::Status(fasttopk::StatusCode::kInvalidArgument, "params is null");
}

}  // namespace

extern "C" {

void fasttopk_params_init(fasttopk_params* p) {
  if (p == nullptr) return;
  std::memset(p, 0, sizeof(*p));
  p->largest = 1;
  p->sorted = 1;
  p->index_type = FASTTOPK_INT64;
  p->algorithm = FASTTOPK_ALGO_AUTO;
}

fasttopk_status_code fasttopk_workspace_size(const fasttopk_params* p, size_t* bytes, char* message,
                                             size_t message_len) {
  if (p == nullptr) return to_c(null_params(), message, message_len);
  return to_c(fasttopk::workspace_size(from_c(p), bytes), message, message_len);
}

fasttopk_status_code fasttopk_topk(const fasttopk_params* p, void* workspace,
                                   size_t workspace_bytes, cudaStream_t stream, char* message,
                                   size_t message_len) {
  if (p == nullptr) return to_c(null_params(), message, message_len);
  return to_c(fasttopk::topk(from_c(p), workspace, workspace_bytes, stream), message, message_len);
}

fasttopk_status_code fasttopk_host_workspace_size(const fasttopk_params* p, int num_threads,
                                                  size_t* bytes, char* message,
                                                  size_t message_len) {
  if (p == nullptr) return to_c(null_params(), message, message_len);
  return to_c(fasttopk::host_workspace_size(from_c(p), num_threads, bytes), message, message_len);
}

fasttopk_status_code fasttopk_topk_host(const fasttopk_params* p, void* workspace,
                                        size_t workspace_bytes, int num_threads, char* message,
                                        size_t message_len) {
  if (p == nullptr) return to_c(null_params(), message, message_len);
  return to_c(fasttopk::topk_host(from_c(p), workspace, workspace_bytes, num_threads), message,
              message_len);
}

}  // extern "C"
