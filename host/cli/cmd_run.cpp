// SPDX-License-Identifier: BSD-3-Clause
// aotiplug run: run a .pt2 package through the plugins, check it against eager, time it.
#include "cli.h"

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/executor/eager_reference.h>
#include <aotiplug/host/op_library.h>
#include <aotiplug/package/pt2_package.h>
#include <aotiplug/registry/runner_registry.h>
#include <aotiplug/runner/device.h>

#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <boost/program_options.hpp>
#include <torch/csrc/jit/serialization/pickle.h>
#include <c10/core/DeviceType.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>

namespace aotiplug::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

std::string defaultCacheDir() {
  if (const char* dir = std::getenv("AOTIPLUG_CACHE_DIR"); dir != nullptr && *dir != '\0') return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/aotiplug";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/tmp") + "/.cache/aotiplug";
}

// A torch.save'd list of tensors; `what` names the file's role in errors ("inputs file").
std::vector<at::Tensor> readTensorsFile(const std::string& path, const std::string& what) {
  // Not a device or a pipe (/dev/zero would be read until memory runs out, a FIFO would
  // block the open): checked before opening.
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    throw Error(StatusCode::kInvalidArgument, what + " " + path + " is not a regular file (a torch.save'd file is)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(StatusCode::kNotFound, what + " " + path + " cannot be opened");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<at::Tensor> out;
  try {
    out = tensorsFromPickledBytes(std::string(bytes.begin(), bytes.end()));
  } catch (const Error& e) {
    throw Error(StatusCode::kInvalidArgument, what + " " + path + ": " + e.what());
  } catch (const c10::Error& e) {
    throw Error(StatusCode::kInvalidArgument,
                what + " " + path + " is not a torch.save'd list of tensors: " + e.what_without_backtrace());
  } catch (const std::exception& e) {  // LibTorch's unpickler on a damaged pickle
    throw Error(StatusCode::kInvalidArgument, what + " " + path + " is damaged (" + e.what() + ")");
  }
  if (out.empty()) throw Error(StatusCode::kInvalidArgument, what + " " + path + " holds no tensors");
  return out;
}

// Writes the outputs as a torch.save'd tuple (on the CPU), readable by torch.load.
void saveOutputs(const std::vector<at::Tensor>& outputs, const std::string& path) {
  // A tuple: LibTorch pickles its lists with type tags (torch.jit._pickle.build_tensorlist,
  // restore_type_tag), which torch.load refuses by default (weights_only); a tuple is plain.
  std::vector<c10::IValue> items;
  for (const at::Tensor& t : outputs) items.emplace_back(t.defined() ? t.detach().cpu().contiguous() : t);
  const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(c10::ivalue::Tuple::create(std::move(items))));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw Error(StatusCode::kUnavailable, "cannot write the outputs to " + path + ": " + std::strerror(errno));
}

// Inputs made up from the recorded specs, the same on every run of the tool.
std::vector<at::Tensor> generatedInputs(const std::vector<TensorSpec>& specs) {
  std::vector<at::Tensor> out;
  at::manual_seed(0);
  for (const TensorSpec& s : specs) {
    std::vector<std::int64_t> sizes;
    for (std::size_t d = 0; d < s.sizes.size(); ++d) {
      sizes.push_back(s.sizes[d] >= 0 ? s.sizes[d] : std::max<std::int64_t>(s.min[d], 1));
    }
    at::Tensor t;
    if (at::isFloatingType(s.dtype)) {
      t = at::randn(sizes).to(s.dtype);
    } else if (s.dtype == at::kBool) {
      t = at::zeros(sizes, at::kBool);
    } else {
      t = at::randint(0, 2, sizes).to(s.dtype);  // small values: safe as indices
    }
    out.push_back(checkTensorAgainstSpec(t, s, out.size(), "input"));  // in the compiled layout
  }
  return out;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const auto hi = static_cast<std::size_t>(std::ceil(rank));
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}

// What `aotiplug run` was asked to do.
struct RunOptions {
  std::string package;  // empty: the bundled demo
  std::string plugins, device, model, inputs_file, cache_dir;
  std::string save_outputs, expected;  // --save-outputs FILE, --expected FILE
  std::vector<std::string> op_libraries;
  int iters = 0, warmup = 0, threads = 1;
  bool json = false;
};

