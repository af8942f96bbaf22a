// SPDX-License-Identifier: BSD-3-Clause
// aotiplug-bench: the benchmarks of docs/performance.md, side by side with upstream in one
// run, on the same .pt2 files. Writes one JSON file (bench/plot.py draws it).
//
//   aotiplug-bench --models DIR --plugins DIR --bench-plugin LIB --out results.json [--quick]
//                  [--only per_call,open,swap,throughput,plugin_scan,serve_inprocess]
//   aotiplug-bench --models DIR --plugins DIR --profile ours|runner|upstream|open|open-upstream|scan
//                  [--iters N]
//
// 1. per-call run(): our executor (+ CPU plugin) vs upstream's AOTIModelContainerRunnerCpu
//    on the same .so vs PyTorch eager (bench/eager_timing.py), tiny and medium models;
// 2. package open -> first output: ours vs upstream's AOTIModelPackageLoader;
// 3. weight hot swap: run() latency while another thread swaps, vs steady state; memory a
//    swap adds, ours vs upstream's copying path;
// 4. throughput with 1 and 2 threads, 1 and 2 model instances;
// 5. scanning and loading a directory of 100 plugins;
// 6. (serve_inprocess, for bench/serving.py) the executor on the serving models per batch size.
// Timings are per call (steady_clock), reported as median and spread (p10/p90, p99).
#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/host/plugin_loader.h>
#include <aotiplug/plugin/manifest.h>

#include <ATen/Parallel.h>
#include <ATen/ops/randn.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/csrc/inductor/aoti_runner/model_container_runner_cpu.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <thread>

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

struct Args {
  fs::path models, plugins, bench_plugin, out, source;
  bool quick = false;
  std::string only;     // comma-separated subset of per_call,open,swap,throughput,plugin_scan
  std::string profile;  // ours|runner|upstream: see profile()
  int iters = 100000;
};

double us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

json stats(std::vector<double> v) {
  if (v.empty()) return json::object();
  std::sort(v.begin(), v.end());
  auto q = [&](double f) { return v[std::min(v.size() - 1, static_cast<std::size_t>(f * static_cast<double>(v.size())))]; };
  return {{"n", v.size()}, {"median", q(0.5)}, {"p10", q(0.1)}, {"p90", q(0.9)}, {"p99", q(0.99)}, {"min", v.front()}};
}

struct Data {
  std::vector<at::Tensor> inputs;
  std::map<std::string, at::Tensor> weights_b;
};

Data loadData(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Data d;
  for (const auto& item : torch::jit::pickle_load(bytes).toGenericDict()) {
    if (item.key().toStringRef() == "inputs") {
      for (const auto& t : item.value().toListRef()) d.inputs.push_back(t.toTensor());
    } else {
      for (const auto& e : item.value().toGenericDict()) d.weights_b.emplace(e.key().toStringRef(), e.value().toTensor());
    }
  }
  return d;
}

aotiplug::ExecutorConfig quietConfig(std::size_t models = 1) {
  aotiplug::ExecutorConfig c;
  c.maxNumConcurrentThreads = models;
  c.log = [](const std::string&) {};
  return c;
}

// Process memory from /proc/self/status, in bytes.
std::size_t statusBytes(const char* key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(std::strlen(key))) * 1024;
  }
  return 0;
}
void resetPeak() { std::ofstream("/proc/self/clear_refs") << "5"; }

// ---- 1. per call ----
// Each sample times `batch` consecutive calls and divides: on a sub-microsecond call the
// clock reads themselves (~20 ns a pair here) would otherwise be part of every sample and
// pull the ratios towards 1.
template <typename F>
void timeBlock(std::vector<double>& samples, int block, int batch, F&& call) {
  for (int i = 0; i < block; i += batch) {
    const auto t0 = Clock::now();
    for (int k = 0; k < batch; ++k) call();
    samples.push_back(us(Clock::now() - t0) / batch);
  }
}

