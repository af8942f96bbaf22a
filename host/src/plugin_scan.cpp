// SPDX-License-Identifier: BSD-3-Clause
#include <aotiplug/host/plugin_scan.h>

#include "scan_protocol.h"
#include "scanner_config.h"

#include <aotiplug/detail/crc32.h>
#include <aotiplug/host/child_process.h>
#include <aotiplug/version.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>

namespace aotiplug {

namespace fs = std::filesystem;

namespace {

// What a cached verdict depends on besides the file.
std::string hostIdentity(const HostAbi& host) {
  return std::string("aotiplug ") + AOTIPLUG_VERSION + ", SDK ABI " + std::to_string(host.abi_major) + "." +
         std::to_string(host.abi_minor) + ", LibTorch " + host.torch_version + ", cxx11 ABI " +
         (host.cxx11_abi ? "1" : "0");
}

struct FileKey {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::uint32_t crc = 0;
  bool ok = false;
};

FileKey fileKey(const std::string& path) {
  FileKey key;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return key;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    key.size = static_cast<std::uint64_t>(st.st_size);
    key.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    // Read with pread(), not through a mapping: a file truncated meanwhile would raise
    // SIGBUS in the host where the CRC read the mapping; pread() just returns short.
    std::vector<char> buffer(static_cast<std::size_t>(std::min<std::uint64_t>(key.size, std::uint64_t{1} << 18)));
    std::uint64_t done = 0;
    while (done < key.size) {
      const ssize_t n = ::pread(fd, buffer.data(), static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), key.size - done)),
                                static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      key.crc = detail::crc32(key.crc, buffer.data(), static_cast<std::size_t>(n));
      done += static_cast<std::uint64_t>(n);
    }
    key.ok = done == key.size;
  }
  ::close(fd);
  return key;
}

nlohmann::json verdictToJson(const ScanVerdict& v) {
  return {{"ok", v.ok},
          {"problem", pluginProblemName(v.problem)},
          {"reason", v.reason},
          {"stage", v.stage},
          {"warnings", v.warnings}};
}

ScanVerdict verdictFromJson(const nlohmann::json& j) {
  ScanVerdict v;
  v.ok = j.value("ok", false);
  v.problem = pluginProblemFromName(j.value("problem", std::string()));
  v.reason = j.value("reason", std::string());
  v.stage = j.value("stage", std::string());
  if (j.contains("warnings") && j["warnings"].is_array()) {
    for (const auto& w : j["warnings"]) {
      if (w.is_string()) v.warnings.push_back(w);
    }
  }
  v.cached = true;
  return v;
}

nlohmann::json readCache(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return nlohmann::json::object();
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || doc.value("format", 0) != 1 || !doc.contains("plugins") || !doc["plugins"].is_object()) {
    return nlohmann::json::object();
  }
  return doc["plugins"];
}

void writeCache(const std::string& file, const nlohmann::json& plugins) {
  std::error_code ec;
  const fs::path target(file);
  fs::create_directories(target.parent_path(), ec);
  const std::string temp = file + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) return;  // no cache here: the next start scans again
    out << nlohmann::json{{"format", 1}, {"plugins", plugins}}.dump(1) << "\n";
    if (!out) {
      fs::remove(temp, ec);
      return;
    }
  }
  fs::rename(temp, target, ec);
  if (ec) fs::remove(temp, ec);
}

std::string stageWords(const std::string& stage) {
  if (stage == scan::kStageLoading) return "loading it (running its static initializers)";
  if (stage == scan::kStageUnloading) return "unloading it (running its static destructors)";
  return "starting the scanner";
}

// The last non-empty line of a child's standard error, for messages.
std::string lastLine(const std::string& text) {
  std::istringstream in(text);
  std::string last;
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  }
  return last.size() > 300 ? last.substr(0, 300) + "..." : last;
}

