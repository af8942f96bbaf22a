// SPDX-License-Identifier: BSD-3-Clause
#include <aotiplug/host/plugin_loader.h>

#include <aotiplug/elf_image_check.h>

#include <aotiplug/host/manifest_reader.h>
#include <aotiplug/host/path_trust.h>
#include <aotiplug/registration_log.h>
#include <aotiplug/runner_registry.h>

#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace aotiplug {

namespace fs = std::filesystem;

const char* pluginStateName(PluginState state) noexcept {
  switch (state) {
    case PluginState::kLoaded: return "loaded";
    case PluginState::kRejected: return "rejected";
    case PluginState::kUnloaded: return "unloaded";
  }
  return "unknown";
}

const char* pluginProblemName(PluginProblem problem) noexcept {
  switch (problem) {
    case PluginProblem::kNone: return "none";
    case PluginProblem::kUntrusted: return "untrusted path";
    case PluginProblem::kNotSharedLibrary: return "not a shared library";
    case PluginProblem::kTruncated: return "truncated file";
    case PluginProblem::kNoManifest: return "no manifest";
    case PluginProblem::kBadManifest: return "bad manifest";
    case PluginProblem::kAbiMismatch: return "abi mismatch";
    case PluginProblem::kTorchMismatch: return "libtorch version mismatch";
    case PluginProblem::kCxx11AbiMismatch: return "cxx11 abi mismatch";
    case PluginProblem::kUnresolvedSymbol: return "unresolved symbol";
    case PluginProblem::kLoadFailed: return "load failed";
    case PluginProblem::kRegistrationError: return "registration error";
    case PluginProblem::kUndeclaredDevice: return "undeclared device type";
    case PluginProblem::kNoRegistrations: return "no registrations";
    case PluginProblem::kDuplicateLost: return "duplicate device type";
    case PluginProblem::kAlreadyLoaded: return "already loaded";
  }
  return "unknown";
}

// A loaded plugin library. Shared with the registry (weakly) and with every runner the
// plugin creates (strongly): the library closes when the last of them lets go.
struct PluginLoader::Loaded {
  boost::dll::shared_library library;
};

