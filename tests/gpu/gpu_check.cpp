// SPDX-License-Identifier: BSD-3-Clause
// The GPU check: a self-contained program for a GPU machine (docs/gpu.md). It needs only
// the SDK, the plugins, LibTorch and (where libelf is) the host library — no Boost.Test or
// Boost.Program_options, which the GPU machines lack — and writes every result to one JSON
// file:
//   1. loads the plugins of --plugins through the host's PluginLoader (manifest, trust and
//      ABI checks, as the aotiplug CLI does), or with plain dlopen where the host library
//      was not built (it needs libelf; tests/gpu/run.sh links the machine's own);
//   2. runs the CUDA package through AOTIDelegateExecutor and the CUDA plugin, on the
//      device's current stream and on a stream of our own, and compares with eager;
//   3. times run() against upstream's AOTIModelContainerRunnerCuda on the same .so
//      (interleaved rounds, medians and ratio);
//   4. hot-swaps the weights on the GPU and checks the new eager outputs, then swaps back;
//   5. the stream contract (cuda_runner.h): runs queued on a stream of our own, never waited
//      for, while the weights are swapped after each — every output must come from the
//      weights active when its run was queued;
//   6. devices: "cuda" resolved to "cuda:0", inputs on another device refused naming them;
//   7. a plain aoti_compile_and_package package (--plain): its inputs checked from the
//      wrapper source on the GPU, and its outputs against eager;
//   8. a model with extern kernels (--extern, the test op library's ops with CUDA kernels,
//      tests/fixtures/ops): refused naming the op while --op-library is not loaded, then
//      loaded through ExecutorConfig::opLibraries (or dlopen without the host library) and
//      run through aotiplug's proxy executor on the GPU, against eager.
//
//   gpu_check --plugins DIR --package model.pt2 --data model.data.pt [--plain plain.pt2]
//             [--extern extern.pt2 --extern-data extern.data.pt --op-library LIB.so]
//             --out results.json
#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/plugin/registration_log.h>
#include <aotiplug/registry/runner_registry.h>
#if AOTIPLUG_GPU_CHECK_HOST_LOADER
#include <aotiplug/host/plugin_loader.h>
#endif

#include <ATen/ops/abs.h>
#include <ATen/ops/max.h>
#include <ATen/ops/sub.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/inductor/aoti_runner/model_container_runner_cuda.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>

namespace fs = std::filesystem;
using aotiplug::Weights;

namespace {

std::map<std::string, std::string> parseArgs(int argc, char** argv) {
  std::map<std::string, std::string> out;
  for (int i = 1; i + 1 < argc; i += 2) out[argv[i]] = argv[i + 1];
  return out;
}

c10::IValue loadPickle(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::jit::pickle_load(bytes);
}

double maxAbsDiff(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want) {
  if (got.size() != want.size()) return 1e30;
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i].sizes() != want[i].sizes()) return 1e30;
    worst = std::max(worst, at::sub(got[i].cpu().to(at::kDouble), want[i].to(at::kDouble)).abs().max().item<double>());
  }
  return worst;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

