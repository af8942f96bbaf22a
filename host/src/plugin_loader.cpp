// SPDX-License-Identifier: BSD-3-Clause
#include <aotiplug/host/plugin_loader.h>

#include <aotiplug/runner/elf_image_check.h>

#include <aotiplug/host/manifest_reader.h>
#include <aotiplug/host/path_trust.h>
#include <aotiplug/host/plugin_scan.h>
#include <aotiplug/plugin/registration_log.h>
#include <aotiplug/registry/plugin_abi.h>
#include <aotiplug/registry/runner_registry.h>

#include <boost/dll/shared_library.hpp>

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <climits>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace aotiplug {

namespace fs = std::filesystem;

// A loaded plugin library. Shared with the registry (weakly) and with every runner the
// plugin creates (strongly): the library closes when the last of them lets go.
struct PluginLoader::Loaded {
  boost::dll::shared_library library;
};

namespace {

std::string deviceName(c10::DeviceType type) {
  return c10::DeviceTypeName(type, /*lower_case=*/true);
}

PluginRecord rejected(PluginRecord record, PluginProblem problem, std::string reason,
                      std::string failed_path = {}) {
  record.state = PluginState::kRejected;
  record.problem = problem;
  record.reason = std::move(reason);
  record.failed_path = std::move(failed_path);
  return record;
}

// The device and inode of the file mapped at a loaded library's base address, from
// /proc/self/maps; false when it cannot be told.
bool mappedFile(void* handle, dev_t* dev, ino_t* ino) {
  link_map* map = nullptr;
  if (handle == nullptr || ::dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr) return false;
  const auto base = static_cast<unsigned long>(map->l_addr);
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    // "7f0c1a000000-7f0c1a200000 r--p 00000000 08:01 1234567   /path"
    unsigned long start = 0, end = 0, offset = 0, inode = 0;
    unsigned major_id = 0, minor_id = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms, &offset, &major_id,
                    &minor_id, &inode) != 7) {
      continue;
    }
    if (start == base && offset == 0) {
      *dev = makedev(major_id, minor_id);
      *ino = static_cast<ino_t>(inode);
      return true;
    }
  }
  return false;
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

bool DirectoryLoad::allLoaded() const noexcept {
  if (!usable()) return false;
  return std::all_of(plugins.begin(), plugins.end(), [](const PluginRecord& r) { return r.loaded(); });
}

// A plugin file on its way in: checked (steps 1-2), open at `fd` until it is loaded.
struct PluginLoader::Candidate {
  PluginRecord record;
  bool passed = false;       // may go on to the scan and the load
  bool already = false;      // this loader has it loaded: nothing to do
  int fd = -1;
  Candidate() = default;
  Candidate(Candidate&& other) noexcept
      : record(std::move(other.record)), passed(other.passed), already(other.already), fd(other.fd) {
    other.fd = -1;
  }
  Candidate& operator=(Candidate&&) = delete;
  Candidate(const Candidate&) = delete;
  ~Candidate() {
    if (fd >= 0) ::close(fd);
  }
};

PluginLoader::PluginLoader(LoaderOptions options, HostAbi host)
    : options_(std::move(options)), host_(std::move(host)) {
  options_.scan.require_trusted_paths = options_.require_trusted_paths;
}

PluginLoader::~PluginLoader() { unloadAll(); }

void PluginLoader::notice(const std::string& text) const {
  if (options_.log) {
    options_.log(text);
  } else {
    std::cerr << "[aotiplug] " << text << std::endl;
  }
}