json perCall(const Args& a, const std::string& name, int rounds, int block, int batch) {
  const fs::path pkg = a.models / (name + ".pt2");
  const Data data = loadData(a.models / (name + ".data.pt"));
  aotiplug::AOTIDelegateExecutor exec(pkg.string(), nullptr, quietConfig());
  // Upstream on its own copy of the same library (a separate mapping).
  const fs::path copy = fs::path(exec.extractionDirectory()) / "upstream_copy.so";
  fs::copy_file(exec.modelInfo().model_path, copy);
  torch::inductor::AOTIModelContainerRunnerCpu upstream(copy.string(), 1);
  std::vector<double> ours, runner_only, theirs;
  for (int i = 0; i < 200; ++i) {
    exec.run(data.inputs);
    upstream.run(data.inputs);
  }
  // Interleaved blocks, so drift hits all three alike; the order rotates every round, so
  // none always runs first or always follows the same other side.
  for (int r = 0; r < rounds; ++r) {
    for (int k = 0; k < 3; ++k) {
      switch ((r + k) % 3) {
        case 0: timeBlock(ours, block, batch, [&] { exec.run(data.inputs); }); break;
        case 1: timeBlock(runner_only, block, batch, [&] { exec.runner().run(data.inputs); }); break;
        default: timeBlock(theirs, block, batch, [&] { upstream.run(data.inputs); }); break;
      }
    }
  }
  json j = {{"ours_executor_us", stats(ours)}, {"ours_runner_us", stats(runner_only)}, {"upstream_runner_us", stats(theirs)}};
  j["ratio_executor_vs_upstream"] = j["ours_executor_us"]["median"].get<double>() / j["upstream_runner_us"]["median"].get<double>();
  j["ratio_runner_vs_upstream"] = j["ours_runner_us"]["median"].get<double>() / j["upstream_runner_us"]["median"].get<double>();
  j["overhead_executor_us"] = j["ours_executor_us"]["median"].get<double>() - j["upstream_runner_us"]["median"].get<double>();
  return j;
}

// ---- 2. open -> first output ----
// First opens (nothing of the package open in the process), then second opens (one
// executor, or one upstream loader, already open on it: another Triton instance, a reload).
json openToFirstOutput(const Args& a, const std::string& name, int reps) {
  const fs::path pkg = a.models / (name + ".pt2");
  const Data data = loadData(a.models / (name + ".data.pt"));
  auto rounds = [&](std::vector<double>& ours, std::vector<double>& theirs) {
    auto openOurs = [&](bool keep) {
      const auto t0 = Clock::now();
      aotiplug::AOTIDelegateExecutor exec(pkg.string(), nullptr, quietConfig());
      exec.run(data.inputs);
      if (keep) ours.push_back(us(Clock::now() - t0) / 1000.0);
    };
    auto openUpstream = [&](bool keep) {
      const auto t0 = Clock::now();
      torch::inductor::AOTIModelPackageLoader loader(pkg.string());
      loader.run(data.inputs);
      if (keep) theirs.push_back(us(Clock::now() - t0) / 1000.0);
    };
    // The first round warms the page cache and is dropped; the order alternates, so neither
    // side always goes first. Closing (the destructors) is not timed.
    for (int r = 0; r < reps + 1; ++r) {
      if (r % 2 == 0) {
        openOurs(r > 0);
        openUpstream(r > 0);
      } else {
        openUpstream(true);
        openOurs(true);
      }
    }
  };
  std::vector<double> ours, theirs, ours2, theirs2;
  rounds(ours, theirs);
  {
    aotiplug::AOTIDelegateExecutor resident(pkg.string(), nullptr, quietConfig());
    torch::inductor::AOTIModelPackageLoader resident_upstream(pkg.string());
    resident.run(data.inputs);
    resident_upstream.run(data.inputs);
    rounds(ours2, theirs2);
  }
  json j = {{"ours_ms", stats(ours)}, {"upstream_ms", stats(theirs)}};
  j["ratio"] = j["ours_ms"]["median"].get<double>() / j["upstream_ms"]["median"].get<double>();
  json second = {{"ours_ms", stats(ours2)}, {"upstream_ms", stats(theirs2)}};
  second["ratio"] = second["ours_ms"]["median"].get<double>() / second["upstream_ms"]["median"].get<double>();
  j["second_open"] = second;
  return j;
}

