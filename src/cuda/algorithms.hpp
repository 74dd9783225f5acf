// The interface between the dispatcher (dispatch.cpp) and the algorithm
// families (one .cu file each). Plain C++: no CUDA headers needed to use it.
#pragma once

#include <cstddef>

#include "problem.hpp"

namespace fasttopk::detail {

/// Facts about one GPU, read once per device and cached (device_facts.cpp).
struct DeviceFacts {
  int device = -1;
  int sm_count = 0;
  int cc_major = 0;
  int cc_minor = 0;
  int max_threads_per_sm = 0;
  std::size_t shared_per_block_optin = 0;  ///< Max dynamic + static smem per CTA.
  std::size_t shared_per_sm = 0;
  std::size_t l2_bytes = 0;
};

/// Facts of the current device (cached after the first call per device).
/// Returns a non-ok Status if the CUDA runtime fails.
Status current_device_facts(const DeviceFacts** facts);

/// One algorithm family. Every function receives a validated Problem that is
/// not empty().
struct AlgorithmFamily {
  Algorithm id;
  /// nullptr if the family can run `problem`; otherwise a static string that
  /// says why not (shown when the family is forced).
  const char* (*rejects)(const Problem& problem, const DeviceFacts& device);
  /// Device workspace in bytes (may be 0).
  std::size_t (*workspace_bytes)(const Problem& problem, const DeviceFacts& device);
  /// Enqueues the work on `stream`; returns the launch's CUDA error code
  /// (0 = cudaSuccess). `workspace` holds at least workspace_bytes() bytes,
  /// aligned to kWorkspaceAlignment.
  int (*launch)(const Problem& problem, const DeviceFacts& device, void* workspace,
                cudaStream_t stream);
};

/// Alignment the dispatcher guarantees for each family's workspace.
constexpr std::size_t kWorkspaceAlignment = 256;

extern const AlgorithmFamily kBlockPerRowFamily;
extern const AlgorithmFamily kSplitRowFamily;
extern const AlgorithmFamily kRowPerCtaFamily;
extern const AlgorithmFamily kRowPerWarpFamily;
extern const AlgorithmFamily kRowPerClusterFamily;

/// Waves of clusters row_per_cluster's plan for `problem` takes on `device`
/// (rows / the clusters resident at once, rounded up; the residency is
/// queried once per device and plan class and cached), or 0 where the
/// family rejects the problem. The dispatcher's rules use it: the cluster
/// loses to split_row at large k once its rows need a second wave.
int64_t row_per_cluster_waves(const Problem& problem, const DeviceFacts& device);

/// The dispatcher: the family that runs `problem` (resolving kAuto), or a
/// non-ok Status (e.g. a forced family that rejects the shape).
Status choose_family(const Problem& problem, const DeviceFacts& device,
                     const AlgorithmFamily** family);

}  // namespace fasttopk::detail
