// SPDX-License-Identifier: BSD-3-Clause
// aotiplug-plugin-scanner: loads, registers and unloads plugins in this process, so that a
// host can tell what they do before it loads them in its own (plugin_scan.h). Reports on
// standard output as it goes (host/src/scan_protocol.h). Not meant to be run by hand.
//
//   aotiplug-plugin-scanner [--allow-untrusted] PLUGIN.so...
#include "../src/scan_protocol.h"

#include <aotiplug/host/plugin_loader.h>

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

void say(const std::string& word, const std::string& rest = {}) {
  std::printf("%s%s%s\n", word.c_str(), rest.empty() ? "" : " ", rest.c_str());
  std::fflush(stdout);
}

bool stillMapped(const std::string& path) {
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return false;
  ::dlclose(h);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace aotiplug;
  LoaderOptions options;
  options.scan_out_of_process = false;  // this is the scan
  options.log = [](const std::string&) {};
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--allow-untrusted") == 0) {
      options.require_trusted_paths = false;
    } else {
      paths.emplace_back(argv[i]);
    }
  }
  for (const std::string& path : paths) {
    say(scan::kBegin, path);
    bool loaded = false;
    {
      PluginLoader loader(options);
      say(scan::kStage, scan::kStageLoading);
      const PluginRecord record = loader.load(path);
      loaded = record.loaded();
      say(scan::kRecord, toJson(record).dump());
      if (loaded) say(scan::kStage, scan::kStageUnloading);
      // The loader unloads here (its destructor): the plugin's static destructors run.
    }
    if (!loaded) {
      // A load that failed may have left this process unusable (an exception out of a
      // static initializer keeps the loader's lock): nothing more here, not even exit's
      // handlers.
      say(scan::kEnd);
      std::fflush(stdout);
      ::_exit(0);
    }
    say(scan::kUnloaded, stillMapped(path) ? "no" : "yes");
    say(scan::kEnd);
  }
  std::fflush(stdout);
  ::_exit(0);  // no static destruction: what the plugins left behind is not ours to run
}
