// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::probePlugin — exercises one plugin library against the plugin contract.
//
// Loads the plugin with a PluginLoader of its own, then checks what a host relies on:
//  - it loads, and registers exactly the device types its manifest declares;
//  - it reports errors as errors: asked for a runner on a model file that does not exist,
//    it must fail with a message (not crash, not return a runner);
//  - optionally, it runs a model: creates a runner through the executor for a package,
//    runs its sample inputs, compares with the eager outputs the package carries, and
//    destroys the runner;
//  - it unloads: after the loader lets go, the library is no longer mapped.
// The probe runs in the calling process: a plugin that crashes or hangs takes the caller
// with it. `aotiplug plugin check` therefore runs it in a child process with a deadline,
// and on_stage tells it what the probe is doing at each moment; the conformance kit runs
// its parts as separate test cases.
//
// Thread safety: not reentrant for the same plugin path (it loads and unloads it).

#include <aotiplug/host/plugin_loader.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::ProbeOptions
struct ProbeOptions {
  std::string model_package;  // a .pt2 to run through the plugin (optional)
  std::string device;         // device string for the model (default: the package's)
  LoaderOptions loader;
  // Called before each stage: "loading", "asking for a runner", "running the model",
  // "unloading".
  std::function<void(const std::string& stage)> on_stage;
};

// aotiplug::ProbeReport
struct ProbeReport {
  PluginRecord record;                  // what the loader said
  std::vector<std::string> registered;  // device types it registered
  bool reports_errors = false;          // refused a missing model file with a message
  std::string error_example;            // that message
  bool model_checked = false;           // a model was given and run
  bool model_compared = false;          // the package had eager outputs to compare with
  bool model_matches_eager = false;
  std::string model_summary;            // e.g. "1 output(s), max abs difference 3e-08"
  bool unloads_cleanly = false;
  std::vector<std::string> problems;    // empty when the plugin passed

  bool ok() const noexcept { return problems.empty(); }
  nlohmann::json toJson() const;
};

ProbeReport probePlugin(const std::string& path, const ProbeOptions& options);

// The device string that selects a device type ("cpu", "cuda").
std::string defaultDeviceString(c10::DeviceType type);

}  // namespace aotiplug
