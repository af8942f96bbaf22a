// SPDX-License-Identifier: BSD-3-Clause
// Integration tests of the plugin loader on real, purpose-built plugins (plugins/): every
// rejection reason, duplicate device types, leases and unloading, path trust.
#define BOOST_TEST_MODULE plugin_loader
#include <boost/test/unit_test.hpp>

#include "../common/fixtures.h"

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/host/plugin_loader.h>
#include <aotiplug/registry/runner_registry.h>

#include <ATen/ops/arange.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

namespace aotiplug {
std::ostream& operator<<(std::ostream& os, PluginState state) {
  return os << pluginStateName(state);
}
std::ostream& operator<<(std::ostream& os, PluginProblem problem) {
  return os << pluginProblemName(problem);
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
  return aotiplug_test::testPlugin(variant);
}

// Copies built test plugins into a fresh plugin directory.
fs::path stage(const TempDir& dir, const std::string& variant, std::string as = "") {
  if (as.empty()) as = "lib" + variant + ".so";
  fs::copy_file(builtPlugin(variant), dir.path() / as);
  return dir.path() / as;
}

std::map<std::string, PluginRecord> byFile(const aotiplug::DirectoryLoad& records) {
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

bool hasWarning(const PluginRecord& r, const std::string& fragment) {
  for (const auto& w : r.warnings) {
    if (contains(w, fragment)) return true;
  }
  return false;
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
  const std::string host_abi = std::to_string(AOTIPLUG_ABI_MAJOR) + "." + std::to_string(AOTIPLUG_ABI_MINOR);
  expectRejected(records["libabi_major.so"], PluginProblem::kAbiMismatch,
                 {"SDK ABI major differs", "plugin 99." + std::to_string(AOTIPLUG_ABI_MINOR), "host " + host_abi});
  expectRejected(records["libabi_minor_newer.so"], PluginProblem::kAbiMismatch,
                 {"newer SDK ABI minor", "plugin " + std::to_string(AOTIPLUG_ABI_MAJOR) + ".99", "host " + host_abi});
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
  const auto load = loader.loadDirectory(plugins.str());
  auto records = byFile(load);
  BOOST_TEST(records["libzz_aardvark.so"].state == PluginState::kLoaded);
  // The loser stays loaded, as a fallback: not a rejection.
  BOOST_TEST(records["libalpha.so"].state == PluginState::kFallback);
  BOOST_TEST(records["libalpha.so"].loaded());
  BOOST_TEST(load.allLoaded());
  BOOST_TEST(hasWarning(records["libalpha.so"], "device type 'cpu' lost to plugin 'aardvark'"));
  BOOST_TEST(hasWarning(records["libalpha.so"], "priority 200 vs 200"));
  BOOST_TEST(aotiplug::runnerRegistry().winner(c10::DeviceType::CPU)->origin.plugin ==
             "aardvark");
  BOOST_TEST(loader.servingPlugins().at(c10::DeviceType::CPU).name() == "aardvark");
}

BOOST_AUTO_TEST_CASE(a_fallback_serves_when_the_plugin_that_beat_it_goes) {
  TempDir plugins;
  stage(plugins, "alpha");
  stage(plugins, "zulu_preferred");
  PluginLoader loader;
  auto records = byFile(loader.loadDirectory(plugins.str()));
  BOOST_TEST(records["libzulu_preferred.so"].state == PluginState::kLoaded);
  BOOST_TEST(records["libalpha.so"].state == PluginState::kFallback);
  BOOST_TEST(hasWarning(records["libalpha.so"], "lost to plugin 'zulu'"));
  BOOST_TEST(hasWarning(records["libalpha.so"], "priority 300 vs 200"));
  BOOST_TEST(aotiplug_test::isLibraryLoaded(records["libalpha.so"].path));
  BOOST_TEST((aotiplug::createRunner("x1", 1, "cpu", "", false) != nullptr));
  BOOST_TEST(loader.unload("zulu"));
  BOOST_TEST(loader.find("alpha")->state == PluginState::kLoaded, "it serves now");
  BOOST_TEST(loader.servingPlugins().at(c10::DeviceType::CPU).name() == "alpha");
  BOOST_TEST(aotiplug::runnerRegistry().winner(c10::DeviceType::CPU)->origin.plugin == "alpha");
}

// A plugin built for an older SDK ABI minor loads, and its runners' handles know it: they
// never call what its shorter table lacks (abi_version(), minor 1), which would jump past
// the end of its vtable.
BOOST_AUTO_TEST_CASE(a_plugin_built_for_an_older_minor_runs_and_is_never_asked_what_it_lacks) {
  for (const auto& [variant, minor] : {std::pair<std::string, unsigned>{"abi_minor_0", 0u},
                                       std::pair<std::string, unsigned>{"alpha", 1u}}) {
    BOOST_TEST_CONTEXT(variant) {
      TempDir plugins;
      stage(plugins, variant);
      PluginLoader loader;
      const auto records = loader.loadDirectory(plugins.str()).plugins;
      BOOST_REQUIRE(records.size() == 1u);
      BOOST_REQUIRE_MESSAGE(records[0].loaded(), records[0].reason);
      BOOST_TEST(records[0].manifest->abi_minor == minor);
      auto runner = aotiplug::createRunner("x2", 1, "cpu", "", false);
      auto* handle = dynamic_cast<aotiplug::RunnerHandle*>(runner.get());
      BOOST_REQUIRE(handle != nullptr);
      BOOST_TEST(handle->abiMinor() == minor);
      BOOST_TEST(runner->run({at::arange(4)}).at(0).sum().item<int64_t>() == 12);
    }
  }
}

BOOST_AUTO_TEST_CASE(two_plugin_files_of_one_name_are_a_conflict_naming_both) {
  TempDir plugins;
  const fs::path first = fs::canonical(stage(plugins, "alpha", "liba_alpha.so"));
  const fs::path second = fs::canonical(stage(plugins, "alpha", "libb_alpha.so"));
  PluginLoader loader;
  auto records = byFile(loader.loadDirectory(plugins.str()));
  BOOST_TEST(records["liba_alpha.so"].state == PluginState::kLoaded);
  expectRejected(records["libb_alpha.so"], PluginProblem::kNameConflict,
                 {"plugin name 'alpha'", first.string(), second.string()});
  BOOST_TEST(!aotiplug_test::isLibraryLoaded(second.string()));
}

BOOST_AUTO_TEST_CASE(reloading_a_plugin_whose_runners_live_is_refused_until_they_are_gone) {
  TempDir plugins;
  const std::string path = fs::canonical(stage(plugins, "alpha", "libplugin.so")).string();
  PluginLoader loader;
  BOOST_REQUIRE(loader.load(path).loaded());
  auto runner = aotiplug::createRunner("x3", 1, "cpu", "", false);
  BOOST_REQUIRE(loader.unload("alpha"));
  // A new version of the file, while the old one is still mapped by the runner.
  fs::remove(path);
  fs::copy_file(builtPlugin("aardvark"), path);
  expectRejected(loader.load(path), PluginProblem::kInUse, {"still in use by 1 runner(s)"});
  BOOST_TEST(runner->run({at::arange(4)}).at(0).sum().item<int64_t>() == 18);
  runner.reset();
  const PluginRecord again = loader.load(path);
  BOOST_REQUIRE_MESSAGE(again.loaded(), again.reason);
  BOOST_TEST(again.name() == "aardvark", "the new file runs");
  BOOST_TEST(aotiplug::runnerRegistry().winner(c10::DeviceType::CPU)->origin.plugin == "aardvark");
}

// The loader keeps a plugin by its resolved path; unloading it by the (symlinked) path it
// was loaded by found nothing, and the plugin stayed.
BOOST_AUTO_TEST_CASE(a_plugin_loaded_through_a_symlink_is_unloaded_by_that_path) {
  TempDir plugins;
  const std::string path = fs::canonical(stage(plugins, "alpha")).string();
  const fs::path link = plugins.path() / "current.so";
  fs::create_symlink(path, link);
  PluginLoader loader;
  const PluginRecord r = loader.load(link.string());
  BOOST_REQUIRE_MESSAGE(r.loaded(), r.reason);
  BOOST_TEST(r.path == path);
  BOOST_TEST(loader.unload(link.string()));
  BOOST_TEST(!aotiplug::runnerRegistry().has(c10::DeviceType::CPU));
  BOOST_TEST(!aotiplug_test::isLibraryLoaded(path));
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

  const auto relative = loader.loadDirectory("plugins");
  BOOST_TEST(!relative.usable());
  BOOST_TEST(relative.error_problem == PluginProblem::kUntrusted);
  BOOST_TEST(contains(relative.error, "relative"), relative.error);

  fs::permissions(plugins.path(), fs::perms::others_write, fs::perm_options::add);
  const auto writable = loader.loadDirectory(plugins.str());
  BOOST_TEST(!writable.usable());
  BOOST_TEST(contains(writable.error, "plugin directory"), writable.error);
  BOOST_TEST(contains(writable.error, "writable by others"), writable.error);
  BOOST_TEST(writable.error_path == fs::canonical(plugins.path()).string());
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

BOOST_AUTO_TEST_CASE(a_missing_directory_is_said_of_the_directory_not_a_made_up_record) {
  PluginLoader loader;
  const auto load = loader.loadDirectory("/nonexistent/aotiplug/plugins");
  BOOST_TEST(!load.usable());
  BOOST_TEST(load.empty());
  BOOST_TEST(load.error_problem == PluginProblem::kLoadFailed);
  BOOST_TEST(contains(load.error, "does not exist"), load.error);
  BOOST_TEST(!load.allLoaded());
}

BOOST_AUTO_TEST_CASE(trust_covers_every_directory_above_and_the_libraries_a_plugin_brings) {
  TraceDir trace;
  // A plugin directory under a directory anyone may write to (no sticky bit).
  TempDir base;
  const fs::path open_parent = base.path() / "open";
  fs::create_directories(open_parent / "plugins");
  fs::permissions(open_parent, fs::perms::all);  // 0777
  fs::copy_file(builtPlugin("alpha"), open_parent / "plugins" / "libalpha.so");
  PluginLoader loader;
  const auto under_open = loader.loadDirectory((open_parent / "plugins").string());
  BOOST_TEST(!under_open.usable());
  BOOST_TEST(under_open.error_problem == PluginProblem::kUntrusted);
  BOOST_TEST(under_open.error_path == fs::canonical(open_parent).string());
  BOOST_TEST(contains(under_open.error, "writable by others"), under_open.error);
  fs::permissions(open_parent, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                   fs::perms::others_read | fs::perms::others_exec);
  BOOST_TEST(loader.loadDirectory((open_parent / "plugins").string()).allLoaded());
  loader.unloadAll();

  // A trusted plugin whose RUNPATH ($ORIGIN/../deps) leads to a directory anyone may write to.
  TempDir top;
  const fs::path plugins = top.path() / "plugins", deps = top.path() / "deps";
  fs::create_directory(plugins);
  fs::create_directory(deps);
  fs::copy_file(aotiplug_test::testPlugin("dependency"),
                deps / "libtest_dependency.so");
  fs::copy_file(builtPlugin("needs_dependency"), plugins / "libneeds_dependency.so");
  fs::permissions(deps, fs::perms::all);
  PluginLoader second;
  const auto refused = second.loadDirectory(plugins.string());
  BOOST_REQUIRE_EQUAL(refused.size(), 1u);
  expectRejected(refused[0], PluginProblem::kUntrusted, {"writable by others", "RUNPATH"});
  BOOST_TEST(refused[0].failed_path == (deps / "libtest_dependency.so").string());
  BOOST_TEST(!fs::exists(trace.dir.path() / "dependency.ran"), "the library's code never ran");
  // The same, trusted: it loads, and the library with it.
  fs::permissions(deps, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec);
  PluginLoader third;
  const auto accepted = third.loadDirectory(plugins.string());
  BOOST_REQUIRE_EQUAL(accepted.size(), 1u);
  BOOST_TEST(accepted[0].loaded(), accepted[0].reason);
  BOOST_TEST(fs::exists(trace.dir.path() / "dependency.ran"));
}

namespace {

// A loader that scans with a short deadline and a cache file of its own.
aotiplug::LoaderOptions scanningWith(const TempDir& cache, int timeout_s) {
  aotiplug::LoaderOptions o;
  o.scan.timeout = std::chrono::seconds(timeout_s);
  o.scan.cache_file = (cache.path() / "scan.json").string();
  return o;
}

}  // namespace

BOOST_AUTO_TEST_CASE(plugins_that_crash_exit_hang_or_throw_are_stopped_in_the_scanner) {
  TempDir plugins, cache;
  // The real CPU plugin beside them: after the scan, the host runs a model with it.
  fs::copy_file(aotiplug_test::buildRoot() / "plugins" / "cpu" / "libaotiplug_cpu.so",
                plugins.path() / "libaotiplug_cpu.so");
  for (const char* v : {"own_static_throws", "exits_0_on_load", "exits_3_on_load", "aborts_on_load",
                        "crashes_on_load", "crashes_on_unload", "sleeps_on_load", "spins_on_load"}) {
    stage(plugins, v);
  }
  const auto scan = [&] {
    PluginLoader loader(scanningWith(cache, 3));
    const auto start = std::chrono::steady_clock::now();
    auto records = byFile(loader.loadDirectory(plugins.str()));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    BOOST_TEST_MESSAGE("scanned in " << seconds << " s");
    BOOST_TEST(records.size() == 9u);
    BOOST_TEST(records["libaotiplug_cpu.so"].state == PluginState::kLoaded, records["libaotiplug_cpu.so"].reason);
    // Whatever it does, the code that ends the scanner's process is named with the stage.
    const bool thrown = records["libown_static_throws.so"].problem == PluginProblem::kLoadFailed ||
                        records["libown_static_throws.so"].problem == PluginProblem::kCrashed;
    BOOST_TEST(thrown, records["libown_static_throws.so"].reason);
    BOOST_TEST((contains(records["libown_static_throws.so"].reason, "own static object") ||
                contains(records["libown_static_throws.so"].reason, "while loading")),
               records["libown_static_throws.so"].reason);
    expectRejected(records["libexits_0_on_load.so"], PluginProblem::kCrashed,
                   {"exited with status 0", "while loading it (running its static initializers)"});
    expectRejected(records["libexits_3_on_load.so"], PluginProblem::kCrashed,
                   {"exited with status 3", "while loading it"});
    expectRejected(records["libaborts_on_load.so"], PluginProblem::kCrashed,
                   {"died of signal 6 (Aborted)", "while loading it"});
    expectRejected(records["libcrashes_on_load.so"], PluginProblem::kCrashed,
                   {"died of signal 11 (Segmentation fault)", "while loading it"});
    expectRejected(records["libcrashes_on_unload.so"], PluginProblem::kCrashed,
                   {"died of signal 11", "while unloading it (running its static destructors)"});
    expectRejected(records["libsleeps_on_load.so"], PluginProblem::kTimedOut, {"timed out after 3", "while loading it"});
    expectRejected(records["libspins_on_load.so"], PluginProblem::kTimedOut, {"timed out after 3", "while loading it"});
    for (const auto& [file, r] : records) {
      if (file != "libaotiplug_cpu.so") BOOST_TEST(!aotiplug_test::isLibraryLoaded(r.path), file << " was loaded here");
    }
    // The host is fine: a model runs on another thread (with the loader's lock held by a
    // throw inside dlopen, that thread would hang as it starts).
    const auto f = aotiplug_test::loadFixture("mlp");
    bool matched = false;
    std::thread worker([&] {
      aotiplug::ExecutorConfig config;
      config.log = [](const std::string&) {};
      aotiplug::AOTIDelegateExecutor exec(f.pt2.string(), nullptr, config);
      std::string why;
      matched = aotiplug_test::closeToEager(exec.run(f.inputs).at(0), f.outputs.at(0), &why);
    });
    worker.join();
    BOOST_TEST(matched);
    return seconds;
  };
  scan();
  // The verdicts are cached: a second host start loads the good plugin and refuses the
  // others at once, without waiting for the hanging ones again.
  const double again = scan();
  BOOST_TEST(again < 3.0, "the second scan took " << again << " s");
}

BOOST_AUTO_TEST_CASE(a_host_that_loads_in_process_names_each_plugin_first) {
  TempDir plugins;
  stage(plugins, "alpha");
  aotiplug::LoaderOptions options;
  options.scan_out_of_process = false;
  std::vector<std::string> log;
  options.log = [&](const std::string& m) { log.push_back(m); };
  PluginLoader loader(options);
  BOOST_TEST(loader.loadDirectory(plugins.str()).allLoaded());
  BOOST_REQUIRE_EQUAL(log.size(), 1u);
  BOOST_TEST(contains(log[0], "loading plugin " + fs::canonical(plugins.path() / "libalpha.so").string()));
  BOOST_TEST(contains(log[0], "in-process"));
}
