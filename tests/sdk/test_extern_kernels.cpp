// SPDX-License-Identifier: BSD-3-Clause
// Models with extern kernels (AOTInductor's proxy-executor calls into TORCH_LIBRARY ops),
// compiled by the test build against tests/fixtures/ops/test_ops.cpp: refused clearly while
// the op library is not loaded, then run through aotiplug::ExternKernels and matching eager,
// from several threads, across a weight swap, and through `aotiplug run --op-library`.
// The order of the cases matters: an op library, once loaded, stays loaded.
#define BOOST_TEST_MODULE extern_kernels
#include <boost/test/unit_test.hpp>

#include "../common/build_plugins.h"
#include "../common/fixtures.h"

#include <aotiplug/detail/op_library_loader.h>
#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/host/op_library.h>
#include <aotiplug/runner/extern_kernels.h>

#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <thread>

namespace {

using aotiplug::AOTIDelegateExecutor;
using aotiplug::ExecutorConfig;
using aotiplug::ExternKernels;
using aotiplug::StatusCode;
using aotiplug_test::expectError;
using aotiplug_test::loadFixture;
namespace fs = std::filesystem;

using BuildPlugins = aotiplug_test::BuildPlugins;
BOOST_TEST_GLOBAL_FIXTURE(BuildPlugins);

const char* const kFixtures[] = {"extern_ops", "plain_extern_ops"};

fs::path opLibrary() { return aotiplug_test::buildRoot() / "tests" / "fixtures" / "libaotiplug_test_ops.so"; }

ExecutorConfig quiet() {
  ExecutorConfig c;
  c.maxNumConcurrentThreads = 4;
  c.log = [](const std::string&) {};
  return c;
}

// torchvision's op library, when torchvision is in the venv (requirements.txt has it).
std::string visionOps() {
  const char* p = std::getenv("AOTIPLUG_TORCHVISION_OPS");
  return p != nullptr ? p : "";
}
boost::test_tools::assertion_result haveTorchvision(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(!visionOps().empty() &&
                                        fs::exists(aotiplug_test::fixturesDir() / "plain_vision_ops.pt2"));
  r.message() << "torchvision is not installed in the venv";
  return r;
}

aotiplug_test::CommandResult cli(std::vector<std::string> args) {
  args.insert(args.begin(), (aotiplug_test::buildRoot() / "host" / "aotiplug").string());
  args.push_back("--plugins");
  args.push_back((aotiplug_test::buildRoot() / "plugins").string());
  return aotiplug_test::runCommand(args);
}

}  // namespace

BOOST_AUTO_TEST_CASE(without_its_op_library_a_model_is_refused_at_open_naming_the_op) {
  for (const char* name : kFixtures) {
    BOOST_TEST_CONTEXT(name) {
      const auto f = loadFixture(name);
      expectError([&] { AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet()); },
                  StatusCode::kFailedPrecondition,
                  {"needs operator aotiplug_test::scale_add",
                   "which no library loaded in this process registers",
                   "TORCH_LIBRARY(aotiplug_test", "--op-library"});
    }
  }
  const auto r = cli({"run", loadFixture("extern_ops").pt2.string(), "-n", "1"});
  BOOST_TEST(r.exit_code == 1, r.err);
  BOOST_TEST(aotiplug_test::contains(r.err, "needs operator aotiplug_test::scale_add"), r.err);
  // aotiplug's packager records which op libraries a model needs; the error names them.
  BOOST_TEST(aotiplug_test::contains(r.err, "the package says it needs the op libraries [\"libaotiplug_test_ops.so\"]"),
             r.err);

  // aotiplug inspect lists the operators, whether each is registered, and the op libraries
  // the package names; it cannot run without them (exit 3), and can with --op-library.
  const auto inspect = cli({"inspect", loadFixture("extern_ops").pt2.string(), "--json"});
  BOOST_TEST(inspect.exit_code == 3, inspect.err);
  const auto j = nlohmann::json::parse(inspect.out, nullptr, false);
  BOOST_TEST_REQUIRE(!j.is_discarded(), inspect.out);
  const auto& m = j.at("models").at(0);
  BOOST_TEST(m.at("op_libraries") == nlohmann::json::array({"libaotiplug_test_ops.so"}));
  BOOST_TEST_REQUIRE(m.at("extern_kernels").size() == 4u, m.dump());
  BOOST_TEST(m.at("extern_kernels").at(0).at("operator") == "aotiplug_test::scale_add");
  BOOST_TEST(m.at("extern_kernels").at(0).at("registered") == false);
  BOOST_TEST(aotiplug_test::contains(m.at("runs_here").at("error").get<std::string>(),
                                     "needs operator aotiplug_test::scale_add"));
  const auto with = cli({"inspect", loadFixture("plain_extern_ops").pt2.string(), "--json", "--op-library",
                         opLibrary().string()});
  BOOST_TEST(with.exit_code == 0, with.err);
  const auto k = nlohmann::json::parse(with.out, nullptr, false);
  BOOST_TEST_REQUIRE(!k.is_discarded(), with.out);
  BOOST_TEST(k.at("models").at(0).at("extern_kernels").at(3).at("registered") == true);
  BOOST_TEST(k.at("models").at(0).at("runs_here").at("ok") == true);
}

