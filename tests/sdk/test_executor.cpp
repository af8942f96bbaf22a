// SPDX-License-Identifier: BSD-3-Clause
// AOTIDelegateExecutor on real .pt2 packages: running, the weights lifecycle, refused
// weights, concurrent runs during swaps, input checks and cleanup of extracted files.
#define BOOST_TEST_MODULE executor
#include <boost/test/unit_test.hpp>

#include "../common/fixtures.h"
#include "../common/build_plugins.h"
#include "../common/package_edit.h"

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/host/plugin_loader.h>

#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>

#include <torch/csrc/jit/serialization/pickle.h>

#include <atomic>
#include <fstream>
#include <chrono>
#include <thread>

namespace {

using aotiplug::AOTIDelegateExecutor;
using aotiplug::ExecutorConfig;
using aotiplug::StatusCode;
using aotiplug::Weights;
using aotiplug_test::expectError;
using aotiplug_test::Fixture;
using aotiplug_test::loadFixture;
namespace fs = std::filesystem;

using BuildPlugins = aotiplug_test::BuildPlugins;
BOOST_TEST_GLOBAL_FIXTURE(BuildPlugins);

std::shared_ptr<Weights> weights(const std::map<std::string, at::Tensor>& w) {
  return std::make_shared<Weights>(w);
}

ExecutorConfig quiet(std::vector<std::string>* log = nullptr) {
  ExecutorConfig c;
  c.maxNumConcurrentThreads = 2;
  c.log = [log](const std::string& m) {
    if (log != nullptr) log->push_back(m);
  };
  return c;
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

BOOST_AUTO_TEST_CASE(runs_every_package_and_matches_eager) {
  for (const std::string& name : aotiplug_test::fixtureNames()) {
    // Every package that carries its weights (in the .so, in data/weights/ or in a blob).
    if (aotiplug_test::fixtureWeights(name) == "host") continue;
    Fixture f = loadFixture(name);
    AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
    BOOST_TEST(exec.device() == "cpu");
    aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, name);
    if (!f.extra_inputs.empty()) {
      aotiplug_test::expectCloseToEager(exec.run(f.extra_inputs), f.extra_outputs,
                                        name + " at another batch size");
    }
    if (f.plain) continue;
    // The package carries the same sample inputs and eager outputs.
    const auto samples = exec.package().sampleInputs(exec.packagedModel());
    const auto reference = exec.package().referenceOutputs(exec.packagedModel());
    aotiplug_test::expectBitIdentical(samples, f.inputs, name + " sample inputs");
    aotiplug_test::expectBitIdentical(reference, f.outputs, name + " reference outputs");
  }
}

// The packager stores reference outputs under data/aotiplug/ (upstream's loader reads every
// extra/ entry as text); packages made before keep them under extra/aotiplug/, still read.
BOOST_AUTO_TEST_CASE(reference_outputs_are_read_where_old_and_new_packages_keep_them) {
  const auto f = aotiplug_test::loadFixture("multi_io");
  const std::string fresh = "data/aotiplug/model/reference_outputs.pt";
  const std::string bytes = aotiplug::Pt2Package(f.pt2.string()).readRecord(fresh);
  aotiplug_test::TempDir dir;
  const fs::path old = dir.path() / "old.pt2";
  aotiplug_test::rewritePackage(
      f.pt2, old,
      [&](const std::string& name, const std::string& data) {
        return name == fresh ? std::optional<std::string>() : std::optional<std::string>(data);
      },
      {{"extra/aotiplug/model/reference_outputs.pt", bytes}});
  aotiplug::Pt2Package before(old.string());
  BOOST_TEST(!before.hasRecord(fresh));
  const auto outputs = before.referenceOutputs(before.model());
  BOOST_TEST_REQUIRE(outputs.size() == f.outputs.size());
  for (std::size_t i = 0; i < outputs.size(); ++i) BOOST_TEST(at::equal(outputs[i], f.outputs[i]), "output " << i);
}

BOOST_AUTO_TEST_CASE(hot_swap_gives_the_eager_outputs_of_the_new_weights) {
  // plain_strided_weight: the code reads its weight with the strides it was compiled for
  // (1, 8); weights b are contiguous (torch.rand), weights a strided (the module's own).
  // Upstream's runner copies or keeps the tensor as given and gets wrong outputs for b.
  // conv's 0-d parameter 'gain' was refused in place as "shape unknown".
  for (const std::string name : {"conv", "plain_strided_weight"}) {
    for (bool in_place : {true, false}) {
      const std::string what = name + (in_place ? ", in place: " : ", copied: ");
      Fixture f = loadFixture(name);
      ExecutorConfig config = quiet();
      config.useUserManagedWeights = in_place;
      AOTIDelegateExecutor exec(f.pt2.string(), nullptr, config);
      exec.processWeights(weights(f.weights_b));
      BOOST_TEST(exec.hasPendingWeights());
      aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, what + "processed, not committed");
      exec.commitWeights();
      aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs_b, what + "committed b");
      exec.processWeights(weights(f.weights_a));
      exec.commitWeights();
      aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, what + "back to a");
      expectError([&] { exec.commitWeights(); }, StatusCode::kFailedPrecondition,
                  {"no processed weights"});
      if (name == "conv") {  // a 0-d weight's sizes are checked like any other's
        auto one_element = f.weights_b;
        one_element["gain"] = at::zeros({1});
        expectError([&] { exec.processWeights(weights(one_element)); }, StatusCode::kInvalidArgument,
                    {"'gain'", "expects Float [] on cpu", "got Float [1]"});
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(refused_weights_leave_the_old_ones_active_and_running) {
  Fixture f = loadFixture("mlp");
  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());

  auto wrong_shape = f.weights_b;
  wrong_shape["fc2.weight"] = at::zeros({32, 8});
  expectError([&] { exec.processWeights(weights(wrong_shape)); }, StatusCode::kInvalidArgument,
              {"weight 'fc2.weight'", "sizes [8, 32]", "got [32, 8]"});

  auto wrong_dtype = f.weights_b;
  wrong_dtype["scale"] = wrong_dtype["scale"].to(at::kDouble);
  expectError([&] { exec.processWeights(weights(wrong_dtype)); }, StatusCode::kInvalidArgument,
              {"weight 'scale'", "must be Float", "got Double"});

  auto missing = f.weights_b;
  missing.erase("fc1.weight");
  expectError([&] { exec.processWeights(weights(missing)); }, StatusCode::kInvalidArgument,
              {"the weights lack fc1.weight"});

  BOOST_TEST(!exec.hasPendingWeights());
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "still the old weights");
  expectError([&] { exec.commitWeights(); }, StatusCode::kFailedPrecondition, {"processWeights"});
  exec.processWeights(weights(f.weights_b));  // a good set still goes through afterwards
  exec.commitWeights();
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs_b, "then the new ones");
}

