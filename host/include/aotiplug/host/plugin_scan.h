// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::scanPlugins — loads plugins in a child process before a host loads them in its
// own (GStreamer's plugin scanner, with the reasons kept).
//
// Loading a plugin runs its code: static initializers while it loads, static destructors
// while it unloads. If that code crashes, exits, aborts, hangs, spins, throws out of a
// static initializer (which leaves glibc's loader lock held: the next dlopen in that
// process hangs) or otherwise poisons the process, it must not be the host's process. So
// the loader first has the scanner program (aotiplug-plugin-scanner) load, register and
// unload each plugin it has not seen, in a child process, with a deadline per plugin; only
// plugins that came through are loaded in the host. The child reports what it is doing as
// it goes, so a plugin that kills or stalls it is named, with the stage it was in.
//
// Verdicts are cached in a file, keyed by the plugin's path, size, modification time and
// CRC-32 and by this host's identity (aotiplug, SDK ABI, LibTorch, libstdc++ ABI): a
// changed plugin or host is scanned again, an unchanged one costs nothing at the next
// start. Several plugins are scanned in one child; a child a plugin killed is replaced
// for the plugins after it.
//
// Thread safety: scanPlugins may be called from several threads; the cache file is
// replaced atomically (concurrent hosts: the last writer wins, and no entry is ever half
// written). Ownership: results are plain values.

#include <aotiplug/host/child_process.h>
#include <aotiplug/host/plugin_record.h>
#include <aotiplug/plugin/manifest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::ScanOptions
struct ScanOptions {
  // The scanner program; empty: defaultScannerPath().
  std::string scanner;
  // How long loading (and, separately, unloading) one plugin may take in the child.
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};
  // How long the child may take to start (map LibTorch and the SDK) before it reports its
  // first plugin: a cold page cache or a sanitized build takes seconds here, and a scanner
  // that never starts leaves every plugin unscanned (kScannerMissing).
  std::chrono::milliseconds startup_timeout{kChildStartupTimeout};
  // Where verdicts are kept between processes; empty: nowhere (every call scans).
  std::string cache_file;
  // Passed to the child's loader (tests only turn it off).
  bool require_trusted_paths = true;
};

// aotiplug::ScanVerdict
struct ScanVerdict {
  bool ok = false;         // loaded, registered and unloaded cleanly in the child
  PluginProblem problem = PluginProblem::kNone;  // when not ok
  std::string reason;      // when not ok: what happened, with the stage
  std::string stage;       // the stage it failed in ("loading", "unloading")
  std::vector<std::string> warnings;
  bool cached = false;     // read from the cache, not scanned now
};

// Verdicts for `paths` (absolute, symlinks resolved), by path.
std::map<std::string, ScanVerdict> scanPlugins(const std::vector<std::string>& paths,
                                               const ScanOptions& options,
                                               const HostAbi& host = currentHostAbi());

// The scanner program beside libaotiplug_host (the build tree), else the installed one
// (<libexecdir>/aotiplug/aotiplug-plugin-scanner).
std::string defaultScannerPath();

// $XDG_CACHE_HOME/aotiplug/plugin-scan.json, else ~/.cache/aotiplug/plugin-scan.json;
// empty when neither variable is set.
std::string defaultScanCacheFile();

}  // namespace aotiplug
