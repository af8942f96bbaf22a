// SPDX-License-Identifier: BSD-3-Clause
// The aotiplug command-line tool end to end, on real packages and plugins: JSON output
// parsed and checked, exit codes, error messages.
#define BOOST_TEST_MODULE cli
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>

#include "../common/fixtures.h"
#include "../common/package_edit.h"

#include <aotiplug/package/private_directory.h>
#include <aotiplug/package/pt2_package.h>

#include <ATen/ops/randn.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <cstring>
#include <thread>

#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/headeronly/version.h>

namespace {

using aotiplug_test::CommandResult;
using aotiplug_test::contains;
using aotiplug_test::runCommand;
namespace fs = std::filesystem;

std::string cli() { return (aotiplug_test::buildRoot() / "host" / "aotiplug").string(); }
std::string pluginDir() { return (aotiplug_test::buildRoot() / "plugins").string(); }

CommandResult runCli(std::vector<std::string> args) {
  args.insert(args.begin(), cli());
  return runCommand(args);
}

std::string testPlugin(const std::string& variant) {
  return aotiplug_test::testPlugin(variant).string();
}

nlohmann::json parseJson(const CommandResult& r) {
  BOOST_TEST_INFO("stdout: " << r.out << "\nstderr: " << r.err);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  BOOST_REQUIRE(!j.is_discarded());
  return j;
}

}  // namespace

BOOST_AUTO_TEST_CASE(run_json_reports_outputs_eager_match_and_latency) {
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("multi_io");
  const CommandResult r = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "--iters",
                                    "10", "--threads", "2", "--json"});
  BOOST_TEST(r.exit_code == 0, r.err);
  const auto j = parseJson(r);
  BOOST_TEST(j["device"] == "cpu");
  BOOST_TEST(j["plugin"]["name"] == "cpu");
  BOOST_TEST(j["inputs_source"] == "the package's sample inputs");
  BOOST_TEST(j["eager"]["compared"] == true);
  BOOST_TEST(j["eager"]["match"] == true);
  BOOST_REQUIRE(j["outputs"].size() == f.outputs.size());
  for (std::size_t i = 0; i < f.outputs.size(); ++i) {
    BOOST_TEST(j["outputs"][i]["shape"].get<std::vector<std::int64_t>>() == f.outputs[i].sizes().vec());
  }
  BOOST_TEST(j["outputs"][1]["dtype"] == "Long");
  BOOST_TEST(j["outputs"][3]["dtype"] == "Half");
  BOOST_TEST(j["timing"]["iterations"] == 10);
  BOOST_TEST(j["timing"]["threads"] == 2);
  BOOST_TEST(j["timing"]["p50_ms"].get<double>() > 0.0);
  BOOST_TEST(j["timing"]["p99_ms"].get<double>() >= j["timing"]["p50_ms"].get<double>());
}

BOOST_AUTO_TEST_CASE(run_text_says_the_outputs_match_eager) {
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("conv");
  const CommandResult r = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "--iters", "3"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(contains(r.out, "outputs match PyTorch eager"), r.out);
  BOOST_TEST(contains(r.out, "served by plugin 'cpu'"), r.out);
  BOOST_TEST(contains(r.out, "latency  3 runs"), r.out);
}

BOOST_AUTO_TEST_CASE(run_with_an_inputs_file) {
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("dynamic_batch");
  aotiplug_test::TempDir dir;
  const auto bytes = torch::jit::pickle_save(c10::IValue(c10::List<at::Tensor>(f.extra_inputs)));
  aotiplug_test::writeFile(dir.path() / "inputs.pt", std::string(bytes.begin(), bytes.end()));
  const CommandResult r = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "--inputs",
                                    (dir.path() / "inputs.pt").string(), "--iters", "1", "--json"});
  BOOST_TEST(r.exit_code == 0, r.err);
  const auto j = parseJson(r);
  BOOST_TEST(j["eager"]["compared"] == false);
  BOOST_TEST(j["eager"]["match"].is_null(), "nothing compared is no match: " << j["eager"].dump());
  BOOST_TEST(j["outputs"][0]["shape"].get<std::vector<std::int64_t>>() ==
             f.extra_outputs[0].sizes().vec());
  const double sum = j["outputs"][0]["sum"].get<double>();
  BOOST_TEST(std::abs(sum - f.extra_outputs[0].sum().item<double>()) < 1e-3);

  // Inputs that do not fit the model: a clear error, exit code 1.
  const auto wrong = torch::jit::pickle_save(c10::IValue(c10::List<at::Tensor>({f.inputs[0].t()})));
  aotiplug_test::writeFile(dir.path() / "wrong.pt", std::string(wrong.begin(), wrong.end()));
  const CommandResult bad = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "--inputs",
                                      (dir.path() / "wrong.pt").string()});
  BOOST_TEST(bad.exit_code == 1);
  BOOST_TEST(contains(bad.err, "input 0 ('x')"), bad.err);

  // A tensor whose sizes reach past the bytes stored for it (a damaged or crafted file): the
  // right shape for the model, which would read past the storage. Refused, naming the file.
  at::Tensor crafted = at::randn({4, 16});
  const std::vector<std::int64_t> sizes = {40, 16}, strides = {16, 1};
  crafted.unsafeGetTensorImpl()->set_sizes_and_strides(c10::IntArrayRef(sizes), c10::IntArrayRef(strides));
  const auto overreach = torch::jit::pickle_save(c10::IValue(c10::List<at::Tensor>({crafted})));
  aotiplug_test::writeFile(dir.path() / "overreach.pt", std::string(overreach.begin(), overreach.end()));
  const CommandResult past = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "--inputs",
                                       (dir.path() / "overreach.pt").string()});
  BOOST_TEST(past.exit_code == 1);
  BOOST_TEST(contains(past.err, "overreach.pt"), past.err);
  // Ours (torch 2.11's unpickler sets the sizes unchecked), or torch 2.15's own check.
  BOOST_TEST((contains(past.err, "tensor 0 is damaged: sizes [40, 16], strides [16, 1] and offset 0 reach past its "
                                 "storage of 256 bytes") ||
              contains(past.err, "require a storage of at least 2560 bytes, but storage only has 256 bytes")),
             past.err);
  // Not a file: refused at once, not read until memory runs out.
  const CommandResult device = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "--inputs", "/dev/zero"});
  BOOST_TEST(device.exit_code == 1);
  BOOST_TEST(contains(device.err, "/dev/zero is not a regular file"), device.err);
  // A FIFO with no writer: refused before it is opened (opening it would block for good).
  const fs::path fifo = dir.path() / "inputs.fifo";
  BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const CommandResult pipe = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "--inputs", fifo.string()});
  BOOST_TEST(pipe.exit_code == 1);
  BOOST_TEST(contains(pipe.err, "inputs.fifo is not a regular file"), pipe.err);
}