BOOST_AUTO_TEST_CASE(unknown_weights_are_reported_once_and_ignored) {
  Fixture f = loadFixture("mlp");
  std::vector<std::string> log;
  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet(&log));
  auto extra = f.weights_b;
  extra["not.a.weight"] = at::zeros({3});
  exec.processWeights(weights(extra));
  exec.processWeights(weights(extra));
  BOOST_TEST((exec.ignoredWeights() == std::vector<std::string>{"not.a.weight"}));
  std::size_t mentions = 0;
  for (const auto& line : log) mentions += aotiplug_test::contains(line, "not.a.weight") ? 1 : 0;
  BOOST_TEST(mentions == 1u);
  exec.commitWeights();
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs_b, "the known weights applied");
}

BOOST_AUTO_TEST_CASE(concurrent_runs_during_repeated_swaps_see_old_or_new_never_a_mix) {
  Fixture f = loadFixture("mlp");
  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
  std::atomic<bool> stop{false};
  std::atomic<long> saw_a{0}, saw_b{0}, mixed{0}, failed{0}, wrong_generation{0};
  std::vector<std::thread> runners;
  for (int t = 0; t < 2; ++t) {
    runners.emplace_back([&] {
      while (!stop.load()) {
        try {
          // Even generations run weights a, odd ones b: each run is told which it used.
          AOTIDelegateExecutor::RunInfo info;
          const auto out = exec.run(f.inputs, info);
          if (closeTo(out, f.outputs)) {
            ++saw_a;
            wrong_generation += info.weights_generation % 2 == 0 ? 0 : 1;
          } else if (closeTo(out, f.outputs_b)) {
            ++saw_b;
            wrong_generation += info.weights_generation % 2 == 1 ? 0 : 1;
          } else {
            ++mixed;
          }
        } catch (...) {
          ++failed;
        }
      }
    });
  }
  long swaps = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (std::chrono::steady_clock::now() < until) {
    exec.processWeights(weights(swaps % 2 == 0 ? f.weights_b : f.weights_a));
    exec.commitWeights();
    ++swaps;
  }
  stop = true;
  for (auto& t : runners) t.join();
  BOOST_TEST_MESSAGE("swaps: " << swaps << ", runs with a: " << saw_a << ", with b: " << saw_b);
  BOOST_TEST(mixed.load() == 0);
  BOOST_TEST(failed.load() == 0);
  BOOST_TEST(wrong_generation.load() == 0);
  BOOST_TEST(exec.weightsGeneration() == static_cast<std::uint64_t>(swaps));
  BOOST_TEST(swaps > 10);
  BOOST_TEST(saw_a.load() > 0);
  BOOST_TEST(saw_b.load() > 0);
}

