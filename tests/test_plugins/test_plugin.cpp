// SPDX-License-Identifier: BSD-3-Clause
// One test plugin source, built in many variants (tests/test_plugins/meson.build) that
// each break one rule, so the loader tests can check every status and reason.
//
//   TEST_PLUGIN_NAME / TEST_PLUGIN_PRIORITY   identity and priority for CPU
//   TEST_PLUGIN_TRACE                         on load, create the file named by the
//                                             environment variable AOTIPLUG_TEST_TRACE_DIR
//   TEST_PLUGIN_THROW_ON_LOAD                 a load hook that throws
//   TEST_PLUGIN_UNRESOLVED                    calls a function nobody defines
//   TEST_PLUGIN_UNDECLARED                    also registers Meta, not in its manifest
//   TEST_PLUGIN_TWICE                         registers CPU twice
//   TEST_PLUGIN_NULL_CREATOR                  registers a creator that returns nothing
//   TEST_PLUGIN_CREATOR_THROWS                runner constructor throws (fake_runner.h)
//   TEST_PLUGIN_CRASH_ON_LOAD                 a load hook that dies of SIGSEGV
//   TEST_PLUGIN_REGISTERS_NOTHING             a manifest but no registration (as when a
//                                             linker drops an unreferenced registrar)
// Hostile ones, loaded only in the scanner's child process (or plugin check's):
//   TEST_PLUGIN_OWN_STATIC_THROWS             a static object of its own whose constructor
//                                             throws (not through AOTIPLUG_ON_LOAD)
//   TEST_PLUGIN_EXIT_ON_LOAD=<code>           calls exit(code) from a static constructor
//   TEST_PLUGIN_ABORT_ON_LOAD                 calls abort() from a static constructor
//   TEST_PLUGIN_CRASH_ON_UNLOAD               dies of SIGSEGV in a static destructor
//   TEST_PLUGIN_SLEEP_ON_LOAD                 sleeps 600 s in a static constructor
//   TEST_PLUGIN_SPIN_ON_LOAD                  spins for ever in a static constructor
#include <aotiplug/plugin/plugin.h>

#include "fake_runner.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#ifndef TEST_PLUGIN_PRIORITY
#define TEST_PLUGIN_PRIORITY aotiplug::kPriorityDefault
#endif

AOTIPLUG_PLUGIN(TEST_PLUGIN_NAME, "0.0.1", c10::DeviceType::CPU);

namespace {

#ifdef TEST_PLUGIN_TRACE
void leaveTrace() {
  const char* dir = std::getenv("AOTIPLUG_TEST_TRACE_DIR");
  if (dir == nullptr) return;
  const std::string path = std::string(dir) + "/" + TEST_PLUGIN_NAME + ".ran";
  if (FILE* f = std::fopen(path.c_str(), "w")) std::fclose(f);
}
AOTIPLUG_ON_LOAD(leaveTrace);
#endif

#ifdef TEST_PLUGIN_THROW_ON_LOAD
void refuseToLoad() { throw std::runtime_error("this plugin's load hook always throws"); }
AOTIPLUG_ON_LOAD(refuseToLoad);
#endif

#ifdef TEST_PLUGIN_CRASH_ON_LOAD
void crash() { std::raise(SIGSEGV); }
AOTIPLUG_ON_LOAD(crash);
#endif

#ifdef TEST_PLUGIN_OWN_STATIC_THROWS
struct Thrower {
  Thrower() { throw std::runtime_error("thrown by this plugin's own static object"); }
};
const Thrower thrower;
#endif

#ifdef TEST_PLUGIN_EXIT_ON_LOAD
struct Exiter {
  Exiter() { std::exit(TEST_PLUGIN_EXIT_ON_LOAD); }
};
const Exiter exiter;
#endif

#ifdef TEST_PLUGIN_ABORT_ON_LOAD
struct Aborter {
  Aborter() { std::abort(); }
};
const Aborter aborter;
#endif

#ifdef TEST_PLUGIN_CRASH_ON_UNLOAD
struct CrashesWhenDestroyed {
  ~CrashesWhenDestroyed() { std::raise(SIGSEGV); }
};
const CrashesWhenDestroyed crashes_when_destroyed;
#endif

#ifdef TEST_PLUGIN_SLEEP_ON_LOAD
struct Sleeper {
  Sleeper() { ::sleep(600); }
};
const Sleeper sleeper;
#endif

#ifdef TEST_PLUGIN_SPIN_ON_LOAD
struct Spinner {
  Spinner() {
    volatile bool forever = true;
    while (forever) {
    }
  }
};
const Spinner spinner;
#endif

#ifdef TEST_PLUGIN_NULL_CREATOR
void registerNullCreator() {
  aotiplug::runnerRegistry().add(
      c10::DeviceType::CPU,
      [](const std::string&, std::size_t, const std::string&, const std::string&,
         bool) -> aotiplug::Created<aotiplug::RunnerAbi> { return {nullptr}; },
      aotiplug::kPriorityDefault, aotiplug::detail::pluginOrigin());
}
AOTIPLUG_ON_LOAD(registerNullCreator);
#endif

}  // namespace

#ifdef TEST_PLUGIN_UNRESOLVED
// `used` keeps the reference in the library, so dlopen(RTLD_NOW) must fail on it.
extern "C" int aotiplug_test_symbol_nobody_defines(int);
extern "C" __attribute__((used)) int aotiplug_test_use_missing_symbol(int x) {
  return aotiplug_test_symbol_nobody_defines(x);
}
#endif

#if !defined(TEST_PLUGIN_NULL_CREATOR) && !defined(TEST_PLUGIN_REGISTERS_NOTHING)
AOTIPLUG_REGISTER_RUNNER(c10::DeviceType::CPU, aotiplug_test::FakeRunner, TEST_PLUGIN_PRIORITY);
#endif
#ifdef TEST_PLUGIN_TWICE
AOTIPLUG_REGISTER_RUNNER(c10::DeviceType::CPU, aotiplug_test::FakeRunner, TEST_PLUGIN_PRIORITY);
#endif
#ifdef TEST_PLUGIN_UNDECLARED
AOTIPLUG_REGISTER_RUNNER(c10::DeviceType::Meta, aotiplug_test::FakeRunner);
#endif
