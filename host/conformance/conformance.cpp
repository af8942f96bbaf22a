// SPDX-License-Identifier: BSD-3-Clause
// aotiplug-conformance: the plugin contract as a Boost.Test suite, installed with the SDK
// for plugin authors to point at their plugin (docs/authoring.md):
//
//   aotiplug-conformance -- --plugin LIB.so [--model MODEL.pt2] [--device D] [--allow-untrusted]
//
// Boost.Test's own options go before "--" (e.g. --log_level=test_suite). Each test case
// loads the plugin afresh with its own loader, so they can run in any order.
#define BOOST_TEST_MODULE aotiplug_conformance
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/executor/eager_reference.h>
#include <aotiplug/host/manifest_reader.h>
#include <aotiplug/host/plugin_loader.h>
#include <aotiplug/host/plugin_probe.h>
#include <aotiplug/registry/runner_registry.h>
#include <aotiplug/runner/device.h>

#include <ATen/ops/zeros.h>

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace {

struct Arguments {
  std::string plugin, model, device;
  bool allow_untrusted = false;
  std::vector<std::string> unknown;  // a mistyped option would otherwise skip what it meant
};

const Arguments& args() {
  static const Arguments parsed = [] {
    Arguments a;
    auto& suite = boost::unit_test::framework::master_test_suite();
    for (int i = 1; i < suite.argc; ++i) {
      const std::string arg = suite.argv[i];
      auto next = [&]() -> std::string { return i + 1 < suite.argc ? suite.argv[++i] : ""; };
      if (arg == "--plugin") {
        a.plugin = next();
      } else if (arg == "--model") {
        a.model = next();
      } else if (arg == "--device") {
        a.device = next();
      } else if (arg == "--allow-untrusted") {
        a.allow_untrusted = true;
      } else {
        a.unknown.push_back(arg);
      }
    }
    // The loader keeps plugins, and /proc/self/maps names libraries, by resolved path: a
    // symlinked plugin is compared by the file it points to.
    if (!a.plugin.empty()) {
      std::error_code ec;
      const auto resolved = std::filesystem::weakly_canonical(std::filesystem::absolute(a.plugin), ec);
      a.plugin = ec ? std::filesystem::absolute(a.plugin).lexically_normal().string() : resolved.string();
    }
    return a;
  }();
  return parsed;
}

aotiplug::LoaderOptions loaderOptions() {
  aotiplug::LoaderOptions o;
  o.require_trusted_paths = !args().allow_untrusted;
  return o;
}

bool isMapped(const std::string& path) {
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return false;
  ::dlclose(h);
  return true;
}

// Runs f; it must fail with an aotiplug::Error carrying a message — not succeed, not throw
// anything else.
template <class F>
void expectPluginError(const std::string& what, F&& f) {
  try {
    f();
    BOOST_ERROR(what << ": succeeded, expected an error");
  } catch (const aotiplug::Error& e) {
    BOOST_TEST(!std::string(e.what()).empty(), what << ": the error has no message");
    BOOST_TEST_MESSAGE(what << ": " << e.what());
  } catch (const std::exception& e) {
    BOOST_ERROR(what << ": threw " << typeid(e).name() << " instead of aotiplug::Error: " << e.what());
  }
}

struct RequirePlugin {
  RequirePlugin() {
    BOOST_REQUIRE_MESSAGE(!args().plugin.empty(),
                          "usage: aotiplug-conformance -- --plugin LIB.so [--model M.pt2] [--device D]");
  }
};
BOOST_TEST_GLOBAL_FIXTURE(RequirePlugin);

}  // namespace

BOOST_AUTO_TEST_CASE(the_arguments_are_understood) {
  std::string unknown;
  for (const auto& a : args().unknown) unknown += (unknown.empty() ? "" : ", ") + a;
  BOOST_TEST(unknown.empty(), "unknown arguments: " << unknown << " (the kit takes --plugin LIB.so, --model M.pt2, "
                                                                  "--device D, --allow-untrusted)");
}

BOOST_AUTO_TEST_CASE(manifest_is_readable_without_loading_and_compatible) {
  const auto read = aotiplug::readManifest(args().plugin);
  BOOST_REQUIRE_MESSAGE(read.status == aotiplug::ManifestReadStatus::kOk, read.message);
  const auto verdict = aotiplug::checkCompatibility(*read.manifest, aotiplug::currentHostAbi());
  BOOST_TEST(verdict.ok(), verdict.message);
  BOOST_TEST(!read.manifest->name.empty());
  BOOST_TEST(!read.manifest->version.empty());
  BOOST_TEST(!isMapped(args().plugin), "reading the manifest loaded the library");
}

