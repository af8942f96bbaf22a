// SPDX-License-Identifier: BSD-3-Clause
// The CPU runner plugin on real AOTInductor models: results against PyTorch eager and
// against upstream's AOTIModelContainerRunnerCpu, constants, weight swaps, validation,
// concurrency and bad model files. The plugin is loaded from the build's plugin directory
// through the host's loader, as a user's host would.
#define BOOST_TEST_MODULE cpu_runner
#include <boost/test/unit_test.hpp>

#include "../common/fixtures.h"
#include "../common/build_plugins.h"
#include "../common/package_edit.h"

#include <aotiplug/host/plugin_loader.h>
#include <aotiplug/registry/runner_registry.h>

#include <ATen/ops/empty.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/inductor/aoti_runner/model_container_runner_cpu.h>

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/runner/cpu_features.h>
#include <aotiplug/runner/shim_check.h>
#include <torch/headeronly/version.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace {

using aotiplug::ConstantMap;
using aotiplug::ModelContainerRunner;
using aotiplug::StatusCode;
using aotiplug_test::expectError;
using aotiplug_test::Fixture;
using aotiplug_test::loadFixture;
namespace fs = std::filesystem;

using BuildPlugins = aotiplug_test::BuildPlugins;
BOOST_TEST_GLOBAL_FIXTURE(BuildPlugins);

std::unique_ptr<ModelContainerRunner> cpuRunner(const fs::path& so, std::size_t n = 1,
                                                bool single = false) {
  return aotiplug::createRunner(so.string(), n, "cpu", "", single);
}

// weights by FQN -> constant map by AOTI name, for the constants the model has.
ConstantMap byConstantName(const ModelContainerRunner& runner,
                           const std::map<std::string, at::Tensor>& weights) {
  ConstantMap out;
  for (const auto& c : runner.info().constants) {
    if (c.from_folded) continue;
    auto it = weights.find(c.original_fqn);
    if (it != weights.end()) out.emplace(c.name, it->second);
  }
  return out;
}

torch::inductor::TensorConstantMap upstreamMap(ConstantMap& constants) {
  torch::inductor::TensorConstantMap out;
  for (auto& [name, t] : constants) out.emplace(name, &t);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_cpu_plugin_is_loaded_and_serves_cpu) {
  auto winner = aotiplug::runnerRegistry().winner(c10::DeviceType::CPU);
  BOOST_REQUIRE(winner.has_value());
  BOOST_TEST(winner->origin.plugin == "cpu");
}

BOOST_AUTO_TEST_CASE(outputs_match_eager_and_are_bit_identical_to_upstream) {
  for (const std::string& name : aotiplug_test::fixtureNames()) {
    // A runner on the bare .so has no weights unless they are compiled in (the executor
    // loads packaged ones; weights_outside has its own test here).
    if (aotiplug_test::fixtureWeights(name) != "in_so") continue;
    Fixture f = loadFixture(name);
    auto ours = cpuRunner(f.so);
    torch::inductor::AOTIModelContainerRunnerCpu upstream(f.so.string(), 1);
    const auto got = ours->run(f.inputs);
    aotiplug_test::expectCloseToEager(got, f.outputs, name + " vs eager");
    aotiplug_test::expectBitIdentical(got, upstream.run(f.inputs), name + " vs upstream");
    if (!f.extra_inputs.empty()) {  // the dynamic-batch model at a second batch size
      const auto got2 = ours->run(f.extra_inputs);
      aotiplug_test::expectCloseToEager(got2, f.extra_outputs, name + " (2nd shape) vs eager");
      aotiplug_test::expectBitIdentical(got2, upstream.run(f.extra_inputs),
                                        name + " (2nd shape) vs upstream");
    }
  }
}