namespace {

std::string deviceName(c10::DeviceType type) {
  return c10::DeviceTypeName(type, /*lower_case=*/true);
}

PluginRecord rejected(PluginRecord record, PluginProblem problem, std::string reason) {
  record.state = PluginState::kRejected;
  record.problem = problem;
  record.reason = std::move(reason);
  return record;
}

PluginProblem fromManifestStatus(ManifestReadStatus status) {
  switch (status) {
    case ManifestReadStatus::kNotElf:
    case ManifestReadStatus::kNotSharedLibrary: return PluginProblem::kNotSharedLibrary;
    case ManifestReadStatus::kTruncated: return PluginProblem::kTruncated;
    case ManifestReadStatus::kNoManifest: return PluginProblem::kNoManifest;
    case ManifestReadStatus::kBadManifest: return PluginProblem::kBadManifest;
    case ManifestReadStatus::kIoError:
    case ManifestReadStatus::kOk: break;
  }
  return PluginProblem::kLoadFailed;
}

PluginProblem fromIncompatibility(Incompatibility problem) {
  switch (problem) {
    case Incompatibility::kTorchVersion: return PluginProblem::kTorchMismatch;
    case Incompatibility::kCxx11Abi: return PluginProblem::kCxx11AbiMismatch;
    case Incompatibility::kAbiMajor:
    case Incompatibility::kAbiMinorNewer:
    case Incompatibility::kNone: break;
  }
  return PluginProblem::kAbiMismatch;
}

std::vector<RunnerRegistry::Registration> registrationsOf(const std::string& library) {
  std::vector<RunnerRegistry::Registration> out;
  for (auto& r : runnerRegistry().registrations()) {
    if (r.origin.library == library) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

PluginLoader::PluginLoader(LoaderOptions options, HostAbi host)
    : options_(options), host_(std::move(host)) {}

PluginLoader::~PluginLoader() { unloadAll(); }

std::vector<std::string> PluginLoader::candidates(const std::string& directory) {
  std::vector<std::string> out;
  std::error_code ec;
  auto consider = [&](const fs::directory_entry& entry) {
    std::error_code e;
    if (entry.path().extension() == ".so" && entry.is_regular_file(e)) {
      out.push_back(entry.path().string());
    }
  };
  for (const auto& entry : fs::directory_iterator(directory, ec)) {
    std::error_code e;
    if (entry.is_directory(e)) {
      // One level of subdirectories: <plugins>/<name>/lib<name>.so, as Triton lays out
      // backends. Build trees keep object files in *.p folders: skip those.
      if (entry.path().extension() == ".p") continue;
      for (const auto& inner : fs::directory_iterator(entry.path(), e)) consider(inner);
    } else {
      consider(entry);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<PluginRecord> PluginLoader::loadDirectory(const std::string& directory) {
  std::lock_guard<std::mutex> lock(mutex_);
  PluginRecord dir_record;
  dir_record.path = directory;
  if (!options_.allow_relative_paths && !fs::path(directory).is_absolute()) {
    return {rejected(dir_record, PluginProblem::kUntrusted,
                     "plugin directory '" + directory +
                         "' is relative: the loader takes absolute paths only")};
  }
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) {
    return {rejected(dir_record, PluginProblem::kLoadFailed,
                     "plugin directory " + directory + " does not exist or is not a directory")};
  }
  if (options_.require_trusted_paths) {
    std::string why = checkTrustedPath(directory, "plugin directory");
    if (!why.empty()) return {rejected(dir_record, PluginProblem::kUntrusted, why)};
  }
  std::vector<std::string> paths;
  for (const std::string& candidate : candidates(directory)) {
    PluginRecord r = loadLocked(fs::absolute(candidate).string());
    paths.push_back(r.path);
  }
  settleDuplicatesLocked();
  std::vector<PluginRecord> out;
  for (const std::string& p : paths) {
    auto it = std::find_if(records_.begin(), records_.end(),
                           [&](const PluginRecord& r) { return r.path == p; });
    if (it != records_.end()) out.push_back(*it);
  }
  return out;
}

PluginRecord PluginLoader::load(const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  PluginRecord record = loadLocked(path);
  settleDuplicatesLocked();
  for (const PluginRecord& r : records_) {
    if (r.path == record.path) return r;
  }
  return record;
}

PluginRecord PluginLoader::loadLocked(const std::string& requested) {
  PluginRecord record;
  record.path = requested;
  auto remember = [&](PluginRecord r) {
    auto it = std::find_if(records_.begin(), records_.end(),
                           [&](const PluginRecord& x) { return x.path == r.path; });
    if (it != records_.end()) {
      *it = r;
    } else {
      records_.push_back(r);
    }
    return r;
  };

  if (!options_.allow_relative_paths && !fs::path(requested).is_absolute()) {
    return remember(rejected(record, PluginProblem::kUntrusted,
                             "plugin path '" + requested +
                                 "' is relative: the loader takes absolute paths only"));
  }
  char resolved[PATH_MAX];
  if (::realpath(requested.c_str(), resolved) == nullptr) {
    return remember(rejected(record, PluginProblem::kLoadFailed,
                             "cannot resolve " + requested + ": " + std::strerror(errno)));
  }
  record.path = resolved;
  if (loaded_.count(record.path) != 0) {
    for (const PluginRecord& r : records_) {
      if (r.path == record.path) return r;  // loading twice is a no-op
    }
  }

  if (options_.require_trusted_paths) {
    std::string why = checkTrustedPath(record.path, "plugin file");
    if (!why.empty()) return remember(rejected(record, PluginProblem::kUntrusted, why));
  }

  // Nothing of the plugin has run yet: decide from the file alone.
  ManifestReadResult manifest = readManifest(record.path);
  if (manifest.status != ManifestReadStatus::kOk) {
    return remember(rejected(record, fromManifestStatus(manifest.status), manifest.message));
  }
  record.manifest = manifest.manifest;
  const Compatibility verdict = checkCompatibility(*record.manifest, host_);
  if (!verdict.ok()) {
    return remember(rejected(record, fromIncompatibility(verdict.problem), verdict.message));
  }

  // dlopen would map a truncated file past its end and die of SIGBUS: refuse it first.
  if (std::string why = checkElfImage(record.path); !why.empty()) {
    return remember(rejected(record, PluginProblem::kTruncated, why));
  }

  // Load it. The lease is attached first, so a runner created while the library is still
  // being validated keeps it alive.
  registrationLog().take(record.path);  // stale entries from an earlier attempt
  auto loaded = std::make_shared<Loaded>();
  runnerRegistry().attachLease(record.path, std::shared_ptr<const void>(loaded));
  auto discard = [&](PluginRecord r, PluginProblem problem, std::string reason) {
    runnerRegistry().removeLibrary(record.path);
    runnerRegistry().detachLease(record.path);
    return remember(rejected(std::move(r), problem, std::move(reason)));
  };
  try {
    namespace mode = boost::dll::load_mode;
    loaded->library.load(boost::dll::fs::path(record.path), mode::rtld_now | mode::rtld_local);
  } catch (const std::exception& e) {
    const std::string text = e.what();
    const std::string marker = "undefined symbol: ";
    const auto at = text.find(marker);
    if (at != std::string::npos) {
      std::string symbol = text.substr(at + marker.size());
      symbol = symbol.substr(0, symbol.find_first_of(" \n\t,)"));
      return discard(record, PluginProblem::kUnresolvedSymbol,
                     "unresolved symbol " + symbol + " (" + text + ")");
    }
    return discard(record, PluginProblem::kLoadFailed, "dlopen failed: " + text);
  }

  // What did its static initializers do?
  std::vector<RegistrationLog::Entry> errors = registrationLog().take(record.path);
  if (!errors.empty()) {
    std::string reason;
    for (const auto& e : errors) reason += (reason.empty() ? "" : "; ") + e.message;
    return discard(record, PluginProblem::kRegistrationError, reason);
  }
  const auto registrations = registrationsOf(record.path);
  if (registrations.empty()) {
    return discard(record, PluginProblem::kNoRegistrations,
                   "the plugin registered no runner (is AOTIPLUG_REGISTER_RUNNER in it?)");
  }
  const auto& declared = record.manifest->devices;
  for (const auto& r : registrations) {
    if (std::find(declared.begin(), declared.end(), r.key) == declared.end()) {
      std::string list;
      for (c10::DeviceType d : declared) list += (list.empty() ? "" : ", ") + deviceName(d);
      return discard(record, PluginProblem::kUndeclaredDevice,
                     "registered device type '" + deviceName(r.key) +
                         "', which its manifest does not declare (declared: " + list + ")");
    }
  }
  for (c10::DeviceType d : declared) {
    const bool registered = std::any_of(registrations.begin(), registrations.end(),
                                        [&](const auto& r) { return r.key == d; });
    if (!registered) {
      record.warnings.push_back("declares device type '" + deviceName(d) +
                                "' but registered no runner for it");
    }
  }
  loaded_[record.path] = std::move(loaded);
  record.state = PluginState::kLoaded;
  record.problem = PluginProblem::kNone;
  record.reason.clear();
  refreshRegistrationsLocked(record);
  return remember(record);
}

void PluginLoader::refreshRegistrationsLocked(PluginRecord& record) const {
  record.registrations.clear();
  for (const auto& r : registrationsOf(record.path)) {
    PluginRegistrationInfo info;
    info.device_type = r.key;
    info.priority = r.priority;
    info.active = r.active;
    if (!r.active) {
      if (auto winner = runnerRegistry().winner(r.key)) {
        info.lost_to = winner->origin.describe() + " (priority " +
                       std::to_string(winner->priority) + " vs " + std::to_string(r.priority) +
                       ")";
      }
    }
    record.registrations.push_back(std::move(info));
  }
}

void PluginLoader::settleDuplicatesLocked() {
  for (PluginRecord& record : records_) {
    if (record.state != PluginState::kLoaded) continue;
    refreshRegistrationsLocked(record);
    record.warnings.erase(std::remove_if(record.warnings.begin(), record.warnings.end(),
                                         [](const std::string& w) {
                                           return w.rfind("device type '", 0) == 0;
                                         }),
                          record.warnings.end());
    bool any_active = false;
    std::string lost;
    for (const auto& r : record.registrations) {
      if (r.active) {
        any_active = true;
        continue;
      }
      std::string line = "device type '" + deviceName(r.device_type) + "' lost to " + r.lost_to;
      lost += (lost.empty() ? "" : "; ") + line;
      record.warnings.push_back(line + "; kept as a fallback");
    }
    if (!any_active) {
      // Loses every device type it offers: of no use, reject it.
      record.warnings.clear();
      unloadLocked(record.path);
      record.state = PluginState::kRejected;
      record.problem = PluginProblem::kDuplicateLost;
      record.reason = lost;
      record.registrations.clear();
    }
  }
}

void PluginLoader::unloadLocked(const std::string& path) {
  runnerRegistry().removeLibrary(path);
  runnerRegistry().detachLease(path);
  loaded_.erase(path);  // closes the library unless a runner still holds its lease
}

bool PluginLoader::unload(const std::string& path_or_name) {
  std::lock_guard<std::mutex> lock(mutex_);
  bool any = false;
  for (PluginRecord& r : records_) {
    if (r.state != PluginState::kLoaded) continue;
    if (r.path != path_or_name && r.name() != path_or_name) continue;
    unloadLocked(r.path);
    r.state = PluginState::kUnloaded;
    r.registrations.clear();
    any = true;
  }
  settleDuplicatesLocked();
  return any;
}

void PluginLoader::unloadAll() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (PluginRecord& r : records_) {
    if (r.state != PluginState::kLoaded) continue;
    unloadLocked(r.path);
    r.state = PluginState::kUnloaded;
    r.registrations.clear();
  }
}

std::vector<PluginRecord> PluginLoader::plugins() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return records_;
}

std::optional<PluginRecord> PluginLoader::find(const std::string& path_or_name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const PluginRecord& r : records_) {
    if (r.path == path_or_name || r.name() == path_or_name) return r;
  }
  return std::nullopt;
}

}  // namespace aotiplug