BOOST_AUTO_TEST_CASE(run_all_runs_every_set_on_the_same_weights) {
  Fixture f = loadFixture("dynamic_batch");
  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
  const at::Tensor x = f.extra_inputs[0];
  AOTIDelegateExecutor::RunInfo info;
  const auto outs = exec.runAll({{x.narrow(0, 0, 5)}, {x.narrow(0, 5, 8)}}, info);
  BOOST_TEST(info.weights_generation == 0u);
  BOOST_TEST_REQUIRE(outs.size() == 2u);
  aotiplug_test::expectCloseToEager({at::cat({outs[0][0], outs[1][0]})}, f.extra_outputs, "two runs");
  exec.processWeights(weights(f.weights_b));
  exec.commitWeights();
  exec.runAll({{x}}, info);
  BOOST_TEST(info.weights_generation == 1u);
}

BOOST_AUTO_TEST_CASE(weights_files_are_read_or_refused_naming_the_file) {
  Fixture f = loadFixture("mlp");
  aotiplug_test::TempDir dir;
  const fs::path good = dir.path() / "state_dict.pt";
  {
    c10::Dict<std::string, at::Tensor> dict;
    for (const auto& [name, t] : f.weights_b) dict.insert(name, t);
    const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(dict));
    std::ofstream(good, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  const auto loaded = aotiplug::loadWeightsFile(good.string());
  BOOST_TEST(loaded->size() == f.weights_b.size());
  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
  exec.processWeights(loaded);
  exec.commitWeights();
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs_b, "weights read from a file");

  expectError([&] { aotiplug::loadWeightsFile((dir.path() / "missing.pt").string()); }, StatusCode::kNotFound,
              {"missing.pt", "cannot be opened"});
  const fs::path text = dir.path() / "notes.txt";
  std::ofstream(text) << "not a pickle";
  expectError([&] { aotiplug::loadWeightsFile(text.string()); }, StatusCode::kInvalidArgument,
              {"notes.txt", "not a torch.save'd file"});
  const fs::path list = dir.path() / "list.pt";
  {
    const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(c10::List<at::Tensor>({at::zeros({2})})));
    std::ofstream(list, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  expectError([&] { aotiplug::loadWeightsFile(list.string()); }, StatusCode::kInvalidArgument,
              {"list.pt", "not a dict of tensors"});
}

// Every tensor of `got` equals (dtype, sizes, values) the one of the same name in `want`.
void expectSameWeights(const Weights& got, const std::map<std::string, at::Tensor>& want, const std::string& what) {
  BOOST_TEST(got.names().size() == want.size(), what << ": " << got.size() << " tensors, expected " << want.size());
  for (const auto& [name, t] : want) {
    BOOST_TEST_CONTEXT(what << ": " << name) {
      BOOST_REQUIRE(got.contains(name));
      BOOST_TEST(got.at(name).scalar_type() == t.scalar_type());
      BOOST_TEST(got.at(name).sizes() == t.sizes());
      BOOST_TEST(at::equal(got.at(name), t));
    }
  }
}

std::map<std::string, at::Tensor> entryOf(const c10::IValue& dict, const std::string& key) {
  for (const auto& item : dict.toGenericDict()) {
    if (item.key().toStringRef() == key) return aotiplug_test::tensorDict(item.value());
  }
  BOOST_FAIL("expected.pt has no " << key);
  return {};
}

// What users save is a module's own state_dict(): an OrderedDict with `_metadata`, which
// LibTorch's unpickler alone turns into None. Each fixture's weights B, saved so.
BOOST_AUTO_TEST_CASE(a_modules_own_state_dict_file_is_read_for_every_test_model) {
  int read = 0;
  for (const std::string& name : aotiplug_test::fixtureNames()) {
    Fixture f = loadFixture(name);
    const fs::path file = aotiplug_test::fixturesDir() / (name + ".state_dict_b.pt");
    if (f.weights_b.empty() || !fs::exists(file)) continue;
    expectSameWeights(*aotiplug::loadWeightsFile(file.string()), f.weights_b, name);
    ++read;
  }
  BOOST_TEST(read >= 10);
  // And a model runs on one: batch-norm statistics and an integer buffer included.
  Fixture conv = loadFixture("conv");
  AOTIDelegateExecutor exec(conv.pt2.string(), nullptr, quiet());
  exec.processWeights(aotiplug::loadWeightsFile((aotiplug_test::fixturesDir() / "conv.state_dict_b.pt").string()));
  exec.commitWeights();
  aotiplug_test::expectCloseToEager(exec.run(conv.inputs), conv.outputs_b, "conv on its state_dict() file");
}

BOOST_AUTO_TEST_CASE(weights_files_saved_the_ways_users_save_them) {
  const fs::path dir = aotiplug_test::fixturesDir() / "weights_files";
  const c10::IValue expected = aotiplug_test::loadPickle(dir / "expected.pt");
  const auto nested = entryOf(expected, "nested_state_dict");
  expectSameWeights(*aotiplug::loadWeightsFile((dir / "nested_state_dict.pt").string()), nested, "nested state_dict");
  expectSameWeights(*aotiplug::loadWeightsFile((dir / "ordered_dict.pt").string()), nested, "OrderedDict");
  std::map<std::string, at::Tensor> half;
  for (const auto& [name, t] : nested) half[name] = t.is_floating_point() ? t.to(at::kHalf) : t;
  expectSameWeights(*aotiplug::loadWeightsFile((dir / "half.pt").string()), half, "float16");
  expectSameWeights(*aotiplug::loadWeightsFile((dir / "views.pt").string()), entryOf(expected, "views"),
                    "views of one storage");
  expectSameWeights(*aotiplug::loadWeightsFile((dir / "many.pt").string()), entryOf(expected, "many"),
                    "2,100 entries");
  // Storages saved on a GPU are read onto the CPU (the executor moves weights to its device).
  const auto from_gpu = aotiplug::loadWeightsFile((dir / "cuda_saved.pt").string());
  expectSameWeights(*from_gpu, nested, "saved from cuda:0");
  for (const auto& [name, t] : from_gpu->all()) BOOST_TEST(t.device().is_cpu(), name);

  expectError([&] { aotiplug::loadWeightsFile((dir / "protocol4.pt").string()); }, StatusCode::kInvalidArgument,
              {"protocol4.pt", "pickled with protocol 4", "torch.save's default"});
  expectError([&] { aotiplug::loadWeightsFile((dir / "module.pt").string()); }, StatusCode::kInvalidArgument,
              {"module.pt", "holds a module: save its state_dict() instead"});
  expectError([&] { aotiplug::loadWeightsFile((dir / "legacy.pt").string()); }, StatusCode::kInvalidArgument,
              {"legacy.pt", "not a zip archive", "_use_new_zipfile_serialization=False"});
  expectError([&] { aotiplug::loadWeightsFile((dir / "checkpoint.pt").string()); }, StatusCode::kInvalidArgument,
              {"checkpoint.pt", "'model' is a GenericDict, not a tensor", "save the model's state_dict() on its own"});
  // Damaged or crafted: nothing past what the file holds reaches a model, and no entry is
  // lost silently.
  // (LibTorch 2.15's unpickler refuses this one itself: "... require a storage of at least
  // 256 bytes, but storage only has 32 bytes"; 2.11's does not, and our check does.)
  expectError([&] { aotiplug::loadWeightsFile((dir / "past_storage.pt").string()); }, StatusCode::kInvalidArgument,
              {"past_storage.pt", "storage", "32 bytes"});
  expectError([&] { aotiplug::loadWeightsFile((dir / "short_record.pt").string()); }, StatusCode::kInvalidArgument,
              {"short_record.pt: 'w' is damaged", "its storage says 256 bytes, its record in the file holds 16"});
  expectError([&] { aotiplug::loadWeightsFile((dir / "entry_in_state.pt").string()); },
              StatusCode::kInvalidArgument, {"entry_in_state.pt"});
}

BOOST_AUTO_TEST_CASE(executors_of_one_unchanged_package_share_its_extraction) {
  Fixture f = loadFixture("mlp");
  aotiplug_test::TempDir dir;
  const fs::path pkg = dir.path() / "m.pt2";
  fs::copy_file(f.pt2, pkg);
  std::string shared_dir;
  {
    AOTIDelegateExecutor first(pkg.string(), nullptr, quiet());
    AOTIDelegateExecutor second(pkg.string(), nullptr, quiet());
    shared_dir = first.extractionDirectory();
    BOOST_TEST(second.extractionDirectory() == shared_dir);
    BOOST_TEST(&first.package() == &second.package());
    {
      ExecutorConfig elsewhere = quiet();
      elsewhere.extractionDir = dir.str();  // another place: its own extraction
      AOTIDelegateExecutor third(pkg.string(), nullptr, elsewhere);
      BOOST_TEST(third.extractionDirectory() != shared_dir);
      aotiplug_test::expectCloseToEager(third.run(f.inputs), f.outputs, "third");
    }
    // Each has its own container: weights swapped in one are not the other's.
    first.processWeights(weights(f.weights_b));
    first.commitWeights();
    aotiplug_test::expectCloseToEager(first.run(f.inputs), f.outputs_b, "first, swapped");
    aotiplug_test::expectCloseToEager(second.run(f.inputs), f.outputs, "second, not swapped");
    {
      AOTIDelegateExecutor gone(pkg.string(), nullptr, quiet());
    }
    BOOST_TEST(fs::exists(shared_dir), "the files stay while an executor uses them");
    // The same path with other contents (a new file in its place) is opened afresh.
    fs::remove(pkg);
    fs::copy_file(f.pt2, pkg);
    AOTIDelegateExecutor replaced(pkg.string(), nullptr, quiet());
    BOOST_TEST(replaced.extractionDirectory() != shared_dir);
  }
  BOOST_TEST(!fs::exists(shared_dir), "removed with the last executor using it");
}

BOOST_AUTO_TEST_CASE(weights_outside_the_library_come_from_init_weights) {
  Fixture f = loadFixture("weights_outside");
  {
    AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
    BOOST_TEST(!exec.modelInfo().constants_in_library);
    expectError([&] { exec.run(f.inputs); }, StatusCode::kFailedPrecondition,
                {"no weights loaded"});
    exec.initWeights(weights(f.weights_a));
    aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "after initWeights");
    exec.processWeights(weights(f.weights_b));
    exec.commitWeights();
    aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs_b, "after a swap");
  }
  AOTIDelegateExecutor given(f.pt2.string(), weights(f.weights_a), quiet());
  aotiplug_test::expectCloseToEager(given.run(f.inputs), f.outputs, "weights given up front");
}