BOOST_AUTO_TEST_CASE(constant_names_fqns_and_dtypes_agree_with_upstream) {
  for (const std::string& name : aotiplug_test::fixtureNames()) {
    Fixture f = loadFixture(name);
    auto ours = cpuRunner(f.so);
    torch::inductor::AOTIModelContainerRunnerCpu upstream(f.so.string(), 1);
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST((ours->getConstantNamesToOriginalFQNs() ==
                  upstream.getConstantNamesToOriginalFQNs()));
      BOOST_TEST((ours->getConstantNamesToDtypes() == upstream.getConstantNamesToDtypes()));
      BOOST_TEST((ours->get_call_spec() == upstream.get_call_spec()));
      BOOST_TEST(ours->num_inputs() == f.inputs.size());
      BOOST_TEST(!ours->info().constants.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(weights_outside_the_so_must_be_supplied) {
  Fixture f = loadFixture("weights_outside");
  auto ours = cpuRunner(f.so);
  expectError([&] { ours->run(f.inputs); }, StatusCode::kFailedPrecondition,
              {"has no weights loaded", "package_constants_in_so"});
  ConstantMap weights = byConstantName(*ours, f.weights_a);
  // The .so holds no values to read shapes from; the package's metadata tells them.
  ConstantMap transposed = weights;
  transposed.at("fc1_weight") = transposed.at("fc1_weight").t().contiguous();
  expectError([&] { ours->update_constant_buffer(transposed, false, true); },
              StatusCode::kInvalidArgument, {"'fc1.weight'", "expects Float [32, 16]"});
  ours->update_constant_buffer(weights, /*use_inactive=*/false, /*validate_full_update=*/true);
  const auto got = ours->run(f.inputs);
  aotiplug_test::expectCloseToEager(got, f.outputs, "weights_outside vs eager");

  torch::inductor::AOTIModelContainerRunnerCpu upstream(f.so.string(), 1);
  upstream.update_constant_buffer(upstreamMap(weights), false, true);
  aotiplug_test::expectBitIdentical(got, upstream.run(f.inputs), "weights_outside vs upstream");
}

BOOST_AUTO_TEST_CASE(hot_swap_gives_the_eager_outputs_of_the_new_weights) {
  for (const char* name : {"mlp", "conv", "const_fold", "multi_io"}) {
    for (bool user_managed : {false, true}) {
      BOOST_TEST_CONTEXT(name << (user_managed ? " (user-managed)" : " (copied)")) {
        Fixture f = loadFixture(name);
        auto ours = cpuRunner(f.so);
        {
          // The runner keeps what it needs: our map goes out of scope before the run.
          ConstantMap b = byConstantName(*ours, f.weights_b);
          ours->update_constant_buffer(b, /*use_inactive=*/true, true, user_managed);
        }
        aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs,
                                          "still the old weights before the swap");
        ours->run_const_fold(/*use_inactive=*/true);
        ours->swap_constant_buffer();
        aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs_b, "new weights");
        ours->swap_constant_buffer();  // the old buffer is still loaded: swap back
        aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs, "swapped back");
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_constants_are_refused_naming_them_and_change_nothing) {
  Fixture f = loadFixture("mlp");
  auto ours = cpuRunner(f.so);
  ConstantMap good = byConstantName(*ours, f.weights_b);

  ConstantMap wrong_shape = good;
  wrong_shape.at("fc1_weight") = at::zeros({16, 32});
  expectError([&] { ours->update_inactive_constant_buffer(wrong_shape); },
              StatusCode::kInvalidArgument,
              {"constant 'fc1.weight'", "AOTI name 'fc1_weight'", "expects Float [32, 16]",
               "got Float [16, 32]"});

  ConstantMap wrong_dtype = good;
  wrong_dtype.at("fc2_bias") = at::zeros({8}, at::kDouble);
  expectError([&] { ours->update_inactive_constant_buffer(wrong_dtype); },
              StatusCode::kInvalidArgument, {"constant 'fc2.bias'", "got Double [8]"});

  ConstantMap wrong_device = good;
  wrong_device.at("fc2_bias") = at::empty({8}, at::TensorOptions().device(at::kMeta));
  expectError([&] { ours->update_inactive_constant_buffer(wrong_device); },
              StatusCode::kInvalidArgument, {"constant 'fc2.bias'", "on meta"});

  ConstantMap unknown = good;
  unknown.emplace("no_such_constant", at::zeros({1}));
  expectError([&] { ours->update_inactive_constant_buffer(unknown); }, StatusCode::kNotFound,
              {"no constant named 'no_such_constant'", "fc1_weight"});

  ConstantMap incomplete = good;
  incomplete.erase("fc1_weight");
  expectError([&] { ours->update_inactive_constant_buffer(incomplete); },
              StatusCode::kInvalidArgument, {"full update must supply", "'fc1.weight'"});

  // Nothing reached the inactive buffer: there is nothing to swap to, and the active
  // weights are untouched.
  expectError([&] { ours->swap_constant_buffer(); }, StatusCode::kFailedPrecondition,
              {"inactive constant buffer was never loaded"});
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs, "old weights intact");
}

BOOST_AUTO_TEST_CASE(folded_constants_cannot_be_set) {
  Fixture f = loadFixture("const_fold");
  auto ours = cpuRunner(f.so);
  std::string folded;
  for (const auto& c : ours->info().constants) {
    if (c.from_folded) folded = c.name;
  }
  BOOST_REQUIRE_MESSAGE(!folded.empty(), "the const_fold model has folded constants");
  ConstantMap m = byConstantName(*ours, f.weights_b);
  m.emplace(folded, at::zeros({1}));
  expectError([&] { ours->update_constant_buffer(m, true, false); },
              StatusCode::kInvalidArgument, {"produced by constant folding"});
}

BOOST_AUTO_TEST_CASE(views_and_non_contiguous_weights_are_copied_correctly) {
  Fixture f = loadFixture("mlp");
  auto ours = cpuRunner(f.so);
  ConstantMap b = byConstantName(*ours, f.weights_b);
  // The same values, as a transposed view of a transposed copy and as a slice of a larger
  // tensor: upstream would copy the wrong bytes for both.
  b.at("fc1_weight") = b.at("fc1_weight").t().contiguous().t();
  at::Tensor big = at::zeros({64});
  big.slice(0, 10, 18).copy_(b.at("fc2_bias"));
  b.at("fc2_bias") = big.slice(0, 10, 18);
  ours->update_inactive_constant_buffer(b);
  ours->run_const_fold(true);
  ours->swap_constant_buffer();
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs_b, "weights from views");
}

BOOST_AUTO_TEST_CASE(free_inactive_then_swap_is_refused) {
  Fixture f = loadFixture("mlp");
  auto ours = cpuRunner(f.so);
  BOOST_REQUIRE(ours->info().features.free_inactive_constant_buffer);
  ours->update_inactive_constant_buffer(byConstantName(*ours, f.weights_b));
  ours->run_const_fold(true);
  ours->swap_constant_buffer();
  ours->free_inactive_constant_buffer();
  expectError([&] { ours->swap_constant_buffer(); }, StatusCode::kFailedPrecondition,
              {"was never loaded (or was freed)"});
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs_b, "active still b");
}

