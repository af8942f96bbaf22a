// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::compareWithEager — whether a model's outputs match the eager outputs a package
// records for its sample inputs (aotiplug's packager writes them). One rule for every
// place that says "matches eager": `aotiplug run`, the plugin probe (`plugin check
// --model`) and the conformance kit.
//
// The rule: as many outputs as the reference; each with the reference's dtype and sizes;
// values within tolerance x max(1, max |reference|) of it, where the tolerance is 1e-4 for
// float32/float64 (and complex), 2e-2 for float16/bfloat16, and 0 (equal) for integer and
// bool outputs. Outputs may be on any device; they are compared on the CPU.
//
// Thread safety: a pure function. Compiled into libaotiplug.

#include <aotiplug/detail/export.h>

#include <ATen/Tensor.h>

#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::EagerComparison — the verdict.
struct EagerComparison {
  bool match = false;
  double max_abs_diff = 0;  // over the outputs compared value by value
  std::string mismatch;     // why not, naming the output; empty when they match
};

AOTIPLUG_API EagerComparison compareWithEager(const std::vector<at::Tensor>& outputs,
                                              const std::vector<at::Tensor>& reference);

}  // namespace aotiplug
