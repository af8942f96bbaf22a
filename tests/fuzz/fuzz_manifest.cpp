// SPDX-License-Identifier: BSD-3-Clause
// libFuzzer harness: the plugin manifest reader (./dev fuzz, docs/reliability.md).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  aotiplug_fuzz::fuzzManifest(data, size);
  return 0;
}
