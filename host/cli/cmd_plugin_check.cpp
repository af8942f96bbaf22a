// SPDX-License-Identifier: BSD-3-Clause
// aotiplug plugin check: inspect one plugin without trusting it.
#include "cli.h"

#include <aotiplug/host/manifest_reader.h>
#include <aotiplug/host/plugin_probe.h>

#include <boost/program_options.hpp>
#include <c10/core/DeviceType.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <iostream>

extern char** environ;

namespace aotiplug::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

struct ProbeOutcome {
  bool crashed = false;
  std::string crash;      // "signal 11 (Segmentation fault)"
  nlohmann::json report;  // the child's ProbeReport, when it finished
};

// Runs `aotiplug plugin __probe ...` in a child process and collects its JSON report.
ProbeOutcome probeInChild(const std::vector<std::string>& args) {
  std::vector<std::string> argv_storage = {"/proc/self/exe", "plugin", "__probe"};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw Error(StatusCode::kInternal, "pipe() failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  pid_t pid = 0;
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setsigmask(&attributes, childSignalMask());
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  const int rc = posix_spawn(&pid, self.c_str(), &actions, &attributes, argv.data(), environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    throw Error(StatusCode::kInternal, std::string("cannot start the probe process: ") + std::strerror(rc));
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ProbeOutcome outcome;
  if (WIFSIGNALED(status)) {
    outcome.crashed = true;
    outcome.crash = "signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    return outcome;
  }
  outcome.report = nlohmann::json::parse(out, nullptr, false);
  if (outcome.report.is_discarded() || !outcome.report.is_object()) {
    outcome.crashed = true;
    outcome.crash = "the probe process exited with status " + std::to_string(WEXITSTATUS(status)) +
                    " without a report";
  }
  return outcome;
}

}  // namespace

int runPluginCheckCommand(int argc, char** argv) {
  const bool probe_mode = argc >= 1 && std::strcmp(argv[0], "__probe") == 0;
  po::options_description options(
      "Usage: aotiplug plugin check LIB.so [--model MODEL.pt2] [--device D] [--json]\n\n"
      "Inspects one plugin without trusting it:\n"
      "  1. reads its manifest from the file, without loading it, and says whether this\n"
      "     host could load it (SDK ABI, LibTorch version, libstdc++ ABI);\n"
      "  2. loads it in a child process, so a crash cannot take this one down, and checks\n"
      "     that it registers the device types it declares, reports errors as errors, runs\n"
      "     MODEL.pt2 (when given) matching PyTorch eager, and unloads cleanly.\n\n"
      "Exit codes: 0 no problem, 3 a problem was found (the reason is printed), 1 the file\n"
      "cannot be read, 2 bad arguments.\n\nOptions");
  options.add_options()
      ("help,h", "show this help")
      ("model", po::value<std::string>()->default_value(""), "a .pt2 package to run through the plugin")
      ("device", po::value<std::string>()->default_value(""), "device for the model (default: the package's)")
      ("allow-untrusted", "do not refuse a plugin in a directory others can write to")
      ("json", "print JSON instead of text");
  po::options_description hidden;
  hidden.add_options()("library", po::value<std::string>(), "plugin library");
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add("library", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
  if (vm.count("help") != 0) {
    std::cout << options << "\n";
    return kExitOk;
  }
  po::notify(vm);
  if (vm.count("library") == 0) throw po::error("the plugin library to check is missing");
  const std::string library = fs::absolute(vm["library"].as<std::string>()).lexically_normal().string();
  ProbeOptions probe;
  probe.model_package = vm["model"].as<std::string>();
  probe.device = vm["device"].as<std::string>();
  probe.loader.require_trusted_paths = vm.count("allow-untrusted") == 0;

  if (probe_mode) {  // the child
    std::cout << probePlugin(library, probe).toJson().dump() << std::endl;
    return kExitOk;
  }

  // 1. The manifest, from the file alone.
  std::error_code ec;
  if (!fs::is_regular_file(library, ec)) {
    throw Error(StatusCode::kNotFound, "plugin library " + library + " does not exist");
  }
  const ManifestReadResult manifest = readManifest(library);
  std::vector<std::string> problems;
  nlohmann::json out;
  out["path"] = library;
  Compatibility verdict;
  if (manifest.status != ManifestReadStatus::kOk) {
    problems.push_back(std::string(manifestReadStatusName(manifest.status)) + ": " + manifest.message);
  } else {
    const PluginManifest& m = *manifest.manifest;
    nlohmann::json devices = nlohmann::json::array();
    for (c10::DeviceType d : m.devices) devices.push_back(c10::DeviceTypeName(d, true));
    out["manifest"] = {{"name", m.name}, {"version", m.version},
                       {"abi", std::to_string(m.abi_major) + "." + std::to_string(m.abi_minor)},
                       {"torch_version", m.torch_version}, {"cxx11_abi", m.cxx11_abi},
                       {"sdk_version", m.sdk_version}, {"devices", devices}};
    verdict = checkCompatibility(m, currentHostAbi());
    if (!verdict.ok()) problems.push_back("incompatible with this host: " + verdict.message);
  }
  out["compatible"] = manifest.status == ManifestReadStatus::kOk && verdict.ok();

  // 2. Everything that needs its code, in a child process.
  if (out["compatible"].get<bool>()) {
    std::vector<std::string> args = {library};
    if (!probe.model_package.empty()) args.insert(args.end(), {"--model", probe.model_package});
    if (!probe.device.empty()) args.insert(args.end(), {"--device", probe.device});
    if (!probe.loader.require_trusted_paths) args.push_back("--allow-untrusted");
    const ProbeOutcome child = probeInChild(args);
    if (child.crashed) {
      problems.push_back("the plugin crashed the probe process: " + child.crash);
      out["probe"] = {{"crashed", true}, {"crash", child.crash}};
    } else {
      out["probe"] = child.report;
      for (const auto& p : child.report["problems"]) problems.push_back(p.get<std::string>());
    }
  }
  out["problems"] = problems;
  out["ok"] = problems.empty();

  if (vm.count("json") != 0) {
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << "plugin   " << library << "\n";
    if (out.contains("manifest")) {
      const auto& m = out["manifest"];
      std::string devices;
      for (const auto& d : m["devices"]) devices += (devices.empty() ? "" : ", ") + d.get<std::string>();
      std::cout << "manifest " << m["name"].get<std::string>() << " " << m["version"].get<std::string>()
                << ", SDK ABI " << m["abi"].get<std::string>() << ", LibTorch "
                << m["torch_version"].get<std::string>() << ", devices: " << devices << "\n";
      std::cout << "host     " << (verdict.ok() ? "compatible" : "INCOMPATIBLE: " + verdict.message) << "\n";
    }
    if (out.contains("probe") && !out["probe"].value("crashed", false)) {
      const auto& p = out["probe"];
      std::string regs;
      for (const auto& r : p["registered"]) regs += (regs.empty() ? "" : ", ") + r.get<std::string>();
      std::cout << "loaded   " << p["state"].get<std::string>()
                << (p["reason"].get<std::string>().empty() ? "" : ": " + p["reason"].get<std::string>()) << "\n";
      std::cout << "devices  registered: " << (regs.empty() ? "none" : regs) << "\n";
      if (p["state"] == "loaded") {
        std::cout << "errors   " << (p["reports_errors"].get<bool>() ? "reported as errors" : "NOT reported properly")
                  << (p["error_example"].get<std::string>().empty() ? "" : " (e.g. \"" + p["error_example"].get<std::string>() + "\")")
                  << "\n";
      }
      if (p["model_checked"].get<bool>()) {
        std::cout << "model    " << (p["model_matches_eager"].get<bool>() ? "ran, matches eager" : "problem")
                  << (p["model_summary"].get<std::string>().empty() ? "" : ": " + p["model_summary"].get<std::string>()) << "\n";
      }
      std::cout << "unload   " << (p["unloads_cleanly"].get<bool>() ? "clean" : "the library stays mapped") << "\n";
    }
    if (problems.empty()) {
      std::cout << "verdict  ok\n";
    } else {
      for (const auto& p : problems) std::cout << "problem  " << p << "\n";
    }
  }
  if (manifest.status == ManifestReadStatus::kIoError) return kExitError;
  return problems.empty() ? kExitOk : kExitCheck;
}

}  // namespace aotiplug::cli