BOOST_AUTO_TEST_CASE(weights_stored_in_the_package_are_loaded_at_open) {
  // Real packages compiled with the weights beside the library: one pickled tensor per
  // weight (data/weights/ + weights_config.json), and one binary blob.
  for (const std::string name : {"weights_on_disk", "weights_blob"}) {
    BOOST_TEST_CONTEXT(name) {
      Fixture f = loadFixture(name);
      AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
      BOOST_TEST(!exec.modelInfo().constants_in_library);  // nothing in the .so itself
      aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, name + " stored weights");
      BOOST_TEST(exec.ignoredWeights().empty());
      // The stored weights are the model's state dict, bit for bit.
      if (name == "weights_on_disk") {
        const auto stored = exec.package().storedWeights(exec.packagedModel());
        BOOST_REQUIRE(stored != nullptr);
        BOOST_TEST(stored->all().size() == f.weights_a.size());
        for (const auto& [fqn, want] : f.weights_a) {
          BOOST_TEST_CONTEXT(fqn) {
            BOOST_REQUIRE(stored->all().count(fqn) == 1u);
            BOOST_TEST(at::equal(stored->all().at(fqn), want));
          }
        }
      } else {
        BOOST_TEST(exec.package().storedWeights(exec.packagedModel()) == nullptr);
      }
      // They are swapped out and back like any others.
      exec.processWeights(weights(f.weights_b));
      exec.commitWeights();
      aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs_b, name + " after a swap");
      exec.processWeights(weights(f.weights_a));
      exec.commitWeights();
      aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, name + " swapped back");
    }
  }
}

