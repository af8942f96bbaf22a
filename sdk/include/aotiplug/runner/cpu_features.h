// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// CPU features: does this CPU have every instruction set a model library's code uses?
//
// AOTInductor compiles CPU models with -march=native on the machine that compiles them,
// plus explicit flags for the vector ISA it picked (recorded as AOTI_CPU_ISA, e.g.
// "AVX512" — which then also gets -mavx512bf16 where that machine has it, unrecorded). So
// the code may use any instruction of the compiling machine; loaded on a CPU without one,
// the model dies of SIGILL on its first run. Two checks, for any runner that runs CPU code:
//  - checkCpuIsa: the flags AOTI_CPU_ISA implies (cheap; every package records it);
//  - cpuFeaturesUsedBy: the instruction sets the library's machine code actually uses,
//    found by decoding its executable segments (x86-64, with the Zydis disassembler when
//    libaotiplug was built with it). Decoding takes a few milliseconds per 100 KB of code,
//    so the answer is cached in the process by the library's build ID.
//
// Flags are named as in /proc/cpuinfo ("avx2", "avx512f", "avx512_bf16", "amx_tile").
// Thread safety: all functions may be called from any thread.

#include <aotiplug/detail/export.h>
#include <aotiplug/error.h>
#include <aotiplug/status.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace aotiplug {

// The flags of this CPU that the checks look at, from CPUID, counting only what the OS has
// enabled (XCR0), as the kernel does for /proc/cpuinfo. Empty on other architectures:
// nothing to compare with. (Reading /proc/cpuinfo instead costs about 0.1 ms.)
inline std::set<std::string> cpuFlags() {
  std::set<std::string> flags;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return flags;
  const auto bit = [](unsigned reg, int n) { return ((reg >> n) & 1u) != 0; };
  const unsigned leaf1_c = c;
  if (bit(d, 26)) flags.insert("sse2");  // every x86-64 CPU: the set is never empty here
  const bool osxsave = bit(leaf1_c, 27);
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  }
  const bool avx_state = (xcr0 & 0x6) == 0x6;                    // SSE and AVX registers
  const bool avx512_state = avx_state && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM
  const bool amx_state = (xcr0 & 0x60000) == 0x60000;            // tile config and data
  const auto add = [&](bool present, const char* name) {
    if (present) flags.insert(name);
  };
  add(bit(leaf1_c, 0), "pni");
  add(bit(leaf1_c, 1), "pclmulqdq");
  add(bit(leaf1_c, 9), "ssse3");
  add(bit(leaf1_c, 13), "cx16");
  add(bit(leaf1_c, 19), "sse4_1");
  add(bit(leaf1_c, 20), "sse4_2");
  add(bit(leaf1_c, 22), "movbe");
  add(bit(leaf1_c, 23), "popcnt");
  add(bit(leaf1_c, 25), "aes");
  add(bit(leaf1_c, 30), "rdrand");
  add(avx_state && bit(leaf1_c, 28), "avx");
  add(avx_state && bit(leaf1_c, 12), "fma");
  add(avx_state && bit(leaf1_c, 29), "f16c");
  if (__get_cpuid(0x80000001, &a, &b, &c, &d) != 0) {
    add(bit(c, 0), "lahf_lm");
    add(bit(c, 5), "abm");  // lzcnt
    add(bit(c, 6), "sse4a");
    add(avx_state && bit(c, 11), "xop");
    add(avx_state && bit(c, 16), "fma4");
    add(bit(c, 21), "tbm");
  }
  unsigned max_leaf = 0;
  __get_cpuid(0, &max_leaf, &b, &c, &d);
  if (max_leaf < 7 || __get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return flags;
  const unsigned b7 = b, c7 = c, d7 = d, max_sub7 = a;
  add(bit(b7, 3), "bmi1");
  add(avx_state && bit(b7, 5), "avx2");
  add(bit(b7, 8), "bmi2");
  add(bit(b7, 18), "rdseed");
  add(bit(b7, 19), "adx");
  add(bit(b7, 23), "clflushopt");
  add(bit(b7, 24), "clwb");
  add(bit(b7, 29), "sha_ni");
  add(bit(c7, 8), "gfni");
  add(avx_state && bit(c7, 9), "vaes");
  add(avx_state && bit(c7, 10), "vpclmulqdq");
  add(bit(c7, 22), "rdpid");
  if (avx512_state) {
    add(bit(b7, 16), "avx512f");
    add(bit(b7, 17), "avx512dq");
    add(bit(b7, 21), "avx512ifma");
    add(bit(b7, 28), "avx512cd");
    add(bit(b7, 30), "avx512bw");
    add(bit(b7, 31), "avx512vl");
    add(bit(c7, 1), "avx512vbmi");
    add(bit(c7, 6), "avx512_vbmi2");
    add(bit(c7, 11), "avx512_vnni");
    add(bit(c7, 12), "avx512_bitalg");
    add(bit(c7, 14), "avx512_vpopcntdq");
    add(bit(d7, 8), "avx512_vp2intersect");
    add(bit(d7, 23), "avx512_fp16");
  }
  if (amx_state) {
    add(bit(d7, 22), "amx_bf16");
    add(bit(d7, 24), "amx_tile");
    add(bit(d7, 25), "amx_int8");
  }
  if (max_sub7 >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d) != 0) {
    add(avx_state && bit(a, 4), "avx_vnni");
    add(avx512_state && bit(a, 5), "avx512_bf16");
  }
#endif
  return flags;
}

// Throws Error(kIncompatible) naming the missing features when the ISA string `isa`
// (AOTI_CPU_ISA) implies instructions `flags` lack. Unknown ISA names are not refused.
inline void checkCpuIsa(const std::string& model, const std::string& isa,
                        const std::set<std::string>& flags) {
  // Constant data, not a static object: nothing to construct or destroy in a plugin.
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

// The CPU flags beyond the x86-64 baseline that the machine code of the ELF shared object
// at `path` uses; nullopt where this cannot be told (not x86-64, or libaotiplug built
// without a disassembler). Throws Error(kInvalidArgument) for a file that is not a
// readable ELF shared object.
AOTIPLUG_API std::optional<std::set<std::string>> cpuFeaturesUsedBy(const std::string& path);

// Both checks: throws Error(kIncompatible) naming what this CPU lacks — the flags the ISA
// string implies, then the instruction sets the code uses.
inline void checkCpuFeatures(const std::string& model, const std::string& isa,
                             const std::set<std::string>& flags) {
  if (flags.empty()) return;
  checkCpuIsa(model, isa, flags);
  const auto used = cpuFeaturesUsedBy(model);
  if (!used) return;
  std::string missing;
  for (const std::string& f : *used) {
    if (flags.count(f) == 0) missing += (missing.empty() ? "" : " ") + f;
  }
  if (!missing.empty()) {
    throw Error(StatusCode::kIncompatible,
                "model " + model + " uses instructions this CPU lacks: " + missing +
                    " (found in its machine code; AOTInductor compiles with -march=native, so "
                    "a model takes the compiling machine's features; running it would crash "
                    "with an illegal instruction). Compile the model on a machine like this one");
  }
}

}  // namespace aotiplug