// Parses the command line; nullopt when it only asked for --help (printed).
std::optional<RunOptions> parseRunOptions(int argc, char** argv) {
  po::options_description options(
      "Usage: aotiplug run [MODEL.pt2] [options]\n\n"
      "Runs an AOTInductor package through the runner plugin that serves its device:\n"
      "prints each output's dtype, shape and checksums, compares the outputs with the\n"
      "PyTorch eager outputs the package carries (when run on its sample inputs), and\n"
      "reports latency percentiles. Without MODEL.pt2 it runs the bundled demo model\n"
      "(models/demo.py), compiled on first use and cached.\n\n"
      "Inputs come from --inputs FILE (a torch.save'd list of tensors), else from the\n"
      "package's sample inputs, else are generated from the input specs it records.\n\n"
      "The outputs are compared with --expected FILE when given, else with the eager\n"
      "outputs the package carries for its sample inputs; --save-outputs FILE keeps them.\n\n"
      "Exit codes: 0 ok, 1 error (package, plugin or model), 2 bad arguments,\n"
      "3 the outputs differ from PyTorch eager (or from --expected).\n\nOptions");
  options.add_options()
      ("help,h", "show this help")
      ("plugins,p", po::value<std::string>()->default_value(defaultPluginDir()), "plugin directory")
      ("device", po::value<std::string>()->default_value(""), "run on this device (cpu, cuda, cuda:N) instead of the package's")
      ("model", po::value<std::string>()->default_value(""), "the model in a package holding several")
      ("inputs", po::value<std::string>(), "torch.save'd list of input tensors")
      ("save-outputs", po::value<std::string>(), "write the outputs of the first run to FILE (a torch.save'd tuple, on the CPU)")
      ("expected", po::value<std::string>(), "compare the outputs with these (a torch.save'd list) instead of the package's eager outputs; exit 3 if they differ")
      ("op-library", po::value<std::vector<std::string>>()->composing(),
       "a library registering operators the model's extern kernels call (TORCH_LIBRARY); repeatable")
      ("iters,n", po::value<int>()->default_value(20), "timed runs (in all threads together)")
      ("warmup", po::value<int>()->default_value(2), "untimed runs first")
      ("threads,t", po::value<int>()->default_value(1), "threads calling run() at once (also the number of model instances)")
      ("cache-dir", po::value<std::string>()->default_value(defaultCacheDir()), "where the compiled demo model is cached")
      ("json", "print JSON instead of text");
  const std::optional<po::variables_map> parsed = parseArguments(options, argc, argv, "package");
  if (!parsed) return std::nullopt;
  const po::variables_map& vm = *parsed;
  RunOptions o;
  o.package = vm.count("package") != 0 ? vm["package"].as<std::string>() : std::string();
  o.plugins = vm["plugins"].as<std::string>();
  o.device = vm["device"].as<std::string>();
  o.model = vm["model"].as<std::string>();
  o.inputs_file = vm.count("inputs") != 0 ? vm["inputs"].as<std::string>() : std::string();
  o.save_outputs = vm.count("save-outputs") != 0 ? vm["save-outputs"].as<std::string>() : std::string();
  o.expected = vm.count("expected") != 0 ? vm["expected"].as<std::string>() : std::string();
  if (vm.count("op-library") != 0) o.op_libraries = vm["op-library"].as<std::vector<std::string>>();
  o.cache_dir = vm["cache-dir"].as<std::string>();
  o.iters = vm["iters"].as<int>();
  o.warmup = vm["warmup"].as<int>();
  o.threads = vm["threads"].as<int>();
  o.json = vm.count("json") != 0;
  if (o.iters < 0 || o.warmup < 0 || o.threads < 1) {
    throw po::error("--iters and --warmup must be >= 0 and --threads >= 1");
  }
  return o;
}

// Where the inputs came from decides whether there is an eager reference to compare with:
// the package carries eager outputs for its sample inputs only.
enum class InputSource { kFile, kSamples, kGenerated };

struct ChosenInputs {
  InputSource from = InputSource::kSamples;
  std::string description;  // the same, for people
  std::vector<at::Tensor> tensors;  // on the model's device
};