BOOST_AUTO_TEST_CASE(init_weights_keeps_the_weights_inside_the_library) {
  Fixture f = loadFixture("mlp");
  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
  exec.initWeights(weights(f.weights_b));  // as upstream: the .so's own weights stay
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "the .so weights");
}

BOOST_AUTO_TEST_CASE(inputs_are_checked_before_the_model_library) {
  Fixture f = loadFixture("multi_io");
  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
  const auto& in = f.inputs;
  expectError([&] { exec.run(std::vector<at::Tensor>{in[0], in[1]}); }, StatusCode::kInvalidArgument,
              {"takes 3 input(s) (x, idx, z), got 2"});
  expectError([&] { exec.run(std::vector<at::Tensor>{in[0], in[1].to(at::kInt), in[2]}); },
              StatusCode::kInvalidArgument, {"input 1 ('idx')", "expected Long [4]", "got Int [4]"});
  expectError([&] { exec.run(std::vector<at::Tensor>{in[0].reshape({2, 16}), in[1], in[2]}); },
              StatusCode::kInvalidArgument, {"input 0 ('x')", "expected Float [4, 8]", "[2, 16]"});
  expectError([&] { exec.run(std::vector<at::Tensor>{in[0].unsqueeze(0), in[1], in[2]}); },
              StatusCode::kInvalidArgument, {"input 0 ('x')", "[1, 4, 8]"});
  auto meta = at::empty({4, 8}, at::TensorOptions().device(at::kMeta).dtype(at::kBFloat16));
  expectError([&] { exec.run(std::vector<at::Tensor>{in[0], in[1], meta}); },
              StatusCode::kInvalidArgument, {"input 2 ('z')", "on cpu", "on meta"});
  expectError([&] { exec.run(std::vector<at::Tensor>{in[0], at::Tensor(), in[2]}); },
              StatusCode::kInvalidArgument, {"input 1 ('idx')", "undefined"});
  // A non-contiguous input with the right values is made contiguous.
  auto transposed = in[0].t().contiguous().t();
  BOOST_REQUIRE(!transposed.is_contiguous());
  aotiplug_test::expectCloseToEager(exec.run(std::vector<at::Tensor>{transposed, in[1], in[2]}),
                                    f.outputs, "non-contiguous input");
}