BOOST_AUTO_TEST_CASE(two_models_serve_two_threads_concurrently) {
  Fixture f = loadFixture("conv");
  auto ours = cpuRunner(f.so, /*n=*/2);
  constexpr int kIterations = 40;
  std::atomic<int> wrong{0};
  std::atomic<int> done{0};
  auto work = [&] {
    for (int i = 0; i < kIterations; ++i) {
      const auto out = ours->run(f.inputs);
      std::string why;
      if (out.size() != 1 || !aotiplug_test::closeToEager(out[0], f.outputs[0], &why)) ++wrong;
      ++done;
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  BOOST_TEST(done.load() == 2 * kIterations);
  BOOST_TEST(wrong.load() == 0);
}

BOOST_AUTO_TEST_CASE(single_threaded_mode_runs_and_swaps) {
  Fixture f = loadFixture("mlp");
  expectError([&] { cpuRunner(f.so, 2, /*single=*/true); }, StatusCode::kInvalidArgument,
              {"run_single_threaded needs num_models == 1"});
  auto ours = cpuRunner(f.so, 1, /*single=*/true);
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs, "single-threaded");
  for (int round = 0; round < 2; ++round) {  // round 2 updates the primary buffer again
    ours->update_inactive_constant_buffer(byConstantName(*ours, f.weights_b));
    aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs, "before swap");
    ours->swap_constant_buffer();
    aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs_b, "after swap");
    ours->update_inactive_constant_buffer(byConstantName(*ours, f.weights_a));
    ours->swap_constant_buffer();
    aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs, "swapped back");
  }
}

