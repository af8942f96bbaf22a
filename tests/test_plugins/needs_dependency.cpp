// SPDX-License-Identifier: BSD-3-Clause
// A test plugin that needs libtest_dependency.so, which it finds through its RUNPATH
// ($ORIGIN/../deps, beside the plugin directory): trusted or not, that library's code runs when the plugin loads.
#include <aotiplug/plugin/plugin.h>

#include "fake_runner.h"

extern "C" int aotiplug_test_dependency_value();

// Referenced, so the library is a real DT_NEEDED entry.
extern "C" __attribute__((used)) int aotiplug_test_needs_dependency() { return aotiplug_test_dependency_value(); }

AOTIPLUG_PLUGIN("needs-dependency", "0.0.1", c10::DeviceType::CPU);
AOTIPLUG_REGISTER_RUNNER(c10::DeviceType::CPU, aotiplug_test::FakeRunner);