// --inputs FILE, else the package's sample inputs, else inputs made from the specs.
ChosenInputs chooseInputs(const RunOptions& o, AOTIDelegateExecutor& exec, const std::string& package) {
  const PackagedModel& model = exec.packagedModel();
  ChosenInputs in;
  if (!o.inputs_file.empty()) {
    in.tensors = readTensorsFile(o.inputs_file, "inputs file");
    in.from = InputSource::kFile;
    in.description = "file " + o.inputs_file;
  } else if (auto samples = exec.package().sampleInputs(model); !samples.empty()) {
    in.tensors = std::move(samples);
    in.from = InputSource::kSamples;
    in.description = "the package's sample inputs";
  } else if (!model.inputs.empty()) {
    in.tensors = generatedInputs(model.inputs);
    in.from = InputSource::kGenerated;
    in.description = "generated from the input specs (" + model.specs_source + ")";
  } else {
    throw Error(StatusCode::kInvalidArgument,
                "package " + package + " records neither sample inputs nor input specs: pass --inputs FILE");
  }
  const c10::Device device = parseDevice(exec.device());
  for (auto& t : in.tensors) {
    if (t.device() == device) continue;
    // A device type this LibTorch has no backend for (a plugin's own PrivateUse1 device,
    // say): Tensor::to would fail deep inside LibTorch.
    if (!c10::impl::hasDeviceGuardImpl(device.type())) {
      throw Error(StatusCode::kUnavailable,
                  "the inputs are on " + t.device().str() + " and the model runs on " + device.str() +
                      ", but this host's LibTorch cannot move tensors there (no backend for that "
                      "device type); give --inputs already on that device");
    }
    t = t.to(device);
  }
  return in;
}

struct Timing {
  std::vector<double> latencies_ms;  // one per timed run
  double wall_ms = 0;
};

// `warmup` untimed runs, then `iters` timed ones spread over `threads` threads (with a
// progress line on a terminal unless `quiet`).
Timing timeRuns(AOTIDelegateExecutor& exec, const std::vector<at::Tensor>& inputs, int warmup, int iters,
                int threads, bool quiet) {
  for (int i = 0; i < warmup; ++i) exec.run(inputs);
  std::vector<std::vector<double>> per_thread(static_cast<std::size_t>(threads));
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::string failure;
  std::mutex failure_mutex;
  const auto wall_start = std::chrono::steady_clock::now();
  auto worker = [&](std::size_t t) {
    while (!failed.load()) {
      if (next.fetch_add(1) >= iters) break;
      const auto start = std::chrono::steady_clock::now();
      try {
        exec.run(inputs);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        failure = e.what();
        failed = true;
        break;
      }
      per_thread[t].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
  };
  std::atomic<bool> timing_done{false};
  std::thread progress;
  if (!quiet && stderrIsTerminal() && iters > 0) {
    progress = std::thread([&] {
      while (!timing_done.load()) {
        const int done = std::min(next.load(), iters);
        std::cerr << "\r  timing: " << done << "/" << iters << " runs" << std::flush;
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
      }
      std::cerr << "\r" << std::string(40, ' ') << "\r" << std::flush;
    });
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads));  // before any starts: growing cannot throw with some running
  std::string start_failure;
  try {
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker, static_cast<std::size_t>(t));
  } catch (const std::system_error& e) {  // out of threads or memory for their stacks
    start_failure = "cannot start " + std::to_string(threads) + " timing threads (" + std::to_string(pool.size()) +
                    " started): " + e.what() + "; ask for fewer with --threads";
    failed = true;  // the started ones stop after their current run
  }
  for (auto& th : pool) th.join();
  Timing timing;
  timing.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall_start).count();
  timing_done = true;
  if (progress.joinable()) progress.join();
  if (!start_failure.empty()) throw Error(StatusCode::kUnavailable, start_failure);
  if (failed) throw Error(StatusCode::kModelError, "a timed run failed: " + failure);
  for (const auto& v : per_thread) timing.latencies_ms.insert(timing.latencies_ms.end(), v.begin(), v.end());
  return timing;
}

// Everything a run reports, for either output format.
struct RunReport {
  std::string package;
  bool demo = false;
  const AOTIDelegateExecutor* exec = nullptr;
  std::string plugin_name, plugin_path;
  ChosenInputs inputs;
  std::vector<at::Tensor> outputs;
  bool compared = false;  // there was a reference for these inputs
  std::string reference = "PyTorch eager";  // what was compared with: eager, or "file F"
  EagerComparison eager;
  Timing timing;
  int threads = 1;
  std::vector<std::string> notices;
  std::vector<PluginRecord> rejected_plugins;  // the plugin directory's, with their reasons