// One scanner child over `paths`; fills `verdicts` for those it finished, and for the one
// it was busy with when it ended. Returns false when it started none.
bool scanInOneChild(const std::vector<std::string>& paths, const ScanOptions& options,
                    const std::string& scanner, std::map<std::string, ScanVerdict>& verdicts) {
  std::vector<std::string> argv = {scanner};
  if (!options.require_trusted_paths) argv.push_back("--allow-untrusted");
  argv.insert(argv.end(), paths.begin(), paths.end());
  std::string current, stage = "starting";
  PluginRecord record;
  bool have_record = false;
  std::string unloaded;
  bool started_any = false;
  const ChildResult child = runChild(argv, options.startup_timeout, [&](const std::string& line) {
    const auto space = line.find(' ');
    const std::string word = line.substr(0, space);
    const std::string rest = space == std::string::npos ? std::string() : line.substr(space + 1);
    if (word == scan::kBegin) {
      current = rest;
      stage = scan::kStageLoading;
      have_record = false;
      unloaded.clear();
      started_any = true;
      return options.timeout;
    }
    if (word == scan::kStage) {
      stage = rest;
      return options.timeout;
    }
    if (word == scan::kRecord) {
      record = recordFromJson(nlohmann::json::parse(rest, nullptr, false));
      have_record = true;
    } else if (word == scan::kUnloaded) {
      unloaded = rest;
    } else if (word == scan::kEnd && !current.empty()) {
      ScanVerdict v;
      if (!have_record) {
        v.problem = PluginProblem::kCrashed;
        v.reason = "the scanner reported nothing for it";
      } else if (!record.loaded()) {
        v.problem = record.problem;
        v.reason = record.reason;
        v.stage = scan::kStageLoading;
      } else {
        v.ok = true;
        v.warnings = record.warnings;
        if (unloaded == "no") {
          v.warnings.push_back("stays mapped after it is unloaded (a new version of the file needs a new process)");
        }
      }
      verdicts[current] = v;
      current.clear();
    }
    return std::chrono::milliseconds(0);
  });
  if (!current.empty()) {
    // It ended, or was killed, while busy with this plugin.
    ScanVerdict v;
    v.stage = stage;
    v.problem = child.timed_out ? PluginProblem::kTimedOut : PluginProblem::kCrashed;
    v.reason = "the plugin scanner " + child.describe() + " while " + stageWords(stage);
    if (const std::string said = lastLine(child.errors); !said.empty()) v.reason += " (it printed: " + said + ")";
    verdicts[current] = v;
  }
  if (!started_any && !child.succeeded()) {
    // The scanner itself could not run: every plugin of this batch gets that answer.
    for (const auto& p : paths) {
      ScanVerdict v;
      v.problem = PluginProblem::kScannerMissing;
      v.reason = "the plugin scanner " + scanner + " " + child.describe() +
                 (lastLine(child.errors).empty() ? "" : " (" + lastLine(child.errors) + ")") +
                 "; the plugin was not loaded (LoaderOptions::scan_out_of_process = false loads "
                 "plugins without it)";
      verdicts[p] = v;
    }
  }
  return started_any;
}

std::mutex cache_mutex;  // one scan-and-update of the cache file at a time in this process

}  // namespace

std::string defaultScannerPath() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&defaultScannerPath), &info) != 0 && info.dli_fname != nullptr) {
    std::error_code ec;
    const fs::path beside = fs::path(info.dli_fname).parent_path() / "aotiplug-plugin-scanner";
    if (fs::is_regular_file(beside, ec)) return beside.string();
  }
  return AOTIPLUG_SCANNER_INSTALLED_PATH;
}

std::string defaultScanCacheFile() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg == '/') {
    return std::string(xdg) + "/aotiplug/plugin-scan.json";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    return std::string(home) + "/.cache/aotiplug/plugin-scan.json";
  }
  return {};
}

std::map<std::string, ScanVerdict> scanPlugins(const std::vector<std::string>& paths,
                                               const ScanOptions& options, const HostAbi& host) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  std::map<std::string, ScanVerdict> out;
  const std::string identity = hostIdentity(host);
  nlohmann::json cache = options.cache_file.empty() ? nlohmann::json::object() : readCache(options.cache_file);
  std::map<std::string, FileKey> keys;
  std::vector<std::string> todo;
  for (const std::string& path : paths) {
    const FileKey key = fileKey(path);
    keys[path] = key;
    if (key.ok && cache.contains(path)) {
      const auto& entry = cache[path];
      if (entry.is_object() && entry.value("size", std::uint64_t{0}) == key.size &&
          entry.value("mtime_ns", std::int64_t{0}) == key.mtime_ns && entry.value("crc32", 0u) == key.crc &&
          entry.value("host", std::string()) == identity && entry.contains("verdict")) {
        out[path] = verdictFromJson(entry["verdict"]);
        continue;
      }
    }
    todo.push_back(path);
  }
  if (todo.empty()) return out;

  const std::string scanner = options.scanner.empty() ? defaultScannerPath() : options.scanner;
  std::vector<std::string> remaining = todo;
  std::map<std::string, ScanVerdict> fresh;
  while (!remaining.empty()) {
    const bool progress = scanInOneChild(remaining, options, scanner, fresh);
    std::vector<std::string> next;
    for (const auto& p : remaining) {
      if (fresh.count(p) == 0) next.push_back(p);
    }
    if (!progress || next.size() == remaining.size()) {
      for (const auto& p : next) {
        ScanVerdict v;
        v.problem = PluginProblem::kScannerMissing;
        v.reason = "the plugin scanner " + scanner + " did not get to it";
        fresh[p] = v;
      }
      break;
    }
    remaining = std::move(next);
  }
  bool changed = false;
  for (auto& [path, verdict] : fresh) {
    out[path] = verdict;
    const FileKey& key = keys[path];
    if (!key.ok || verdict.problem == PluginProblem::kScannerMissing) continue;  // nothing to key, or nothing learnt
    cache[path] = {{"size", key.size}, {"mtime_ns", key.mtime_ns}, {"crc32", key.crc},
                   {"host", identity}, {"verdict", verdictToJson(verdict)}};
    changed = true;
  }
  if (changed && !options.cache_file.empty()) writeCache(options.cache_file, cache);
  return out;
}

}  // namespace aotiplug