BOOST_AUTO_TEST_CASE(single_threaded_runs_on_the_secondary_buffer_whatever_the_primary_holds) {
  // torch <= 2.11's RunSingleThreaded checks the primary buffer's fold state whichever
  // buffer is active: with the secondary active and the primary empty (a library compiled
  // without its weights) or partly updated, every run threw "Unknown constant state".
  Fixture f = loadFixture("weights_outside");
  auto ours = cpuRunner(f.so, 1, /*single=*/true);
  ours->update_inactive_constant_buffer(byConstantName(*ours, f.weights_b));
  ours->swap_constant_buffer();  // the secondary buffer is active, the primary empty
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs_b, "the primary empty");
  ConstantMap one = byConstantName(*ours, f.weights_a);
  for (auto it = one.begin(); it != one.end();) it = it->first == "fc1_weight" ? std::next(it) : one.erase(it);
  BOOST_TEST_REQUIRE(one.size() == 1u);
  ours->update_constant_buffer(one, /*use_inactive=*/true, /*validate_full_update=*/false);
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs_b, "the primary partly updated");
  ours->update_inactive_constant_buffer(byConstantName(*ours, f.weights_a));
  ours->swap_constant_buffer();
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs, "the full update swapped in");
  ours->update_inactive_constant_buffer(byConstantName(*ours, f.weights_b));
  ours->swap_constant_buffer();
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs_b, "and back");
}

BOOST_AUTO_TEST_CASE(bad_inputs_are_refused_before_the_model_library) {
  Fixture f = loadFixture("multi_io");
  auto ours = cpuRunner(f.so);
  expectError([&] { ours->run({f.inputs[0]}); }, StatusCode::kInvalidArgument,
              {"takes 3 input(s), got 1"});
  expectError([&] { ours->run({f.inputs[0], at::Tensor(), f.inputs[2]}); },
              StatusCode::kInvalidArgument, {"input 1 is an undefined tensor"});
  auto on_meta = f.inputs;
  on_meta[2] = at::empty({4, 8}, at::TensorOptions().device(at::kMeta).dtype(at::kBFloat16));
  expectError([&] { ours->run(on_meta); }, StatusCode::kInvalidArgument,
              {"input 2", "is on meta, expected cpu"});
}

BOOST_AUTO_TEST_CASE(the_cpu_runner_refuses_other_devices) {
  Fixture f = loadFixture("mlp");
  expectError([&] {
    aotiplug::createRunner(c10::DeviceType::CPU, f.so.string(), 1, "cuda:0", "", false);
  }, StatusCode::kInvalidArgument, {"plugin 'cpu'", "serves device 'cpu' only", "'cuda:0'"});
}

BOOST_AUTO_TEST_CASE(bad_model_files_give_clear_errors) {
  aotiplug_test::TempDir dir;
  expectError([&] { cpuRunner(dir.path() / "missing.so"); }, StatusCode::kNotFound,
              {"missing.so does not exist"});

  Fixture f = loadFixture("mlp");
  const std::string bytes = aotiplug_test::readFile(f.so);
  aotiplug_test::writeFile(dir.path() / "truncated.so", bytes.substr(0, bytes.size() / 3));
  expectError([&] { cpuRunner(dir.path() / "truncated.so"); }, StatusCode::kModelError,
              {"cannot load model library", "truncated.so", "truncated: "});

  aotiplug_test::writeFile(dir.path() / "text.so", "not a library");
  expectError([&] { cpuRunner(dir.path() / "text.so"); }, StatusCode::kModelError,
              {"cannot load model library", "text.so"});

  // A real shared library that is not an AOTInductor model.
  const fs::path not_model = aotiplug_test::testPlugin("no_manifest");
  expectError([&] { cpuRunner(not_model); }, StatusCode::kModelError,
              {"is not an AOTInductor model library",
               "AOTInductorModelContainerCreateWithDevice"});
}

