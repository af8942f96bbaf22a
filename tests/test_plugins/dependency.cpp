// SPDX-License-Identifier: BSD-3-Clause
// A library a test plugin needs (needs_dependency.cpp). Loading it leaves a trace file in
// $AOTIPLUG_TEST_TRACE_DIR, so a test can tell whether its code ever ran.
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {
struct Trace {
  Trace() {
    const char* dir = std::getenv("AOTIPLUG_TEST_TRACE_DIR");
    if (dir == nullptr) return;
    if (FILE* f = std::fopen((std::string(dir) + "/dependency.ran").c_str(), "w")) std::fclose(f);
  }
};
const Trace trace;
}  // namespace

extern "C" __attribute__((visibility("default"))) int aotiplug_test_dependency_value() { return 42; }