BOOST_AUTO_TEST_CASE(a_torchvision_model_is_refused_naming_torchvisions_library,
                     *boost::unit_test::precondition(haveTorchvision)) {
  const auto f = loadFixture("plain_vision_ops");
  expectError([&] { AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet()); },
              StatusCode::kFailedPrecondition,
              {"needs operator torchvision::nms", "a C++ build of torchvision's ops", "libtorchvision.so"});
}

BOOST_AUTO_TEST_CASE(an_op_library_that_is_missing_or_others_could_write_is_refused_naming_it) {
  expectError([] { aotiplug::loadOpLibrary("/nonexistent/libops.so"); }, StatusCode::kNotFound,
              {"op library /nonexistent/libops.so does not exist"});
  aotiplug_test::TempDir dir;
  const fs::path open_dir = dir.path() / "open";
  fs::create_directory(open_dir);
  ::chmod(open_dir.c_str(), 0777);
  fs::copy_file(opLibrary(), open_dir / "libops.so");
  expectError([&] { aotiplug::loadOpLibrary((open_dir / "libops.so").string()); },
              StatusCode::kFailedPrecondition,
              {"op library " + (open_dir / "libops.so").string() + " was not loaded", open_dir.string()});
  const fs::path not_elf = dir.path() / "libtext.so";
  aotiplug_test::writeFile(not_elf, "not a library");
  expectError([&] { aotiplug::loadOpLibrary(not_elf.string()); }, StatusCode::kInvalidArgument,
              {"op library " + not_elf.string() + " was not loaded"});
  // A runner plugin given as an op library would register runners past the plugin checks.
  const fs::path plugin = aotiplug_test::buildRoot() / "plugins" / "cpu" / "libaotiplug_cpu.so";
  expectError([&] { aotiplug::loadOpLibrary(plugin.string()); }, StatusCode::kInvalidArgument,
              {"was not loaded: it is an aotiplug plugin ('cpu')", "--plugins DIR"});
  BOOST_TEST(aotiplug::loadedOpLibraries().empty());
}

// A host names the op libraries in the executor's config: loaded with the same checks,
// before the model is opened, and an error names the package, the setting and the file.
BOOST_AUTO_TEST_CASE(the_executor_config_loads_op_libraries_with_the_trust_checks) {
  const auto f = loadFixture("extern_ops");
  ExecutorConfig config = quiet();
  config.opLibraries = {"/nonexistent/libops.so"};
  expectError([&] { AOTIDelegateExecutor exec(f.pt2.string(), nullptr, config); }, StatusCode::kNotFound,
              {"package " + f.pt2.string(), "ExecutorConfig::opLibraries",
               "op library /nonexistent/libops.so does not exist"});

  aotiplug_test::TempDir dir;
  const fs::path open_dir = dir.path() / "open";
  fs::create_directory(open_dir);
  ::chmod(open_dir.c_str(), 0777);
  fs::copy_file(opLibrary(), open_dir / "libops.so");
  config.opLibraries = {(open_dir / "libops.so").string()};
  expectError([&] { AOTIDelegateExecutor exec(f.pt2.string(), nullptr, config); },
              StatusCode::kFailedPrecondition,
              {"ExecutorConfig::opLibraries", (open_dir / "libops.so").string() + " was not loaded",
               open_dir.string()});
  BOOST_TEST(aotiplug::loadedOpLibraries().empty());

  // Without the host library's loader (a host linking libaotiplug alone): said so.
  const aotiplug::detail::OpLibraryLoader installed = aotiplug::detail::opLibraryLoader();
  BOOST_TEST_REQUIRE(installed != nullptr);
  aotiplug::detail::setOpLibraryLoader(nullptr);
  config.opLibraries = {opLibrary().string()};
  expectError([&] { AOTIDelegateExecutor exec(f.pt2.string(), nullptr, config); },
              StatusCode::kFailedPrecondition,
              {"ExecutorConfig::opLibraries names 1 op library", "link libaotiplug_host"});
  aotiplug::detail::setOpLibraryLoader(installed);
  BOOST_TEST(aotiplug::loadedOpLibraries().empty());

  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, config);
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "sample inputs");
  const auto loaded = aotiplug::loadedOpLibraries();
  BOOST_TEST_REQUIRE(loaded.size() == 1u);
  BOOST_TEST(loaded.front() == fs::canonical(opLibrary()).string());
}