// ---- 3. hot swap: latency ----
json swapLatency(const Args& a, const std::string& name, double seconds) {
  const fs::path pkg = a.models / (name + ".pt2");
  const Data data = loadData(a.models / (name + ".data.pt"));
  aotiplug::AOTIDelegateExecutor exec(pkg.string(), nullptr, quietConfig());
  std::map<std::string, at::Tensor> wa;
  for (const auto& [fqn, t] : exec.runner().extract_constants_map(false)) wa.emplace(fqn, t.clone());
  const auto A = std::make_shared<aotiplug::Weights>(wa);
  const auto B = std::make_shared<aotiplug::Weights>(data.weights_b);

  // Upstream, the same loop: update_inactive_constant_buffer (a copy into the library's
  // inactive buffer) and swap_constant_buffer, on its own copy of the library.
  const fs::path copy = fs::path(exec.extractionDirectory()) / "upstream_swap_copy.so";
  fs::copy_file(exec.modelInfo().model_path, copy, fs::copy_options::overwrite_existing);
  torch::inductor::AOTIModelContainerRunnerCpu upstream(copy.string(), 1);
  std::map<std::string, std::string> fqn_to_name;
  for (const auto& [n, fqn] : upstream.getConstantNamesToOriginalFQNs()) fqn_to_name[fqn] = n;
  std::array<std::map<std::string, at::Tensor>, 2> upstream_sets;  // by constant name
  for (const auto& [fqn, t] : wa) upstream_sets[0][fqn_to_name.at(fqn)] = t;
  for (const auto& [fqn, t] : data.weights_b) {
    if (fqn_to_name.count(fqn) != 0) upstream_sets[1][fqn_to_name.at(fqn)] = t;
  }
  std::array<torch::inductor::TensorConstantMap, 2> upstream_maps;
  for (int i = 0; i < 2; ++i) {
    for (auto& [n, t] : upstream_sets[i]) upstream_maps[i][n] = &t;
  }
  std::atomic<std::uint64_t> upstream_swaps{0};  // upstream tells no generation: count swaps

  struct Side {
    std::function<std::uint64_t()> run;  // returns the weights generation it ran on
    std::function<void(long)> process;    // the n-th swap's first step
    std::function<void()> commit;
  };
  const Side ours{[&] {
                    aotiplug::AOTIDelegateExecutor::RunInfo info;
                    exec.run(data.inputs, info);
                    return info.weights_generation;
                  },
                  [&](long n) { exec.processWeights(n % 2 == 0 ? B : A); },
                  [&] { exec.commitWeights(); }};
  const Side theirs{[&] {
                      const std::uint64_t g = upstream_swaps.load();
                      upstream.run(data.inputs);
                      return g;
                    },
                    [&](long n) { upstream.update_inactive_constant_buffer(upstream_maps[n % 2 == 0 ? 1 : 0]); },
                    [&] {
                      upstream.swap_constant_buffer();
                      ++upstream_swaps;
                    }};
  for (int i = 0; i < 20; ++i) {
    ours.run();
    theirs.run();
  }

  // Each run's latency, and apart: the runs that were the first on newly committed weights
  // (their generation differs from the run before), and the others.
  struct Samples {
    std::vector<double> lat, first_after_swap, same_weights, process_us, commit_us;
    long swaps = 0;
  };
  auto measure = [&](const Side& side, bool swapping, double block_seconds, Samples& out) {
    std::atomic<bool> stop{false};
    std::atomic<long> swaps{0};
    std::vector<double> process_us, commit_us;
    std::thread swapper;
    if (swapping) {
      swapper = std::thread([&] {
        at::set_num_threads(1);
        while (!stop.load()) {
          const auto t0 = Clock::now();
          side.process(swaps.load());
          const auto t1 = Clock::now();
          side.commit();
          commit_us.push_back(us(Clock::now() - t1));
          process_us.push_back(us(t1 - t0));
          ++swaps;
        }
      });
    }
    std::uint64_t previous = side.run();
    const auto until = Clock::now() + std::chrono::duration<double>(block_seconds);
    while (Clock::now() < until) {
      const auto t0 = Clock::now();
      const std::uint64_t generation = side.run();
      const double t = us(Clock::now() - t0);
      out.lat.push_back(t);
      (generation != previous ? out.first_after_swap : out.same_weights).push_back(t);
      previous = generation;
    }
    stop = true;
    if (swapper.joinable()) swapper.join();
    out.swaps += swaps.load();
    out.process_us.insert(out.process_us.end(), process_us.begin(), process_us.end());
    out.commit_us.insert(out.commit_us.end(), commit_us.begin(), commit_us.end());
  };
  // Steady and swapping in alternating blocks (steady, swapping, swapping, steady, ...), so
  // that a noisy spell of the machine falls on both alike rather than on one 4 s stretch;
  // in each block both sides, in turns.
  Samples steady_s, during_s, up_steady_s, up_during_s;
  constexpr int kBlocks = 8;
  const double block = seconds / (kBlocks / 2);
  for (int b = 0; b < kBlocks; ++b) {
    const bool swapping = (b % 4 == 1 || b % 4 == 2);
    for (int turn = 0; turn < 2; ++turn) {
      if ((turn + b) % 2 == 0) {
        measure(ours, swapping, block, swapping ? during_s : steady_s);
      } else {
        measure(theirs, swapping, block, swapping ? up_during_s : up_steady_s);
      }
    }
  }
  auto summarize = [&](const Samples& x, bool swapping, const char* first_step, const char* second_step) {
    json j = stats(x.lat);
    j["swaps"] = x.swaps;
    j["first_run_after_a_swap_us"] = stats(x.first_after_swap);
    j["runs_on_the_same_weights_us"] = stats(x.same_weights);
    if (swapping) {
      j[first_step] = stats(x.process_us);
      j[second_step] = stats(x.commit_us);
    }
    return j;
  };
  json steady = summarize(steady_s, false, "", "");
  json during = summarize(during_s, true, "process_weights_us", "commit_weights_us");
  json up_steady = summarize(up_steady_s, false, "", "");
  json up_during = summarize(up_during_s, true, "update_inactive_constant_buffer_us", "swap_constant_buffer_us");
  json upstream_j = {{"steady_us", up_steady}, {"during_swaps_us", up_during},
                     {"p99_ratio", up_during["p99"].get<double>() / up_steady["p99"].get<double>()},
                     {"p50_ratio", up_during["median"].get<double>() / up_steady["median"].get<double>()}};
  return {{"steady_us", steady}, {"during_swaps_us", during}, {"blocks", kBlocks},
          {"p99_ratio", during["p99"].get<double>() / steady["p99"].get<double>()},
          {"p50_ratio", during["median"].get<double>() / steady["median"].get<double>()},
          {"upstream", upstream_j}};
}

