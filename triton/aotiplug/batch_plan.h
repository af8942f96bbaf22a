// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::triton::planRuns — how a batch of requests (concatenated along dimension 0)
// becomes runs of the model that the package accepts.
//
// The package's batch range [min, max] may be narrower than what Triton delivers: a batch
// above max is split into runs as even as possible (never refused as a whole), and a run
// below min is padded with rows of zeros whose outputs are dropped.
// Thread safety: a pure function.

#include <cstdint>
#include <vector>

namespace aotiplug::triton {

// aotiplug::triton::PlannedRun — rows [offset, offset + size) of the batch, run with
// `padding` extra rows.
struct PlannedRun {
  std::int64_t offset = 0;
  std::int64_t size = 0;
  std::int64_t padding = 0;
};

// The runs for `total` rows (>= 1) in a package that accepts batches of min..max rows
// (max -1: unbounded; min >= 1).
std::vector<PlannedRun> planRuns(std::int64_t total, std::int64_t min, std::int64_t max);

}  // namespace aotiplug::triton
