// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::PluginLoader — loads runner plugins from a plugin directory.
//
// For each candidate file (`*.so` in the directory and in its immediate subdirectories,
// taken in sorted order so results are deterministic) the loader:
//  1. opens it once and checks, on that descriptor, that it and every directory above it
//     can be trusted, and so can the libraries it takes from its own RUNPATH (path_trust.h),
//     unless the options relax it;
//  2. reads the manifest from that descriptor without loading anything (manifest_reader.h)
//     and refuses files that are not shared libraries, have no manifest, or were built for
//     another SDK ABI, LibTorch version or libstdc++ ABI — before any of the plugin's code
//     runs — and a second plugin of a name already loaded (naming both files);
//  3. unless the host opted out (LoaderOptions::scan_out_of_process), has the plugin loaded,
//     registered and unloaded in a child process first (plugin_scan.h), with a deadline,
//     and refuses a plugin that crashed, exited, hung or failed there, naming the stage;
//  4. loads it with Boost.DLL: absolute path, immediate binding (RTLD_NOW), local scope
//     (RTLD_LOCAL), and checks that the file mapped is the file it checked;
//  5. collects what the plugin registered while loading: registration errors, device types
//     its manifest does not declare, or no registration at all reject it (and unload it);
//  6. settles duplicate device types with the registry's priority rule: a plugin that
//     loses every device type it offers stays loaded as a fallback (PluginState::kFallback)
//     and serves again when the winner goes.
// One bad plugin never stops the others, and the loader never throws for a bad plugin:
// each gets a PluginRecord saying what happened and why (plugin_record.h).
//
// Lifetime: each loaded library is held through a shared lease. Runners created from a
// plugin hold the same lease, so unloading a plugin (or destroying the loader) removes its
// registrations at once but closes the library only when its last runner is gone; loading
// the same file again before then is refused ("still in use by N runner(s)").
//
// Thread safety: all member functions may be called concurrently (they are serialized);
// runners created from loaded plugins may be used from any thread.

#include <aotiplug/host/path_trust.h>
#include <aotiplug/host/plugin_record.h>
#include <aotiplug/host/plugin_scan.h>
#include <aotiplug/plugin/manifest.h>
#include <aotiplug/registry/typed_registry.h>

#include <c10/core/DeviceType.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::LoaderOptions
struct LoaderOptions {
  // Refuse plugin files and directories (and the directories above them, and the
  // libraries plugins take from their own RUNPATH) that are not owned by root or the
  // current user, or that group/others can write to (path_trust.h). Turn off only for tests.
  bool require_trusted_paths = true;
  // Accept relative paths (resolved against the current directory). Off by default so a
  // host never loads from its working directory by accident.
  bool allow_relative_paths = false;
  // Load each plugin in a child process before loading it here (plugin_scan.h). A host
  // that turns this off loads plugins it has not seen straight into its own process, and
  // a plugin that crashes or hangs while loading takes the host with it; `log` then names
  // each plugin before it is loaded, so the last line says which.
  bool scan_out_of_process = true;
  // The scanner, its deadline per plugin and its cache (default: the user's cache
  // directory, see defaultScanCacheFile(); empty: none).
  ScanOptions scan = [] {
    ScanOptions o;
    o.cache_file = defaultScanCacheFile();
    return o;
  }();
  // Where notices go ("loading plugin X in-process"); empty: standard error.
  std::function<void(const std::string&)> log;
};

// aotiplug::DirectoryLoad — what loadDirectory did: the records of the plugin files, or
// why the directory itself could not be used. Iterates over the records.
struct DirectoryLoad {
  std::string directory;
  std::string error;  // empty when the directory could be used
  PluginProblem error_problem = PluginProblem::kNone;  // kUntrusted or kLoadFailed
  std::string error_path;  // for kUntrusted: the path that failed the check
  std::vector<PluginRecord> plugins;

  bool usable() const noexcept { return error.empty(); }
  // Every plugin loaded (serving or as a fallback), and the directory was usable.
  bool allLoaded() const noexcept;
  auto begin() const noexcept { return plugins.begin(); }
  auto end() const noexcept { return plugins.end(); }
  std::size_t size() const noexcept { return plugins.size(); }
  bool empty() const noexcept { return plugins.empty(); }
  const PluginRecord& operator[](std::size_t i) const { return plugins.at(i); }
  const PluginRecord& at(std::size_t i) const { return plugins.at(i); }
};

// aotiplug::PluginLoader
class PluginLoader {
 public:
  explicit PluginLoader(LoaderOptions options = {}, HostAbi host = currentHostAbi());
  ~PluginLoader();  // unloads every plugin (libraries with live runners stay until then)
  PluginLoader(const PluginLoader&) = delete;
  PluginLoader& operator=(const PluginLoader&) = delete;

  // Loads every candidate in a directory; returns the records of those files, in order,
  // or why the directory cannot be used.
  DirectoryLoad loadDirectory(const std::string& directory);

  // Loads one plugin file.
  PluginRecord load(const std::string& path);

  // Unloads a loaded plugin, given its path or manifest name. False when none matched.
  bool unload(const std::string& path_or_name);
  void unloadAll();

  // Every plugin this loader has seen, with its current state, in load order.
  std::vector<PluginRecord> plugins() const;
  std::optional<PluginRecord> find(const std::string& path_or_name) const;

  // Which loaded plugin serves each device type now.
  std::map<c10::DeviceType, PluginRecord> servingPlugins() const;

  // The candidate files of a directory, in the order loadDirectory() takes them.
  // *error (when given): why `directory` could not be read (left empty when it was);
  // *skipped (when given): why each unreadable subdirectory was skipped. Without them,
  // what could be read.
  static std::vector<std::string> candidates(const std::string& directory, std::string* error,
                                             std::vector<std::string>* skipped);
  static std::vector<std::string> candidates(const std::string& directory);

  const HostAbi& hostAbi() const noexcept { return host_; }

 private:
  struct Loaded;
  struct Candidate;
  // Steps 1 and 2 (nothing of the plugin runs): the candidate, or its rejection. `memo`
  // keeps what the trust checks of one batch of candidates found.
  Candidate checkLocked(const std::string& path, TrustMemo* memo);
  // Steps 4 and 5, for a candidate that passed (and, when scanning, came through it).
  PluginRecord loadCheckedLocked(Candidate& candidate);
  std::vector<PluginRecord> loadManyLocked(const std::vector<std::string>& paths);
  PluginRecord& rememberLocked(PluginRecord record);
  void settleDuplicatesLocked();
  void refreshRegistrationsLocked(PluginRecord& record) const;
  void unloadLocked(const std::string& path);
  void notice(const std::string& text) const;

  LoaderOptions options_;
  HostAbi host_;
  mutable std::mutex mutex_;
  std::vector<PluginRecord> records_;                       // in load order
  std::map<std::string, std::shared_ptr<Loaded>> loaded_;  // path -> library lease
  std::map<std::string, std::weak_ptr<Loaded>> retired_;   // unloaded, maybe still in use
};

}  // namespace aotiplug