BOOST_AUTO_TEST_CASE(loads_and_registers_exactly_what_it_declares) {
  aotiplug::PluginLoader loader(loaderOptions());
  const auto record = loader.load(args().plugin);
  BOOST_REQUIRE_MESSAGE(record.loaded(), aotiplug::pluginProblemName(record.problem) << ": " << record.reason);
  std::set<c10::DeviceType> declared(record.manifest->devices.begin(), record.manifest->devices.end());
  std::set<c10::DeviceType> registered;
  for (const auto& r : record.registrations) registered.insert(r.device_type);
  BOOST_TEST((declared == registered), "the manifest and the registrations differ");
  for (const auto& w : record.warnings) BOOST_ERROR("loader warning: " << w);
}

BOOST_AUTO_TEST_CASE(errors_come_back_as_errors_with_messages) {
  aotiplug::PluginLoader loader(loaderOptions());
  const auto record = loader.load(args().plugin);
  BOOST_REQUIRE(record.loaded());
  for (c10::DeviceType type : record.manifest->devices) {
    const std::string device = aotiplug::defaultDeviceString(type);
    expectPluginError("a runner for a missing model file on " + device, [&] {
      aotiplug::createRunner(type, "/nonexistent/aotiplug-conformance/model.so", 1, device, "", false);
    });
    expectPluginError("a runner with num_models 0 on " + device, [&] {
      aotiplug::createRunner(type, "/nonexistent/aotiplug-conformance/model.so", 0, device, "", false);
    });
  }
}

// Reported "skipped: no model given" (not passed) when --model is missing.
boost::test_tools::assertion_result modelGiven(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(!args().model.empty());
  r.message() << "no model given (--model MODEL.pt2)";
  return r;
}

BOOST_AUTO_TEST_CASE(runners_create_run_and_destroy, *boost::unit_test::precondition(modelGiven)) {
  aotiplug::PluginLoader loader(loaderOptions());
  BOOST_REQUIRE(loader.load(args().plugin).loaded());
  aotiplug::ExecutorConfig config;
  config.maxNumConcurrentThreads = 2;
  config.device = args().device;
  {
    aotiplug::AOTIDelegateExecutor exec(args().model, nullptr, config);
    const auto served_by = aotiplug::runnerRegistry().winner(aotiplug::parseDevice(exec.device()).type());
    BOOST_REQUIRE(served_by.has_value());
    BOOST_TEST(served_by->origin.library == args().plugin, "the model ran on " << served_by->origin.describe());
    auto inputs = exec.package().sampleInputs(exec.packagedModel());
    BOOST_REQUIRE_MESSAGE(!inputs.empty(), "the model package has no sample inputs");
    for (auto& t : inputs) t = t.to(aotiplug::parseDevice(exec.device()));
    const auto outputs = exec.run(inputs);
    const auto reference = exec.package().referenceOutputs(exec.packagedModel());
    BOOST_TEST(outputs.size() == exec.modelInfo().numOutputs());
    if (!reference.empty()) {
      const aotiplug::EagerComparison eager = aotiplug::compareWithEager(outputs, reference);
      BOOST_TEST(eager.match, "the outputs do not match eager: " << eager.mismatch);
    }
    // The runner's own errors are errors too.
    expectPluginError("run() with no inputs", [&] { exec.runner().run({}); });
    expectPluginError("an unknown constant", [&] {
      exec.runner().update_constant_buffer({{"no_such_constant", at::zeros({1})}}, true, false);
    });
  }
  BOOST_TEST(isMapped(args().plugin), "still loaded while the loader holds it");
}

BOOST_AUTO_TEST_CASE(unloading_releases_the_library) {
  {
    aotiplug::PluginLoader loader(loaderOptions());
    BOOST_REQUIRE(loader.load(args().plugin).loaded());
    BOOST_TEST(isMapped(args().plugin));
    BOOST_TEST(loader.unload(args().plugin));
    for (const auto& r : aotiplug::runnerRegistry().registrations()) {
      BOOST_TEST(r.origin.library != args().plugin, "a registration survived the unload");
    }
  }
  BOOST_TEST(!isMapped(args().plugin),
             "still mapped after unloading (STB_GNU_UNIQUE symbols? RTLD_NODELETE?)");
}

// Boost.Test would catch a crash inside the plugin (a signal during dlopen, say) and carry
// on with the dynamic loader's lock still held: the next test then hangs. A plugin that
// crashes must end the run instead, visibly, so the kit turns that off before any user
// arguments (which may turn it back on).
int main(int argc, char* argv[]) {
  std::vector<char*> args(argv, argv + argc);
  static char no_catch[] = "--catch_system_errors=no";
  args.insert(args.begin() + 1, no_catch);
  return boost::unit_test::unit_test_main(init_unit_test, static_cast<int>(args.size()), args.data());
}