template <class F>
double timeOnce(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  c10::cuda::device_synchronize();
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  auto args = parseArgs(argc, argv);
  nlohmann::json results;
  results["ok"] = false;
  const std::string out_path = args.count("--out") ? args["--out"] : "gpu_results.json";
  auto write = [&] {
    std::ofstream(out_path) << results.dump(2) << "\n";
    std::cout << results.dump(2) << "\n";
  };
#if AOTIPLUG_GPU_CHECK_HOST_LOADER
  std::optional<aotiplug::PluginLoader> loader;  // outlives the executor below
#endif
  try {
    results["cuda_devices"] = c10::cuda::device_count();
    if (c10::cuda::device_count() == 0) {
      results["skipped"] = "no CUDA device on this machine";
      write();
      return 0;
    }
    // 1. plugins
#if AOTIPLUG_GPU_CHECK_HOST_LOADER
    results["loader"] = "aotiplug::PluginLoader";
    loader.emplace();
    // The loader takes absolute paths only (nothing relative to the current directory).
    for (const aotiplug::PluginRecord& r : loader->loadDirectory(fs::absolute(args.at("--plugins")).string())) {
      nlohmann::json devices = nlohmann::json::array();
      for (const auto& reg : r.registrations) devices.push_back(c10::DeviceTypeName(reg.device_type, true));
      results["plugins"].push_back({{"path", r.path}, {"name", r.name()}, {"loaded", r.loaded()},
                                    {"error", r.reason}, {"device_types", devices}});
    }
#else
    results["loader"] = "dlopen (the host library was not built: no libelf)";
    std::vector<std::string> plugin_files;
    for (const auto& e : fs::recursive_directory_iterator(args.at("--plugins"))) {
      if (e.path().extension() == ".so" && e.path().string().find(".p/") == std::string::npos) {
        plugin_files.push_back(fs::canonical(e.path()).string());
      }
    }
    std::sort(plugin_files.begin(), plugin_files.end());
    for (const auto& p : plugin_files) {
      void* h = ::dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
      results["plugins"].push_back({{"path", p}, {"loaded", h != nullptr},
                                    {"error", h != nullptr ? "" : ::dlerror()}});
      for (const auto& e : aotiplug::registrationLog().take(p)) {
        results["plugin_errors"].push_back(e.message);
      }
    }
#endif
    const c10::IValue data = loadPickle(args.at("--data"));
    std::vector<at::Tensor> inputs, outputs, outputs_b;
    std::map<std::string, at::Tensor> wa, wb;
    for (const auto& item : data.toGenericDict()) {
      const std::string& k = item.key().toStringRef();
      if (k == "inputs") for (const auto& t : item.value().toListRef()) inputs.push_back(t.toTensor());
      if (k == "outputs") for (const auto& t : item.value().toListRef()) outputs.push_back(t.toTensor());
      if (k == "outputs_b") for (const auto& t : item.value().toListRef()) outputs_b.push_back(t.toTensor());
      if (k == "weights_a") for (const auto& e : item.value().toGenericDict()) wa.emplace(e.key().toStringRef(), e.value().toTensor());
      if (k == "weights_b") for (const auto& e : item.value().toGenericDict()) wb.emplace(e.key().toStringRef(), e.value().toTensor());
      if (k == "device_name" || k == "torch_version") results[k] = item.value().toStringRef();
    }

    // 2. run through the executor and the CUDA plugin
    aotiplug::ExecutorConfig config;
    config.maxNumConcurrentThreads = 1;
    aotiplug::AOTIDelegateExecutor exec(args.at("--package"), nullptr, config);
    results["device"] = exec.device();
    results["plugin"] = aotiplug::runnerRegistry().winner(c10::DeviceType::CUDA)->origin.plugin;
    std::vector<at::Tensor> gpu_inputs;
    for (const auto& t : inputs) gpu_inputs.push_back(t.to(at::Device(at::kCUDA, 0)));
    const auto got = exec.run(gpu_inputs);
    const double diff = maxAbsDiff(got, outputs);
    results["eager_max_abs_diff"] = diff;
    results["eager_match"] = diff < 2e-3;
    results["output_device"] = got.at(0).device().str();

    c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, 0);
    const auto on_side = exec.runner().run(gpu_inputs, side.stream());
    c10::cuda::device_synchronize();
    results["side_stream_max_abs_diff"] = maxAbsDiff(on_side, outputs);

    // 3. timing against upstream on the same .so
    torch::inductor::AOTIModelContainerRunnerCuda upstream(exec.modelInfo().model_path, 1, "cuda",
                                                           exec.extractionDirectory());
    results["upstream_max_abs_diff"] = maxAbsDiff(upstream.run(gpu_inputs), outputs);
    const int warmup = 30, rounds = 300;
    for (int i = 0; i < warmup; ++i) {
      exec.run(gpu_inputs);
      upstream.run(gpu_inputs);
    }
    c10::cuda::device_synchronize();
    std::vector<double> t_exec, t_runner, t_upstream;
    for (int i = 0; i < rounds; ++i) {
      t_exec.push_back(timeOnce([&] { exec.run(gpu_inputs); }));
      t_runner.push_back(timeOnce([&] { exec.runner().run(gpu_inputs); }));
      t_upstream.push_back(timeOnce([&] { upstream.run(gpu_inputs); }));
    }
    results["timing_us"] = {
        {"rounds", rounds},
        {"executor_median", median(t_exec)},
        {"plugin_runner_median", median(t_runner)},
        {"upstream_runner_median", median(t_upstream)},
        {"ratio_executor_vs_upstream", median(t_exec) / median(t_upstream)},
        {"ratio_runner_vs_upstream", median(t_runner) / median(t_upstream)},
    };

    // 4. hot swap on the GPU
    exec.processWeights(std::make_shared<Weights>(wb));
    const double before_commit = maxAbsDiff(exec.run(gpu_inputs), outputs);
    exec.commitWeights();
    const double after_commit = maxAbsDiff(exec.run(gpu_inputs), outputs_b);
    exec.processWeights(std::make_shared<Weights>(wa));
    exec.commitWeights();
    const double swapped_back = maxAbsDiff(exec.run(gpu_inputs), outputs);
    results["swap"] = {{"old_weights_until_commit_diff", before_commit},
                       {"new_weights_diff", after_commit},
                       {"swapped_back_diff", swapped_back},
                       {"ok", before_commit < 2e-3 && after_commit < 2e-3 && swapped_back < 2e-3}};
    // 5. the stream contract: queued runs keep the weights they were queued with.
    {
      std::vector<at::Tensor> queued;
      std::vector<bool> queued_with_b;
      for (int i = 0; i < 24; ++i) {
        const bool b = i % 2 == 0;
        exec.processWeights(std::make_shared<Weights>(b ? wb : wa));
        exec.commitWeights();
        queued.push_back(exec.runner().run(gpu_inputs, side.stream()).at(0));  // not waited for
        queued_with_b.push_back(b);
      }
      c10::cuda::device_synchronize();
      double worst = 0;
      for (std::size_t i = 0; i < queued.size(); ++i) {
        worst = std::max(worst, maxAbsDiff({queued[i]}, queued_with_b[i] ? outputs_b : outputs));
      }
      exec.processWeights(std::make_shared<Weights>(wa));
      exec.commitWeights();
      results["stream_contract"] = {{"runs", queued.size()}, {"worst_diff", worst}, {"ok", worst < 2e-3}};
    }

    // 6. devices
    {
      std::string refused;
      try {
        exec.run(inputs);  // on the CPU
      } catch (const aotiplug::Error& e) {
        refused = e.what();
      }
      results["devices"] = {{"resolved", exec.device()},
                            {"cpu_input_refused", refused},
                            {"ok", exec.device() == "cuda:0" && refused.find("input 0") != std::string::npos &&
                                       refused.find("on cpu") != std::string::npos}};
    }

    // 7. a plain package on the GPU
    bool plain_ok = true;
    if (args.count("--plain") != 0) {
      aotiplug::AOTIDelegateExecutor plain(args.at("--plain"), nullptr, config);
      const auto& specs = plain.packagedModel().inputs;
      nlohmann::json refusals = nlohmann::json::array();
      for (const auto& wrong : {std::vector<at::Tensor>{gpu_inputs.at(0).to(at::kHalf)},
                                std::vector<at::Tensor>{gpu_inputs.at(0).reshape({16, 2048})},
                                std::vector<at::Tensor>{inputs.at(0)}}) {
        try {
          plain.run(wrong);
          refusals.push_back("NOT REFUSED");
        } catch (const aotiplug::Error& e) {
          refusals.push_back(e.what());
        }
      }
      const double plain_diff = maxAbsDiff(plain.run(gpu_inputs), outputs);
      bool all_refused = true;
      for (const auto& r : refusals) all_refused = all_refused && r.get<std::string>().find("input 0") != std::string::npos;
      plain_ok = !specs.empty() && specs[0].device == c10::DeviceType::CUDA && all_refused && plain_diff < 2e-3;
      results["plain_package"] = {{"specs_source", plain.packagedModel().specs_source},
                                  {"spec", specs.empty() ? std::string() : specs[0].describe()},
                                  {"refusals", refusals},
                                  {"eager_max_abs_diff", plain_diff},
                                  {"ok", plain_ok}};
    }
    // 8. extern kernels on the GPU
    bool extern_ok = true;
    if (args.count("--extern") != 0) {
      std::string refused;
      try {
        aotiplug::AOTIDelegateExecutor without(args.at("--extern"), nullptr, config);
      } catch (const aotiplug::Error& e) {
        refused = e.what();
      }
      aotiplug::ExecutorConfig with = config;
#if AOTIPLUG_GPU_CHECK_HOST_LOADER
      with.opLibraries = {fs::absolute(args.at("--op-library")).string()};  // trust-checked (run.sh: go-w)
#else
      if (::dlopen(args.at("--op-library").c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
        throw std::runtime_error(std::string("cannot load the op library: ") + ::dlerror());
      }
#endif
      aotiplug::AOTIDelegateExecutor exec_extern(args.at("--extern"), nullptr, with);
      std::vector<at::Tensor> extern_inputs, extern_outputs;
      for (const auto& item : loadPickle(args.at("--extern-data")).toGenericDict()) {
        const std::string k = item.key().toStringRef();
        if (k == "inputs") for (const auto& t : item.value().toListRef()) extern_inputs.push_back(t.toTensor().cuda());
        if (k == "outputs") for (const auto& t : item.value().toListRef()) extern_outputs.push_back(t.toTensor());
      }
      const std::vector<at::Tensor> extern_got = exec_extern.run(extern_inputs);
      bool on_gpu = !extern_got.empty();
      for (const at::Tensor& t : extern_got) on_gpu = on_gpu && t.is_cuda();
      const double extern_diff = maxAbsDiff(extern_got, extern_outputs);
      extern_ok = refused.find("needs operator aotiplug_test::") != std::string::npos && on_gpu && extern_diff < 1e-4;
      results["extern_kernels"] = {{"refused_without_op_library", refused},
                                   {"outputs_on_gpu", on_gpu},
                                   {"eager_max_abs_diff", extern_diff},
                                   {"ok", extern_ok}};
    }
    results["ok"] = results["eager_match"].get<bool>() && results["swap"]["ok"].get<bool>() &&
                    results["side_stream_max_abs_diff"].get<double>() < 2e-3 &&
                    results["stream_contract"]["ok"].get<bool>() && results["devices"]["ok"].get<bool>() &&
                    plain_ok && extern_ok;
  } catch (const std::exception& e) {
    results["error"] = e.what();
    write();
    return 1;
  }
  write();
  return results["ok"].get<bool>() ? 0 : 3;
}