// More timing threads than the process can start (address space for their stacks): an
// error, exit 1, and the threads that did start are joined (they were destroyed joinable,
// which terminates the program).
boost::test_tools::assertion_result notSanitized(boost::unit_test::test_unit_id) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  boost::test_tools::assertion_result r(false);
  r.message() << "a sanitizer's shadow memory does not fit under the address-space limit this test sets";
  return r;
#else
  return true;
#endif
}

BOOST_AUTO_TEST_CASE(run_with_more_threads_than_can_start_fails_cleanly,
                     *boost::unit_test::precondition(notSanitized)) {
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("mlp");
  const CommandResult r = runCommand({"/bin/sh", "-c", "ulimit -v 5000000; exec \"$0\" \"$@\"", cli(), "run",
                                      f.pt2.string(), "--plugins", pluginDir(), "--threads", "2000", "--iters", "1",
                                      "--warmup", "0"});
  BOOST_TEST(r.exit_code == 1, r.err);
  BOOST_TEST(contains(r.err, "cannot start 2000 timing threads"), r.err);
  BOOST_TEST(contains(r.err, "ask for fewer with --threads"), r.err);
}

BOOST_AUTO_TEST_CASE(an_unreadable_plugin_directory_is_an_error_not_an_empty_one) {
  // (and an unreadable subdirectory is skipped, saying so)
  // Root reads any directory: as root, the CLI runs as nobody (setpriv) to be refused.
  std::vector<std::string> as_user;
  if (::geteuid() == 0) {
    as_user = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    std::vector<std::string> probe = as_user;
    probe.insert(probe.end(), {cli(), "--help"});
    if (runCommand(probe).exit_code != 0) {
      BOOST_TEST_MESSAGE("skipped: cannot run the CLI as another user here (setpriv, or a build "
                         "tree nobody may read)");
      return;
    }
  }
  aotiplug_test::TempDir dir;
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  const fs::path plugins = dir.path() / "plugins";
  fs::create_directories(plugins / "sub");
  fs::copy_file(fs::path(pluginDir()) / "cpu" / "libaotiplug_cpu.so", plugins / "libaotiplug_cpu.so");
  auto list = [&] {
    std::vector<std::string> argv = as_user;
    argv.insert(argv.end(), {cli(), "plugins", plugins.string()});
    return runCommand(argv);
  };
  const fs::perms readable = fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec;
  struct Restore {  // so that a failing check leaves nothing unremovable behind
    fs::path a, b;
    fs::perms p;
    ~Restore() {
      std::error_code ec;
      fs::permissions(a, p, ec);
      fs::permissions(b, p, ec);
    }
  } restore{plugins, plugins / "sub", readable};
  fs::permissions(plugins / "sub", readable);
  fs::permissions(plugins, fs::perms::none);
  const CommandResult top = list();
  BOOST_TEST(top.exit_code == 1);
  BOOST_TEST(contains(top.err, "cannot read plugin directory " + plugins.string() + ": Permission denied"), top.err);
  fs::permissions(plugins, readable);
  fs::permissions(plugins / "sub", fs::perms::none);
  // An unreadable subdirectory (lost+found, say) is skipped with its reason; the others load.
  const CommandResult sub = list();
  BOOST_TEST(sub.exit_code == 0, sub.err);
  BOOST_TEST(contains(sub.out, "loaded  cpu"), sub.out);
  BOOST_TEST(contains(sub.err, "cannot read plugin directory " + (plugins / "sub").string() +
                                   ": Permission denied (skipped)"), sub.err);
  fs::permissions(plugins / "sub", readable);
  const CommandResult fine = list();
  BOOST_TEST(fine.exit_code == 0, fine.err);
  BOOST_TEST(contains(fine.out, "loaded  cpu"), fine.out);
}

