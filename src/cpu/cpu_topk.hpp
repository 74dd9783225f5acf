// The CPU path: the executable form of the contract and the reference of the
// GPU tests at sizes the brute-force oracle (tests/cpp/test_util.hpp) cannot
// take; the CPU tests check it against that oracle. O(cols) selection (a
// streamed threshold scan where k is small against the row) plus O(k log k)
// sorting per row.
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
