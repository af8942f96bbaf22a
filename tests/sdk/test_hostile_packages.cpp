// SPDX-License-Identifier: BSD-3-Clause
// Hostile packages (tests/fixtures/make_hostile.py): each gives a clear error naming the
// package and the cause, leaves no file behind (in the extraction directory or where an
// entry name points), and the executor keeps working for good packages afterwards.
#define BOOST_TEST_MODULE hostile_packages
#include <boost/test/unit_test.hpp>

#include "../common/fixtures.h"
#include "../common/build_plugins.h"

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/host/plugin_loader.h>

namespace {

using aotiplug::StatusCode;
using aotiplug_test::expectError;
namespace fs = std::filesystem;

using BuildPlugins = aotiplug_test::BuildPlugins;
BOOST_TEST_GLOBAL_FIXTURE(BuildPlugins);

fs::path hostile(const std::string& name) {
  return fs::path(aotiplug_test::requireEnv("AOTIPLUG_HOSTILE")) / (name + ".pt2");
}

// Opens a hostile package with an executor extracting into its own directory; expects the
// error, then checks that nothing was left behind.
void expectRefused(const std::string& name, StatusCode code, std::vector<std::string> fragments,
                   const std::string& model = {}) {
  BOOST_TEST_CONTEXT("package " << name) {
    aotiplug_test::TempDir base;
    aotiplug::ExecutorConfig config;
    config.extractionDir = (base.path() / "extract").string();
    fs::create_directory(config.extractionDir);
    const std::string path = hostile(name).string();
    fragments.push_back(path);  // the message names the package
    expectError([&] { aotiplug::AOTIDelegateExecutor(path, nullptr, config, model); }, code, fragments);
    BOOST_TEST(fs::is_empty(config.extractionDir), "files were left in the extraction directory");
    std::size_t entries = 0;
    for (const auto& e : fs::recursive_directory_iterator(base.path())) entries += e.is_regular_file() ? 1 : 0;
    BOOST_TEST(entries == 0u, "files were written outside the extraction directory");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_hostile_package_is_refused_clearly_and_leaves_nothing) {
  expectRefused("not_a_zip", StatusCode::kInvalidArgument, {"not a readable .pt2 archive"});
  expectRefused("truncated", StatusCode::kInvalidArgument, {"not a readable .pt2 archive"});
  expectRefused("no_version", StatusCode::kInvalidArgument, {"not a readable .pt2 archive", "version"});
  expectRefused("no_library", StatusCode::kInvalidArgument, {"has no model library (.so) under data/aotinductor/model/"});
  expectRefused("two_models", StatusCode::kInvalidArgument, {"holds 2 models (model, model2): name one"});
  expectRefused("two_models", StatusCode::kNotFound, {"has no model 'model3' (it has: model, model2)"}, "model3");
  expectRefused("dotdot", StatusCode::kInvalidArgument, {"unsafe name", ".."});
  expectRefused("absolute", StatusCode::kInvalidArgument, {"not a readable .pt2 archive"});
  expectRefused("bomb", StatusCode::kInvalidArgument, {"weights.bin", "declares 268435456 bytes", "refusing to inflate"});
  // miniz already refuses a central directory that points past the end of the file when
  // the package is opened; extraction checks the same bound again before copying.
  expectRefused("short_library", StatusCode::kInvalidArgument, {"not a readable .pt2 archive", "corrupted"});
  expectRefused("not_aoti_library", StatusCode::kModelError,
                {"is not an AOTInductor model library", "AOTInductorModelContainerCreateWithDevice"});
  expectRefused("xpu_device", StatusCode::kNotFound, {"needs device 'xpu'", "registered: cpu"});
  expectRefused("bad_metadata", StatusCode::kInvalidArgument, {"_metadata.json is not a JSON object"});
  expectRefused("bad_specs", StatusCode::kInvalidArgument, {"input specs of model 'model'", "unknown dtype 'float99'"});
  expectRefused("mistyped_specs", StatusCode::kInvalidArgument,
                {"input specs of model 'model'", "is malformed: a field has the wrong type", "type must be array"});
  // A byte changed under an unchanged CRC-32, on both ways of reading an entry.
  expectRefused("bad_crc", StatusCode::kInvalidArgument, {".wrapper.so' is corrupt", "CRC-32"});
  expectRefused("bad_crc_deflated", StatusCode::kInvalidArgument, {".wrapper.so' is corrupt", "CRC-32"});
  expectRefused("overlapping", StatusCode::kInvalidArgument, {"entries declare", "bytes in all", "refusing"});
  expectRefused("many_entries", StatusCode::kInvalidArgument, {"entries; a package may hold at most 65536"});
  // Nothing escaped to where the hostile names pointed.
  BOOST_TEST(!fs::exists("/tmp/aotiplug-absolute.txt"));
  BOOST_TEST(!fs::exists(fs::temp_directory_path() / "aotiplug-escaped.txt"));
}

BOOST_AUTO_TEST_CASE(a_package_re_zipped_with_directory_entries_runs) {
  const auto f = aotiplug_test::loadFixture("mlp");
  aotiplug::ExecutorConfig config;
  config.log = [](const std::string&) {};
  aotiplug::AOTIDelegateExecutor exec(hostile("rezipped").string(), nullptr, config);
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "rezipped");
}

BOOST_AUTO_TEST_CASE(a_named_model_in_a_package_with_several_runs) {
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("mlp");
  aotiplug::ExecutorConfig config;
  config.log = [](const std::string&) {};
  aotiplug::AOTIDelegateExecutor exec(hostile("two_models").string(), nullptr, config, "model2");
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "model2");
}

BOOST_AUTO_TEST_CASE(good_packages_still_work_after_hostile_ones) {
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("mlp");
  aotiplug::AOTIDelegateExecutor exec(f.pt2.string());
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "a good package");
}

// A package cut short after it was opened (replaced or truncated on disk while a host holds
// it): extraction fails with the reason, and no partly written file is left behind.
BOOST_AUTO_TEST_CASE(a_package_truncated_after_opening_fails_extraction_cleanly) {
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("mlp");
  aotiplug_test::TempDir base;
  const fs::path copy = base.path() / "mlp.pt2";
  fs::copy_file(f.pt2, copy);
  aotiplug::Pt2Package package(copy.string());
  const aotiplug::PackagedModel& model = package.model(package.modelNames().at(0));
  fs::resize_file(copy, fs::file_size(copy) / 2);

  aotiplug::PrivateDirectory dir("truncated-", base.path().string());
  expectError([&] { package.extract(model, dir); }, StatusCode::kUnavailable,
              {"cannot copy into " + dir.path(), "the archive ended early (changed while open?)"});
  // Whatever was extracted before the cut is complete: same size as in the intact package.
  const aotiplug::Pt2Package intact(f.pt2.string());
  for (const auto& e : fs::recursive_directory_iterator(dir.path())) {
    if (!e.is_regular_file()) continue;
    const std::string record = model.directory + fs::relative(e.path(), dir.path()).string();
    BOOST_TEST_CONTEXT("extracted file " << e.path()) {
      BOOST_TEST(e.file_size() == intact.readRecord(record).size());
    }
  }
}