BOOST_AUTO_TEST_CASE(plugins_json_lists_loaded_and_rejected_plugins) {
  const CommandResult ok = runCli({"plugins", "--dir", pluginDir(), "--json"});
  BOOST_TEST(ok.exit_code == 0, ok.err);
  // The directory may be given without --dir (it was ignored, and the default listed).
  const CommandResult positional = runCli({"plugins", pluginDir(), "--json"});
  BOOST_TEST(positional.exit_code == 0, positional.err);
  BOOST_TEST(parseJson(positional)["directory"] == parseJson(ok)["directory"]);
  aotiplug_test::TempDir empty;
  BOOST_TEST(parseJson(runCli({"plugins", empty.str(), "--json"}))["plugins"].empty());
  const auto j = parseJson(ok);
  bool saw_cpu = false;
  for (const auto& p : j["plugins"]) {
    if (p["name"] == "cpu") {
      saw_cpu = true;
      BOOST_TEST(p["state"] == "loaded");
      BOOST_TEST(p["devices"][0] == "cpu");
      BOOST_TEST(p["registrations"][0]["active"] == true);
    }
  }
  BOOST_TEST(saw_cpu);

  aotiplug_test::TempDir dir;
  fs::copy_file(aotiplug_test::buildRoot() / "plugins" / "cpu" / "libaotiplug_cpu.so",
                dir.path() / "libaotiplug_cpu.so");
  aotiplug_test::writeFile(dir.path() / "libbroken.so", "garbage");
  const CommandResult mixed = runCli({"plugins", "--dir", dir.str(), "--json"});
  BOOST_TEST(mixed.exit_code == 3, "a rejected plugin gives exit code 3");
  const auto m = parseJson(mixed);
  BOOST_REQUIRE(m["plugins"].size() == 2u);
  BOOST_TEST(m["plugins"][0]["state"] == "loaded");
  BOOST_TEST(m["plugins"][1]["state"] == "rejected");
  BOOST_TEST(m["plugins"][1]["problem"] == "not a shared library");
  // run --json says which plugins of its directory were refused, and why (text mode warns
  // on stderr; the JSON said nothing).
  const auto f = aotiplug_test::loadFixture("mlp");
  const CommandResult run = runCli({"run", f.pt2.string(), "--plugins", dir.str(), "--iters", "1", "--json"});
  BOOST_TEST(run.exit_code == 0, run.err);
  const auto r = parseJson(run);
  BOOST_REQUIRE(r["rejected_plugins"].size() == 1u);
  BOOST_TEST(r["rejected_plugins"][0]["path"] == (dir.path() / "libbroken.so").string());
  BOOST_TEST(r["rejected_plugins"][0]["problem"] == "not a shared library");
  BOOST_TEST(!r["rejected_plugins"][0]["reason"].get<std::string>().empty());
}

BOOST_AUTO_TEST_CASE(errors_and_usage_have_their_exit_codes) {
  BOOST_TEST(runCli({"--help"}).exit_code == 0);
  BOOST_TEST(runCli({}).exit_code == 2);
  BOOST_TEST(runCli({"frobnicate"}).exit_code == 2);
  for (const char* cmd : {"run", "plugins"}) {
    const CommandResult help = runCli({cmd, "--help"});
    BOOST_TEST(help.exit_code == 0);
    BOOST_TEST(contains(help.out, "Exit codes"), cmd);
  }
  // Every command has --help, including the "plugin" group and "plugin check".
  const CommandResult group_help = runCli({"plugin", "--help"});
  BOOST_TEST(group_help.exit_code == 0);
  BOOST_TEST(contains(group_help.out, "check LIB.so"), group_help.out);
  BOOST_TEST(runCli({"plugin", "check", "--help"}).exit_code == 0);
  BOOST_TEST(runCli({"plugin"}).exit_code == 2);
  const CommandResult bad_option = runCli({"run", "--no-such-option"});
  BOOST_TEST(bad_option.exit_code == 2);
  BOOST_TEST(contains(bad_option.err, "no-such-option"), bad_option.err);
  // A device typo is a bad command line (checked once the plugins are loaded, since a
  // plugin may name its own device type), for run and inspect alike.
  const CommandResult typo = runCli({"run", "--device", "cdua", "--plugins", pluginDir()});
  BOOST_TEST(typo.exit_code == 2);
  BOOST_TEST(contains(typo.err, "--device: invalid device string 'cdua'"), typo.err);
  const CommandResult inspect_typo = runCli({"inspect", aotiplug_test::loadFixture("mlp").pt2.string(),
                                             "--plugins", pluginDir(), "--device", "cpu:x"});
  BOOST_TEST(inspect_typo.exit_code == 2);
  BOOST_TEST(contains(inspect_typo.err, "invalid device string 'cpu:x'"), inspect_typo.err);

  const CommandResult missing = runCli({"run", "/nonexistent/model.pt2", "--plugins", pluginDir()});
  BOOST_TEST(missing.exit_code == 1);
  BOOST_TEST(contains(missing.err, "package /nonexistent/model.pt2: no such file"), missing.err);

  aotiplug_test::TempDir empty;
  // A directory or a FIFO given as the package: named for what it is, not "no such file".
  const CommandResult directory = runCli({"run", empty.str(), "--plugins", pluginDir()});
  BOOST_TEST(directory.exit_code == 1);
  BOOST_TEST(contains(directory.err, "package " + empty.str() + ": is a directory, not a .pt2 file"), directory.err);
  const std::string fifo = (empty.path() / "model.pt2").string();
  BOOST_TEST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const CommandResult pipe = runCli({"run", fifo, "--plugins", pluginDir()});
  BOOST_TEST(pipe.exit_code == 1);
  BOOST_TEST(contains(pipe.err, "package " + fifo + ": is not a regular file"), pipe.err);
  std::filesystem::remove(fifo);
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("mlp");
  const CommandResult no_plugin = runCli({"run", f.pt2.string(), "--plugins", empty.str()});
  BOOST_TEST(no_plugin.exit_code == 1);
  BOOST_TEST(contains(no_plugin.err, "no loaded plugin serves device type 'cpu'"), no_plugin.err);

  const CommandResult no_dir = runCli({"plugins", "--dir", "/nonexistent/plugins"});
  BOOST_TEST(no_dir.exit_code == 1);
  BOOST_TEST(contains(no_dir.err, "does not exist"), no_dir.err);
  const CommandResult no_dir_json = runCli({"plugins", "--dir", "/nonexistent/plugins", "--json"});
  BOOST_TEST(no_dir_json.exit_code == 1);
  BOOST_TEST(parseJson(no_dir_json)["error"]["problem"] == "load failed");
}

