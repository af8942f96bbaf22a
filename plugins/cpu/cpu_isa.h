// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Does this CPU have the vector instructions a model was compiled for?
//
// AOTInductor compiles CPU models for the machine it runs on (-march=native and explicit
// ISA flags) and records the ISA in the model's metadata (AOTI_CPU_ISA, e.g.
// "AVX512 AVX512_VNNI AMX_TILE"). Loaded on a CPU without them, such a model dies with an
// illegal instruction on its first run; the CPU runner checks first and refuses instead.

#include <aotiplug/error.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace aotiplug::cpu {

// The feature flags of this CPU, from /proc/cpuinfo ("avx2", "avx512f", "amx_tile"...).
// Read per runner, not cached in a static: the plugin can be unloaded and reloaded at the
// same address, and ThreadSanitizer cannot see that the old static died with it.
inline std::set<std::string> cpuFlags() {
  std::ifstream in("/proc/cpuinfo");
  std::set<std::string> flags;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;) flags.insert(w);
    break;
  }
  return flags;
}

// Throws Error(kIncompatible) naming the missing features when the ISA string `isa`
// (AOTI_CPU_ISA) needs instructions `flags` lack. Unknown ISA names are not refused.
inline void checkCpuIsa(const std::string& model, const std::string& isa,
                        const std::set<std::string>& flags) {
  // Constant data, not a static object: nothing to construct or destroy in the plugin.
  struct Need {
    const char* isa;
    const char* flags[6];  // null-terminated
  };
  static constexpr Need kNeeds[] = {
      {"AVX2", {"avx2", "fma", "f16c", nullptr}},
      {"AVX512", {"avx512f", "avx512dq", "avx512vl", "avx512bw", "fma", nullptr}},
      {"AVX512_VNNI", {"avx512_vnni", nullptr}},
      {"AMX_TILE", {"amx_tile", "amx_bf16", "amx_int8", nullptr}},
  };
  if (flags.empty()) return;  // no /proc/cpuinfo: nothing to compare with
  std::istringstream words(isa);
  std::string missing;
  for (std::string name; words >> name;) {
    for (const Need& need : kNeeds) {
      if (name != need.isa) continue;
      for (const char* const* f = need.flags; *f != nullptr; ++f) {
        if (flags.count(*f) == 0) missing += (missing.empty() ? "" : " ") + std::string(*f);
      }
    }
  }
  if (!missing.empty()) {
    throw Error(StatusCode::kIncompatible,
                "model " + model + " was compiled for CPU features '" + isa +
                    "', and this CPU lacks " + missing +
                    " (running it would crash with an illegal instruction); compile the model "
                    "on a machine like this one");
  }
}

}  // namespace aotiplug::cpu
