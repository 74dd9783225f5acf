// The reset of RowHandoff's per-row tickets (common.cuh).
#include <algorithm>

#include "cuda/common.cuh"

namespace fasttopk::detail {
namespace {

constexpr int kResetThreads = 256;
constexpr int64_t kResetCtasMax = 64;  // a grid-stride loop beyond 16k rows

/*
 * Zeroes tickets[0 .. rows). Every CTA first allows the dependent grid (the
 * kernel that takes the tickets, launched by launch_programmatic) to be
 * scheduled: that kernel waits in griddepcontrol.wait, which returns only
 * once this grid has completed and its stores are visible, before its first
 * ticket, and until then it can launch and load its input alongside this one.
 */
__global__ void __launch_bounds__(kResetThreads)
    zero_tickets_kernel(uint32_t* tickets, int64_t rows) {
  allow_dependent_grids();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kResetThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kResetThreads + threadIdx.x; i < rows;
       i += stride) {
    tickets[i] = 0;
  }
}

}  // namespace

cudaError_t RowHandoff::reset(int64_t rows, cudaStream_t stream) const {
  const int64_t ctas = std::min<int64_t>((rows + kResetThreads - 1) / kResetThreads, kResetCtasMax);
  if (ctas <= 0) return cudaSuccess;
  zero_tickets_kernel<<<static_cast<unsigned>(ctas), kResetThreads, 0, stream>>>(tickets, rows);
  return cudaGetLastError();
}

}  // namespace fasttopk::detail
