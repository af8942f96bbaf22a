// SPDX-License-Identifier: BSD-3-Clause
// aotiplug: the command-line host. Lists and checks plugins, runs and times models.
#include "cli.h"

#include <aotiplug/error.h>
#include <aotiplug/version.h>

#include <boost/program_options/errors.hpp>
#include <c10/util/Exception.h>
#include <torch/headeronly/version.h>

#include <cstring>
#include <iostream>

namespace {

constexpr const char* kUsage =
    "Usage: aotiplug <command> [options]\n"
    "\n"
    "Runs PyTorch AOTInductor models (.pt2 packages) through runner plugins.\n"
    "\n"
    "Commands:\n"
    "  plugins              list the plugins of a plugin directory and why any was rejected\n"
    "  run [MODEL.pt2]      run a package (default: the bundled demo model), compare it with\n"
    "                       PyTorch eager and time it\n"
    "  inspect MODEL.pt2    what a package holds (models, devices, inputs and outputs, constants,\n"
    "                       weights, extern kernels) and whether this host can run it\n"
    "  plugin check LIB.so  inspect one plugin without trusting it: manifest, compatibility,\n"
    "                       registrations, runner creation, unloading (in a child process)\n"
    "\n"
    "Run `aotiplug <command> --help` for a command's options.\n"
    "\n"
    "Exit codes:\n"
    "  0  success\n"
    "  1  the work failed (bad package, plugin or model error, I/O error)\n"
    "  2  bad command line\n"
    "  3  a check failed (outputs differ from eager, a plugin was rejected or failed its check,\n"
    "     a package cannot run on this host)\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace aotiplug::cli;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    (argc < 2 ? std::cerr : std::cout) << kUsage;
    return argc < 2 ? kExitUsage : kExitOk;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::cout << "aotiplug " << AOTIPLUG_VERSION << " (plugin ABI " << AOTIPLUG_ABI_MAJOR << "."
              << AOTIPLUG_ABI_MINOR << ", LibTorch " << TORCH_VERSION << ")\n";
    return kExitOk;
  }
  const std::string command = argv[1];
  try {
    if (command == "plugins") return runPluginsCommand(argc - 1, argv + 1);
    if (command == "run") return runRunCommand(argc - 1, argv + 1);
    if (command == "inspect") return runInspectCommand(argc - 1, argv + 1);
    if (command == "plugin") {
      // "__probe" is the child side of "check" (cmd_plugin_check.cpp), not for users.
      if (argc >= 3 && (std::strcmp(argv[2], "check") == 0 || std::strcmp(argv[2], "__probe") == 0)) {
        return runPluginCheckCommand(argc - 2, argv + 2);
      }
      const bool help = argc >= 3 && (std::strcmp(argv[2], "--help") == 0 || std::strcmp(argv[2], "-h") == 0);
      (help ? std::cout : std::cerr)
          << (help ? "" : "aotiplug: 'plugin' needs a subcommand\n")
          << "Usage: aotiplug plugin check LIB.so [options]\n"
             "\n"
             "Subcommands:\n"
             "  check LIB.so  inspect one plugin without trusting it (see aotiplug plugin check --help)\n";
      return help ? kExitOk : kExitUsage;
    }
    std::cerr << "aotiplug: unknown command '" << command << "'\n\n" << kUsage;
    return kExitUsage;
  } catch (const boost::program_options::error& e) {
    std::cerr << "aotiplug " << command << ": " << e.what() << " (see aotiplug " << command
              << " --help)\n";
    return kExitUsage;
  } catch (const aotiplug::Error& e) {
    std::cerr << "aotiplug: error: " << e.what() << "\n";
    return kExitError;
  } catch (const c10::Error& e) {
    // LibTorch's own errors carry a C++ stack trace in what(): the message is enough.
    std::cerr << "aotiplug: error: " << e.what_without_backtrace() << "\n";
    return kExitError;
  } catch (const std::exception& e) {
    std::cerr << "aotiplug: error: " << e.what() << "\n";
    return kExitError;
  }
}
