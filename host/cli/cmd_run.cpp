// SPDX-License-Identifier: BSD-3-Clause
// aotiplug run: run a .pt2 package through the plugins, check it against eager, time it.
#include "cli.h"

#include <aotiplug/aoti_delegate_executor.h>
#include <aotiplug/pt2_package.h>
#include <aotiplug/runner_registry.h>

#include <ATen/ops/abs.h>
#include <ATen/ops/max.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/sub.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <boost/program_options.hpp>
#include <c10/core/DeviceType.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
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

std::vector<at::Tensor> readInputsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(StatusCode::kNotFound, "inputs file " + path + " cannot be opened");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    std::vector<at::Tensor> out = tensorsFromPickledBytes(std::string(bytes.begin(), bytes.end()));
    if (out.empty()) throw Error(StatusCode::kInvalidArgument, "inputs file " + path + " holds no tensors");
    return out;
  } catch (const c10::Error& e) {
    throw Error(StatusCode::kInvalidArgument,
                "inputs file " + path + " is not a torch.save'd list of tensors: " +
                    e.what_without_backtrace());
  }
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

}  // namespace

int runRunCommand(int argc, char** argv) {
  po::options_description options(
      "Usage: aotiplug run [MODEL.pt2] [options]\n\n"
      "Runs an AOTInductor package through the runner plugin that serves its device:\n"
      "prints each output's dtype, shape and checksums, compares the outputs with the\n"
      "PyTorch eager outputs the package carries (when run on its sample inputs), and\n"
      "reports latency percentiles. Without MODEL.pt2 it runs the bundled demo model\n"
      "(models/demo.py), compiled on first use and cached.\n\n"
      "Inputs come from --inputs FILE (a torch.save'd list of tensors), else from the\n"
      "package's sample inputs, else are generated from the input specs it records.\n\n"
      "Exit codes: 0 ok, 1 error (package, plugin or model), 2 bad arguments,\n"
      "3 the outputs differ from PyTorch eager.\n\nOptions");
  options.add_options()
      ("help,h", "show this help")
      ("plugins,p", po::value<std::string>()->default_value(defaultPluginDir()), "plugin directory")
      ("device", po::value<std::string>()->default_value(""), "run on this device (cpu, cuda, cuda:N) instead of the package's")
      ("model", po::value<std::string>()->default_value(""), "the model in a package holding several")
      ("inputs", po::value<std::string>(), "torch.save'd list of input tensors")
      ("iters,n", po::value<int>()->default_value(20), "timed runs (in all threads together)")
      ("warmup", po::value<int>()->default_value(2), "untimed runs first")
      ("threads,t", po::value<int>()->default_value(1), "threads calling run() at once (also the number of model instances)")
      ("cache-dir", po::value<std::string>()->default_value(defaultCacheDir()), "where the compiled demo model is cached")
      ("json", "print JSON instead of text");
  po::options_description hidden;
  hidden.add_options()("package", po::value<std::string>(), "package");
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add("package", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
  if (vm.count("help") != 0) {
    std::cout << options << "\n";
    return kExitOk;
  }
  po::notify(vm);
  const int iters = vm["iters"].as<int>();
  const int warmup = vm["warmup"].as<int>();
  const int threads = vm["threads"].as<int>();
  if (iters < 0 || warmup < 0 || threads < 1) {
    throw po::error("--iters and --warmup must be >= 0 and --threads >= 1");
  }
  const bool json = vm.count("json") != 0;
  // Before any thread starts: an interrupted run removes what it extracted.
  removeExtractionsOnSignals();

  PluginLoader loader;
  const DirectoryLoad plugins = loadPlugins(loader, vm["plugins"].as<std::string>());
  if (!plugins.usable()) throw Error(StatusCode::kNotFound, plugins.error);
  for (const auto& r : plugins) {
    if (!r.loaded() && !json) {
      std::cerr << "aotiplug: warning: plugin " << r.path << " rejected (" << pluginProblemName(r.problem)
                << "): " << r.reason << "\n";
    }
  }
  const bool demo = vm.count("package") == 0;
  const std::string package = demo ? ensureDemoPackage(vm["cache-dir"].as<std::string>())
                                   : vm["package"].as<std::string>();

  std::vector<std::string> notices;
  ExecutorConfig config;
  config.maxNumConcurrentThreads = static_cast<std::size_t>(threads);
  config.device = vm["device"].as<std::string>();
  config.log = [&](const std::string& m) { notices.push_back(m); };
  AOTIDelegateExecutor exec(package, nullptr, config, vm["model"].as<std::string>());
  const PackagedModel& model = exec.packagedModel();

  // Where the inputs come from decides whether there is an eager reference to compare with:
  // the package carries eager outputs for its sample inputs only.
  enum class InputSource { kFile, kSamples, kGenerated };
  InputSource from = InputSource::kSamples;
  std::string source;  // the same, for people
  std::vector<at::Tensor> inputs;
  if (vm.count("inputs") != 0) {
    inputs = readInputsFile(vm["inputs"].as<std::string>());
    from = InputSource::kFile;
    source = "file " + vm["inputs"].as<std::string>();
  } else if (auto samples = exec.package().sampleInputs(model); !samples.empty()) {
    inputs = std::move(samples);
    from = InputSource::kSamples;
    source = "the package's sample inputs";
  } else if (!model.inputs.empty()) {
    inputs = generatedInputs(model.inputs);
    from = InputSource::kGenerated;
    source = "generated from the input specs (" + model.specs_source + ")";
  } else {
    throw Error(StatusCode::kInvalidArgument,
                "package " + package + " records neither sample inputs nor input specs: pass --inputs FILE");
  }
  const c10::Device device = parseDevice(exec.device());
  for (auto& t : inputs) {
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

  // First run: outputs, and the comparison with eager.
  const std::vector<at::Tensor> outputs = exec.run(inputs);
  const std::vector<at::Tensor> reference =
      from == InputSource::kSamples ? exec.package().referenceOutputs(model) : std::vector<at::Tensor>{};
  const bool compared = !reference.empty();
  bool match = true;
  double max_diff = 0;
  std::string mismatch;  // why the outputs do not match, when it is not a difference in values
  if (compared) {
    match = reference.size() == outputs.size();
    if (!match) {
      mismatch = "the model returned " + std::to_string(outputs.size()) + " output(s), the package's eager reference has " +
                 std::to_string(reference.size());
    }
    for (std::size_t i = 0; match && i < outputs.size(); ++i) {
      const at::Tensor got = outputs[i].cpu();
      const at::Tensor want = reference[i];
      if (got.sizes() != want.sizes() || got.scalar_type() != want.scalar_type()) {
        match = false;
        std::ostringstream os;
        os << "output " << i << " is " << describeTensor(got) << ", the eager reference " << describeTensor(want);
        mismatch = os.str();
        break;
      }
      const double diff = want.numel() == 0 ? 0.0
                              : at::sub(got.to(at::kDouble), want.to(at::kDouble)).abs().max().item<double>();
      max_diff = std::max(max_diff, diff);
      const double tolerance = want.scalar_type() == at::kBFloat16 || want.scalar_type() == at::kHalf ? 2e-2
                               : at::isFloatingType(want.scalar_type()) ? 1e-4 : 0.0;
      const double scale = want.numel() == 0 ? 0.0 : want.to(at::kDouble).abs().max().item<double>();
      if (diff > tolerance * std::max(1.0, scale)) match = false;
    }
  }

  // Timed runs.
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
  if (!json && stderrIsTerminal() && iters > 0) {
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
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, static_cast<std::size_t>(t));
  for (auto& th : pool) th.join();
  const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall_start).count();
  timing_done = true;
  if (progress.joinable()) progress.join();
  if (failed) throw Error(StatusCode::kModelError, "a timed run failed: " + failure);
  std::vector<double> latencies;
  for (const auto& v : per_thread) latencies.insert(latencies.end(), v.begin(), v.end());

  // Who served it.
  std::string plugin_name, plugin_path;
  if (auto winner = runnerRegistry().winner(device.type())) {
    plugin_name = winner->origin.plugin;
    plugin_path = winner->origin.library;
  }
  auto outputName = [&](std::size_t i) {
    if (i < model.outputs.size()) return model.outputs[i].name;
    const auto& names = exec.modelInfo().output_names;  // the library's own ("output0")
    return i < names.size() ? names[i] : std::string();
  };
  auto inputName = [&](std::size_t i) {
    return i < model.inputs.size() ? model.inputs[i].name : std::string();
  };

  if (json) {
    nlohmann::json out;
    out["package"] = package;
    out["demo"] = demo;
    out["model"] = model.name;
    out["device"] = exec.device();
    out["plugin"] = {{"name", plugin_name}, {"path", plugin_path}};
    out["inputs_source"] = source;
    out["inputs"] = nlohmann::json::array();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      out["inputs"].push_back({{"index", i}, {"name", inputName(i)},
                               {"dtype", c10::toString(inputs[i].scalar_type())},
                               {"shape", inputs[i].sizes().vec()}});
    }
    out["outputs"] = nlohmann::json::array();
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      const at::Tensor& o = outputs[i];
      out["outputs"].push_back({{"index", i}, {"name", outputName(i)},
                                {"dtype", o.defined() ? c10::toString(o.scalar_type()) : "none"},
                                {"shape", o.defined() ? o.sizes().vec() : std::vector<std::int64_t>{}},
                                {"sum", o.defined() ? at::sum(o.to(at::kDouble)).item<double>() : 0.0},
                                {"hash", tensorHash(o)}});
    }
    // Nothing compared: no verdict ("match": null), not a match.
    out["eager"] = {{"compared", compared},
                    {"match", compared ? nlohmann::json(match) : nlohmann::json(nullptr)},
                    {"max_abs_diff", compared ? nlohmann::json(max_diff) : nlohmann::json(nullptr)}};
    if (!mismatch.empty()) out["eager"]["mismatch"] = mismatch;
    out["timing"] = {{"iterations", latencies.size()}, {"threads", threads},
                     {"p50_ms", percentile(latencies, 50)}, {"p90_ms", percentile(latencies, 90)},
                     {"p99_ms", percentile(latencies, 99)},
                     {"min_ms", latencies.empty() ? 0.0 : *std::min_element(latencies.begin(), latencies.end())},
                     {"max_ms", latencies.empty() ? 0.0 : *std::max_element(latencies.begin(), latencies.end())},
                     {"throughput_per_s", wall_ms > 0 ? 1000.0 * static_cast<double>(latencies.size()) / wall_ms : 0.0}};
    out["notices"] = notices;
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << "package  " << package << " (model '" << model.name << "')" << (demo ? " [bundled demo]" : "") << "\n";
    std::cout << "device   " << exec.device() << ", served by plugin '" << plugin_name << "' (" << plugin_path << ")\n";
    std::cout << "inputs   " << source << "\n";
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      std::cout << "  " << i << " " << std::left << std::setw(10) << inputName(i) << describeTensor(inputs[i]) << "\n";
    }
    std::cout << "outputs\n";
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      const at::Tensor& o = outputs[i];
      std::cout << "  " << i << " " << std::left << std::setw(10) << outputName(i) << std::setw(22)
                << describeTensor(o) << " sum " << std::setprecision(8)
                << (o.defined() ? at::sum(o.to(at::kDouble)).item<double>() : 0.0) << "  hash "
                << tensorHash(o) << "\n";
    }
    for (const auto& n : notices) std::cout << "note     " << n << "\n";
    if (compared && !mismatch.empty()) {
      std::cout << "eager    outputs DO NOT match PyTorch eager: " << mismatch << "\n";
    } else if (compared) {
      std::cout << "eager    outputs " << (match ? "match" : "DO NOT match") << " PyTorch eager (max abs difference "
                << std::setprecision(3) << max_diff << ")\n";
    } else {
      std::cout << "eager    not compared (the package carries eager outputs only for its sample inputs)\n";
    }
    if (!latencies.empty()) {
      std::cout << std::fixed << std::setprecision(3) << "latency  " << latencies.size() << " runs on " << threads
                << " thread(s): p50 " << percentile(latencies, 50) << " ms, p90 " << percentile(latencies, 90)
                << " ms, p99 " << percentile(latencies, 99) << " ms (min "
                << *std::min_element(latencies.begin(), latencies.end()) << ", max "
                << *std::max_element(latencies.begin(), latencies.end()) << "); "
                << std::setprecision(1) << 1000.0 * static_cast<double>(latencies.size()) / wall_ms << " runs/s\n";
    }
  }
  return compared && !match ? kExitCheck : kExitOk;
}

}  // namespace aotiplug::cli
