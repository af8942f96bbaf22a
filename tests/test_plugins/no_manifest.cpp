// SPDX-License-Identifier: BSD-3-Clause
// A perfectly good shared library that is not an aotiplug plugin: no AOTIPLUG_PLUGIN.
extern "C" __attribute__((visibility("default"))) int aotiplug_test_not_a_plugin() { return 1; }