BOOST_AUTO_TEST_CASE(dynamic_dimensions_are_checked_against_their_range) {
  Fixture f = loadFixture("dynamic_batch");
  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
  BOOST_TEST(exec.run(std::vector<at::Tensor>{at::randn({64, 16})}).at(0).size(0) == 64);
  expectError([&] { exec.run(std::vector<at::Tensor>{at::randn({65, 16})}); },
              StatusCode::kInvalidArgument, {"input 0 ('x')", "-1 (1..64)", "dimension 0 is 65"});
  expectError([&] { exec.run(std::vector<at::Tensor>{at::randn({0, 16})}); },
              StatusCode::kInvalidArgument, {"dimension 0 is 0"});
}

// The compiled code reads each dynamic size from the first input that has it and trusts
// every other input with the same symbol: a shorter mask would be read past its end.
BOOST_AUTO_TEST_CASE(inputs_that_share_a_dynamic_dimension_must_agree_on_it) {
  Fixture f = loadFixture("shared_dims");
  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
  const auto& shared = exec.packagedModel().shared_sizes;
  BOOST_TEST_REQUIRE(shared.size() == 3u);  // mask's batch and sequence and pick's batch are x's
  BOOST_TEST(shared[0].input == 1u);
  BOOST_TEST(shared[0].bound_input == 0u);
  aotiplug_test::expectCloseToEager(exec.run(f.extra_inputs), f.extra_outputs, "shared_dims");
  const at::Tensor pick = at::zeros({3}, at::kLong);
  expectError([&] { exec.run(std::vector<at::Tensor>{at::randn({3, 64, 4}), at::randn({3, 8}), pick}); },
              StatusCode::kInvalidArgument,
              {"input 1 ('mask') has size 8 in dimension 1", "input 0 ('x') has 64 in dimension 1",
               "compiled with both the same size"});
  expectError([&] { exec.run(std::vector<at::Tensor>{at::randn({3, 8, 4}), at::randn({4, 8}), pick}); },
              StatusCode::kInvalidArgument, {"input 1 ('mask') has size 4 in dimension 0", "('x') has 3"});
  expectError([&] { exec.run(std::vector<at::Tensor>{at::randn({4, 8, 4}), at::randn({4, 8}), pick}); },
              StatusCode::kInvalidArgument, {"input 2 ('pick') has size 3 in dimension 0", "('x') has 4"});
  // The executor keeps serving.
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "after refusals");
}