// A model library compiled by a newer torch calls shim functions this LibTorch lacks: refused
// before dlopen, naming them and this LibTorch, not with the loader's "undefined symbol".
BOOST_AUTO_TEST_CASE(model_libraries_calling_shims_this_libtorch_lacks_are_refused_before_dlopen) {
  const fs::path so = aotiplug_test::buildRoot() / "tests" / "plugins" / "libtest_missing_shim.so";
  BOOST_TEST(aotiplug::undefinedSymbols(so.string(), "aoti_torch_") ==
             (std::vector<std::string>{"aoti_torch_aotiplug_test_also_missing", "aoti_torch_aotiplug_test_missing_v3",
                                       "aoti_torch_get_data_ptr"}));
  expectError([&] { cpuRunner(so); }, StatusCode::kIncompatible,
              {"model library " + so.string() + " was compiled by another torch version",
               std::string("this host's LibTorch ") + TORCH_VERSION,
               "2 LibTorch C shim function(s) this LibTorch does not export "
               "(aoti_torch_aotiplug_test_also_missing, aoti_torch_aotiplug_test_missing_v3)",
               "versioned shims (_vN) come with newer torch releases"});
  // A real model library needs nothing this LibTorch lacks.
  Fixture f = loadFixture("mlp");
  BOOST_TEST(aotiplug::missingShimFunctions(f.so.string()).empty());
  BOOST_TEST(!aotiplug::undefinedSymbols(f.so.string(), "aoti_torch_").empty());

  // In a package: the executor adds the torch version the package says compiled it.
  aotiplug_test::TempDir dir;
  const fs::path pt2 = dir.path() / "newer.pt2";
  const std::string stand_in = aotiplug_test::readFile(so);
  aotiplug_test::rewritePackage(f.pt2, pt2, [&](const std::string& name, const std::string& data) {
    const bool library = name.size() > 11 && name.compare(name.size() - 11, 11, ".wrapper.so") == 0;
    return std::optional<std::string>(library ? stand_in : data);
  });
  aotiplug::ExecutorConfig config;
  config.log = [](const std::string&) {};
  expectError([&] { aotiplug::AOTIDelegateExecutor exec(pt2.string(), nullptr, config); },
              StatusCode::kIncompatible,
              {"package " + pt2.string(), "aoti_torch_aotiplug_test_missing_v3",
               "(the package says it was compiled by torch "});
}

// Through the plugin: an extern kernel whose op nobody registered fails the runner's
// creation (tests/sdk/test_extern_kernels.cpp runs real models with extern kernels).
BOOST_AUTO_TEST_CASE(models_whose_extern_kernels_call_unregistered_ops_are_refused) {
  Fixture f = loadFixture("mlp");
  aotiplug_test::TempDir dir;
  const fs::path so = dir.path() / "model.so";
  fs::copy_file(f.so, so);
  aotiplug_test::writeFile(dir.path() / "model.json",
                           R"({"nodes": [{"name": "buf0", "node": {"target": "my_ns::my_op"}}]})");
  expectError([&] { cpuRunner(so); }, StatusCode::kFailedPrecondition,
              {"needs operator my_ns::my_op", "which no library loaded in this process registers",
               "TORCH_LIBRARY(my_ns"});
  // An extern-node file that lists nothing is harmless.
  aotiplug_test::writeFile(dir.path() / "model.json", R"({"nodes": []})");
  auto ours = cpuRunner(so);
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs, "empty extern-node file");
}

BOOST_AUTO_TEST_CASE(models_for_cpu_features_this_machine_lacks_are_refused) {
  // The check itself, against a made-up CPU without AVX-512.
  const std::set<std::string> avx2_only = {"avx2", "fma", "f16c", "sse4_2"};
  aotiplug::checkCpuIsa("m.so", "AVX2", avx2_only);
  expectError([&] { aotiplug::checkCpuIsa("m.so", "AVX512 AVX512_VNNI", avx2_only); },
              StatusCode::kIncompatible, {"m.so", "'AVX512 AVX512_VNNI'", "lacks avx512f", "avx512_vnni",
                                          "illegal instruction"});
  aotiplug::checkCpuIsa("m.so", "SOMETHING_NEW", avx2_only);  // unknown: not refused

  // cpuFlags() (CPUID and XCR0) agrees with the kernel's /proc/cpuinfo on every flag the
  // check uses.
  const auto flags = aotiplug::cpuFlags();
  std::set<std::string> proc;
  {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line.substr(line.find(':') + 1));
      for (std::string w; words >> w;) proc.insert(w);
      break;
    }
  }
  if (!proc.empty()) {
    for (const char* f : {"sse2", "pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "abm", "movbe",
                          "aes", "pclmulqdq", "avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "adx",
                          "sha_ni", "gfni", "vaes", "vpclmulqdq", "avx_vnni", "avx512f",
                          "avx512dq", "avx512vl", "avx512bw", "avx512cd", "avx512ifma",
                          "avx512vbmi", "avx512_vbmi2", "avx512_vnni", "avx512_bitalg",
                          "avx512_vpopcntdq", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                          "amx_int8"}) {
      BOOST_TEST_CONTEXT("flag " << f) { BOOST_TEST(flags.count(f) == proc.count(f)); }
    }
  }

  // End to end, through the plugin: a copy of a model whose metadata claims AVX-512 + AMX is
  // refused exactly when this CPU lacks them (so the runner reads the model's metadata).
  Fixture f = loadFixture("mlp");
  aotiplug_test::TempDir dir;
  const fs::path so = dir.path() / "model.so";
  fs::copy_file(f.so, so);
  aotiplug_test::writeFile(dir.path() / "model_metadata.json",
                           R"({"AOTI_DEVICE_KEY": "cpu", "AOTI_CPU_ISA": "AVX512 AMX_TILE"})");
  const bool has_amx = flags.count("amx_tile") != 0 && flags.count("amx_bf16") != 0 &&
                       flags.count("amx_int8") != 0 && flags.count("avx512f") != 0;
  if (has_amx) {
    BOOST_TEST(cpuRunner(so)->run(f.inputs).size() == 1u);
  } else {
    expectError([&] { cpuRunner(so); }, StatusCode::kIncompatible, {"plugin 'cpu'", "lacks"});
  }
}