// ---- 3. hot swap: memory ----
json swapMemory(const Args& a, const std::string& name) {
  const fs::path pkg = a.models / (name + ".pt2");
  const Data data = loadData(a.models / (name + ".data.pt"));
  std::size_t weight_bytes = 0;
  for (const auto& [k, t] : data.weights_b) weight_bytes += t.nbytes();
  json j = {{"weight_bytes", weight_bytes}};
  {
    aotiplug::AOTIDelegateExecutor exec(pkg.string(), nullptr, quietConfig());
    exec.run(data.inputs);
    auto B = std::make_shared<aotiplug::Weights>(data.weights_b);  // the caller's new weights
    resetPeak();
    const std::size_t before = statusBytes("VmRSS:");
    exec.processWeights(B);
    exec.commitWeights();
    exec.run(data.inputs);
    const std::size_t peak = statusBytes("VmHWM:");
    j["ours_extra_bytes"] = peak > before ? peak - before : 0;
    j["ours_in_place"] = exec.modelInfo().features.user_managed_constant_buffer;
  }
  {
    aotiplug::AOTIDelegateExecutor exec(pkg.string(), nullptr, quietConfig());  // for the .so
    torch::inductor::AOTIModelContainerRunnerCpu upstream(exec.modelInfo().model_path, 1);
    upstream.run(data.inputs);
    std::map<std::string, std::string> fqn_to_name;
    for (const auto& [n, fqn] : upstream.getConstantNamesToOriginalFQNs()) fqn_to_name[fqn] = n;
    std::map<std::string, at::Tensor> owned;
    for (const auto& [fqn, t] : data.weights_b) owned[fqn_to_name[fqn]] = t;
    torch::inductor::TensorConstantMap map;
    for (auto& [n, t] : owned) map[n] = &t;
    resetPeak();
    const std::size_t before = statusBytes("VmRSS:");
    upstream.update_inactive_constant_buffer(map);
    upstream.run_const_fold(true);
    upstream.swap_constant_buffer();
    upstream.run(data.inputs);
    const std::size_t peak = statusBytes("VmHWM:");
    j["upstream_extra_bytes"] = peak > before ? peak - before : 0;
  }
  j["ours_ratio"] = j["ours_extra_bytes"].get<double>() / static_cast<double>(weight_bytes);
  j["upstream_ratio"] = j["upstream_extra_bytes"].get<double>() / static_cast<double>(weight_bytes);
  return j;
}

