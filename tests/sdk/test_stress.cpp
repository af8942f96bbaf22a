// SPDX-License-Identifier: BSD-3-Clause
// Bounded stress: many threads running while weights are swapped, and runners created while
// the plugin that serves them is loaded and unloaded. Each case runs for
// AOTIPLUG_STRESS_SECONDS (default 2) and reports its iteration counts.
#define BOOST_TEST_MODULE stress
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include "../common/fixtures.h"

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/host/plugin_loader.h>
#include <aotiplug/registry/runner_registry.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace {

using aotiplug::StatusCode;
namespace fs = std::filesystem;

std::chrono::milliseconds stressTime() {
  const char* s = std::getenv("AOTIPLUG_STRESS_SECONDS");
  return std::chrono::milliseconds(static_cast<long>(1000 * (s != nullptr ? std::atof(s) : 2.0)));
}

bool closeTo(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want) {
  if (got.size() != want.size()) return false;
  for (std::size_t i = 0; i < got.size(); ++i) {
    std::string why;
    if (!aotiplug_test::closeToEager(got[i], want[i], &why)) return false;
  }
  return true;
}

}  // namespace

// A model without folded constants ("conv": an update of the inactive buffer overlaps the
// run in which the library marks a swapped-in buffer folded) and one with them
// ("const_fold": folding locks runs out).
BOOST_DATA_TEST_CASE(runs_from_four_threads_while_weights_are_swapped,
                     boost::unit_test::data::make({"conv", "const_fold"}), name) {
  aotiplug::PluginLoader loader;
  loader.loadDirectory((aotiplug_test::buildRoot() / "plugins").string());
  aotiplug_test::Fixture f = aotiplug_test::loadFixture(name);
  aotiplug::ExecutorConfig config;
  config.maxNumConcurrentThreads = 2;  // fewer instances than threads: runs also queue
  aotiplug::AOTIDelegateExecutor exec(f.pt2.string(), nullptr, config);
  const auto wa = std::make_shared<aotiplug::Weights>(f.weights_a);
  const auto wb = std::make_shared<aotiplug::Weights>(f.weights_b);

  std::atomic<bool> stop{false};
  std::atomic<long> old_w{0}, new_w{0}, inconsistent{0}, errors{0}, swaps{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        try {
          const auto out = exec.run(f.inputs);
          if (closeTo(out, f.outputs)) {
            ++old_w;
          } else if (closeTo(out, f.outputs_b)) {
            ++new_w;
          } else {
            ++inconsistent;
          }
        } catch (...) {
          ++errors;
        }
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop.load()) {
      exec.processWeights(swaps % 2 == 0 ? wb : wa);
      exec.commitWeights();
      ++swaps;
    }
  });
  std::this_thread::sleep_for(stressTime());
  stop = true;
  for (auto& t : threads) t.join();
  BOOST_TEST_MESSAGE(name << ": runs: " << old_w + new_w << " (" << old_w << " old weights, " << new_w
                              << " new), swaps: " << swaps);
  BOOST_TEST(inconsistent.load() == 0);
  BOOST_TEST(errors.load() == 0);
  BOOST_TEST(old_w.load() > 0);
  BOOST_TEST(new_w.load() > 0);
  BOOST_TEST(swaps.load() > 2);
}

BOOST_AUTO_TEST_CASE(runners_are_created_while_their_plugin_is_loaded_and_unloaded) {
  aotiplug_test::TempDir dir;
  fs::copy_file(aotiplug_test::buildRoot() / "plugins" / "cpu" / "libaotiplug_cpu.so",
                dir.path() / "libaotiplug_cpu.so");
  const std::string plugin = fs::canonical(dir.path() / "libaotiplug_cpu.so").string();
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("mlp");
  aotiplug::PluginLoader loader;
  // The first load scans the plugin in a child process (seconds in a sanitizer build);
  // the cycles below are about loading and unloading, and take the cached verdict.
  {
    const auto first = loader.loadDirectory(dir.str());
    BOOST_REQUIRE_MESSAGE(first.size() == 1 && first[0].loaded(),
                          (first.size() == 1 ? first[0].reason : first.error));
    loader.unloadAll();
  }

  std::atomic<bool> stop{false};
  std::atomic<long> loads{0}, in_use{0}, bad_loads{0}, created{0}, not_found{0}, wrong{0}, other{0};
  std::string bad_load;
  std::thread churn([&] {
    while (!stop.load()) {
      const auto load = loader.loadDirectory(dir.str());
      // Loaded, or refused because runners of the previous load still hold it: nothing else.
      if (load.size() == 1 && load[0].loaded()) {
        ++loads;
      } else if (load.size() == 1 && load[0].problem == aotiplug::PluginProblem::kInUse) {
        ++in_use;
      } else {
        if (bad_loads++ == 0) bad_load = load.size() == 1 ? load[0].reason : load.error;
      }
      loader.unloadAll();
    }
  });
  std::vector<std::thread> users;
  for (int t = 0; t < 2; ++t) {
    users.emplace_back([&] {
      while (!stop.load()) {
        try {
          auto runner = aotiplug::createRunner(f.so.string(), 1, "cpu", "", false);
          ++created;
          // The runner keeps working even if the plugin is unloaded meanwhile.
          if (!closeTo(runner->run(f.inputs), f.outputs)) ++wrong;
        } catch (const aotiplug::Error& e) {
          if (e.code() == StatusCode::kNotFound) {
            ++not_found;
          } else {
            ++other;
          }
        }
      }
    });
  }
  std::this_thread::sleep_for(stressTime());
  stop = true;
  churn.join();
  for (auto& t : users) t.join();
  BOOST_TEST_MESSAGE("load/unload cycles: " << loads << ", reloads refused while in use: " << in_use
                                            << ", runners created: " << created
                                            << ", refused while unloaded: " << not_found);
  BOOST_TEST(bad_loads.load() == 0, bad_load);
  BOOST_TEST(wrong.load() == 0);
  BOOST_TEST(other.load() == 0);
  BOOST_TEST(loads.load() > 2);
  BOOST_TEST(created.load() > 0);
  BOOST_TEST(!aotiplug_test::isLibraryLoaded(plugin), "the plugin outlived its last runner");
}
