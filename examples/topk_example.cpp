// fasttopk_example: the smallest complete use of the fasttopk C++ API.
//
// Selects the top 3 of each of two rows, on the GPU when there is one (the
// two-phase contract: workspace_size, then topk on a stream), otherwise with
// topk_host on the CPU. On the GPU it also runs topk_host on the same input
// and checks that both results are bitwise identical, as the contract says.
//
//   ./fasttopk_example        (exit status 0 on success)
#include <fasttopk/fasttopk.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#if FASTTOPK_EXAMPLE_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace {

constexpr int64_t kRows = 2;
constexpr int64_t kCols = 10;
constexpr int64_t kK = 3;

// Every fasttopk function returns a Status; stop with its message on error.
void check(const fasttopk::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s failed: %s: %s\n", what, fasttopk::status_code_name(s.code()),
                 s.message().c_str());
    std::exit(1);
  }
}

fasttopk::TopKParams make_params(const float* input, float* values, int64_t* indices) {
  fasttopk::TopKParams p;
  p.input = input;
  p.dtype = fasttopk::DType::kFloat32;
  p.rows = kRows;
  p.cols = kCols;  // row_stride 0: rows are contiguous
  p.k = kK;
  p.largest = true;  // the k largest, best first (sorted = true is the default)
  p.values = values;
  p.indices = indices;
  p.index_type = fasttopk::IndexType::kInt64;
  return p;
}

void run_host(const std::vector<float>& input, std::vector<float>* values,
              std::vector<int64_t>* indices) {
  fasttopk::TopKParams p = make_params(input.data(), values->data(), indices->data());
  std::size_t bytes = 0;
  check(fasttopk::host_workspace_size(p, /*num_threads=*/0, &bytes), "host_workspace_size");
  std::vector<uint64_t> workspace((bytes + 7) / 8);  // 8-byte aligned
  check(fasttopk::topk_host(p, workspace.data(), bytes, /*num_threads=*/0), "topk_host");
}

#if FASTTOPK_EXAMPLE_WITH_CUDA
#define CUDA_OK(call)                                                         \
  do {                                                                        \
    cudaError_t e_ = (call);                                                  \
    if (e_ != cudaSuccess) {                                                  \
      std::fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                           \
    }                                                                         \
  } while (0)

bool gpu_present() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return count > 0;
}

void run_gpu(const std::vector<float>& input, std::vector<float>* values,
             std::vector<int64_t>* indices) {
  float* d_input = nullptr;
  float* d_values = nullptr;
  int64_t* d_indices = nullptr;
  CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&d_input), input.size() * sizeof(float)));
  CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&d_values), values->size() * sizeof(float)));
  CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&d_indices), indices->size() * sizeof(int64_t)));
  CUDA_OK(cudaMemcpy(d_input, input.data(), input.size() * sizeof(float), cudaMemcpyHostToDevice));

  fasttopk::TopKParams p = make_params(d_input, d_values, d_indices);

  // Phase 1: how much device scratch this call needs (may be 0). Allocate it
  // once and reuse it for every call with the same parameters.
  std::size_t bytes = 0;
  check(fasttopk::workspace_size(p, &bytes), "workspace_size");
  void* workspace = nullptr;
  if (bytes > 0) CUDA_OK(cudaMalloc(&workspace, bytes));

  // Phase 2: enqueue on a stream. No allocation and no synchronisation inside,
  // so this call can also be captured in a CUDA graph.
  cudaStream_t stream = nullptr;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  fasttopk::Algorithm algorithm = fasttopk::Algorithm::kAuto;
  check(fasttopk::chosen_algorithm(p, &algorithm), "chosen_algorithm");
  check(fasttopk::topk(p, workspace, bytes, stream), "topk");
  CUDA_OK(cudaStreamSynchronize(stream));

  CUDA_OK(
      cudaMemcpy(values->data(), d_values, values->size() * sizeof(float), cudaMemcpyDeviceToHost));
  CUDA_OK(cudaMemcpy(indices->data(), d_indices, indices->size() * sizeof(int64_t),
                     cudaMemcpyDeviceToHost));
  std::printf("GPU: algorithm '%s', workspace %zu bytes\n", fasttopk::algorithm_name(algorithm),
              bytes);

  CUDA_OK(cudaStreamDestroy(stream));
  if (workspace != nullptr) CUDA_OK(cudaFree(workspace));
  CUDA_OK(cudaFree(d_indices));
  CUDA_OK(cudaFree(d_values));
  CUDA_OK(cudaFree(d_input));
}
#endif

}  // namespace

int main() {
  // Two rows of ten values. Row 1 has a tie (2.5 twice): the lower index wins.
  const std::vector<float> input = {
      0.1f, 3.0f, -1.0f, 7.5f,  2.0f, 9.0f, -4.0f, 0.0f, 5.5f,  1.0f,  // row 0
      2.5f, 1.0f, 2.5f,  -3.0f, 0.5f, 2.0f, 1.5f,  8.0f, -2.0f, 0.25f  // row 1
  };
  std::vector<float> values(kRows * kK);
  std::vector<int64_t> indices(kRows * kK);

  std::printf("fasttopk %s (CUDA path compiled: %s)\n", fasttopk::version(),
              fasttopk::cuda_compiled() ? "yes" : "no");
  bool on_gpu = false;
#if FASTTOPK_EXAMPLE_WITH_CUDA
  if (fasttopk::cuda_compiled() && gpu_present()) {
    run_gpu(input, &values, &indices);
    on_gpu = true;
  }
#endif
  if (!on_gpu) {
    std::printf("no GPU (or a build without CUDA): using topk_host on the CPU\n");
    run_host(input, &values, &indices);
  }

  for (int64_t r = 0; r < kRows; ++r) {
    std::printf("row %lld top-%lld:", static_cast<long long>(r), static_cast<long long>(kK));
    for (int64_t j = 0; j < kK; ++j) {
      std::printf("  %g (index %lld)", values[r * kK + j],
                  static_cast<long long>(indices[r * kK + j]));
    }
    std::printf("\n");
  }

  // The expected answer, and (on the GPU) the CPU path's identical result.
  const float want_values[kRows * kK] = {9.0f, 7.5f, 5.5f, 8.0f, 2.5f, 2.5f};
  const int64_t want_indices[kRows * kK] = {5, 3, 8, 7, 0, 2};
  bool ok = std::memcmp(values.data(), want_values, sizeof(want_values)) == 0 &&
            std::memcmp(indices.data(), want_indices, sizeof(want_indices)) == 0;
  if (on_gpu) {
    std::vector<float> host_values(values.size());
    std::vector<int64_t> host_indices(indices.size());
    run_host(input, &host_values, &host_indices);
    const bool same =
        std::memcmp(host_values.data(), values.data(), values.size() * sizeof(float)) == 0 &&
        std::memcmp(host_indices.data(), indices.data(), indices.size() * sizeof(int64_t)) == 0;
    std::printf("GPU and CPU results bitwise identical: %s\n", same ? "yes" : "NO");
    ok = ok && same;
  }
  std::printf("%s\n", ok ? "OK" : "UNEXPECTED RESULT");
  return ok ? 0 : 1;
}