// ---- 4. throughput ----
json throughput(const Args& a, const std::string& name, double seconds) {
  const fs::path pkg = a.models / (name + ".pt2");
  const Data data = loadData(a.models / (name + ".data.pt"));
  json out = json::array();
  for (auto [threads, models] : std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {2, 2}}) {
    aotiplug::AOTIDelegateExecutor exec(pkg.string(), nullptr, quietConfig(static_cast<std::size_t>(models)));
    for (int i = 0; i < 20; ++i) exec.run(data.inputs);
    std::atomic<long> runs{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> pool;
    const auto t0 = Clock::now();
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        // OpenMP's thread count is per thread: without this each worker would run the
        // model's parallel regions on every core, and two workers would oversubscribe them.
        at::set_num_threads(1);
        while (!stop.load()) {
          exec.run(data.inputs);
          ++runs;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& t : pool) t.join();
    const double elapsed = us(Clock::now() - t0) / 1e6;
    out.push_back({{"threads", threads}, {"num_models", models}, {"runs_per_s", static_cast<double>(runs.load()) / elapsed}});
  }
  return {{"configs", out},
          {"scaling_2x2_vs_1x1", out[2]["runs_per_s"].get<double>() / out[0]["runs_per_s"].get<double>()}};
}

// ---- 6. serving, anchor B: the executor in-process on the batches a server forms ----
// run() of the serving models (dimension 0 a batch) at each batch size, padded to the
// smallest the package accepts as the Triton backend pads it; bench/serving.py weighs these
// by the batch sizes the server ran.
json servingInProcess(const Args& a, const std::string& name, int reps) {
  const fs::path pkg = a.models / (name + ".pt2");
  const Data data = loadData(a.models / (name + ".data.pt"));
  aotiplug::AOTIDelegateExecutor exec(pkg.string(), nullptr, quietConfig());
  const aotiplug::TensorSpec& spec = exec.packagedModel().inputs.at(0);
  const std::int64_t smallest = std::max<std::int64_t>(spec.min.at(0), 1);
  json out = {{"batch_min", smallest}, {"batch_max", spec.max.at(0)}, {"run_us", json::object()}};
  for (std::int64_t b = 1; b <= 64; b *= 2) {
    std::vector<std::int64_t> sizes = data.inputs.at(0).sizes().vec();
    sizes[0] = std::max(b, smallest);
    const std::vector<at::Tensor> inputs = {at::randn(sizes)};
    for (int i = 0; i < 20; ++i) exec.run(inputs);
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
      const auto t0 = Clock::now();
      exec.run(inputs);
      t.push_back(us(Clock::now() - t0));
    }
    out["run_us"][std::to_string(b)] = stats(t);
  }
  return out;
}

// ---- 5. plugin directory ----
// A directory of `count` copies of the bench plugin, each with its own name and one of 20
// device types.
std::unique_ptr<aotiplug::PrivateDirectory> benchPluginDirectory(const Args& a, int count) {
  std::ifstream in(a.bench_plugin, std::ios::binary);
  std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::uint32_t magic = aotiplug::kManifestMagic;
  const auto at = image.find(std::string(reinterpret_cast<const char*>(&magic), 4));
  if (at == std::string::npos) throw std::runtime_error("bench plugin has no manifest");
  const c10::DeviceType types[] = {
      c10::DeviceType::CPU, c10::DeviceType::CUDA, c10::DeviceType::MKLDNN, c10::DeviceType::OPENGL,
      c10::DeviceType::OPENCL, c10::DeviceType::IDEEP, c10::DeviceType::HIP, c10::DeviceType::FPGA,
      c10::DeviceType::MAIA, c10::DeviceType::XLA, c10::DeviceType::Vulkan, c10::DeviceType::Metal,
      c10::DeviceType::XPU, c10::DeviceType::MPS, c10::DeviceType::Meta, c10::DeviceType::HPU,
      c10::DeviceType::VE, c10::DeviceType::Lazy, c10::DeviceType::IPU, c10::DeviceType::MTIA};
  auto dir = std::make_unique<aotiplug::PrivateDirectory>("aotiplug-bench-plugins-");
  for (int i = 0; i < count; ++i) {
    std::string copy = image;
    char name[32];
    std::snprintf(name, sizeof name, "bench-%03d", i);
    std::memcpy(&copy[at + offsetof(aotiplug::ManifestData, name)], name, std::strlen(name));
    copy[at + offsetof(aotiplug::ManifestData, devices)] = static_cast<char>(types[i % 20]);
    dir->writeFile(std::string("lib") + name + ".so", copy.data(), copy.size());
  }
  return dir;
}

