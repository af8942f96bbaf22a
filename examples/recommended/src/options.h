// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The plugin's options, read once from the environment when the plugin is loaded:
//   CHECKED_CPU_OPTIONS="outputs=1"   also check outputs (default: inputs only)
// Creator arguments are fixed by the registry (model path, num_models, device, cubin dir,
// single-threaded), so plugin-wide settings come from the environment or a file.
//
// Thread safety: written once by loadOptions() during dlopen (before any runner exists),
// read-only afterwards.

#include <aotiplug/error.h>

#include <cstdlib>
#include <sstream>
#include <string>

namespace checked_cpu {

struct Options {
  bool check_outputs = false;
};

inline Options& options() {
  static Options o;  // hidden visibility and -fno-gnu-unique: private to this plugin
  return o;
}

inline void loadOptions() {
  const char* text = std::getenv("CHECKED_CPU_OPTIONS");
  if (text == nullptr) return;
  std::istringstream items(text);
  for (std::string item; std::getline(items, item, ',');) {
    if (item == "outputs=1") {
      options().check_outputs = true;
    } else if (item == "outputs=0" || item.empty()) {
      options().check_outputs = false;
    } else {
      throw aotiplug::Error(aotiplug::StatusCode::kInvalidArgument,
                            "CHECKED_CPU_OPTIONS: unknown option '" + item + "' (known: outputs=0|1)");
    }
  }
}

}  // namespace checked_cpu
