// SPDX-License-Identifier: BSD-3-Clause
// Loads a plugin directory with aotiplug's host library and lists what it found.
// Exit 0 when at least one plugin loaded.
#include <aotiplug/host/plugin_loader.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: list-plugins ABSOLUTE_PLUGIN_DIR\n";
    return 2;
  }
  aotiplug::PluginLoader loader;  // keep it alive as long as its plugins are used
  int loaded = 0;
  for (const aotiplug::PluginRecord& p : loader.loadDirectory(argv[1])) {
    std::cout << p.path << ": " << (p.loaded() ? "loaded as '" + p.name() + "'" : p.reason) << "\n";
    loaded += p.loaded() ? 1 : 0;
  }
  return loaded > 0 ? 0 : 1;
}