json pluginScan(const Args& a, int count, int rounds) {
  const auto dir = benchPluginDirectory(a, count);
  // The first load scans every plugin in a child process (plugin_scan.h); the rounds after
  // it find the verdicts in the cache, as every start of a host after the first does.
  aotiplug::PrivateDirectory cache("aotiplug-bench-scan-");
  aotiplug::LoaderOptions options;
  options.scan.cache_file = cache.path() + "/scan.json";
  std::vector<double> ms;
  double first_ms = 0;
  std::size_t loaded = 0, rejected = 0;
  for (int r = 0; r <= rounds; ++r) {
    aotiplug::PluginLoader loader(options);
    const auto t0 = Clock::now();
    const auto records = loader.loadDirectory(dir->path());
    const double t = us(Clock::now() - t0) / 1000.0;
    if (r == 0) {
      first_ms = t;
    } else {
      ms.push_back(t);
    }
    loaded = rejected = 0;
    for (const auto& rec : records) (rec.loaded() ? loaded : rejected)++;
  }
  return {{"plugins", count}, {"loaded", loaded}, {"rejected", rejected}, {"ms", stats(ms)},
          {"first_scan_ms", first_ms}};
}

// --profile ours|runner|upstream: only run() on the tiny model, `iters` times (open,
// open-upstream: package open -> first output on the medium model; scan: loading the
// 100-plugin directory with its verdicts cached), in a
// function of its own — for a profiler (valgrind --tool=callgrind
// --toggle-collect='*profileLoop*'; docs/performance.md).
template <typename F>
[[gnu::noinline]] void profileLoop(F&& call, int iters) {
  for (int i = 0; i < iters; ++i) call();
}

int profile(const Args& a, const std::string& which, int iters) {
  if (which == "scan") {  // the 100-plugin directory, verdicts cached (after a first load)
    const auto dir = benchPluginDirectory(a, 100);
    aotiplug::PrivateDirectory cache("aotiplug-bench-scan-");
    aotiplug::LoaderOptions options;
    options.scan.cache_file = cache.path() + "/scan.json";
    aotiplug::PluginLoader(options).loadDirectory(dir->path());
    profileLoop([&] { aotiplug::PluginLoader(options).loadDirectory(dir->path()); }, iters);
    return 0;
  }
  if (which == "open" || which == "open-upstream") {  // package open -> first output, medium
    const std::string pkg = (a.models / "medium.pt2").string();
    const Data data = loadData(a.models / "medium.data.pt");
    if (which == "open") {
      profileLoop([&] { aotiplug::AOTIDelegateExecutor(pkg, nullptr, quietConfig()).run(data.inputs); }, iters);
    } else {
      profileLoop([&] { torch::inductor::AOTIModelPackageLoader(pkg).run(data.inputs); }, iters);
    }
    return 0;
  }
  const Data data = loadData(a.models / "tiny.data.pt");
  aotiplug::AOTIDelegateExecutor exec((a.models / "tiny.pt2").string(), nullptr, quietConfig());
  if (which == "upstream") {
    torch::inductor::AOTIModelContainerRunnerCpu upstream(exec.modelInfo().model_path, 1);
    upstream.run(data.inputs);
    profileLoop([&] { upstream.run(data.inputs); }, iters);
  } else if (which == "runner") {
    exec.runner().run(data.inputs);
    profileLoop([&] { exec.runner().run(data.inputs); }, iters);
  } else {
    exec.run(data.inputs);
    profileLoop([&] { exec.run(data.inputs); }, iters);
  }
  return 0;
}