BOOST_AUTO_TEST_CASE(no_files_remain_after_the_executor_or_a_failed_load) {
  Fixture f = loadFixture("mlp");
  aotiplug_test::TempDir base;
  ExecutorConfig config = quiet();
  config.extractionDir = base.str();
  std::string extracted;
  {
    AOTIDelegateExecutor exec(f.pt2.string(), nullptr, config);
    extracted = exec.extractionDirectory();
    BOOST_TEST(fs::exists(extracted));
    BOOST_TEST(((fs::status(extracted).permissions() & fs::perms::all) == fs::perms::owner_all));
    exec.run(f.inputs);
  }
  BOOST_TEST(!fs::exists(extracted));
  BOOST_TEST(fs::is_empty(base.path()));

  // Fails after extraction: the runner refuses single-threaded mode with 2 models.
  config.runSingleThreaded = true;
  expectError([&] { AOTIDelegateExecutor(f.pt2.string(), nullptr, config); },
              StatusCode::kInvalidArgument, {"run_single_threaded needs num_models == 1"});
  BOOST_TEST(fs::is_empty(base.path()), "a failed load removed its files");
}

BOOST_AUTO_TEST_CASE(a_device_no_plugin_serves_is_a_clear_error) {
  Fixture f = loadFixture("mlp");
  ExecutorConfig config = quiet();
  config.device = "xla:0";
  expectError([&] { AOTIDelegateExecutor(f.pt2.string(), nullptr, config); },
              StatusCode::kNotFound, {"needs device 'xla:0'", "registered: cpu"});
}

BOOST_AUTO_TEST_CASE(a_failed_process_weights_leaves_nothing_to_commit) {
  Fixture f = loadFixture("conv");
  AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
  exec.processWeights(weights(f.weights_b));
  BOOST_TEST(exec.hasPendingWeights());
  auto bad = f.weights_b;
  bad.at("head.bias") = bad.at("head.bias").to(at::kDouble);
  expectError([&] { exec.processWeights(weights(bad)); }, StatusCode::kInvalidArgument, {"'head.bias'"});
  // The earlier set was overwritten from the moment the second began: nothing to commit.
  BOOST_TEST(!exec.hasPendingWeights());
  expectError([&] { exec.commitWeights(); }, StatusCode::kFailedPrecondition, {"no processed weights"});
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "the active weights untouched");
  exec.processWeights(weights(f.weights_b));
  exec.commitWeights();
  aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs_b, "then a good set");
}

BOOST_AUTO_TEST_CASE(folded_models_with_tensor_constants_swap_and_close_cleanly) {
  // Folding the inactive buffer replaces its tensor constants with clones the library owns;
  // the runner must free only the handles it was given for them (before the fix, closing
  // the executor deleted the library's clone as well: a double free).
  Fixture f = loadFixture("const_fold");
  for (bool in_place : {true, false}) {
    BOOST_TEST_CONTEXT(std::string(in_place ? "in place" : "copied")) {
      for (int round = 0; round < 3; ++round) {
        ExecutorConfig config = quiet();
        config.useUserManagedWeights = in_place;
        AOTIDelegateExecutor exec(f.pt2.string(), nullptr, config);
        bool has_tensor_constant = false;
        for (const auto& c : exec.modelInfo().constants) {
          has_tensor_constant = has_tensor_constant || c.kind == aotiplug::ConstantKind::kTensorConstant;
        }
        BOOST_REQUIRE_MESSAGE(has_tensor_constant, "the const_fold model has a tensor constant");
        exec.processWeights(weights(f.weights_b));
        exec.commitWeights();
        aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs_b, "new weights");
        exec.processWeights(weights(f.weights_a));
        exec.commitWeights();
        aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "swapped back");
        exec.processWeights(weights(f.weights_b));  // pending when the executor closes
      }
    }
  }
}