BOOST_AUTO_TEST_CASE(plugins_lists_fallbacks_as_loaded_and_who_serves_each_device) {
  // The pattern docs/authoring.md teaches: a plugin that takes CPU over from the stock one.
  aotiplug_test::TempDir dir;
  fs::copy_file(fs::path(pluginDir()) / "cpu" / "libaotiplug_cpu.so", dir.path() / "libaotiplug_cpu.so");
  fs::copy_file(testPlugin("zulu_preferred"), dir.path() / "libzulu.so");
  const CommandResult r = runCli({"plugins", "--dir", dir.str(), "--json"});
  BOOST_TEST(r.exit_code == 0, "a fallback is not a rejection: " << r.out);
  const auto j = parseJson(r);
  BOOST_REQUIRE(j["plugins"].size() == 2u);
  BOOST_TEST(j["plugins"][0]["state"] == "fallback");
  BOOST_TEST(j["plugins"][1]["state"] == "loaded");
  BOOST_TEST(j["devices"]["cpu"]["plugin"] == "zulu");
  const CommandResult text = runCli({"plugins", "--dir", dir.str()});
  BOOST_TEST(text.exit_code == 0);
  BOOST_TEST(contains(text.out, "served by 'zulu'"), text.out);
  BOOST_TEST(contains(text.out, "fallback"), text.out);
  // A refused plugin says which path failed the trust check.
  aotiplug_test::TempDir other;
  const fs::path plugins = other.path() / "plugins", deps = other.path() / "deps";
  fs::create_directory(plugins);
  fs::create_directory(deps);
  fs::copy_file(aotiplug_test::testPlugin("dependency"),
                deps / "libtest_dependency.so");
  fs::copy_file(testPlugin("needs_dependency"), plugins / "libneeds.so");
  fs::permissions(deps, fs::perms::all);
  const auto refused = parseJson(runCli({"plugins", "--dir", plugins.string(), "--json"}));
  BOOST_TEST(refused["plugins"][0]["state"] == "rejected");
  BOOST_TEST(refused["plugins"][0]["failed_path"] == (deps / "libtest_dependency.so").string());
}

BOOST_AUTO_TEST_CASE(long_names_keep_the_plugins_table_in_columns) {
  aotiplug_test::TempDir dir;
  fs::copy_file(fs::path(pluginDir()) / "cpu" / "libaotiplug_cpu.so", dir.path() / "libaotiplug_cpu.so");
  fs::copy_file(testPlugin("long_name"), dir.path() / "liblong.so");
  const CommandResult r = runCli({"plugins", "--dir", dir.str()});
  // Every row's file column starts where the header's does.
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);  // "plugin directory ..."
  std::getline(lines, line);  // the header
  const auto column = line.find("file");
  BOOST_REQUIRE(column != std::string::npos);
  int rows = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("  ", 0) != 0 || line.rfind("      ", 0) == 0 || line.find('/') == std::string::npos) continue;
    if (line.find("served by") != std::string::npos) continue;
    BOOST_TEST(line.find('/') == column, line);
    ++rows;
  }
  BOOST_TEST(rows == 2);
}


BOOST_AUTO_TEST_CASE(plugin_check_passes_a_good_plugin_with_a_model) {
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("conv");
  const CommandResult r = runCli({"plugin", "check", (aotiplug_test::buildRoot() / "plugins" / "cpu" / "libaotiplug_cpu.so").string(),
                                  "--model", f.pt2.string(), "--json"});
  BOOST_TEST(r.exit_code == 0, r.out << r.err);
  const auto j = parseJson(r);
  BOOST_TEST(j["ok"] == true);
  BOOST_TEST(j["manifest"]["name"] == "cpu");
  BOOST_TEST(j["compatible"] == true);
  BOOST_TEST(j["probe"]["registered"][0] == "cpu");
  BOOST_TEST(j["probe"]["reports_errors"] == true);
  BOOST_TEST(j["probe"]["model_matches_eager"] == true);
  BOOST_TEST(j["probe"]["unloads_cleanly"] == true);

  const std::string cpu = (aotiplug_test::buildRoot() / "plugins" / "cpu" / "libaotiplug_cpu.so").string();
  // A plain package has no sample inputs: the plugin runs it on zeros made from its specs.
  const auto plain = aotiplug_test::loadFixture("plain_tokens");
  const CommandResult p = runCli({"plugin", "check", cpu, "--model", plain.pt2.string()});
  BOOST_TEST(p.exit_code == 0, p.out << p.err);
  BOOST_TEST(contains(p.out, "model    ran (no eager outputs to compare with): 3 output(s) from zeros"), p.out);
  BOOST_TEST(contains(p.out, "verdict  ok"), p.out);
  // A model that is not there is the model's fault, not the plugin's (it said exit 3,
  // "rejected", for a good plugin).
  const CommandResult missing = runCli({"plugin", "check", cpu, "--model", "/nonexistent/model.pt2"});
  BOOST_TEST(missing.exit_code == 1, missing.out << missing.err);
  BOOST_TEST(contains(missing.err, "/nonexistent/model.pt2"), missing.err);
  BOOST_TEST(!contains(missing.out, "verdict"), missing.out);
}

