// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::PluginRecord — what a host knows about one plugin file: its state, why it was
// refused, what it registered. Produced by the PluginLoader (plugin_loader.h) and by the
// plugin scanner's child process (plugin_scan.h), which sends it as JSON.
//
// Thread safety: plain values. Ownership: plain values.

#include <aotiplug/plugin/manifest.h>
#include <aotiplug/registry/typed_registry.h>

#include <c10/core/DeviceType.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::PluginState
enum class PluginState {
  kLoaded,    // loaded, and serves at least one of its device types
  kFallback,  // loaded, but every device type it offers is served by a better plugin; it
              // serves again if that one goes
  kRejected,  // refused; never loaded in this process (or unloaded at once)
  kUnloaded,  // was loaded, and unloaded since
};

// aotiplug::PluginProblem — why a plugin was rejected.
enum class PluginProblem {
  kNone,
  kUntrusted,          // the file, a directory above it, or a library it needs could be
                       // written by others / belongs to someone else (failed_path says which)
  kNotSharedLibrary,   // not an ELF shared library for this machine
  kTruncated,          // an ELF file cut short
  kNoManifest,         // a shared library without AOTIPLUG_PLUGIN
  kBadManifest,        // a manifest that does not decode
  kAbiMismatch,        // SDK ABI major differs, or the plugin's minor is newer
  kTorchMismatch,      // built against another LibTorch version
  kCxx11AbiMismatch,   // built with the other _GLIBCXX_USE_CXX11_ABI
  kUnresolvedSymbol,   // dlopen failed on an undefined symbol
  kLoadFailed,         // dlopen failed otherwise (e.g. a static initializer threw)
  kRegistrationError,  // a registration or load hook failed while loading
  kUndeclaredDevice,   // registered a device type its manifest does not list
  kNoRegistrations,    // registered nothing
  kCrashed,            // loading or unloading it in the scanner's child process crashed,
                       // exited or aborted that process
  kTimedOut,           // loading or unloading it did not finish in time
  kNameConflict,       // another plugin file with the same name is already loaded
  kInUse,              // its previous load still has live runners: reload refused
  kScannerMissing,     // the out-of-process scanner could not be run
  kChanged,            // the file loaded is not the file checked (replaced in between)
};

// Short stable names ("abi mismatch", "fallback"), for CLI output and JSON.
const char* pluginProblemName(PluginProblem problem) noexcept;
const char* pluginStateName(PluginState state) noexcept;
// The inverses; kNone / kRejected for an unknown name.
PluginProblem pluginProblemFromName(const std::string& name) noexcept;
PluginState pluginStateFromName(const std::string& name) noexcept;

// aotiplug::PluginRegistrationInfo — one device type a plugin registered.
struct PluginRegistrationInfo {
  c10::DeviceType device_type = c10::DeviceType::CPU;
  Priority priority = kPriorityDefault;
  bool active = false;   // serves its device type now
  std::string lost_to;   // when not active: the origin that serves it instead
};

// aotiplug::PluginRecord
struct PluginRecord {
  std::string path;  // absolute, symlinks resolved
  PluginState state = PluginState::kRejected;
  PluginProblem problem = PluginProblem::kNone;
  std::string reason;       // why it was rejected (empty otherwise)
  std::string failed_path;  // for kUntrusted: the path that failed the check
  std::string stage;        // for kCrashed / kTimedOut / kLoadFailed in the scanner: what
                            // it was doing ("loading", "unloading")
  std::optional<PluginManifest> manifest;
  std::vector<PluginRegistrationInfo> registrations;
  std::vector<std::string> warnings;  // e.g. a device type lost to another plugin

  std::string name() const { return manifest ? manifest->name : std::string(); }
  // Loaded in this process, serving or standing by.
  bool loaded() const noexcept { return state == PluginState::kLoaded || state == PluginState::kFallback; }
};

// JSON view of a manifest: name, version, abi ("1.0"), torch_version, cxx11_abi,
// sdk_version, devices. The one used by `aotiplug plugins --json` and `plugin check --json`.
nlohmann::json manifestToJson(const PluginManifest& manifest);

// JSON view of a record (the manifest's fields flattened in), and back.
nlohmann::json toJson(const PluginRecord& record);
PluginRecord recordFromJson(const nlohmann::json& json);

}  // namespace aotiplug
