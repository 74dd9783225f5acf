// The CPU path: the executable form of the contract and the oracle of every
// GPU test. Clarity first; O(cols) selection plus O(k log k) sorting per row.
#pragma once

#include <cstddef>

#include "problem.hpp"

namespace fasttopk::detail {

/// Threads topk_host will actually use for `problem` when asked for
/// `num_threads` (0 = all hardware threads).
int host_threads_used(const Problem& problem, int num_threads);

/// Bytes of host scratch for `problem` with `num_threads` threads.
std::size_t host_workspace_bytes(const Problem& problem, int num_threads);

/// Runs the validated problem (per-row arrays already checked).
void run_host(const Problem& problem, void* workspace, int num_threads);

}  // namespace fasttopk::detail
