// SPDX-License-Identifier: BSD-3-Clause
// aotiplug plugin check: placeholder until the checker lands (issue 7).
#include "cli.h"

#include <iostream>

namespace aotiplug::cli {

int runPluginCheckCommand(int /*argc*/, char** /*argv*/) {
  std::cerr << "aotiplug plugin check: not implemented yet\n";
  return kExitError;
}

}  // namespace aotiplug::cli
