// Argument validation: the only place TopKParams is checked (see problem.hpp).
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#include "problem.hpp"

#if FASTTOPK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace fasttopk::detail {
namespace {

Status invalid(const std::string& message) { return Status(StatusCode::kInvalidArgument, message); }

template <typename T>
std::string str(const T& v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

bool aligned(const void* p, int bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % static_cast<std::uintptr_t>(bytes) == 0;
}

#if FASTTOPK_WITH_CUDA
/// Where the CUDA runtime can tell, whether `p` is device-only memory
/// (cudaMalloc), host-only memory (pageable, unknown to CUDA), or either
/// (managed or pinned-mapped: accessible from both).
enum class PointerKind { kDeviceOnly, kHostOnly, kBoth, kUnknown };

PointerKind pointer_kind(const void* p) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error this call may set
    return PointerKind::kUnknown;
  }
  switch (attributes.type) {
    case cudaMemoryTypeDevice:
      return PointerKind::kDeviceOnly;
    case cudaMemoryTypeManaged:
      return PointerKind::kBoth;
    case cudaMemoryTypeHost:
      return attributes.devicePointer != nullptr ? PointerKind::kBoth : PointerKind::kHostOnly;
    case cudaMemoryTypeUnregistered:
    default:
      return PointerKind::kHostOnly;
  }
}
#endif

Status check_space(const void* p, const char* name, MemorySpace space) {
  if (p == nullptr) return Status();
#if FASTTOPK_WITH_CUDA
  const PointerKind kind = pointer_kind(p);
  if (space == MemorySpace::kDevice && kind == PointerKind::kHostOnly) {
    return invalid(std::string(name) +
                   " is host memory that the GPU cannot access; use topk_host() for host "
                   "memory or pass device memory to topk()");
  }
  if (space == MemorySpace::kHost && kind == PointerKind::kDeviceOnly) {
    return invalid(std::string(name) +
                   " is device memory; topk_host() needs host memory (use topk() for device "
                   "memory)");
  }
#else
  (void)name;
  (void)space;
#endif
  return Status();
}

}  // namespace

Status validate(const TopKParams& p, MemorySpace space, Problem* out) {
  if (out == nullptr) return invalid("internal: null problem");
  constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();

  const int dtype = static_cast<int>(p.dtype);
  if (dtype < 0 || dtype > 2) {
    return invalid("unsupported dtype " + str(dtype) +
                   " (expected kFloat32, kFloat16 or kBFloat16)");
  }
  const int index_type = static_cast<int>(p.index_type);
  if (index_type < 0 || index_type > 1) {
    return invalid("unsupported index_type " + str(index_type) + " (expected kInt32 or kInt64)");
  }
  const int algorithm = static_cast<int>(p.algorithm);
  if (!algorithm_known(p.algorithm)) {
    return invalid("unknown algorithm " + str(algorithm));
  }
  if (p.rows < 0) return invalid("rows must be >= 0, got " + str(p.rows));
  if (p.cols < 0) return invalid("cols must be >= 0, got " + str(p.cols));
  if (p.k < 0) return invalid("k must be >= 0, got " + str(p.k));
  if (p.rows > kMaxDim) return invalid("rows must be <= 2^31-1, got " + str(p.rows));
  if (p.cols > kMaxDim) return invalid("cols must be <= 2^31-1, got " + str(p.cols));
  if (p.k > p.cols) {
    return invalid("k (" + str(p.k) + ") must be <= cols (" + str(p.cols) + ")");
  }
  const int64_t stride = p.row_stride == 0 ? p.cols : p.row_stride;
  if (stride < p.cols) {
    return invalid("row_stride (" + str(p.row_stride) + ") must be >= cols (" + str(p.cols) +
                   ") or 0");
  }
  if (p.rows > 1 && stride > (std::numeric_limits<int64_t>::max() - p.cols) / (p.rows - 1)) {
    return invalid("rows * row_stride overflows a 64-bit element offset");
  }

  Problem q;
  q.input = p.input;
  q.dtype = p.dtype;
  q.rows = p.rows;
  q.cols = p.cols;
  q.row_stride = stride;
  q.k = p.k;
  q.k_per_row = p.k_per_row;
  q.row_lengths = p.row_lengths;
  q.largest = p.largest;
  q.sorted = p.sorted;
  q.values = p.values;
  q.indices = p.indices;
  q.index_type = p.index_type;
  q.algorithm = p.algorithm;

  if (!q.empty()) {
    if (q.input == nullptr) return invalid("input is null");
    if (q.values == nullptr && q.indices == nullptr) {
      return invalid("values and indices are both null: nothing to write");
    }
    if (!aligned(q.input, q.element_bytes())) {
      return invalid("input is not aligned to its element size (" + str(q.element_bytes()) +
                     " bytes)");
    }
    if (q.values != nullptr && !aligned(q.values, q.element_bytes())) {
      return invalid("values is not aligned to its element size (" + str(q.element_bytes()) +
                     " bytes)");
    }
    if (q.indices != nullptr && !aligned(q.indices, q.index_bytes())) {
      return invalid("indices is not aligned to its element size (" + str(q.index_bytes()) +
                     " bytes)");
    }
    if (q.k_per_row != nullptr && !aligned(q.k_per_row, 4)) {
      return invalid("k_per_row is not aligned to 4 bytes");
    }
    if (q.row_lengths != nullptr && !aligned(q.row_lengths, 4)) {
      return invalid("row_lengths is not aligned to 4 bytes");
    }
    const std::pair<const void*, const char*> pointers[] = {{q.input, "input"},
                                                            {q.values, "values"},
                                                            {q.indices, "indices"},
                                                            {q.k_per_row, "k_per_row"},
                                                            {q.row_lengths, "row_lengths"}};
    for (const auto& [pointer, name] : pointers) {
      Status s = check_space(pointer, name, space);
      if (!s.ok()) return s;
    }
  }
  *out = q;
  return Status();
}

Status validate_per_row_host(const Problem& q) {
  if (q.empty()) return Status();
  for (int64_t r = 0; r < q.rows; ++r) {
    if (q.k_per_row != nullptr && (q.k_per_row[r] < 0 || q.k_per_row[r] > q.k)) {
      return invalid("k_per_row[" + str(r) + "] = " + str(q.k_per_row[r]) +
                     " is outside [0, k = " + str(q.k) + "]");
    }
    if (q.row_lengths != nullptr && (q.row_lengths[r] < 0 || q.row_lengths[r] > q.cols)) {
      return invalid("row_lengths[" + str(r) + "] = " + str(q.row_lengths[r]) +
                     " is outside [0, cols = " + str(q.cols) + "]");
    }
  }
  return Status();
}

}  // namespace fasttopk::detail
