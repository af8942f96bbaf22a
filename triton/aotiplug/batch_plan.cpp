// SPDX-License-Identifier: BSD-3-Clause
#include "batch_plan.h"

#include <algorithm>

namespace aotiplug::triton {

std::vector<PlannedRun> planRuns(std::int64_t total, std::int64_t min, std::int64_t max) {
  min = std::max<std::int64_t>(min, 1);
  std::vector<PlannedRun> runs;
  if (total <= 0) return runs;
  const std::int64_t count = max > 0 ? (total + max - 1) / max : 1;
  const std::int64_t base = total / count;
  const std::int64_t larger = total % count;  // the first `larger` runs take one row more
  std::int64_t offset = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    PlannedRun run;
    run.offset = offset;
    run.size = base + (i < larger ? 1 : 0);
    // Below min: when max < 2 * min, the runs of a split may be too (8..12 takes 13 rows as
    // 7 + 6), as well as a lone run.
    run.padding = std::max<std::int64_t>(min - run.size, 0);
    offset += run.size;
    runs.push_back(run);
  }
  return runs;
}

}  // namespace aotiplug::triton
