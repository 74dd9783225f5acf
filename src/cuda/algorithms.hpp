// The interface between the dispatcher (dispatch.cpp) and the algorithm
// families (one .cu file each). Plain C++: no CUDA headers needed to use it.
#pragma once

#include <cstddef>
#include <cstring>
#include <type_traits>

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

/// A family's launch plan for one problem (split counts, shared-memory
/// layout, ...), made by `rejects` and handed to workspace_bytes and launch,
/// which do not search it again (the dispatcher's wave rules still plan the
/// cluster once more: row_per_cluster_waves). A plan costs tens of ns on
/// the host (measured in session 33), so this is about one source of truth
/// per call more than time. Opaque storage: each family stores its own
/// trivially copyable plan type.
class FamilyPlan {
 public:
  template <typename T>
  void store(const T& plan) {
    static_assert(sizeof(T) <= kBytes, "FamilyPlan's storage is too small for this plan");
    static_assert(std::is_trivially_copyable_v<T>, "plans are copied as bytes");
    std::memcpy(bytes_, &plan, sizeof(T));
  }
  template <typename T>
  T load() const {
    static_assert(sizeof(T) <= kBytes, "FamilyPlan's storage is too small for this plan");
    static_assert(std::is_trivially_copyable_v<T>, "plans are copied as bytes");
    T plan;
    std::memcpy(&plan, bytes_, sizeof(T));
    return plan;
  }

 private:
  static constexpr std::size_t kBytes = 128;
  alignas(16) unsigned char bytes_[kBytes] = {};
};

/// One algorithm family. Every function receives a validated Problem that is
/// not empty().
struct AlgorithmFamily {
  Algorithm id;
  /// nullptr if the family can run `problem`, and then `*plan` holds its
  /// plan for workspace_bytes and launch; otherwise a static string that
  /// says why not (shown when the family is forced), and `*plan` is
  /// unspecified.
  const char* (*rejects)(const Problem& problem, const DeviceFacts& device, FamilyPlan* plan);
  /// Device workspace in bytes (may be 0) of the plan `rejects` made.
  std::size_t (*workspace_bytes)(const Problem& problem, const DeviceFacts& device,
                                 const FamilyPlan& plan);
  /// Enqueues the plan `rejects` made on `stream`; returns the launch's CUDA
  /// error code (0 = cudaSuccess). `workspace` holds at least
  /// workspace_bytes() bytes, aligned to kWorkspaceAlignment.
  int (*launch)(const Problem& problem, const DeviceFacts& device, const FamilyPlan& plan,
                void* workspace, cudaStream_t stream);
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

/// The dispatcher: the family that runs `problem` (resolving kAuto) and its
/// plan, or a non-ok Status (e.g. a forced family that rejects the shape).
Status choose_family(const Problem& problem, const DeviceFacts& device,
                     const AlgorithmFamily** family, FamilyPlan* plan);

}  // namespace fasttopk::detail
