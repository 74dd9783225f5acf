// Per-device facts, read from the CUDA runtime once per device and cached, so
// that a top-k call costs no attribute queries (each is ~1 us of host time).
#include <cuda_runtime_api.h>

#include <array>
#include <mutex>
#include <string>

#include "cuda/algorithms.hpp"

namespace fasttopk::detail {
namespace {

constexpr int kMaxDevices = 64;

struct Cache {
  std::array<DeviceFacts, kMaxDevices> facts;
  std::array<std::once_flag, kMaxDevices> once;
  std::array<cudaError_t, kMaxDevices> error{};
};

Cache& cache() {
  static Cache c;
  return c;
}

cudaError_t read_facts(int device, DeviceFacts* f) {
  f->device = device;
  int value = 0;
  const std::pair<cudaDeviceAttr, int*> ints[] = {
      {cudaDevAttrMultiProcessorCount, &f->sm_count},
      {cudaDevAttrComputeCapabilityMajor, &f->cc_major},
      {cudaDevAttrComputeCapabilityMinor, &f->cc_minor},
      {cudaDevAttrMaxThreadsPerMultiProcessor, &f->max_threads_per_sm},
  };
  for (const auto& [attribute, out] : ints) {
    cudaError_t e = cudaDeviceGetAttribute(out, attribute, device);
    if (e != cudaSuccess) return e;
  }
  const std::pair<cudaDeviceAttr, std::size_t*> sizes[] = {
      {cudaDevAttrMaxSharedMemoryPerBlockOptin, &f->shared_per_block_optin},
      {cudaDevAttrMaxSharedMemoryPerMultiprocessor, &f->shared_per_sm},
      {cudaDevAttrL2CacheSize, &f->l2_bytes},
  };
  for (const auto& [attribute, out] : sizes) {
    cudaError_t e = cudaDeviceGetAttribute(&value, attribute, device);
    if (e != cudaSuccess) return e;
    *out = static_cast<std::size_t>(value);
  }
  return cudaSuccess;
}

}  // namespace

Status current_device_facts(const DeviceFacts** facts) {
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) {
    return Status(StatusCode::kCudaError,
                  std::string("cudaGetDevice failed: ") + cudaGetErrorString(e));
  }
  if (device < 0 || device >= kMaxDevices) {
    return Status(StatusCode::kUnsupported, "device ordinal " + std::to_string(device) +
                                                " exceeds fasttopk's limit of 64 devices");
  }
  Cache& c = cache();
  std::call_once(c.once[device], [&] { c.error[device] = read_facts(device, &c.facts[device]); });
  if (c.error[device] != cudaSuccess) {
    return Status(StatusCode::kCudaError, std::string("reading device attributes failed: ") +
                                              cudaGetErrorString(c.error[device]));
  }
  *facts = &c.facts[device];
  return Status();
}

}  // namespace fasttopk::detail
