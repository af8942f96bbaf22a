// SPDX-License-Identifier: BSD-3-Clause
// aotiplug plugin check: inspect one plugin without trusting it.
#include "cli.h"

#include <aotiplug/host/child_process.h>
#include <aotiplug/host/manifest_reader.h>
#include <aotiplug/host/plugin_probe.h>
#include <aotiplug/host/plugin_record.h>
#include <aotiplug/package/pt2_package.h>

#include <boost/program_options.hpp>
#include <c10/core/DeviceType.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>

namespace aotiplug::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

struct ProbeOutcome {
  bool crashed = false;   // did not finish with a report: crashed, exited, hung
  bool timed_out = false;
  std::string stage;      // what it was doing then
  std::string crash;      // "died of signal 11 (Segmentation fault) while loading"
  nlohmann::json report;  // the child's ProbeReport, when it finished
};

// Runs `aotiplug plugin __probe ...` in a child process, with a deadline per stage, and
// collects its JSON report and how it ended.
ProbeOutcome probeInChild(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {fs::read_symlink("/proc/self/exe").string(), "plugin", "__probe"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string stage = "starting";
  ProbeOutcome outcome;
  // Starting (mapping LibTorch) is not a plugin stage: it gets the startup deadline.
  const ChildResult child = runChild(argv, std::max<std::chrono::milliseconds>(timeout, kChildStartupTimeout),
                                     [&](const std::string& line) {
    if (line.rfind("stage ", 0) == 0) {
      stage = line.substr(6);
      return timeout;
    }
    if (line.rfind("report ", 0) == 0) outcome.report = nlohmann::json::parse(line.substr(7), nullptr, false);
    return std::chrono::milliseconds(0);
  });
  const bool reported = outcome.report.is_object();
  if (!child.succeeded() || !reported) {
    outcome.crashed = true;
    outcome.timed_out = child.timed_out;
    outcome.stage = stage;
    outcome.crash = child.describe() + " while " + (stage == "starting" ? "starting" : stage) +
                    (reported ? "" : ", without a report");
    std::istringstream errors(child.errors);
    std::string last;
    for (std::string line; std::getline(errors, line);) {
      if (!line.empty()) last = line;
    }
    if (!last.empty()) outcome.crash += " (it printed: " + last.substr(0, 300) + ")";
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
      "  2. loads it in a child process, so a crash or a hang cannot take this one down,\n"
      "     and checks that it registers the device types it declares, reports errors as\n"
      "     errors, runs MODEL.pt2 (when given) matching PyTorch eager, and unloads\n"
      "     cleanly; a stage that takes longer than --timeout stops the child, and the\n"
      "     problem names the stage.\n\n"
      "Exit codes: 0 no problem, 3 a problem was found (the reason is printed), 1 the file\n"
      "cannot be read, 2 bad arguments.\n\nOptions");
  options.add_options()
      ("help,h", "show this help")
      ("model", po::value<std::string>()->default_value(""), "a .pt2 package to run through the plugin")
      ("device", po::value<std::string>()->default_value(""), "device for the model (default: the package's)")
      ("allow-untrusted", "do not refuse a plugin in a directory others can write to")
      ("timeout", po::value<double>()->default_value(30), "seconds each stage (loading, running the model, unloading) may take")
      ("json", "print JSON instead of text");
  const std::optional<po::variables_map> parsed = parseArguments(options, argc, argv, "library");
  if (!parsed) return kExitOk;
  const po::variables_map& vm = *parsed;
  if (vm.count("library") == 0) throw po::error("the plugin library to check is missing");
  const std::string library = fs::absolute(vm["library"].as<std::string>()).lexically_normal().string();
  ProbeOptions probe;
  probe.model_package = vm["model"].as<std::string>();
  probe.device = vm["device"].as<std::string>();
  probe.loader.require_trusted_paths = vm.count("allow-untrusted") == 0;

  if (probe_mode) {  // the child: the sandbox itself, loading in-process
    probe.loader.scan_out_of_process = false;
    probe.loader.log = [](const std::string&) {};
    probe.on_stage = [](const std::string& stage) { std::cout << "stage " << stage << std::endl; };
    const std::string report = probePlugin(library, probe).toJson().dump();
    std::cout << "report " << report << std::endl;
    return kExitOk;
  }
  const double timeout_s = vm["timeout"].as<double>();
  if (!(timeout_s > 0)) throw po::error("--timeout must be more than 0 seconds");
  const auto timeout = std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000));

  // 1. The manifest, from the file alone.
  std::error_code ec;
  if (!fs::is_regular_file(library, ec)) {
    throw Error(StatusCode::kNotFound, "plugin library " + library + " does not exist");
  }
  if (!probe.model_package.empty()) {
    // A model that is missing or not a package is the model's problem, not the plugin's.
    Pt2Package package(probe.model_package);
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
    out["manifest"] = manifestToJson(m);
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
    const ProbeOutcome child = probeInChild(args, timeout);
    if (child.crashed) {
      problems.push_back(std::string(child.timed_out ? "the probe process " : "the plugin ended the probe process: ") +
                         child.crash);
      out["probe"] = {{"crashed", true}, {"timed_out", child.timed_out}, {"stage", child.stage},
                      {"crash", child.crash}};
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
        const bool ran = !p["model_summary"].get<std::string>().empty();
        const bool compared = p.value("model_compared", false);
        std::cout << "model    "
                  << (!ran ? "problem"
                           : !compared ? "ran (no eager outputs to compare with)"
                                       : p["model_matches_eager"].get<bool>() ? "ran, matches eager" : "problem")
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
