// SPDX-License-Identifier: BSD-3-Clause
// Integration tests of the plugin loader on real, purpose-built plugins (plugins/): every
// rejection reason, duplicate device types, leases and unloading, path trust.
#define BOOST_TEST_MODULE plugin_loader
#include <boost/test/unit_test.hpp>

#include "../common/test_support.h"

#include <aotiplug/host/plugin_loader.h>
#include <aotiplug/runner_registry.h>

#include <ATen/ops/arange.h>

#include <unistd.h>

#include <filesystem>
#include <map>

namespace aotiplug {
std::ostream& operator<<(std::ostream& os, PluginState state) {
  return os << pluginStateName(state);
}
}  // namespace aotiplug

namespace {

using aotiplug::PluginLoader;
using aotiplug::PluginProblem;
using aotiplug::PluginRecord;
using aotiplug::PluginState;
using aotiplug::StatusCode;
using aotiplug_test::contains;
using aotiplug_test::TempDir;
namespace fs = std::filesystem;

fs::path builtPlugin(const std::string& variant) {
  return aotiplug_test::buildRoot() / "tests" / "host" / "plugins" /
         ("libtest_" + variant + ".so");
}

// Copies built test plugins into a fresh plugin directory.
fs::path stage(const TempDir& dir, const std::string& variant, std::string as = "") {
  if (as.empty()) as = "lib" + variant + ".so";
  fs::copy_file(builtPlugin(variant), dir.path() / as);
  return dir.path() / as;
}

std::map<std::string, PluginRecord> byFile(const std::vector<PluginRecord>& records) {
  std::map<std::string, PluginRecord> out;
  for (const auto& r : records) out[fs::path(r.path).filename().string()] = r;
  return out;
}

void expectRejected(const PluginRecord& r, PluginProblem problem,
                    const std::vector<std::string>& fragments) {
  BOOST_TEST_CONTEXT("plugin " << r.path << ": " << r.reason) {
    BOOST_TEST(r.state == PluginState::kRejected);
    BOOST_TEST(aotiplug::pluginProblemName(r.problem) == aotiplug::pluginProblemName(problem));
    for (const auto& f : fragments) {
      BOOST_TEST(contains(r.reason, f), "reason lacks '" << f << "'");
    }
  }
}

struct TraceDir {
  TempDir dir{"aotiplug-trace-"};
  TraceDir() { ::setenv("AOTIPLUG_TEST_TRACE_DIR", dir.str().c_str(), 1); }
  ~TraceDir() { ::unsetenv("AOTIPLUG_TEST_TRACE_DIR"); }
  bool ran(const std::string& plugin_name) const {
    return fs::exists(dir.path() / (plugin_name + ".ran"));
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(every_bad_plugin_is_rejected_with_its_reason_and_good_ones_load) {
  TraceDir trace;
  TempDir plugins;
  stage(plugins, "alpha");
  for (const char* v : {"abi_major", "abi_minor_newer", "torch_mismatch", "cxx11_mismatch",
                        "throws_on_load", "unresolved", "undeclared_device", "registers_twice",
                        "registers_nothing", "no_manifest"}) {
    stage(plugins, v);
  }
  aotiplug_test::writeFile(plugins.path() / "libnot_elf.so", "this is not a shared library\n");
  const std::string good = aotiplug_test::readFile(builtPlugin("alpha"));
  aotiplug_test::writeFile(plugins.path() / "libtruncated.so", good.substr(0, good.size() / 2));
  aotiplug_test::writeFile(plugins.path() / "README.txt", "not a candidate: no .so suffix");

  PluginLoader loader;
  auto records = byFile(loader.loadDirectory(plugins.str()));
  BOOST_TEST(records.size() == 13u);
  BOOST_TEST(records.count("README.txt") == 0u);

  BOOST_TEST(records["libalpha.so"].state == PluginState::kLoaded, records["libalpha.so"].reason);
  BOOST_TEST(records["libalpha.so"].name() == "alpha");
  BOOST_TEST(trace.ran("alpha"), "the trace mechanism works for a loaded plugin");

  expectRejected(records["libnot_elf.so"], PluginProblem::kNotSharedLibrary,
                 {"invalid ELF header"});
  expectRejected(records["libtruncated.so"], PluginProblem::kTruncated, {"truncated"});
  expectRejected(records["libno_manifest.so"], PluginProblem::kNoManifest,
                 {"no aotiplug manifest", "AOTIPLUG_PLUGIN"});
  expectRejected(records["libabi_major.so"], PluginProblem::kAbiMismatch,
                 {"SDK ABI major differs", "plugin 99.0", "host 1.0"});
  expectRejected(records["libabi_minor_newer.so"], PluginProblem::kAbiMismatch,
                 {"newer SDK ABI minor", "plugin 1.99", "host 1.0"});
  expectRejected(records["libtorch_mismatch.so"], PluginProblem::kTorchMismatch,
                 {"LibTorch version differs", "plugin 1.13.1", "host 2."});
  expectRejected(records["libcxx11_mismatch.so"], PluginProblem::kCxx11AbiMismatch,
                 {"plugin _GLIBCXX_USE_CXX11_ABI=0", "host _GLIBCXX_USE_CXX11_ABI=1"});
  expectRejected(records["libthrows_on_load.so"], PluginProblem::kRegistrationError,
                 {"load hook failed", "always throws"});
  expectRejected(records["libunresolved.so"], PluginProblem::kUnresolvedSymbol,
                 {"unresolved symbol aotiplug_test_symbol_nobody_defines"});
  expectRejected(records["libundeclared_device.so"], PluginProblem::kUndeclaredDevice,
                 {"'meta'", "declared: cpu"});
  expectRejected(records["libregisters_twice.so"], PluginProblem::kRegistrationError,
                 {"registered device type 'cpu' twice"});
  expectRejected(records["libregisters_nothing.so"], PluginProblem::kNoRegistrations,
                 {"registered no runner"});

  // Incompatible plugins were refused from their manifest alone: their static
  // initializers never ran.
  for (const char* name : {"abi-major", "abi-minor", "old-torch", "old-abi"}) {
    BOOST_TEST(!trace.ran(name), name << " ran code although it was incompatible");
  }
  // Rejected libraries are not left mapped, and only alpha serves CPU.
  for (const auto& [file, r] : records) {
    if (r.state == PluginState::kRejected) {
      BOOST_TEST(!aotiplug_test::isLibraryLoaded(r.path), file << " is still mapped");
    }
  }
  auto winner = aotiplug::runnerRegistry().winner(c10::DeviceType::CPU);
  BOOST_REQUIRE(winner.has_value());
  BOOST_TEST(winner->origin.plugin == "alpha");
  BOOST_TEST(!aotiplug::runnerRegistry().has(c10::DeviceType::Meta));
}

BOOST_AUTO_TEST_CASE(equal_priority_duplicates_go_to_the_name_that_sorts_first) {
  TempDir plugins;
  stage(plugins, "alpha");
  stage(plugins, "aardvark", "libzz_aardvark.so");  // loaded last, still wins on its name
  PluginLoader loader;
  auto records = byFile(loader.loadDirectory(plugins.str()));
  BOOST_TEST(records["libzz_aardvark.so"].state == PluginState::kLoaded);
  expectRejected(records["libalpha.so"], PluginProblem::kDuplicateLost,
                 {"device type 'cpu' lost to plugin 'aardvark'", "priority 200 vs 200"});
  BOOST_TEST(aotiplug::runnerRegistry().winner(c10::DeviceType::CPU)->origin.plugin ==
             "aardvark");
  BOOST_TEST(!aotiplug_test::isLibraryLoaded(records["libalpha.so"].path));
}

BOOST_AUTO_TEST_CASE(higher_priority_duplicate_wins_over_the_name_rule) {
  TempDir plugins;
  stage(plugins, "alpha");
  stage(plugins, "zulu_preferred");
  PluginLoader loader;
  auto records = byFile(loader.loadDirectory(plugins.str()));
  BOOST_TEST(records["libzulu_preferred.so"].state == PluginState::kLoaded);
  expectRejected(records["libalpha.so"], PluginProblem::kDuplicateLost,
                 {"lost to plugin 'zulu'", "priority 300 vs 200"});
}

BOOST_AUTO_TEST_CASE(runners_keep_their_library_until_the_last_one_is_destroyed) {
  TempDir plugins;
  const std::string path = fs::canonical(stage(plugins, "alpha")).string();
  PluginLoader loader;
  BOOST_REQUIRE(loader.load(path).loaded());
  BOOST_TEST(aotiplug_test::isLibraryLoaded(path));

  auto runner = aotiplug::createRunner("x3", 1, "cpu", "", false);
  auto out = runner->run({at::arange(4)});
  BOOST_TEST(out.at(0).sum().item<int64_t>() == 18);

  BOOST_TEST(loader.unload("alpha"));
  BOOST_TEST(!aotiplug::runnerRegistry().has(c10::DeviceType::CPU),
             "unloading removed the registration");
  aotiplug_test::expectError([] { aotiplug::createRunner("x3", 1, "cpu", "", false); },
                             StatusCode::kNotFound, {"device type 'cpu'"});
  BOOST_TEST(aotiplug_test::isLibraryLoaded(path), "a live runner holds the library");
  BOOST_TEST(runner->run({at::arange(4)}).at(0).sum().item<int64_t>() == 18,
             "the runner still works after its plugin was unloaded");
  runner.reset();
  BOOST_TEST(!aotiplug_test::isLibraryLoaded(path), "released with its last runner");
}

BOOST_AUTO_TEST_CASE(plugin_errors_reach_the_host_as_errors_naming_the_plugin) {
  TempDir plugins;
  stage(plugins, "creator_throws");
  PluginLoader loader;
  auto records = loader.loadDirectory(plugins.str());
  BOOST_REQUIRE(records.size() == 1u);
  BOOST_REQUIRE(records[0].loaded());
  aotiplug_test::expectError([] { aotiplug::createRunner("x1", 1, "cpu", "", false); },
                             StatusCode::kInternal,
                             {"plugin 'creator-throws'", "refuses to create runners"});
  loader.unloadAll();

  TempDir more;
  stage(more, "null_creator");
  PluginLoader loader2;
  BOOST_REQUIRE(loader2.loadDirectory(more.str()).at(0).loaded());
  aotiplug_test::expectError([] { aotiplug::createRunner("x1", 1, "cpu", "", false); },
                             StatusCode::kPluginError,
                             {"plugin 'null-creator'", "returned no product"});
}

BOOST_AUTO_TEST_CASE(runner_errors_cross_the_boundary_as_values) {
  TempDir plugins;
  stage(plugins, "alpha");
  PluginLoader loader;
  BOOST_REQUIRE(loader.loadDirectory(plugins.str()).at(0).loaded());
  aotiplug_test::expectError([] { aotiplug::createRunner("bogus", 1, "cpu", "", false); },
                             StatusCode::kInvalidArgument,
                             {"plugin 'alpha'", "fake model path 'bogus'"});
  auto runner = aotiplug::createRunner("x2", 1, "cpu", "", false);
  aotiplug_test::expectError([&] { runner->run({}); }, StatusCode::kInvalidArgument,
                             {"plugin 'alpha'", "takes 1 input, got 0"});
}

BOOST_AUTO_TEST_CASE(untrusted_and_relative_paths_are_refused) {
  TempDir plugins;
  const fs::path file = stage(plugins, "alpha");
  PluginLoader loader;

  auto relative = loader.loadDirectory("plugins");
  expectRejected(relative.at(0), PluginProblem::kUntrusted, {"relative"});

  fs::permissions(plugins.path(), fs::perms::others_write, fs::perm_options::add);
  expectRejected(loader.loadDirectory(plugins.str()).at(0), PluginProblem::kUntrusted,
                 {"plugin directory", "writable by others"});
  fs::permissions(plugins.path(), fs::perms::others_write, fs::perm_options::remove);

  fs::permissions(file, fs::perms::group_write, fs::perm_options::add);
  expectRejected(loader.loadDirectory(plugins.str()).at(0), PluginProblem::kUntrusted,
                 {"plugin file", "writable by its group"});
  fs::permissions(file, fs::perms::group_write, fs::perm_options::remove);

  // A symlink is followed and its target checked.
  TempDir elsewhere;
  const fs::path target = stage(elsewhere, "aardvark");
  fs::permissions(elsewhere.path(), fs::perms::others_write, fs::perm_options::add);
  fs::create_symlink(target, plugins.path() / "liblink.so");
  auto records = byFile(loader.loadDirectory(plugins.str()));
  expectRejected(records["libaardvark.so"], PluginProblem::kUntrusted,
                 {"directory of the plugin", "writable by others"});
  BOOST_TEST(records["libalpha.so"].loaded());

  // The documented escape hatch for tests accepts the same directory.
  loader.unloadAll();
  aotiplug::LoaderOptions relaxed;
  relaxed.require_trusted_paths = false;
  PluginLoader lenient(relaxed);
  auto relaxed_records = byFile(lenient.loadDirectory(plugins.str()));
  BOOST_TEST(relaxed_records["libaardvark.so"].loaded(), relaxed_records["libaardvark.so"].reason);
}

BOOST_AUTO_TEST_CASE(files_owned_by_another_user_are_refused) {
  if (::geteuid() != 0) {
    BOOST_TEST_MESSAGE("not root: cannot give a file to another user; skipped");
    return;
  }
  TempDir plugins;
  const fs::path file = stage(plugins, "alpha");
  BOOST_REQUIRE(::chown(file.c_str(), 65534, 65534) == 0);  // nobody
  PluginLoader loader;
  expectRejected(loader.loadDirectory(plugins.str()).at(0), PluginProblem::kUntrusted,
                 {"is owned by uid 65534", "expected root or the current user"});
}

BOOST_AUTO_TEST_CASE(a_missing_directory_is_a_record_not_an_exception) {
  PluginLoader loader;
  auto records = loader.loadDirectory("/nonexistent/aotiplug/plugins");
  BOOST_REQUIRE(records.size() == 1u);
  expectRejected(records[0], PluginProblem::kLoadFailed, {"does not exist"});
}
