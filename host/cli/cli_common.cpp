// SPDX-License-Identifier: BSD-3-Clause
#include "cli.h"

#include "cli_config.h"

#include <aotiplug/error.h>
#include <aotiplug/package/private_directory.h>
#include <aotiplug/plugin/manifest.h>
#include <aotiplug/runner/device.h>

#include <ATen/ops/empty.h>
#include <boost/program_options/parsers.hpp>
#include <boost/program_options/positional_options.hpp>
#include <boost/program_options/value_semantic.hpp>
#include <c10/core/DeviceType.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

namespace aotiplug::cli {

namespace fs = std::filesystem;

std::string executableDir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : self.parent_path().string();
}

std::string defaultPluginDir() {
  const fs::path exe = executableDir();
  std::error_code ec;
  // Build tree: <build>/host/aotiplug -> <build>/plugins.
  if (fs::is_directory(exe.parent_path() / "plugins", ec) &&
      fs::exists(exe.parent_path() / "meson-info", ec)) {
    return (exe.parent_path() / "plugins").string();
  }
  // Install tree: <prefix>/bin/aotiplug -> <prefix>/<libdir>/aotiplug/plugins.
  return (exe.parent_path() / AOTIPLUG_CLI_LIBDIR / "aotiplug" / "plugins").lexically_normal().string();
}

DirectoryLoad loadPlugins(PluginLoader& loader, const std::string& dir) {
  return loader.loadDirectory(fs::absolute(dir).lexically_normal().string());
}

void requireDeviceSyntax(const std::string& device) {
  if (device.empty()) return;
  try {
    parseDevice(device);
  } catch (const Error& e) {
    throw boost::program_options::error(std::string("--device: ") + e.what());
  }
}

std::optional<boost::program_options::variables_map> parseArguments(
    const boost::program_options::options_description& options, int argc, char** argv,
    const char* positional) {
  namespace po = boost::program_options;
  po::options_description hidden;
  hidden.add_options()(positional, po::value<std::string>(), positional);
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positionals;
  positionals.add(positional, 1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(positionals).run(), vm);
  if (vm.count("help") != 0) {
    std::cout << options << "\n";
    return std::nullopt;
  }
  po::notify(vm);
  return vm;
}

std::string describeTensor(const at::Tensor& t) {
  if (!t.defined()) return "none";
  std::ostringstream os;
  os << c10::toString(t.scalar_type()) << " " << t.sizes();
  return os.str();
}

std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

std::string tensorHash(const at::Tensor& t) {
  if (!t.defined()) return "";
  const at::Tensor c = t.cpu().contiguous();
  const std::uint64_t h = fnv1a(c.data_ptr(), c.nbytes());
  char text[17];
  std::snprintf(text, sizeof text, "%016" PRIx64, h);
  return text;
}

bool stderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

namespace {
sigset_t terminatingSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

void removeExtractionsOnSignals() {
  const sigset_t set = terminatingSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) return;
    PrivateDirectory::removeAllLive();
    // Die of the signal, as without this thread: the default action, unblocked here.
    std::signal(sig, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    ::raise(sig);
  }).detach();
}

}  // namespace aotiplug::cli