BOOST_AUTO_TEST_CASE(plugin_check_reports_incompatible_and_crashing_plugins) {
  const CommandResult abi = runCli({"plugin", "check", testPlugin("abi_major"), "--json"});
  BOOST_TEST(abi.exit_code == 3);
  const auto a = parseJson(abi);
  BOOST_TEST(a["compatible"] == false);
  BOOST_TEST(!a.contains("probe"), "an incompatible plugin is never loaded");
  BOOST_TEST(contains(a["problems"][0].get<std::string>(), "SDK ABI major differs"));

  // Its load hook dies of SIGSEGV: only the child process goes down, and the stage is named.
  const CommandResult crash = runCli({"plugin", "check", testPlugin("crashes_on_load")});
  BOOST_TEST(crash.exit_code == 3);
  // SIGSEGV; under a sanitizer, whatever it turns the crash into.
  BOOST_TEST(contains(crash.out, "ended the probe process"), crash.out);
  BOOST_TEST(contains(crash.out, "while loading"), crash.out);
  BOOST_TEST(!contains(crash.out, "verdict  ok"), crash.out);
  // exit(3) from a static constructor is not "a plugin was rejected", and exit(0) not success.
  for (const char* variant : {"exits_3_on_load", "exits_0_on_load"}) {
    const CommandResult exits = runCli({"plugin", "check", testPlugin(variant), "--json"});
    BOOST_TEST(exits.exit_code == 3, variant);
    const auto e = parseJson(exits);
    BOOST_TEST(e["ok"] == false);
    BOOST_TEST(e["probe"]["stage"] == "loading");
    BOOST_TEST(contains(e["problems"][0].get<std::string>(), "exited with status"), e["problems"][0]);
  }
  // A plugin that never finishes loading: stopped at the deadline, never "ok".
  const auto start = std::chrono::steady_clock::now();
  const CommandResult hangs = runCli({"plugin", "check", testPlugin("sleeps_on_load"), "--timeout", "2"});
  // (Far from the plugin's 600 s: the child's start, up to 60 s, takes seconds in a
  // sanitized build.)
  BOOST_TEST((std::chrono::steady_clock::now() - start < std::chrono::seconds(120)));
  BOOST_TEST(hangs.exit_code == 3);
  BOOST_TEST(contains(hangs.out, "timed out after 2 s while loading"), hangs.out);
  BOOST_TEST(!contains(hangs.out, "verdict  ok"), hangs.out);
  // A crash in a static destructor is named as such.
  const CommandResult unload = runCli({"plugin", "check", testPlugin("crashes_on_unload"), "--json"});
  BOOST_TEST(unload.exit_code == 3);
  BOOST_TEST(parseJson(unload)["probe"]["stage"] == "unloading");

  const CommandResult rejected = runCli({"plugin", "check", testPlugin("undeclared_device")});
  BOOST_TEST(rejected.exit_code == 3);
  BOOST_TEST(contains(rejected.out, "undeclared device type"), rejected.out);

  const CommandResult missing = runCli({"plugin", "check", "/nonexistent/libx.so"});
  BOOST_TEST(missing.exit_code == 1);
  BOOST_TEST(contains(missing.err, "does not exist"), missing.err);
}

BOOST_AUTO_TEST_CASE(the_conformance_kit_passes_good_plugins_and_fails_bad_ones) {
  const std::string kit = (aotiplug_test::buildRoot() / "host" / "aotiplug-conformance").string();
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("mlp");
  const auto good = runCommand({kit, "--color_output=no", "--", "--plugin",
                                (aotiplug_test::buildRoot() / "plugins" / "cpu" / "libaotiplug_cpu.so").string(),
                                "--model", f.pt2.string()});
  BOOST_TEST(good.exit_code == 0, good.out << good.err);
  // A plugin reached through a symlink is the same plugin (it failed the unload case).
  aotiplug_test::TempDir dir;
  fs::create_symlink(aotiplug_test::buildRoot() / "plugins" / "cpu" / "libaotiplug_cpu.so", dir.path() / "libcpu.so");
  const auto linked = runCommand({kit, "--color_output=no", "--", "--plugin", (dir.path() / "libcpu.so").string(),
                                  "--model", f.pt2.string(), "--allow-untrusted"});
  BOOST_TEST(linked.exit_code == 0, linked.out << linked.err);
  // A mistyped option fails the kit instead of skipping what it meant.
  const auto typo = runCommand({kit, "--color_output=no", "--", "--plugin",
                                (aotiplug_test::buildRoot() / "plugins" / "cpu" / "libaotiplug_cpu.so").string(),
                                "--modle", f.pt2.string()});
  BOOST_TEST(typo.exit_code != 0);
  BOOST_TEST(contains(typo.out + typo.err, "unknown arguments: --modle"), typo.out << typo.err);
  // Without a model the model case says it was skipped; it does not pass.
  const auto no_model = runCommand({kit, "--color_output=no", "--log_level=test_suite", "--", "--plugin",
                                    (aotiplug_test::buildRoot() / "plugins" / "cpu" / "libaotiplug_cpu.so").string()});
  BOOST_TEST(no_model.exit_code == 0, no_model.out << no_model.err);
  BOOST_TEST(contains(no_model.out + no_model.err,
                      "runners_create_run_and_destroy\" is skipped because precondition failed: no model given"),
             no_model.out << no_model.err);
  for (const char* bad : {"undeclared_device", "crashes_on_load", "abi_minor_newer"}) {
    const auto r = runCommand({kit, "--color_output=no", "--", "--plugin", testPlugin(bad)});
    BOOST_TEST(r.exit_code != 0, bad << " passed the conformance kit");
  }
}