  std::string inputName(std::size_t i) const {
    const auto& specs = exec->packagedModel().inputs;
    return i < specs.size() ? specs[i].name : std::string();
  }
  std::string outputName(std::size_t i) const {
    const auto& specs = exec->packagedModel().outputs;
    if (i < specs.size()) return specs[i].name;
    const auto& names = exec->modelInfo().output_names;  // the library's own ("output0")
    return i < names.size() ? names[i] : std::string();
  }
};

void printJson(const RunReport& r) {
  const auto& latencies = r.timing.latencies_ms;
  nlohmann::json out;
  out["package"] = r.package;
  out["demo"] = r.demo;
  out["model"] = r.exec->packagedModel().name;
  out["device"] = r.exec->device();
  out["plugin"] = {{"name", r.plugin_name}, {"path", r.plugin_path}};
  out["inputs_source"] = r.inputs.description;
  out["inputs"] = nlohmann::json::array();
  for (std::size_t i = 0; i < r.inputs.tensors.size(); ++i) {
    const at::Tensor& t = r.inputs.tensors[i];
    out["inputs"].push_back({{"index", i}, {"name", r.inputName(i)},
                             {"dtype", c10::toString(t.scalar_type())},
                             {"shape", t.sizes().vec()}});
  }
  out["outputs"] = nlohmann::json::array();
  for (std::size_t i = 0; i < r.outputs.size(); ++i) {
    const at::Tensor& o = r.outputs[i];
    out["outputs"].push_back({{"index", i}, {"name", r.outputName(i)},
                              {"dtype", o.defined() ? c10::toString(o.scalar_type()) : "none"},
                              {"shape", o.defined() ? o.sizes().vec() : std::vector<std::int64_t>{}},
                              {"sum", o.defined() ? at::sum(o.to(at::kDouble)).item<double>() : 0.0},
                              {"hash", tensorHash(o)}});
  }
  // Nothing compared: no verdict ("match": null), not a match.
  out["eager"] = {{"compared", r.compared}, {"reference", r.reference},
                  {"match", r.compared ? nlohmann::json(r.eager.match) : nlohmann::json(nullptr)},
                  {"max_abs_diff", r.compared ? nlohmann::json(r.eager.max_abs_diff) : nlohmann::json(nullptr)}};
  if (!r.eager.mismatch.empty()) out["eager"]["mismatch"] = r.eager.mismatch;
  out["timing"] = {{"iterations", latencies.size()}, {"threads", r.threads},
                   {"p50_ms", percentile(latencies, 50)}, {"p90_ms", percentile(latencies, 90)},
                   {"p99_ms", percentile(latencies, 99)},
                   {"min_ms", latencies.empty() ? 0.0 : *std::min_element(latencies.begin(), latencies.end())},
                   {"max_ms", latencies.empty() ? 0.0 : *std::max_element(latencies.begin(), latencies.end())},
                   {"throughput_per_s", r.timing.wall_ms > 0 ? 1000.0 * static_cast<double>(latencies.size()) / r.timing.wall_ms : 0.0}};
  out["notices"] = r.notices;
  out["rejected_plugins"] = nlohmann::json::array();
  for (const PluginRecord& p : r.rejected_plugins) {
    out["rejected_plugins"].push_back(
        {{"path", p.path}, {"problem", pluginProblemName(p.problem)}, {"reason", p.reason}});
  }
  std::cout << out.dump(2) << "\n";
}