BOOST_AUTO_TEST_CASE(with_it_the_models_match_eager_on_every_input_and_weight_set) {
  aotiplug::loadOpLibrary(opLibrary().string());
  aotiplug::loadOpLibrary(opLibrary().string());  // again: nothing happens
  BOOST_TEST(aotiplug::loadedOpLibraries().size() >= 1u);
  for (const char* name : kFixtures) {
    BOOST_TEST_CONTEXT(name) {
      const auto f = loadFixture(name);
      AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
      aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "sample inputs");
      aotiplug_test::expectCloseToEager(exec.run(f.extra_inputs), f.extra_outputs,
                                        "another batch size (and another data-dependent size)");
      BOOST_TEST(f.outputs.at(3).size(0) != f.extra_outputs.at(3).size(0));
      if (f.plain) continue;  // Inductor inlined its small bias: no swap (docs/host-integration.md)
      exec.processWeights(std::make_shared<aotiplug::Weights>(f.weights_b));
      exec.commitWeights();
      aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs_b, "after a weight swap");
    }
  }
}

// torchvision's wheel ships its ops in _C.so, a Python extension linked to
// libtorch_python.so: a C++ host cannot load it, and is told why and what to use instead.
BOOST_AUTO_TEST_CASE(torchvisions_python_extension_is_refused_saying_what_a_cpp_host_needs,
                     *boost::unit_test::precondition(haveTorchvision)) {
  expectError([] { aotiplug::loadOpLibrary(visionOps()); }, StatusCode::kInvalidArgument,
              {"op library " + fs::canonical(visionOps()).string() + " was not loaded",
               "libtorch_python.so", "Python extension module", "built for C++"});
}

BOOST_AUTO_TEST_CASE(runs_from_several_threads_at_once_during_swaps) {
  const auto f = loadFixture("extern_ops");
  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
  std::atomic<int> wrong{0}, runs{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        const auto out = exec.run(f.inputs);
        std::string why;
        // Either weight set, never a mix: the swap is atomic for runs.
        bool a = true, b = true;
        for (std::size_t i = 0; i < out.size(); ++i) {
          a = a && aotiplug_test::closeToEager(out[i], f.outputs[i], &why);
          b = b && aotiplug_test::closeToEager(out[i], f.outputs_b[i], &why);
        }
        if (!a && !b) ++wrong;
        ++runs;
      }
    });
  }
  // Each swap waits for runs to go on first, so the runs really interleave with the swaps.
  for (int swap = 0; swap < 6; ++swap) {
    const int before = runs.load();
    while (runs.load() < before + 4) std::this_thread::yield();
    exec.processWeights(std::make_shared<aotiplug::Weights>(swap % 2 == 0 ? f.weights_b : f.weights_a));
    exec.commitWeights();
  }
  const int after_swaps = runs.load();
  while (runs.load() < after_swaps + 4) std::this_thread::yield();
  stop = true;
  for (auto& t : threads) t.join();
  BOOST_TEST(wrong.load() == 0, wrong.load() << " of " << runs.load() << " runs matched neither weight set");
}

