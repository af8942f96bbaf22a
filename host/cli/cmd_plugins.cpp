// SPDX-License-Identifier: BSD-3-Clause
// aotiplug plugins: what is in a plugin directory, which plugin serves each device type,
// and why anything was rejected.
#include "cli.h"

#include <boost/program_options.hpp>

#include <c10/core/DeviceType.h>

#include <algorithm>
#include <iomanip>
#include <iostream>

namespace aotiplug::cli {

namespace po = boost::program_options;

namespace {

std::string devicesOf(const PluginRecord& r) {
  std::string devices;
  if (r.manifest) {
    for (c10::DeviceType d : r.manifest->devices) devices += (devices.empty() ? "" : ",") + c10::DeviceTypeName(d, true);
  }
  return devices;
}

}  // namespace

int runPluginsCommand(int argc, char** argv) {
  po::options_description options(
      "Usage: aotiplug plugins [[--dir] DIR] [--json]\n\n"
      "Loads every plugin in a plugin directory (*.so in it and in its immediate\n"
      "subdirectories) — each in a child process first — and lists each with its state\n"
      "(loaded, fallback: kept for a device type a better plugin serves, rejected), its\n"
      "device types and, for a rejected plugin, the reason; then which plugin serves each\n"
      "device type.\n\n"
      "Exit codes: 0 every plugin loaded or stands as a fallback, 3 some plugin was\n"
      "rejected, 1 the directory cannot be used, 2 bad arguments.\n\nOptions");
  options.add_options()
      ("help,h", "show this help")
      ("dir,d", po::value<std::string>()->default_value(defaultPluginDir()), "plugin directory")
      ("json", "print JSON instead of text");
  po::positional_options_description positional;
  positional.add("dir", 1);  // `aotiplug plugins DIR`, as `inspect` and `run` take their file
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(options).positional(positional).run(), vm);
  if (vm.count("help") != 0) {
    std::cout << options << "\n";
    return kExitOk;
  }
  po::notify(vm);
  const std::string dir = vm["dir"].as<std::string>();

  PluginLoader loader;
  const DirectoryLoad load = loadPlugins(loader, dir);
  const auto serving = loader.servingPlugins();

  if (vm.count("json") != 0) {
    nlohmann::json out;
    out["directory"] = load.directory;
    if (!load.usable()) {
      out["error"] = {{"problem", pluginProblemName(load.error_problem)}, {"reason", load.error}};
      if (!load.error_path.empty()) out["error"]["failed_path"] = load.error_path;
    }
    const HostAbi& host = loader.hostAbi();
    out["host"] = {{"abi", std::to_string(host.abi_major) + "." + std::to_string(host.abi_minor)},
                   {"torch_version", host.torch_version},
                   {"cxx11_abi", host.cxx11_abi}};
    out["plugins"] = nlohmann::json::array();
    for (const auto& r : load) out["plugins"].push_back(toJson(r));
    out["devices"] = nlohmann::json::object();
    for (const auto& [device, r] : serving) {
      out["devices"][c10::DeviceTypeName(device, true)] = {{"plugin", r.name()}, {"path", r.path}};
    }
    std::cout << out.dump(2) << "\n";
  } else if (!load.usable()) {
    std::cerr << "aotiplug: " << load.error << "\n";
  } else {
    std::cout << "plugin directory " << load.directory << ": " << load.size() << " plugin file(s)\n";
    // Columns as wide as their longest value.
    std::size_t w_state = 5, w_name = 4, w_version = 7, w_devices = 7;
    for (const auto& r : load) {
      w_state = std::max(w_state, std::string(pluginStateName(r.state)).size());
      w_name = std::max(w_name, r.name().size());
      w_version = std::max(w_version, r.manifest ? r.manifest->version.size() : 1);
      w_devices = std::max(w_devices, devicesOf(r).size());
    }
    const auto cell = [](const std::string& text, std::size_t width) {
      std::cout << std::left << std::setw(static_cast<int>(width + 2)) << text;
    };
    std::cout << "  ";
    cell("state", w_state);
    cell("name", w_name);
    cell("version", w_version);
    cell("devices", w_devices);
    std::cout << "file\n";
    for (const auto& r : load) {
      std::cout << "  ";
      cell(pluginStateName(r.state), w_state);
      cell(r.manifest ? r.name() : "-", w_name);
      cell(r.manifest ? r.manifest->version : "-", w_version);
      cell(r.manifest ? devicesOf(r) : "-", w_devices);
      std::cout << r.path << "\n";
      if (r.state == PluginState::kRejected) {
        std::cout << "      " << pluginProblemName(r.problem) << ": " << r.reason << "\n";
      }
      for (const auto& w : r.warnings) std::cout << "      note: " << w << "\n";
    }
    if (!serving.empty()) {
      std::cout << "device types\n";
      for (const auto& [device, r] : serving) {
        std::cout << "  " << std::left << std::setw(12) << c10::DeviceTypeName(device, true) << " served by '"
                  << r.name() << "' (" << r.path << ")\n";
      }
    }
  }
  if (!load.usable()) return kExitError;
  return load.allLoaded() ? kExitOk : kExitCheck;
}

}  // namespace aotiplug::cli
