// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Does this CPU have the vector instructions a model was compiled for?
//
// AOTInductor compiles CPU models for the machine it runs on (-march=native and explicit
// ISA flags) and records the ISA in the model's metadata (AOTI_CPU_ISA, e.g.
// "AVX512 AVX512_VNNI AMX_TILE"). Loaded on a CPU without them, such a model dies with an
// illegal instruction on its first run; the CPU runner checks first and refuses instead.

#include <aotiplug/error.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <set>
#include <sstream>
#include <string>

namespace aotiplug::cpu {

// The flags of this CPU that checkCpuIsa looks at, named as in /proc/cpuinfo ("avx2",
// "avx512f", "amx_tile"...), from CPUID, counting only what the OS has enabled (XCR0), as
// the kernel does for /proc/cpuinfo. Reading /proc/cpuinfo instead cost about 0.1 ms per
// runner (a few percent of opening a package); a cached copy would be a static in the
// plugin, which can be unloaded and reloaded at the same address (ThreadSanitizer cannot
// see the old one die). Empty on other architectures: nothing to compare with.
inline std::set<std::string> cpuFlags() {
  std::set<std::string> flags;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return flags;
  const unsigned leaf1_c = c;
  if ((d >> 26) & 1u) flags.insert("sse2");  // every x86-64 CPU: the set is never empty here
  const bool osxsave = (leaf1_c >> 27) & 1u;
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  }
  const bool avx_state = (xcr0 & 0x6) == 0x6;           // SSE and AVX registers
  const bool avx512_state = avx_state && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM
  const bool amx_state = (xcr0 & 0x60000) == 0x60000;   // tile config and data
  if (avx_state && ((leaf1_c >> 12) & 1u)) flags.insert("fma");
  if (avx_state && ((leaf1_c >> 29) & 1u)) flags.insert("f16c");
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return flags;
  const auto bit = [](unsigned reg, int n) { return ((reg >> n) & 1u) != 0; };
  if (avx_state && bit(b, 5)) flags.insert("avx2");
  if (avx512_state) {
    if (bit(b, 16)) flags.insert("avx512f");
    if (bit(b, 17)) flags.insert("avx512dq");
    if (bit(b, 30)) flags.insert("avx512bw");
    if (bit(b, 31)) flags.insert("avx512vl");
    if (bit(c, 11)) flags.insert("avx512_vnni");
  }
  if (amx_state) {
    if (bit(d, 22)) flags.insert("amx_bf16");
    if (bit(d, 24)) flags.insert("amx_tile");
    if (bit(d, 25)) flags.insert("amx_int8");
  }
#endif
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
  if (flags.empty()) return;  // not x86 (or no CPUID): nothing to compare with
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