namespace {

// Runs f with this process's standard error (file descriptor 2) sent to a file; returns
// what reached it.
template <class F>
std::string stderrOf(F&& f) {
  aotiplug_test::TempDir dir;
  const std::string file = (dir.path() / "stderr").string();
  std::fflush(stderr);
  std::cerr.flush();
  const int saved = ::dup(2);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::dup2(fd, 2);
  ::close(fd);
  try {
    f();
  } catch (...) {
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    throw;
  }
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  return aotiplug_test::readFile(file);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_libraries_reason_reaches_the_error_once_and_not_the_terminal) {
  // Given to the runner directly (nothing checks inputs at this level), a float32 input for
  // a bfloat16 model fails inside the model library, which prints its reason with a C++
  // stack trace. The binding captures that output: the reason is in the error, the stack
  // trace and the rest stay off the terminal.
  Fixture f = loadFixture("plain_bf16");
  auto runner = cpuRunner(f.so);
  runner->update_constants_from_blob(aotiplug_test::readFile(f.model_dir / (f.so.stem().string() + "_weights.blob")).data(),
                                     fs::file_size(f.model_dir / (f.so.stem().string() + "_weights.blob")));
  std::string message;
  const std::string printed = stderrOf([&] {
    try {
      runner->run({f.inputs[0].to(at::kFloat)});
    } catch (const aotiplug::Error& e) {
      message = e.what();
    }
  });
  BOOST_TEST_MESSAGE("error: " << message);
  BOOST_TEST(printed.empty(), "printed: " << printed);
  BOOST_TEST(aotiplug_test::contains(message, "AOTInductorModelContainerRun failed for model"));
  BOOST_TEST(!aotiplug_test::contains(message, "printed its reason"));
  BOOST_TEST(!aotiplug_test::contains(message, "frame #"));
  BOOST_TEST(!aotiplug_test::contains(message, "Exception raised from"));
  BOOST_TEST(!aotiplug_test::contains(message, "c_shim_cpu.cpp:"), "the log line's prefix is dropped");
  BOOST_TEST(aotiplug_test::contains(message, "must have the same dtype, but got Float and BFloat16"));
  // The runner is still usable, and a success prints nothing either.
  const std::string quiet = stderrOf([&] {
    aotiplug_test::expectCloseToEager(runner->run(f.inputs), f.outputs, "after the failure");
  });
  BOOST_TEST(quiet.empty(), "printed: " << quiet);
}

BOOST_AUTO_TEST_CASE(partial_updates_never_make_a_buffer_runnable_with_missing_values) {
  Fixture f = loadFixture("mlp");
  const auto only = [](ConstantMap m, const std::set<std::string>& keep) {
    for (auto it = m.begin(); it != m.end();) it = keep.count(it->first) != 0 ? std::next(it) : m.erase(it);
    return m;
  };
  for (bool freed : {false, true}) {
    BOOST_TEST_CONTEXT(std::string(freed ? "into a freed inactive buffer" : "into a never-loaded inactive buffer")) {
      auto ours = cpuRunner(f.so);
      const ConstantMap b = byConstantName(*ours, f.weights_b);
      if (freed) {
        ours->update_inactive_constant_buffer(b);
        ours->swap_constant_buffer();
        ours->swap_constant_buffer();
        ours->free_inactive_constant_buffer();  // its copies of b are gone
      }
      // Not a full update: the rest of the buffer has no values (or freed ones).
      ours->update_constant_buffer(only(b, {"fc1_weight"}), /*use_inactive=*/true,
                                   /*validate_full_update=*/false);
      expectError([&] { ours->swap_constant_buffer(); }, StatusCode::kFailedPrecondition,
                  {"inactive constant buffer has no value for", "'fc1.bias'", "'fc2.weight'"});
      expectError([&] { ours->run_const_fold(true); }, StatusCode::kFailedPrecondition,
                  {"cannot fold the inactive constant buffer", "'fc1.bias'"});
      // The rest, in a second partial update: now complete. (The buffer 'scale' left out
      // of an inactive update is copied from the active buffer, as upstream does.)
      ours->update_constant_buffer(only(b, {"fc1_bias", "fc2_weight", "fc2_bias", "scale"}), true, false);
      ours->swap_constant_buffer();
      aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs_b, "completed in two parts");
    }
  }

