// SPDX-License-Identifier: BSD-3-Clause
// The bundled demo model: compiled from models/demo.py on first use, then cached.
#include "cli.h"

#include "cli_config.h"

#include <aotiplug/error.h>
#include <aotiplug/host/child_process.h>
#include <aotiplug/status.h>


#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

extern char** environ;

namespace aotiplug::cli {

namespace fs = std::filesystem;

namespace {

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Compiling the demo model takes a minute or two on 2 cores; a stuck compile is stopped.
constexpr std::chrono::milliseconds kDemoCompileTimeout = std::chrono::minutes(30);

std::uint64_t fnv(const std::string& data, std::uint64_t h = kFnvOffset) {
  return fnv1a(data.data(), data.size(), h);
}

// models/demo.py and python/: installed under <prefix>/<datadir>/aotiplug, or the source tree.
fs::path demoRoot() {
  const fs::path installed =
      (fs::path(executableDir()) / ".." / AOTIPLUG_CLI_DATADIR / "aotiplug").lexically_normal();
  std::error_code ec;
  if (fs::exists(installed / "models" / "demo.py", ec)) return installed;
  return AOTIPLUG_CLI_SOURCE_ROOT;
}

std::string tail(const fs::path& log, std::size_t lines) {
  std::istringstream in(readAll(log));
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    out += "    " + all[i] + "\n";
  }
  return out;
}

}  // namespace

std::string ensureDemoPackage(const std::string& cache_dir_arg) {
  // Absolute: the compiler inductor runs works in another directory.
  const std::string cache_dir = fs::absolute(cache_dir_arg).lexically_normal().string();
  const fs::path root = demoRoot();
  const fs::path script = root / "models" / "demo.py";
  const fs::path packager = root / "python" / "aotiplug" / "package.py";
  const std::uint64_t key =
      fnv(readAll(script), fnv(readAll(packager), fnv(AOTIPLUG_CLI_TORCH_VERSION)));
  char name[64];
  std::snprintf(name, sizeof name, "demo-%016" PRIx64 ".pt2", key);
  const fs::path target = fs::path(cache_dir) / name;
  std::error_code ec;
  if (fs::is_regular_file(target, ec)) return target.string();

  fs::create_directories(cache_dir, ec);
  if (ec) throw Error(StatusCode::kUnavailable, "cannot create the cache directory " + cache_dir + ": " + ec.message());
  const char* python_env = std::getenv("AOTIPLUG_PYTHON");
  const std::string python = python_env != nullptr && *python_env ? python_env : AOTIPLUG_CLI_PYTHON;
  const fs::path log = fs::path(cache_dir) / (std::string(name) + ".log");
  std::cerr << "aotiplug: compiling the demo model " << script.string() << " with torch "
            << AOTIPLUG_CLI_TORCH_VERSION << " (first use; cached in " << cache_dir << ")\n";

  // The compile runs in a child (runChild: its own process group, killed at the deadline);
  // what it prints goes to the log, and a failure shows the log's end.
  std::ofstream log_file(log, std::ios::trunc);
  ChildOptions child_options;
  child_options.own_process_group = false;  // a Ctrl-C stops the compile too
  child_options.environment = {"TORCHINDUCTOR_CACHE_DIR=" + (fs::path(cache_dir) / "inductor").string()};
  if (stderrIsTerminal()) {
    child_options.on_tick = [](double seconds) {
      std::cerr << "\r  compiling... " << static_cast<long>(seconds) << " s" << std::flush;
    };
  }
  const ChildResult child = runChild(
      {python, script.string(), "--out", target.string()}, kDemoCompileTimeout,
      [&](const std::string& line) {
        log_file << line << "\n" << std::flush;
        return std::chrono::milliseconds(0);
      },
      child_options);
  log_file << child.errors;
  log_file.close();
  if (stderrIsTerminal()) std::cerr << "\r";
  if (!child.started) {
    throw Error(StatusCode::kUnavailable, "cannot start " + python + " to compile the demo model: " +
                                              child.start_error + " (run ./dev setup)");
  }
  const auto seconds = static_cast<long>(child.seconds);
  if (!child.succeeded() || !fs::is_regular_file(target, ec)) {
    throw Error(StatusCode::kModelError, "compiling the demo model failed: python " + child.describe() +
                                             " (see " + log.string() + "):\n" + tail(log, 8));
  }
  std::cerr << "aotiplug: compiled the demo model in " << seconds << " s\n";
  return target.string();
}

}  // namespace aotiplug::cli