BOOST_AUTO_TEST_CASE(run_refuses_wrong_inputs_to_plain_packages_in_one_line) {
  // Packages made by plain aoti_compile_and_package: no specs recorded, still checked.
  aotiplug_test::TempDir dir;
  const auto save = [&](const std::string& name, const std::vector<at::Tensor>& tensors) {
    const auto bytes = torch::jit::pickle_save(c10::IValue(c10::List<at::Tensor>(tensors)));
    aotiplug_test::writeFile(dir.path() / name, std::string(bytes.begin(), bytes.end()));
    return (dir.path() / name).string();
  };
  struct Case {
    const char* fixture;
    std::vector<at::Tensor> inputs;
    std::vector<std::string> fragments;
  };
  const auto conv = aotiplug_test::loadFixture("plain_conv_bn");
  const auto dynamic = aotiplug_test::loadFixture("plain_conv_dynamic");
  const auto bf16 = aotiplug_test::loadFixture("plain_bf16");
  const std::vector<Case> cases = {
      {"plain_conv_bn", {at::randn({2, 10})}, {"input 0 ('arg", "expected Float [2, 3, 16, 16]", "got Float [2, 10]"}},
      {"plain_conv_dynamic", {at::randn({3, 3, 8, 8})}, {"input 0 ('arg", "dimension 2 is 8"}},
      {"plain_bf16", {bf16.inputs[0].to(at::kFloat)}, {"input 0 ('arg", "expected BFloat16 [4, 16]"}},
      {"plain_conv_bn", {conv.inputs[0], conv.inputs[0]}, {"takes 1 input(s)", "got 2"}},
  };
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.fixture << " " << c.fragments.back()) {
      const auto f = aotiplug_test::loadFixture(c.fixture);
      const CommandResult r = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "--inputs",
                                      save("inputs.pt", c.inputs)});
      BOOST_TEST(r.exit_code == 1);
      BOOST_TEST(r.out.empty(), r.out);
      BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, "one line: " << r.err);
      for (const auto& fragment : c.fragments) BOOST_TEST(contains(r.err, fragment), r.err);
      BOOST_TEST(!contains(r.err, "frame #"), r.err);
      fs::remove(dir.path() / "inputs.pt");
    }
  }
  // The right inputs run.
  const CommandResult ok = runCli({"run", dynamic.pt2.string(), "--plugins", pluginDir(), "--inputs",
                                   save("good.pt", dynamic.extra_inputs), "--iters", "1", "--json"});
  BOOST_TEST(ok.exit_code == 0, ok.err);
  const auto j = parseJson(ok);
  BOOST_TEST(j["outputs"][0]["shape"].get<std::vector<std::int64_t>>() == dynamic.extra_outputs[0].sizes().vec());
}

BOOST_AUTO_TEST_CASE(a_runner_returning_too_few_outputs_is_an_error_saying_so) {
  // A plugin whose runner drops an output wins the CPU device over the real plugin.
  aotiplug_test::TempDir dir;
  fs::copy_file(fs::path(pluginDir()) / "cpu" / "libaotiplug_cpu.so", dir.path() / "libaotiplug_cpu.so");
  fs::copy_file(aotiplug_test::testPlugin("drops_an_output"),
                dir.path() / "libdrops.so");
  const auto f = aotiplug_test::loadFixture("mlp");
  const CommandResult r = runCli({"run", f.pt2.string(), "--plugins", dir.str(), "--iters", "1"});
  BOOST_TEST(r.exit_code == 1, r.out);
  BOOST_TEST(contains(r.err, "returned 0 output(s), expected 1"), r.err);
  BOOST_TEST(!contains(r.out, "DO NOT match"), "never reported as an eager mismatch");
}

namespace {

// Starts the CLI in the background with TMPDIR set (its extraction directories go there).
pid_t startCli(std::vector<std::string> args, const std::string& tmpdir) {
  args.insert(args.begin(), cli());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage = {"TMPDIR=" + tmpdir};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "TMPDIR=", 7) != 0) env_storage.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  BOOST_REQUIRE(rc == 0);
  return pid;
}

std::vector<fs::path> extractions(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("aotiplug-model-", 0) == 0) out.push_back(e.path());
  }
  return out;
}