  // Weights compiled outside the library: a "full" update that leaves out a buffer (which
  // upstream only warns about, and which would then be read as a null tensor).
  Fixture outside = loadFixture("weights_outside");
  auto ours = cpuRunner(outside.so);
  ConstantMap a = byConstantName(*ours, outside.weights_a);
  ConstantMap no_buffer = a;
  no_buffer.erase("scale");
  expectError([&] { ours->update_constant_buffer(no_buffer, false, true); },
              StatusCode::kInvalidArgument,
              {"full update must supply constant 'scale' (buffer)", "active buffer has no value"});
  ours->update_constant_buffer(only(a, {"fc1_weight", "fc1_bias"}), false, false);
  expectError([&] { ours->run(outside.inputs); }, StatusCode::kFailedPrecondition,
              {"cannot run", "no value for 'fc2.weight'", "'scale'"});
  ours->update_constant_buffer(a, false, true);
  aotiplug_test::expectCloseToEager(ours->run(outside.inputs), outside.outputs, "then all of them");
}

BOOST_AUTO_TEST_CASE(a_weights_blob_is_loaded_once_and_only_into_an_empty_model) {
  Fixture f = loadFixture("weights_blob");
  const fs::path blob_path = f.model_dir / (f.so.stem().string() + "_weights.blob");
  const std::string blob = aotiplug_test::readFile(blob_path);
  auto ours = cpuRunner(f.so);
  ours->update_constants_from_blob(blob.data(), blob.size());
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs, "from the blob");
  // A second load would keep the entries of the first and free the memory they point into.
  expectError([&] { ours->update_constants_from_blob(blob.data(), blob.size()); },
              StatusCode::kFailedPrecondition, {"holds no weights yet", "update_constant_buffer"});
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs, "after the refused second load");
  // A model with its weights inside the library is not an empty model either.
  auto in_so = cpuRunner(loadFixture("mlp").so);
  expectError([&] { in_so->update_constants_from_blob(blob.data(), blob.size()); },
              StatusCode::kFailedPrecondition, {"holds no weights yet"});
}

