// SPDX-License-Identifier: BSD-3-Clause
// The bundled demo model: compiled from models/demo.py on first use, then cached.
#include "cli.h"

#include "cli_config.h"

#include <aotiplug/error.h>
#include <aotiplug/status.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

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

std::uint64_t fnv(const std::string& data, std::uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
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

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  const std::string inductor_cache = "TORCHINDUCTOR_CACHE_DIR=" + (fs::path(cache_dir) / "inductor").string();
  std::vector<std::string> env_storage = {inductor_cache};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string(*e).rfind("TORCHINDUCTOR_CACHE_DIR=", 0) != 0) env_storage.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string arg0 = python, arg1 = script.string(), arg2 = "--out", arg3 = target.string();
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), arg3.data(), nullptr};
  pid_t pid = 0;
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setsigmask(&attributes, childSignalMask());
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  const int spawn_error = posix_spawn(&pid, python.c_str(), &actions, &attributes, argv, envp.data());
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (spawn_error != 0) {
    throw Error(StatusCode::kUnavailable, "cannot start " + python + " to compile the demo model: " +
                                              std::strerror(spawn_error) + " (run ./dev setup)");
  }
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) break;
    if (stderrIsTerminal()) {
      const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now() - start).count();
      std::cerr << "\r  compiling... " << seconds << " s" << std::flush;
    }
    ::usleep(200 * 1000);
  }
  if (stderrIsTerminal()) std::cerr << "\r";
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::steady_clock::now() - start).count();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !fs::is_regular_file(target, ec)) {
    throw Error(StatusCode::kModelError,
                "compiling the demo model failed (see " + log.string() + "):\n" + tail(log, 8));
  }
  std::cerr << "aotiplug: compiled the demo model in " << seconds << " s\n";
  return target.string();
}

}  // namespace aotiplug::cli
