// SPDX-License-Identifier: BSD-3-Clause
// Packages cross torch versions: the test models compiled by another torch (AOTIPLUG_FIXTURES
// points at fixtures made by that torch's venv: `./dev cross VERSION`) open, run and match
// eager on this build; a model library that needs C shim functions this LibTorch lacks is
// refused naming them, never with the loader's bare "undefined symbol".
#define BOOST_TEST_MODULE cross_version
#include <boost/test/unit_test.hpp>

#include "../common/build_plugins.h"
#include "../common/fixtures.h"

#include <aotiplug/executor/aoti_delegate_executor.h>

#include <torch/headeronly/version.h>

#include <cstdlib>

namespace {

using aotiplug::AOTIDelegateExecutor;
using aotiplug::ExecutorConfig;
using BuildPlugins = aotiplug_test::BuildPlugins;
BOOST_TEST_GLOBAL_FIXTURE(BuildPlugins);

// The fixtures of the other torch's build (meson's test environment sets AOTIPLUG_FIXTURES
// to this build's own).
struct UseCrossFixtures {
  UseCrossFixtures() {
    if (const char* dir = std::getenv("AOTIPLUG_CROSS_FIXTURES"); dir != nullptr && *dir != '\0') {
      ::setenv("AOTIPLUG_FIXTURES", dir, 1);
    } else {
      ::unsetenv("AOTIPLUG_CROSS_TORCH");
    }
  }
};
BOOST_TEST_GLOBAL_FIXTURE(UseCrossFixtures);

std::string otherTorch() {
  const char* v = std::getenv("AOTIPLUG_CROSS_TORCH");
  return v != nullptr ? v : "";
}

boost::test_tools::assertion_result haveCrossFixtures(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(!otherTorch().empty());
  r.message() << "no fixtures made by another torch (run ./dev cross VERSION)";
  return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(packages_made_by_another_torch_run_here_and_match_eager,
                     *boost::unit_test::precondition(haveCrossFixtures)) {
  BOOST_TEST_MESSAGE("packages compiled by torch " << otherTorch() << ", run on LibTorch " << TORCH_VERSION);
  std::size_t ran = 0;
  for (const std::string& name : aotiplug_test::fixtureNames()) {
    BOOST_TEST_CONTEXT(name) {
      const aotiplug_test::Fixture f = aotiplug_test::loadFixture(name);
      ExecutorConfig config;
      config.log = [](const std::string&) {};
      std::unique_ptr<AOTIDelegateExecutor> exec;
      try {
        exec = std::make_unique<AOTIDelegateExecutor>(f.pt2.string(), nullptr, config);
      } catch (const aotiplug::Error& e) {
        // The one acceptable refusal: shims this LibTorch lacks, said as such.
        BOOST_TEST((e.code() == aotiplug::StatusCode::kIncompatible), e.what());
        BOOST_TEST(aotiplug_test::contains(e.what(), "LibTorch C shim function(s) this LibTorch does not export"),
                   e.what());
        BOOST_TEST_MESSAGE(name << ": refused: " << e.what());
        continue;
      }
      if (aotiplug_test::fixtureWeights(name) == "host") {
        exec->initWeights(std::make_shared<aotiplug::Weights>(f.weights_a));
      }
      aotiplug_test::expectCloseToEager(exec->run(f.inputs), f.outputs, name);
      if (!f.extra_inputs.empty()) {
        aotiplug_test::expectCloseToEager(exec->run(f.extra_inputs), f.extra_outputs, name + " at another size");
      }
      if (!f.plain) {
        const auto& meta = exec->packagedModel().metadata;
        auto made = meta.find("aotiplug.torch_version");
        BOOST_TEST_REQUIRE((made != meta.end()));
        BOOST_TEST(made->second.rfind(otherTorch(), 0) == 0, made->second);
        // And a weight swap, where the model keeps its weights swappable.
        if (!f.weights_b.empty()) {
          exec->processWeights(std::make_shared<aotiplug::Weights>(f.weights_b));
          exec->commitWeights();
          aotiplug_test::expectCloseToEager(exec->run(f.inputs), f.outputs_b, name + " after a swap");
        }
      }
      ++ran;
    }
  }
  BOOST_TEST_MESSAGE(ran << " packages made by torch " << otherTorch() << " ran and matched");
  BOOST_TEST(ran > 0u);
}