BOOST_AUTO_TEST_CASE(constants_of_unknown_shape_are_checked_by_their_bytes_then_their_shape) {
  // A plain package's library with its weights outside: without its wrapper source beside
  // it, nothing tells the constants' shapes; with it, the runner reads them there.
  Fixture f = loadFixture("plain_bf16");
  aotiplug_test::TempDir dir;
  const fs::path bare = dir.path() / f.so.filename();
  fs::copy_file(f.so, bare);
  ConstantMap a;
  {
    auto probe = cpuRunner(f.so);  // beside its wrapper source
    a = byConstantName(*probe, f.weights_a);
    ConstantMap flat = a;
    flat.at("fc1_weight") = flat.at("fc1_weight").flatten();
    expectError([&] { probe->update_constant_buffer(flat, false, true); }, StatusCode::kInvalidArgument,
                {"'fc1.weight'", "expects BFloat16 [32, 16]", "got BFloat16 [512]"});
  }
  auto ours = cpuRunner(bare);
  // The byte size is rounded up to 64: 960 bytes cannot be this constant's, 992 could.
  ConstantMap short_one = a;
  short_one.at("fc1_weight") = a.at("fc1_weight").slice(0, 0, 30).contiguous();
  expectError([&] { ours->update_constant_buffer(short_one, false, true); }, StatusCode::kInvalidArgument,
              {"'fc1.weight'", "(1024 bytes, or fewer rounded up to it by 64)", "(960 bytes)"});
  expectError([&] { ours->update_constant_buffer(a, false, true, /*user_managed=*/true); },
              StatusCode::kInvalidArgument, {"the shape of constant 'fc", "is unknown", "update it by copy"});
  // The right bytes in the wrong shape: found when the library has made its tensor, and
  // the constant is left without a usable value.
  ConstantMap flat = a;
  flat.at("fc1_weight") = a.at("fc1_weight").flatten();
  expectError([&] { ours->update_constant_buffer(flat, false, true); }, StatusCode::kInvalidArgument,
              {"'fc1.weight'", "expects sizes [32, 16], got [512]"});
  short_one.at("fc1_weight") = a.at("fc1_weight").slice(0, 0, 31).contiguous();
  expectError([&] { ours->update_constant_buffer(short_one, false, true); }, StatusCode::kInvalidArgument,
              {"'fc1.weight'", "expects sizes [32, 16], got [31, 16]"});
  expectError([&] { ours->run(f.inputs); }, StatusCode::kFailedPrecondition, {"no value for 'fc1.weight'"});
  ours->update_constant_buffer(a, false, true);
  aotiplug_test::expectCloseToEager(ours->run(f.inputs), f.outputs, "the right shapes");
}

BOOST_AUTO_TEST_CASE(the_instruction_sets_a_models_code_uses_are_found_and_checked) {
  // AOTInductor compiles with -march=native: what counts is what the machine code uses.
  const auto flags = aotiplug::cpuFlags();
  const auto test_library = aotiplug_test::buildRoot() / "tests" / "plugins" / "libtest_avx512_code.so";
  const auto used_by_test = aotiplug::cpuFeaturesUsedBy(test_library.string());
  if (!used_by_test) {
    BOOST_TEST_MESSAGE("libaotiplug was built without a disassembler: only AOTI_CPU_ISA is checked");
    return;
  }
  // A library with AVX-512 code (built by the test suite with -mavx512f -mavx512bw).
  BOOST_TEST(used_by_test->count("avx512f") == 1u);
  BOOST_TEST(used_by_test->count("avx512bw") == 1u);
  const std::set<std::string> avx2_machine = {"sse2", "pni", "ssse3", "sse4_1", "sse4_2", "popcnt",
                                              "avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "abm"};
  expectError([&] { aotiplug::checkCpuFeatures(test_library.string(), "AVX2", avx2_machine); },
              StatusCode::kIncompatible,
              {"uses instructions this CPU lacks", "avx512bw", "avx512f", "-march=native"});
  // A build-ID note whose descriptor size is damaged (0xfffffffd: rounded up in 32 bits it
  // wrapped to 0 and the note was read 4 GiB long): the note is skipped, the code still
  // decoded.
  {
    std::string bytes = aotiplug_test::readFile(test_library);
    const std::string note("\x04\0\0\0\x14\0\0\0\x03\0\0\0GNU\0", 16);
    const auto at = bytes.find(note);
    BOOST_REQUIRE_MESSAGE(at != std::string::npos, "no GNU build-ID note in " << test_library);
    const std::string huge("\xfd\xff\xff\xff", 4);
    bytes.replace(at + 4, 4, huge);
    aotiplug_test::TempDir dir;
    const auto damaged = dir.path() / "libdamaged_note.so";
    aotiplug_test::writeFile(damaged, bytes);
    const auto used = aotiplug::cpuFeaturesUsedBy(damaged.string());
    BOOST_REQUIRE(used.has_value());
    BOOST_TEST((*used == *used_by_test));
  }
  // Every fixture was compiled on this machine: its code uses only what this CPU has, and
  // at least the vector ISA it was compiled for.
  for (const std::string& name : aotiplug_test::fixtureNames()) {
    Fixture f = loadFixture(name);
    const auto used = aotiplug::cpuFeaturesUsedBy(f.so.string());
    BOOST_REQUIRE(used.has_value());
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(used->count("avx") == 1u);
      for (const auto& u : *used) BOOST_TEST(flags.count(u) == 1u, "uses " << u);
      aotiplug::checkCpuFeatures(f.so.string(), "", flags);
    }
  }
}