std::vector<std::string> PluginLoader::candidates(const std::string& directory, std::string* error,
                                                  std::vector<std::string>* skipped) {
  std::vector<std::string> out;
  auto consider = [&](const fs::directory_entry& entry) {
    std::error_code e;
    if (entry.path().extension() == ".so" && entry.is_regular_file(e)) {
      out.push_back(entry.path().string());
    }
  };
  // An unreadable directory is an error, never an empty one (its plugins would be missing
  // without a word). An unreadable subdirectory (lost+found at the top of a mount, say) is
  // skipped with a reason, so that it cannot take the other plugins down with it.
  const auto why = [](const fs::path& dir, const std::error_code& e) {
    return "cannot read plugin directory " + dir.string() + ": " + e.message();
  };
  std::error_code ec;
  fs::directory_iterator it(directory, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& entry = *it;
    std::error_code e;
    if (entry.is_directory(e)) {
      // One level of subdirectories: <plugins>/<name>/lib<name>.so, as Triton lays out
      // backends. Build trees keep object files in *.p folders: skip those.
      if (entry.path().extension() == ".p") continue;
      fs::directory_iterator inner(entry.path(), e);
      for (; !e && inner != end; inner.increment(e)) consider(*inner);
      if (e && skipped != nullptr) skipped->push_back(why(entry.path(), e));
    } else {
      consider(entry);
    }
  }
  if (ec && error != nullptr) *error = why(directory, ec);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> PluginLoader::candidates(const std::string& directory) {
  return candidates(directory, nullptr, nullptr);
}

DirectoryLoad PluginLoader::loadDirectory(const std::string& directory) {
  std::lock_guard<std::mutex> lock(mutex_);
  DirectoryLoad out;
  out.directory = directory;
  const auto fail = [&](PluginProblem problem, std::string reason, std::string path = {}) {
    out.error_problem = problem;
    out.error = std::move(reason);
    out.error_path = std::move(path);
    return out;
  };
  if (!options_.allow_relative_paths && !fs::path(directory).is_absolute()) {
    return fail(PluginProblem::kUntrusted, "plugin directory '" + directory +
                                               "' is relative: the loader takes absolute paths only",
                directory);
  }
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) {
    return fail(PluginProblem::kLoadFailed,
                "plugin directory " + directory + " does not exist or is not a directory");
  }
  if (options_.require_trusted_paths) {
    const TrustCheck trust = checkTrustedDirectory(directory, "plugin directory");
    if (!trust.ok()) return fail(PluginProblem::kUntrusted, trust.reason, trust.path);
  }
  std::vector<std::string> paths;
  std::string unreadable;
  std::vector<std::string> skipped;
  for (const std::string& candidate : candidates(directory, &unreadable, &skipped)) {
    paths.push_back(fs::absolute(candidate).string());
  }
  if (!unreadable.empty()) return fail(PluginProblem::kLoadFailed, unreadable);
  for (const std::string& reason : skipped) notice(reason + " (skipped)");
  out.plugins = loadManyLocked(paths);
  return out;
}

PluginRecord PluginLoader::load(const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  return loadManyLocked({path}).at(0);
}

PluginRecord& PluginLoader::rememberLocked(PluginRecord r) {
  auto it = std::find_if(records_.begin(), records_.end(),
                         [&](const PluginRecord& x) { return x.path == r.path; });
  if (it != records_.end()) {
    *it = std::move(r);
    return *it;
  }
  records_.push_back(std::move(r));
  return records_.back();
}

std::vector<PluginRecord> PluginLoader::loadManyLocked(const std::vector<std::string>& paths) {
  std::vector<Candidate> checked;
  TrustMemo memo;  // the directories these plugins share are checked once for all of them
  for (const std::string& p : paths) checked.push_back(checkLocked(p, &memo));
  // Step 3: the plugins that passed, in a child process first.
  std::vector<std::string> to_scan;
  for (const Candidate& c : checked) {
    if (c.passed) to_scan.push_back(c.record.path);
  }
  if (options_.scan_out_of_process && !to_scan.empty()) {
    const auto verdicts = scanPlugins(to_scan, options_.scan, host_);
    for (Candidate& c : checked) {
      if (!c.passed) continue;
      auto v = verdicts.find(c.record.path);
      if (v == verdicts.end()) continue;
      if (!v->second.ok) {
        c.passed = false;
        c.record = rejected(std::move(c.record), v->second.problem, v->second.reason);
        c.record.stage = v->second.stage;
        continue;
      }
      for (const auto& w : v->second.warnings) c.record.warnings.push_back(w);
    }
  }
  std::vector<std::string> order;
  for (Candidate& c : checked) {
    order.push_back(c.record.path);
    if (c.already) continue;
    rememberLocked(c.passed ? loadCheckedLocked(c) : c.record);
  }
  settleDuplicatesLocked();
  std::vector<PluginRecord> out;
  for (const std::string& p : order) {
    auto it = std::find_if(records_.begin(), records_.end(), [&](const PluginRecord& r) { return r.path == p; });
    if (it != records_.end()) out.push_back(*it);
  }
  return out;
}

