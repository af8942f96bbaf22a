// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::triton::nowNs — the timestamps the backend reports to Triton's statistics
// (TRITONBACKEND_ModelInstanceReportStatistics and friends): nanoseconds of
// std::chrono::steady_clock, the clock Triton's own request timestamps use.
// Thread safety: a pure function.

#include <chrono>
#include <cstdint>

namespace aotiplug::triton {

inline std::uint64_t nowNs() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace aotiplug::triton