// Waits (at most 60 s) until the CLI has extracted its model.
bool waitForExtraction(const fs::path& dir) {
  for (int i = 0; i < 600; ++i) {
    if (!extractions(dir).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

int waitFor(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace

BOOST_AUTO_TEST_CASE(extraction_directories_do_not_outlive_their_host) {
  const auto f = aotiplug_test::loadFixture("mlp");
  aotiplug_test::TempDir tmp;
  const std::vector<std::string> forever = {"run", f.pt2.string(), "--plugins", pluginDir(),
                                            "--iters", "100000000"};
  // SIGINT and SIGTERM: the CLI removes its own, then dies of the signal.
  for (int sig : {SIGTERM, SIGINT}) {
    BOOST_TEST_CONTEXT("signal " << sig) {
      const pid_t pid = startCli(forever, tmp.str());
      BOOST_REQUIRE(waitForExtraction(tmp.path()));
      ::kill(pid, sig);
      const int status = waitFor(pid);
      BOOST_TEST(WIFSIGNALED(status));
      BOOST_TEST((WIFSIGNALED(status) && WTERMSIG(status) == sig));
      BOOST_TEST(extractions(tmp.path()).empty());
    }
  }
  // SIGKILL: nothing can run, the directory stays ...
  const pid_t killed = startCli(forever, tmp.str());
  BOOST_REQUIRE(waitForExtraction(tmp.path()));
  ::kill(killed, SIGKILL);
  waitFor(killed);
  const auto left = extractions(tmp.path());
  BOOST_REQUIRE_EQUAL(left.size(), 1u);
  // ... until the next host starts, which removes it — and not the directory of a host that
  // is still alive (this test process holds one).
  aotiplug::PrivateDirectory alive("aotiplug-model-", tmp.str());
  const pid_t next = startCli({"run", f.pt2.string(), "--plugins", pluginDir(), "--iters", "1"}, tmp.str());
  const int status = waitFor(next);
  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  BOOST_TEST(!fs::exists(left.front()), "the killed host's directory was removed");
  BOOST_TEST(fs::exists(alive.path()), "a live host's directory was kept");
  BOOST_TEST(extractions(tmp.path()).size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_device_the_host_cannot_move_tensors_to_is_a_clear_error) {
  // A plugin serving PrivateUse1, for which this LibTorch has no backend: the CLI does not
  // try Tensor::to (a LibTorch error with a 40-frame trace); it says what is wrong.
  aotiplug_test::TempDir dir;
  fs::copy_file(fs::path(pluginDir()) / "cpu" / "libaotiplug_cpu.so", dir.path() / "libaotiplug_cpu.so");
  fs::copy_file(testPlugin("foreign_device"), dir.path() / "libforeign.so");
  const auto f = aotiplug_test::loadFixture("mlp");
  const CommandResult r = runCli({"run", f.pt2.string(), "--plugins", dir.str(), "--device", "privateuseone:0"});
  BOOST_TEST(r.exit_code == 1, r.out << r.err);
  BOOST_TEST(contains(r.err, "cannot move tensors there"), r.err);
  BOOST_TEST(contains(r.err, "privateuseone:0"), r.err);
  BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, "one line: " << r.err);
  BOOST_TEST(!contains(r.err, "frame #"), r.err);
}

// aotiplug inspect: what a package holds, from aotiplug's packager and from plain
// aoti_compile_and_package, and whether this host can run it.
BOOST_AUTO_TEST_CASE(inspect_shows_inputs_constants_weights_and_who_would_serve_each_package) {
  struct Case {
    const char* fixture;
    const char* weights;  // where inspect must say they are
  };
  for (const Case& c : {Case{"mlp", "model library"}, Case{"weights_blob", "weights blob"},
                        Case{"weights_on_disk", "data/weights/"}, Case{"weights_outside", "none"},
                        Case{"plain_conv_dynamic", "model library"}, Case{"plain_bf16", "weights blob"}}) {
    BOOST_TEST_CONTEXT(c.fixture) {
      const aotiplug_test::Fixture f = aotiplug_test::loadFixture(c.fixture);
      const CommandResult r = runCli({"inspect", f.pt2.string(), "--plugins", pluginDir(), "--json"});
      BOOST_TEST(r.exit_code == 0, r.err);
      const auto j = parseJson(r);
      BOOST_REQUIRE(j["models"].size() == 1u);
      const auto& m = j["models"][0];
      BOOST_TEST(m["name"] == "model");
      BOOST_TEST(m["device"] == "cpu");
      BOOST_TEST(!m["cpu_isa"].is_null());
      BOOST_TEST(m["weights"]["where"].get<std::string>().rfind(c.weights, 0) == 0, m["weights"].dump());
      BOOST_TEST(m["runs_here"]["ok"] == true, m["runs_here"].dump());
      BOOST_TEST(m["runs_here"]["plugin"] == "cpu");
      BOOST_TEST(m["constants"]["source"] == "model library");
      BOOST_TEST(m["constants"]["count"].get<std::size_t>() > 0u);
      BOOST_TEST(m["constants"]["bytes"].get<std::uint64_t>() > 0u);
      BOOST_TEST(m["inputs"].size() == f.inputs.size());
      for (std::size_t i = 0; i < f.inputs.size(); ++i) {
        const auto shape = m["inputs"][i]["shape"].get<std::vector<std::int64_t>>();
        BOOST_REQUIRE(shape.size() == static_cast<std::size_t>(f.inputs[i].dim()));
        for (std::size_t d = 0; d < shape.size(); ++d) {
          BOOST_TEST((shape[d] == -1 || shape[d] == f.inputs[i].size(static_cast<std::int64_t>(d))));
        }
      }
      if (f.plain) {
        BOOST_TEST(m["inputs_source"].get<std::string>().rfind("wrapper source", 0) == 0);
        BOOST_TEST(m["torch_version"].is_null());  // plain packages do not record it
        BOOST_TEST(m["outputs_source"] == "model library (names only)");
      } else {
        BOOST_TEST(m["inputs_source"] == "aotiplug metadata");
        BOOST_TEST(m["torch_version"].get<std::string>().rfind(TORCH_VERSION, 0) == 0, m["torch_version"].dump());
        BOOST_TEST(m["outputs"].size() == f.outputs.size());
      }
    }
  }
  // A dynamic dimension shows its range; text output says who serves it.
  const auto dynamic = aotiplug_test::loadFixture("plain_conv_dynamic");
  const CommandResult text = runCli({"inspect", dynamic.pt2.string(), "--plugins", pluginDir()});
  BOOST_TEST(text.exit_code == 0, text.err);
  BOOST_TEST(contains(text.out, "[-1 ("), text.out);
  BOOST_TEST(contains(text.out, "runs here      yes, on cpu, served by plugin 'cpu'"), text.out);
  BOOST_TEST(contains(text.out, "torch version not recorded"), text.out);
  // The packager's symbols: x, mask and pick share the batch; x and mask the sequence.
  const auto shared = aotiplug_test::loadFixture("shared_dims");
  const auto j = parseJson(runCli({"inspect", shared.pt2.string(), "--plugins", pluginDir(), "--json"}));
  const auto& in = j["models"][0]["inputs"];
  BOOST_REQUIRE(in.size() == 3u);
  const auto x = in[0]["symbols"].get<std::vector<std::string>>();
  BOOST_REQUIRE(x.size() == 3u);
  BOOST_TEST((!x[0].empty() && !x[1].empty() && x[0] != x[1] && x[2].empty()));
  BOOST_TEST((in[1]["symbols"].get<std::vector<std::string>>() == std::vector<std::string>{x[0], x[1]}));
  BOOST_TEST((in[2]["symbols"].get<std::vector<std::string>>() == std::vector<std::string>{x[0]}));
}

BOOST_AUTO_TEST_CASE(inspect_says_why_a_package_cannot_run_here_and_reads_without_opening) {
  const auto f = aotiplug_test::loadFixture("mlp");
  aotiplug_test::TempDir empty;
  const CommandResult none = runCli({"inspect", f.pt2.string(), "--plugins", empty.str(), "--json"});
  BOOST_TEST(none.exit_code == 3, none.err);
  const auto j = parseJson(none);
  BOOST_TEST(j["models"][0]["runs_here"]["ok"] == false);
  BOOST_TEST(contains(j["models"][0]["runs_here"]["error"].get<std::string>(),
                      "no loaded plugin serves device type 'cpu'"), j.dump());
  BOOST_TEST(j["models"][0]["inputs"].size() == f.inputs.size());  // the package is still described

  const CommandResult closed = runCli({"inspect", f.pt2.string(), "--plugins", empty.str(), "--no-open", "--json"});
  BOOST_TEST(closed.exit_code == 0, closed.err);
  const auto c = parseJson(closed);
  BOOST_TEST(!c["models"][0].contains("runs_here"));
  BOOST_TEST(c["models"][0]["constants"]["source"] == "aotiplug metadata");

  const CommandResult missing = runCli({"inspect", "/nonexistent/model.pt2"});
  BOOST_TEST(missing.exit_code == 1);
  BOOST_TEST(contains(missing.err, "package /nonexistent/model.pt2: no such file"), missing.err);
  BOOST_TEST(runCli({"inspect"}).exit_code == 2);
  const CommandResult other = runCli({"inspect", f.pt2.string(), "--model", "nope", "--no-open"});
  BOOST_TEST(other.exit_code == 1);
  BOOST_TEST(contains(other.err, "nope"), other.err);
  BOOST_TEST(contains(runCli({"inspect", "--help"}).out, "Exit codes"));
}

// --save-outputs keeps the outputs (a torch.save'd list); --expected compares with such a
// file: exit 3 on a mismatch, naming the output, the worst difference and where.
BOOST_AUTO_TEST_CASE(run_saves_outputs_and_compares_with_expected_ones) {
  const auto f = aotiplug_test::loadFixture("multi_io");
  aotiplug_test::TempDir dir;
  const fs::path saved = dir.path() / "outputs.pt";
  const CommandResult first = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "-n", "1",
                                       "--save-outputs", saved.string()});
  BOOST_TEST(first.exit_code == 0, first.err);
  const auto outputs = aotiplug::tensorsFromPickledBytes(aotiplug_test::readFile(saved));
  BOOST_TEST_REQUIRE(outputs.size() == f.outputs.size());
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    BOOST_TEST(outputs[i].scalar_type() == f.outputs[i].scalar_type(), "output " << i);
    BOOST_TEST(outputs[i].sizes().vec() == f.outputs[i].sizes().vec(), "output " << i);
  }

  const CommandResult same = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "-n", "1",
                                      "--expected", saved.string(), "--json"});
  BOOST_TEST(same.exit_code == 0, same.err);
  const auto j = parseJson(same);
  BOOST_TEST(j["eager"]["match"] == true);
  BOOST_TEST(j["eager"]["reference"] == "file " + saved.string());

  // One element of output 0 off by 1.
  c10::List<at::Tensor> wrong;
  for (std::size_t i = 0; i < outputs.size(); ++i) wrong.push_back(outputs[i].clone());
  at::Tensor first_output = wrong.get(0);
  first_output.view({-1})[1].add_(1);
  wrong.set(0, first_output);
  const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(wrong));
  const fs::path off = dir.path() / "wrong.pt";
  aotiplug_test::writeFile(off, std::string(bytes.begin(), bytes.end()));
  const CommandResult differs = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "-n", "1",
                                         "--expected", off.string()});
  BOOST_TEST(differs.exit_code == 3, differs.err);
  BOOST_TEST(contains(differs.out, "outputs DO NOT match file " + off.string() + ": output 0 differs"), differs.out);
  BOOST_TEST(contains(differs.out, "at index ["), differs.out);

  const CommandResult missing = runCli({"run", f.pt2.string(), "--plugins", pluginDir(), "--expected", "/nonexistent/e.pt"});
  BOOST_TEST(missing.exit_code == 1);
  BOOST_TEST(contains(missing.err, "expected outputs file /nonexistent/e.pt cannot be opened"), missing.err);
}