PluginLoader::Candidate PluginLoader::checkLocked(const std::string& requested, TrustMemo* memo) {
  Candidate c;
  PluginRecord& record = c.record;
  record.path = requested;
  if (!options_.allow_relative_paths && !fs::path(requested).is_absolute()) {
    record = rejected(record, PluginProblem::kUntrusted,
                      "plugin path '" + requested + "' is relative: the loader takes absolute paths only",
                      requested);
    return c;
  }
  char resolved[PATH_MAX];
  if (::realpath(requested.c_str(), resolved) == nullptr) {
    record = rejected(record, PluginProblem::kLoadFailed, "cannot resolve " + requested + ": " + std::strerror(errno));
    return c;
  }
  record.path = resolved;
  if (loaded_.count(record.path) != 0) {
    c.already = true;  // loading twice is a no-op
    return c;
  }
  if (auto it = retired_.find(record.path); it != retired_.end()) {
    if (const auto alive = it->second.lock()) {
      const long runners = alive.use_count() - 1;
      record = rejected(record, PluginProblem::kInUse,
                        "still in use by " + std::to_string(runners) + " runner(s) of its previous load: " +
                            "a library cannot be loaded again while its code is mapped; destroy those "
                            "runners first");
      return c;
    }
    retired_.erase(it);
  }
  // One descriptor for every check, so that what is checked is one file.
  c.fd = ::open(record.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (c.fd < 0) {
    record = rejected(record, PluginProblem::kLoadFailed, "cannot open " + record.path + ": " + std::strerror(errno));
    return c;
  }
  if (options_.require_trusted_paths) {
    const TrustCheck trust = checkTrustedFile(c.fd, record.path, "plugin file", memo);
    if (!trust.ok()) {
      record = rejected(record, PluginProblem::kUntrusted, trust.reason, trust.path);
      return c;
    }
  }
  // Nothing of the plugin has run yet: decide from the file alone.
  ManifestReadResult manifest = readManifest(c.fd);
  if (manifest.status != ManifestReadStatus::kOk) {
    record = rejected(record, fromManifestStatus(manifest.status), manifest.message);
    return c;
  }
  record.manifest = manifest.manifest;
  const Compatibility verdict = checkCompatibility(*record.manifest, host_);
  if (!verdict.ok()) {
    record = rejected(record, fromIncompatibility(verdict.problem), verdict.message);
    return c;
  }
  // dlopen would map a truncated file past its end and die of SIGBUS: refuse it first.
  if (std::string why = checkElfImage("/proc/self/fd/" + std::to_string(c.fd)); !why.empty()) {
    record = rejected(record, PluginProblem::kTruncated, why);
    return c;
  }
  // What it brings along from its own search path runs with it.
  if (options_.require_trusted_paths) {
    const std::string origin = fs::path(record.path).parent_path().string();
    for (const std::string& dependency : runpathDependencies(c.fd, origin, memo)) {
      std::string why = checkTrustedPath(dependency, "library", memo);
      if (!why.empty()) {
        record = rejected(record, PluginProblem::kUntrusted,
                          why + " (a library the plugin takes from its RUNPATH)", dependency);
        return c;
      }
    }
  }
  c.passed = true;
  return c;
}

PluginRecord PluginLoader::loadCheckedLocked(Candidate& c) {
  PluginRecord record = c.record;
  // Two files of one name: the name is what hosts and users refer to a plugin by.
  for (const PluginRecord& r : records_) {
    if (r.loaded() && r.path != record.path && r.name() == record.name()) {
      return rejected(record, PluginProblem::kNameConflict,
                      "plugin name '" + record.name() + "' is already taken by " + r.path +
                          ", loaded before; " + record.path + " was not loaded");
    }
  }
  if (!options_.scan_out_of_process) {
    notice("loading plugin " + record.path + " in-process (not scanned in a child process first)");
  }

  // Load it. The lease is attached first, so a runner created while the library is still
  // being validated keeps it alive.
  registrationLog().take(record.path);  // stale entries from an earlier attempt
  // Its runners' handles call only what its minor has (checked not newer than ours).
  recordPluginAbiMinor(record.path, record.manifest->abi_minor);
  auto loaded = std::make_shared<Loaded>();
  runnerRegistry().attachLease(record.path, std::shared_ptr<const void>(loaded));
  auto discard = [&](PluginRecord r, PluginProblem problem, std::string reason) {
    runnerRegistry().removeLibrary(record.path);
    runnerRegistry().detachLease(record.path);
    return rejected(std::move(r), problem, std::move(reason));
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
  // The file mapped must be the file checked (not one put in its place since).
  struct stat checked {};
  dev_t dev = 0;
  ino_t ino = 0;
  if (::fstat(c.fd, &checked) == 0 && mappedFile(loaded->library.native(), &dev, &ino) &&
      (dev != checked.st_dev || ino != checked.st_ino)) {
    return discard(record, PluginProblem::kChanged,
                   "the file loaded is not the file checked: " + record.path +
                       " was replaced between the check and the load");
  }
  ::close(c.fd);
  c.fd = -1;

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
  return record;
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
    if (!record.loaded()) continue;
    refreshRegistrationsLocked(record);
    record.warnings.erase(std::remove_if(record.warnings.begin(), record.warnings.end(),
                                         [](const std::string& w) {
                                           return w.rfind("device type '", 0) == 0;
                                         }),
                          record.warnings.end());
    bool any_active = false;
    for (const auto& r : record.registrations) {
      if (r.active) {
        any_active = true;
        continue;
      }
      record.warnings.push_back("device type '" + deviceName(r.device_type) + "' lost to " + r.lost_to +
                                "; kept as a fallback");
    }
    // Losing every device type it offers makes it a fallback: loaded, registered, and
    // serving again if the winner goes.
    record.state = any_active ? PluginState::kLoaded : PluginState::kFallback;
  }
}

void PluginLoader::unloadLocked(const std::string& path) {
  runnerRegistry().removeLibrary(path);
  runnerRegistry().detachLease(path);
  auto it = loaded_.find(path);
  if (it == loaded_.end()) return;
  retired_[path] = it->second;  // its runners may keep it mapped
  loaded_.erase(it);            // closes the library unless a runner still holds its lease
}

bool PluginLoader::unload(const std::string& path_or_name) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Plugins are kept by their resolved path: a symlink (or ../) names the same one.
  char buffer[PATH_MAX];
  const std::string resolved = ::realpath(path_or_name.c_str(), buffer) != nullptr ? buffer : path_or_name;
  bool any = false;
  for (PluginRecord& r : records_) {
    if (!r.loaded()) continue;
    if (r.path != path_or_name && r.path != resolved && r.name() != path_or_name) continue;
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
    if (!r.loaded()) continue;
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

std::map<c10::DeviceType, PluginRecord> PluginLoader::servingPlugins() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::map<c10::DeviceType, PluginRecord> out;
  for (const PluginRecord& r : records_) {
    if (!r.loaded()) continue;
    for (const auto& reg : r.registrations) {
      if (reg.active) out[reg.device_type] = r;
    }
  }
  return out;
}

}  // namespace aotiplug