// What the executor cannot do is refused when the model is opened: an argument the
// registered schema lacks, an argument kind it does not handle, an output count that
// differs. Shown on edited copies of a real extern-kernel file.
BOOST_AUTO_TEST_CASE(a_schema_that_differs_or_an_unhandled_kind_is_refused_at_load) {
  const auto f = loadFixture("plain_extern_ops");
  const std::string json_path = ExternKernels::fileFor(f.so.string());
  BOOST_REQUIRE(!json_path.empty());
  const auto original = nlohmann::json::parse(aotiplug_test::readFile(json_path));
  {
    ExternKernels ok(json_path, f.so.string(), c10::Device("cpu"));
    BOOST_TEST(ok.operators().size() == 4u);
  }
  aotiplug_test::TempDir dir;
  auto refused = [&](const std::function<void(nlohmann::json&)>& edit, StatusCode code,
                     const std::vector<std::string>& fragments) {
    nlohmann::json doc = original;
    edit(doc);
    const fs::path edited = dir.path() / "model.json";
    aotiplug_test::writeFile(edited, doc.dump());
    expectError([&] { ExternKernels(edited.string(), f.so.string(), c10::Device("cpu")); }, code, fragments);
  };
  refused([](nlohmann::json& d) { d["nodes"][0]["node"]["inputs"][2]["name"] = "beta"; },
          StatusCode::kIncompatible,
          {"node 0 (aotiplug_test::scale_add)", "passes argument 'beta'",
           "the registered schema is aotiplug_test::scale_add(Tensor x, Tensor y, float alpha)",
           "differs from the one the model was compiled with"});
  refused([](nlohmann::json& d) { d["nodes"][0]["node"]["inputs"][2]["arg"] = {{"as_tensor", {{"name", "buf9"}}}}; },
          StatusCode::kIncompatible, {"argument 'alpha' (as_tensor for float)"});
  refused([](nlohmann::json& d) { d["nodes"][0]["node"]["inputs"][0]["arg"] = {{"as_graph", {{"graph", {}}}}}; },
          StatusCode::kIncompatible, {"argument 'x' (as_graph for Tensor)"});
  refused([](nlohmann::json& d) { d["nodes"][0]["node"]["inputs"][2]["arg"] = {{"as_bool", true}}; },
          StatusCode::kIncompatible, {"argument 'alpha' (as_bool for float)"});
  refused([](nlohmann::json& d) { d["nodes"][0]["node"]["outputs"].push_back({{"as_tensor", {{"name", "x"}}}}); },
          StatusCode::kIncompatible, {"expects 2 output(s), the op returns 1"});
  refused([](nlohmann::json& d) { d["nodes"][0]["node"]["target"] = "call_torchbind"; },
          StatusCode::kModelError, {"TorchBind", "does not handle"});
  refused([](nlohmann::json& d) { d["nodes"][1]["node"]["outputs"][0] = {{"as_sym_float", {{"as_name", "f0"}}}}; },
          StatusCode::kModelError, {"output 0 is as_sym_float", "does not handle"});
  refused([](nlohmann::json& d) { d["nodes"][0]["node"]["inputs"].erase(1); },
          StatusCode::kIncompatible, {"does not pass argument 'y', which has no default"});
  refused([](nlohmann::json& d) { d = {{"something", 1}}; }, StatusCode::kModelError, {"has no \"nodes\" list"});
  refused([](nlohmann::json& d) { d["nodes"][0]["node"]["inputs"][2]["arg"]["as_float"] = "half"; },
          StatusCode::kModelError, {"malformed extern-kernel file"});
}

BOOST_AUTO_TEST_CASE(aotiplug_run_with_op_library_matches_eager) {
  const auto f = loadFixture("extern_ops");
  const auto r = cli({"run", f.pt2.string(), "-n", "3", "-t", "2", "--op-library", opLibrary().string(), "--json"});
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  BOOST_TEST(j.at("eager").at("match") == true, r.out);
  const auto plain = cli({"run", loadFixture("plain_extern_ops").pt2.string(), "-n", "1",
                          "--op-library", opLibrary().string()});
  BOOST_TEST(plain.exit_code == 0, plain.err);
  const auto missing = cli({"run", f.pt2.string(), "--op-library", "/nonexistent/libops.so"});
  BOOST_TEST(missing.exit_code == 1);
  BOOST_TEST(aotiplug_test::contains(missing.err, "op library /nonexistent/libops.so does not exist"), missing.err);
}