json eager(const Args& a, bool quick) {
  const std::string cmd = "'" + (a.source / ".venv" / "bin" / "python").string() + "' '" +
                          (a.source / "bench" / "eager_timing.py").string() + "' --iters " +
                          (quick ? "300" : "3000") + " tiny medium";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p != nullptr && std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  if (p != nullptr) ::pclose(p);
  return json::parse(out, nullptr, false);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (arg == "--models") a.models = next();
    else if (arg == "--plugins") a.plugins = next();
    else if (arg == "--bench-plugin") a.bench_plugin = next();
    else if (arg == "--out") a.out = next();
    else if (arg == "--source") a.source = next();
    else if (arg == "--quick") a.quick = true;
    else if (arg == "--only") a.only = next();
    else if (arg == "--profile") a.profile = next();
    else if (arg == "--iters") a.iters = std::stoi(next());
  }
  if (!a.profile.empty() && !a.models.empty() && !a.plugins.empty()) {
    at::set_num_threads(1);
    aotiplug::PluginLoader loader;
    loader.loadDirectory(fs::absolute(a.plugins).string());
    return profile(a, a.profile, a.iters);
  }
  if (a.models.empty() || a.plugins.empty() || a.out.empty()) {
    std::cerr << "usage: aotiplug-bench --models DIR --plugins DIR --bench-plugin LIB --source DIR --out FILE [--quick]\n";
    return 2;
  }
  try {
    at::set_num_threads(1);  // one core per run: parallelism comes from our threads only
    aotiplug::PluginLoader loader;
    loader.loadDirectory(fs::absolute(a.plugins).string());
    const bool q = a.quick;
    json r;
    r["quick"] = q;
    r["machine"] = {{"cores", std::thread::hardware_concurrency()}};
    static const std::vector<std::string> kSections = {"per_call", "open", "swap", "throughput",
                                                       "plugin_scan", "serve_inprocess"};
    std::vector<std::string> only;
    for (std::size_t at = 0; !a.only.empty() && at <= a.only.size();) {
      const std::size_t comma = std::min(a.only.find(',', at), a.only.size());
      only.push_back(a.only.substr(at, comma - at));
      if (std::find(kSections.begin(), kSections.end(), only.back()) == kSections.end()) {
        std::cerr << "aotiplug-bench: --only: unknown benchmark '" << only.back()
                  << "' (expected per_call, open, swap, throughput, plugin_scan or serve_inprocess)\n";
        return 2;
      }
      at = comma + 1;
    }
    // serve_inprocess belongs to the serving benchmark (bench/serving.py), asked for by name.
    auto want = [&](const std::string& what) {
      return (only.empty() && what != "serve_inprocess") || std::find(only.begin(), only.end(), what) != only.end();
    };
    if (want("per_call")) {
      std::cerr << "[bench] 1/5 per-call run()\n";
      r["per_call"]["tiny"] = perCall(a, "tiny", q ? 10 : 60, 200, 20);
      r["per_call"]["medium"] = perCall(a, "medium", q ? 5 : 30, 100, 1);
      r["per_call"]["eager"] = eager(a, q);
    }
    if (want("open")) {
      std::cerr << "[bench] 2/5 package open -> first output\n";
      r["open_to_first_output"] = openToFirstOutput(a, "medium", q ? 4 : 40);
    }
    if (want("swap")) {
      std::cerr << "[bench] 3/5 weight hot swap\n";
      r["swap"]["latency"] = swapLatency(a, "medium", q ? 1.0 : 4.0);
      r["swap"]["memory"] = swapMemory(a, "large");
    }
    if (want("throughput")) {
      std::cerr << "[bench] 4/5 throughput\n";
      r["throughput"] = throughput(a, "medium", q ? 1.0 : 4.0);
    }
    if (want("plugin_scan")) {
      std::cerr << "[bench] 5/5 plugin directory\n";
      r["plugin_scan"] = pluginScan(a, 100, q ? 3 : 15);
    }
    if (want("serve_inprocess")) {
      std::cerr << "[bench] serving, anchor B: the executor in-process\n";
      r["serve_inprocess"]["tiny_batch"] = servingInProcess(a, "tiny_batch", q ? 200 : 2000);
      r["serve_inprocess"]["medium_batch"] = servingInProcess(a, "medium_batch", q ? 50 : 400);
    }
    std::ofstream(a.out) << r.dump(2) << "\n";
    std::cout << r.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "aotiplug-bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
