// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The build tree's plugins, loaded once per test program through the host's loader, as a
// user's host would: BOOST_TEST_GLOBAL_FIXTURE(aotiplug_test::BuildPlugins). A plugin
// that does not load fails the whole program, naming it and why.

#include "test_support.h"

#include <aotiplug/host/plugin_loader.h>

#include <stdexcept>
#include <string>

namespace aotiplug_test {

inline void loadBuildPlugins(aotiplug::PluginLoader& loader) {
  for (const auto& r : loader.loadDirectory((buildRoot() / "plugins").string())) {
    if (!r.loaded()) throw std::runtime_error("plugin " + r.path + " did not load: " + r.reason);
  }
}

struct BuildPlugins {
  aotiplug::PluginLoader loader;
  BuildPlugins() { loadBuildPlugins(loader); }
};

}  // namespace aotiplug_test
