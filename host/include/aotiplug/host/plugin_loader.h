// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::PluginLoader — loads runner plugins from a plugin directory.
//
// For each candidate file (`*.so` in the directory and in its immediate subdirectories,
// taken in sorted order so results are deterministic) the loader:
//  1. checks that the file and its directory can be trusted (path_trust.h), unless the
//     options relax it;
//  2. reads the manifest from the file without loading it (manifest_reader.h) and refuses
//     files that are not shared libraries, have no manifest, or were built for another SDK
//     ABI, LibTorch version or libstdc++ ABI — before any of the plugin's code runs;
//  3. loads it with Boost.DLL: absolute path, immediate binding (RTLD_NOW) so a missing
//     symbol is an error now rather than a crash later, local scope (RTLD_LOCAL);
//  4. collects what the plugin registered while loading: registration errors, device types
//     its manifest does not declare, or no registration at all reject it (and unload it);
//  5. settles duplicate device types with the registry's priority rule: a plugin that
//     loses every device type it offers is rejected, naming the winner.
// One bad plugin never stops the others, and the loader never throws for a bad plugin:
// each gets a PluginRecord saying "loaded" or "rejected" and why.
//
// Lifetime: each loaded library is held through a shared lease. Runners created from a
// plugin hold the same lease, so unloading a plugin (or destroying the loader) removes its
// registrations at once but closes the library only when its last runner is gone.
//
// Thread safety: all member functions may be called concurrently (they are serialized);
// runners created from loaded plugins may be used from any thread.

#include <aotiplug/manifest.h>
#include <aotiplug/typed_registry.h>

#include <c10/core/DeviceType.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::PluginState
enum class PluginState { kLoaded, kRejected, kUnloaded };

// aotiplug::PluginProblem — why a plugin was rejected.
enum class PluginProblem {
  kNone,
  kUntrusted,          // the file or a directory is writable by others / foreign-owned
  kNotSharedLibrary,   // not an ELF shared library for this machine
  kTruncated,          // an ELF file cut short
  kNoManifest,         // a shared library without AOTIPLUG_PLUGIN
  kBadManifest,        // a manifest that does not decode
  kAbiMismatch,        // SDK ABI major differs, or the plugin's minor is newer
  kTorchMismatch,      // built against another LibTorch version
  kCxx11AbiMismatch,   // built with the other _GLIBCXX_USE_CXX11_ABI
  kUnresolvedSymbol,   // dlopen failed on an undefined symbol
  kLoadFailed,         // dlopen failed otherwise
  kRegistrationError,  // a registration or load hook failed while loading
  kUndeclaredDevice,   // registered a device type its manifest does not list
  kNoRegistrations,    // registered nothing
  kDuplicateLost,      // every device type it offers is served by a better plugin
  kAlreadyLoaded,      // the same file is already loaded by this loader
};

// Short stable name ("abi mismatch"), for CLI output and JSON.
const char* pluginProblemName(PluginProblem problem) noexcept;
const char* pluginStateName(PluginState state) noexcept;

// aotiplug::PluginRegistrationInfo — one device type a plugin registered.
struct PluginRegistrationInfo {
  c10::DeviceType device_type = c10::DeviceType::CPU;
  Priority priority = kPriorityDefault;
  bool active = false;   // serves its device type now
  std::string lost_to;   // when not active: the origin that serves it instead
};

// aotiplug::PluginRecord — what the loader knows about one plugin file.
struct PluginRecord {
  std::string path;  // absolute, symlinks resolved
  PluginState state = PluginState::kRejected;
  PluginProblem problem = PluginProblem::kNone;
  std::string reason;  // why it was rejected (empty when loaded)
  std::optional<PluginManifest> manifest;
  std::vector<PluginRegistrationInfo> registrations;
  std::vector<std::string> warnings;  // e.g. a device type lost to another plugin

  std::string name() const { return manifest ? manifest->name : std::string(); }
  bool loaded() const noexcept { return state == PluginState::kLoaded; }
};

// aotiplug::LoaderOptions
struct LoaderOptions {
  // Refuse plugin files and directories that are not owned by root or the current user,
  // or that group/others can write to (path_trust.h). Turn off only for tests.
  bool require_trusted_paths = true;
  // Accept relative paths (resolved against the current directory). Off by default so a
  // host never loads from its working directory by accident.
  bool allow_relative_paths = false;
};

// aotiplug::PluginLoader
class PluginLoader {
 public:
  explicit PluginLoader(LoaderOptions options = {}, HostAbi host = currentHostAbi());
  ~PluginLoader();  // unloads every plugin (libraries with live runners stay until then)
  PluginLoader(const PluginLoader&) = delete;
  PluginLoader& operator=(const PluginLoader&) = delete;

  // Loads every candidate in a directory; returns the records of those files, in order.
  // A directory that cannot be used gives one rejected record for the directory itself.
  std::vector<PluginRecord> loadDirectory(const std::string& directory);

  // Loads one plugin file.
  PluginRecord load(const std::string& path);

  // Unloads a loaded plugin, given its path or manifest name. False when none matched.
  bool unload(const std::string& path_or_name);
  void unloadAll();

  // Every plugin this loader has seen, with its current state, in load order.
  std::vector<PluginRecord> plugins() const;
  std::optional<PluginRecord> find(const std::string& path_or_name) const;

  // The candidate files of a directory, in the order loadDirectory() takes them.
  static std::vector<std::string> candidates(const std::string& directory);

  const HostAbi& hostAbi() const noexcept { return host_; }

 private:
  struct Loaded;
  PluginRecord loadLocked(const std::string& path);
  void settleDuplicatesLocked();
  void refreshRegistrationsLocked(PluginRecord& record) const;
  void unloadLocked(const std::string& path);

  LoaderOptions options_;
  HostAbi host_;
  mutable std::mutex mutex_;
  std::vector<PluginRecord> records_;                       // in load order
  std::map<std::string, std::shared_ptr<Loaded>> loaded_;  // path -> library lease
};

}  // namespace aotiplug
