// SPDX-License-Identifier: BSD-3-Clause
// RunnerHandle and the runner table's version: the handle calls abi_version() only on a
// table of minor 1 or newer, and refuses one that disagrees with its manifest's minor.
#define BOOST_TEST_MODULE runner_handle
#include <boost/test/unit_test.hpp>

#include "../common/test_support.h"

#include <aotiplug/registry/plugin_abi.h>
#include <aotiplug/registry/runner_handle.h>

#include <ATen/ops/ones.h>

#include <atomic>

namespace {

using aotiplug::RunnerAbi;
using aotiplug::RunnerAbiVersion;
using aotiplug::Status;
using aotiplug::StatusCode;

// A runner table that reports what it is told, and counts calls of abi_version().
class ScriptedAbi final : public RunnerAbi {
 public:
  explicit ScriptedAbi(RunnerAbiVersion v, std::atomic<int>* asked) : v_(v), asked_(asked) {
    info_.input_names = {"x"};
    info_.output_names = {"y"};
  }
  const aotiplug::ModelInfo& info() const noexcept override { return info_; }
  Status run(const std::vector<at::Tensor>& inputs, void*, std::vector<at::Tensor>* out) noexcept override {
    *out = inputs;
    return Status::ok();
  }
  Status extract_constants_map(bool, aotiplug::ConstantMap*) const noexcept override { return {}; }
  Status update_constant_buffer(const aotiplug::ConstantMap&, bool, bool, bool) noexcept override { return {}; }
  Status run_const_fold(bool, void*) noexcept override { return {}; }
  Status swap_constant_buffer() noexcept override { return {}; }
  Status free_inactive_constant_buffer() noexcept override { return {}; }
  Status update_constants_from_blob(const void*, std::size_t) noexcept override { return {}; }
  RunnerAbiVersion abi_version() const noexcept override {
    ++*asked_;
    return v_;
  }

 private:
  RunnerAbiVersion v_;
  std::atomic<int>* asked_;
  aotiplug::ModelInfo info_;
};

aotiplug::Leased<RunnerAbi> scripted(RunnerAbiVersion v, std::atomic<int>* asked) {
  return aotiplug::Leased<RunnerAbi>(new ScriptedAbi(v, asked), {});
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_table_counts_the_methods_of_each_minor) {
  BOOST_TEST(aotiplug::runnerAbiMethods(0) == 8u);
  BOOST_TEST(aotiplug::runnerAbiMethods(1) == 9u);
  BOOST_TEST(AOTIPLUG_ABI_MINOR >= 1);
}

BOOST_AUTO_TEST_CASE(a_minor_0_table_is_never_asked_its_version) {
  std::atomic<int> asked{0};
  aotiplug::RunnerHandle handle(scripted({0, 0, 0}, &asked), "plugin 'old'", 0);
  BOOST_TEST(asked.load() == 0);
  BOOST_TEST(handle.abiMinor() == 0u);
  BOOST_TEST(handle.run({at::ones({2})}).size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_table_that_agrees_with_its_manifest_is_accepted) {
  std::atomic<int> asked{0};
  aotiplug::RunnerHandle handle(scripted({AOTIPLUG_ABI_MAJOR, 1, aotiplug::runnerAbiMethods(1)}, &asked),
                                "plugin 'new'", 1);
  BOOST_TEST(asked.load() == 1);
  BOOST_TEST(handle.abiMinor() == 1u);
}

BOOST_AUTO_TEST_CASE(a_table_that_disagrees_with_its_manifest_is_refused_naming_both) {
  const RunnerAbiVersion wrong[] = {
      {AOTIPLUG_ABI_MAJOR + 1, 1, aotiplug::runnerAbiMethods(1)},  // another major
      {AOTIPLUG_ABI_MAJOR, 0, aotiplug::runnerAbiMethods(1)},      // another minor
      {AOTIPLUG_ABI_MAJOR, 1, 7},                                  // another length
  };
  for (const RunnerAbiVersion& v : wrong) {
    std::atomic<int> asked{0};
    aotiplug_test::expectError([&] { aotiplug::RunnerHandle(scripted(v, &asked), "plugin 'mixed'", 1); },
                               StatusCode::kIncompatible,
                               {"plugin 'mixed'", "its runner table says SDK ABI " + std::to_string(v.abi_major) +
                                                      "." + std::to_string(v.abi_minor),
                                std::to_string(v.methods) + " methods", "manifest says",
                                "mixed SDK headers"});
  }
}

BOOST_AUTO_TEST_CASE(the_minor_of_a_library_is_what_was_recorded_never_newer) {
  BOOST_TEST(aotiplug::pluginAbiMinor("") == static_cast<std::uint32_t>(AOTIPLUG_ABI_MINOR),
             "the host's own registrations");
  BOOST_TEST(aotiplug::pluginAbiMinor("/nobody/recorded/this.so") == 0u, "unknown: the oldest");
  aotiplug::recordPluginAbiMinor("/plugins/libold.so", 0);
  BOOST_TEST(aotiplug::pluginAbiMinor("/plugins/libold.so") == 0u);
  aotiplug::recordPluginAbiMinor("/plugins/libold.so", 1);  // reloaded, rebuilt
  BOOST_TEST(aotiplug::pluginAbiMinor("/plugins/libold.so") == 1u);
  aotiplug::recordPluginAbiMinor("/plugins/libfuture.so", 99);
  BOOST_TEST(aotiplug::pluginAbiMinor("/plugins/libfuture.so") == static_cast<std::uint32_t>(AOTIPLUG_ABI_MINOR));
}
