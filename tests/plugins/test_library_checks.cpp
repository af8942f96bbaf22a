// SPDX-License-Identifier: BSD-3-Clause
// The model library's own input checks (AOTI_RUNTIME_CHECK_INPUTS): they fail before the
// library takes ownership of the input handles, so the binding must free those itself,
// and the library's reason must reach the error. A test program of its own, because the
// library reads the variable once per process.
#define BOOST_TEST_MODULE library_checks
#include <boost/test/unit_test.hpp>

#include "../common/build_plugins.h"
#include "../common/fixtures.h"

#include <aotiplug/host/plugin_loader.h>
#include <aotiplug/registry/runner_registry.h>

#include <ATen/ops/zeros.h>

#include <cstdlib>

namespace {

using aotiplug::StatusCode;
using aotiplug_test::expectError;
using aotiplug_test::loadFixture;

struct Setup {
  aotiplug::PluginLoader loader;
  Setup() {
    ::setenv("AOTI_RUNTIME_CHECK_INPUTS", "1", 1);  // before any model library is loaded
    aotiplug_test::loadBuildPlugins(loader);
  }
};
BOOST_TEST_GLOBAL_FIXTURE(Setup);

}  // namespace

BOOST_AUTO_TEST_CASE(inputs_the_library_refused_are_not_leaked) {
  const auto f = loadFixture("mlp");
  auto runner = aotiplug::createRunner(f.so.string(), 1, "cpu", "", false);
  // Right rank and size, wrong dtype: only the library's own check refuses it here.
  at::Tensor wrong = at::zeros({4, 16}, at::kDouble);
  expectError([&] { runner->run({wrong}); }, StatusCode::kModelError,
              {"AOTInductorModelContainerRun failed", "unmatched dtype"});
  BOOST_TEST(wrong.use_count() == 1, "the tensor object is ours alone again");
  BOOST_TEST(wrong.storage().use_count() == 1, "and so is its memory");
  for (int i = 0; i < 3; ++i) {
    at::Tensor again = at::zeros({4, 16}, at::kDouble);
    BOOST_CHECK_THROW(runner->run({again}), aotiplug::Error);
    BOOST_TEST(again.storage().use_count() == 1);
  }
  // Right inputs still run, and their handles are the library's to free as usual.
  at::Tensor right = f.inputs.at(0).clone();
  aotiplug_test::expectCloseToEager(runner->run({right}), f.outputs, "right inputs");
  BOOST_TEST(right.use_count() == 1);
}
