// SPDX-License-Identifier: BSD-3-Clause
// aotiplug plugins: what is in a plugin directory, and why anything was rejected.
#include "cli.h"

#include <boost/program_options.hpp>

#include <c10/core/DeviceType.h>

#include <iomanip>
#include <iostream>

namespace aotiplug::cli {

namespace po = boost::program_options;

int runPluginsCommand(int argc, char** argv) {
  po::options_description options(
      "Usage: aotiplug plugins [--dir DIR] [--json]\n\n"
      "Loads every plugin in a plugin directory (*.so in it and in its immediate\n"
      "subdirectories) and lists each with its state, device types and, for a rejected\n"
      "plugin, the reason.\n\n"
      "Exit codes: 0 all plugins loaded, 3 some plugin was rejected, 1 the directory\n"
      "cannot be used, 2 bad arguments.\n\nOptions");
  options.add_options()
      ("help,h", "show this help")
      ("dir,d", po::value<std::string>()->default_value(defaultPluginDir()), "plugin directory")
      ("json", "print JSON instead of text");
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(options).run(), vm);
  if (vm.count("help") != 0) {
    std::cout << options << "\n";
    return kExitOk;
  }
  po::notify(vm);
  const std::string dir = vm["dir"].as<std::string>();

  PluginLoader loader;
  const std::vector<PluginRecord> records = loadPlugins(loader, dir);
  const bool directory_failed =
      records.size() == 1 && records[0].state == PluginState::kRejected && !records[0].manifest &&
      (records[0].problem == PluginProblem::kLoadFailed || records[0].problem == PluginProblem::kUntrusted) &&
      records[0].path == std::filesystem::absolute(dir).lexically_normal().string();
  bool all_loaded = true;
  for (const auto& r : records) all_loaded = all_loaded && r.loaded();

  if (vm.count("json") != 0) {
    nlohmann::json out;
    out["directory"] = std::filesystem::absolute(dir).lexically_normal().string();
    const HostAbi& host = loader.hostAbi();
    out["host"] = {{"abi", std::to_string(host.abi_major) + "." + std::to_string(host.abi_minor)},
                   {"torch_version", host.torch_version},
                   {"cxx11_abi", host.cxx11_abi}};
    out["plugins"] = nlohmann::json::array();
    for (const auto& r : records) out["plugins"].push_back(toJson(r));
    std::cout << out.dump(2) << "\n";
  } else if (directory_failed) {
    std::cerr << "aotiplug: " << records[0].reason << "\n";
  } else {
    std::cout << "plugin directory " << std::filesystem::absolute(dir).lexically_normal().string()
              << ": " << records.size() << " plugin file(s)\n";
    for (const auto& r : records) {
      std::cout << "  " << std::left << std::setw(9) << pluginStateName(r.state);
      if (r.manifest) {
        std::string devices;
        for (c10::DeviceType d : r.manifest->devices) {
          devices += (devices.empty() ? "" : ",") + c10::DeviceTypeName(d, true);
        }
        std::cout << std::setw(12) << r.manifest->name << std::setw(10) << r.manifest->version
                  << std::setw(8) << devices;
      } else {
        std::cout << std::setw(30) << "-";
      }
      std::cout << r.path << "\n";
      if (!r.loaded()) {
        std::cout << "           " << pluginProblemName(r.problem) << ": " << r.reason << "\n";
      }
      for (const auto& w : r.warnings) std::cout << "           warning: " << w << "\n";
    }
  }
  if (directory_failed) return kExitError;
  return all_loaded ? kExitOk : kExitCheck;
}

}  // namespace aotiplug::cli