void printText(const RunReport& r) {
  const auto& latencies = r.timing.latencies_ms;
  std::cout << "package  " << r.package << " (model '" << r.exec->packagedModel().name << "')"
            << (r.demo ? " [bundled demo]" : "") << "\n";
  std::cout << "device   " << r.exec->device() << ", served by plugin '" << r.plugin_name << "' (" << r.plugin_path << ")\n";
  std::cout << "inputs   " << r.inputs.description << "\n";
  for (std::size_t i = 0; i < r.inputs.tensors.size(); ++i) {
    std::cout << "  " << i << " " << std::left << std::setw(10) << r.inputName(i) << describeTensor(r.inputs.tensors[i]) << "\n";
  }
  std::cout << "outputs\n";
  for (std::size_t i = 0; i < r.outputs.size(); ++i) {
    const at::Tensor& o = r.outputs[i];
    std::cout << "  " << i << " " << std::left << std::setw(10) << r.outputName(i) << std::setw(22)
              << describeTensor(o) << " sum " << std::setprecision(8)
              << (o.defined() ? at::sum(o.to(at::kDouble)).item<double>() : 0.0) << "  hash "
              << tensorHash(o) << "\n";
  }
  for (const auto& n : r.notices) std::cout << "note     " << n << "\n";
  if (r.compared && !r.eager.mismatch.empty()) {
    std::cout << "eager    outputs DO NOT match " << r.reference << ": " << r.eager.mismatch << "\n";
  } else if (r.compared) {
    std::cout << "eager    outputs match " << r.reference << " (max abs difference " << std::setprecision(3)
              << r.eager.max_abs_diff << ")\n";
  } else {
    std::cout << "eager    not compared (the package carries eager outputs only for its sample inputs)\n";
  }
  if (!latencies.empty()) {
    std::cout << std::fixed << std::setprecision(3) << "latency  " << latencies.size() << " runs on " << r.threads
              << " thread(s): p50 " << percentile(latencies, 50) << " ms, p90 " << percentile(latencies, 90)
              << " ms, p99 " << percentile(latencies, 99) << " ms (min "
              << *std::min_element(latencies.begin(), latencies.end()) << ", max "
              << *std::max_element(latencies.begin(), latencies.end()) << "); "
              << std::setprecision(1) << 1000.0 * static_cast<double>(latencies.size()) / r.timing.wall_ms << " runs/s\n";
  }
}

}  // namespace

int runRunCommand(int argc, char** argv) {
  const std::optional<RunOptions> parsed = parseRunOptions(argc, argv);
  if (!parsed) return kExitOk;
  const RunOptions& o = *parsed;
  // Before any thread starts: an interrupted run removes what it extracted.
  removeExtractionsOnSignals();

  PluginLoader loader;
  const DirectoryLoad plugins = loadPlugins(loader, o.plugins);
  if (!plugins.usable()) throw Error(StatusCode::kNotFound, plugins.error);
  for (const auto& r : plugins) {
    if (!r.loaded() && !o.json) {
      std::cerr << "aotiplug: warning: plugin " << r.path << " rejected (" << pluginProblemName(r.problem)
                << "): " << r.reason << "\n";
    }
  }
  // Before the package is opened: its extern kernels are resolved when its runner is made.
  for (const std::string& library : o.op_libraries) loadOpLibrary(library);
  requireDeviceSyntax(o.device);  // after the plugins: one may name its own device type
  RunReport report;
  for (const auto& r : plugins) {
    if (r.state == PluginState::kRejected) report.rejected_plugins.push_back(r);
  }
  report.demo = o.package.empty();
  report.package = report.demo ? ensureDemoPackage(o.cache_dir) : o.package;
  report.threads = o.threads;

  ExecutorConfig config;
  config.maxNumConcurrentThreads = static_cast<std::size_t>(o.threads);
  config.device = o.device;
  config.log = [&](const std::string& m) { report.notices.push_back(m); };
  AOTIDelegateExecutor exec(report.package, nullptr, config, o.model);
  report.exec = &exec;
  report.inputs = chooseInputs(o, exec, report.package);

  // First run: outputs, and the comparison with eager.
  report.outputs = exec.run(report.inputs.tensors);
  if (!o.save_outputs.empty()) saveOutputs(report.outputs, o.save_outputs);
  if (!o.expected.empty()) {
    report.compared = true;
    report.reference = "file " + o.expected;
    report.eager = compareWithEager(report.outputs, readTensorsFile(o.expected, "expected outputs file"));
  } else if (report.inputs.from == InputSource::kSamples) {
    const std::vector<at::Tensor> reference = exec.package().referenceOutputs(exec.packagedModel());
    report.compared = !reference.empty();
    if (report.compared) report.eager = compareWithEager(report.outputs, reference);
  }
  report.timing = timeRuns(exec, report.inputs.tensors, o.warmup, o.iters, o.threads, o.json);

  // Who served it.
  if (auto winner = runnerRegistry().winner(parseDevice(exec.device()).type())) {
    report.plugin_name = winner->origin.plugin;
    report.plugin_path = winner->origin.library;
  }
  if (o.json) {
    printJson(report);
  } else {
    printText(report);
  }
  return report.compared && !report.eager.match ? kExitCheck : kExitOk;
}

}  // namespace aotiplug::cli
