// SPDX-License-Identifier: BSD-3-Clause
// libFuzzer harness: the .pt2 package reader (./dev fuzz, docs/reliability.md).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  aotiplug_fuzz::fuzzPackage(data, size);
  return 0;
}