// A package carrying CUDA kernels: inspect names the architecture they were built for, read
// from each cubin's ELF header (nvcc builds one for sm_90 where the toolkit is installed).
boost::test_tools::assertion_result haveCubin(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(std::getenv("AOTIPLUG_TEST_CUBIN") != nullptr);
  r.message() << "no CUDA toolkit (nvcc) to build a cubin";
  return r;
}

BOOST_AUTO_TEST_CASE(inspect_names_the_cuda_architecture_of_a_packages_kernels,
                     *boost::unit_test::precondition(haveCubin)) {
  const auto f = aotiplug_test::loadFixture("mlp");
  aotiplug_test::TempDir dir;
  const fs::path pt2 = dir.path() / "with_cubin.pt2";
  aotiplug_test::rewritePackage(f.pt2, pt2, nullptr,
                                {{"data/aotinductor/model/kernel.cubin",
                                  aotiplug_test::readFile(std::getenv("AOTIPLUG_TEST_CUBIN"))}});
  const CommandResult r = runCli({"inspect", pt2.string(), "--no-open", "--json"});
  BOOST_TEST(r.exit_code == 0, r.err);
  const auto kernels = parseJson(r)["models"][0]["cuda_kernels"];
  BOOST_TEST(kernels["count"] == 1);
  BOOST_TEST(kernels["arches"] == nlohmann::json::array({"sm_90"}), kernels.dump());
}
