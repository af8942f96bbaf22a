// SPDX-License-Identifier: BSD-3-Clause
// The Triton backend's configuration logic without a server: completing a config from a
// package's signature, refusing one that contradicts it (naming the field), the plan of
// runs for a batch, and the signature read from real fixture packages (probe runs).
#define BOOST_TEST_MODULE triton_model_config
#include "../common/build_plugins.h"
#include "../common/fixtures.h"
#include "../common/test_support.h"

#include "batch_plan.h"
#include "model_config.h"
#include "package_signature.h"

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/host/plugin_loader.h>

#include <boost/test/unit_test.hpp>

#include <set>
#include <sstream>

using namespace aotiplug;
using namespace aotiplug::triton;
using namespace aotiplug_test;
using nlohmann::json;

namespace {

// A package like the suite's dynamic_batch fixture: x float32 [-1 (1..64), 16] -> [-1, 8].
PackageSignature batchable() {
  PackageSignature s;
  s.package = "m.pt2";
  s.device_type = "cpu";
  s.inputs.push_back({"x", c10::ScalarType::Float, {-1, 16}, {1, 16}, {64, 16}});
  s.outputs.push_back({"y", c10::ScalarType::Float, {-1, 8}, {0, 8}, {-1, 8}});
  s.batchable = true;
  s.batch_min = 1;
  s.batch_max = 64;
  return s;
}

// A static one: tokens int64 [2, 6], scale float32 [] -> float16 [2].
PackageSignature fixed() {
  PackageSignature s;
  s.package = "s.pt2";
  s.device_type = "cpu";
  s.inputs.push_back({"tokens", c10::ScalarType::Long, {2, 6}, {2, 6}, {2, 6}});
  s.inputs.push_back({"scale", c10::ScalarType::Float, {}, {}, {}});
  s.outputs.push_back({"out", c10::ScalarType::Half, {2}, {2}, {2}});
  s.not_batchable = "input 'tokens' has a static first dimension (2)";
  return s;
}

std::string refusal(const json& config, const PackageSignature& s, const ModelParameters& p = {}) {
  try {
    checkConfig(config, s, p);
  } catch (const Error& e) {
    BOOST_TEST((e.code() == StatusCode::kInvalidArgument));
    return e.what();
  }
  return "accepted";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(completion)

BOOST_AUTO_TEST_CASE(two_lines_become_a_batching_config) {
  std::vector<std::string> notes;
  const json c = autoCompleteConfig({{"name", "m"}, {"backend", "aotiplug"}}, batchable(), {}, notes);
  BOOST_TEST(c["max_batch_size"] == 64);
  BOOST_TEST(c.contains("dynamic_batching"));
  BOOST_TEST(c["input"][0]["name"] == "x");
  BOOST_TEST(c["input"][0]["data_type"] == "TYPE_FP32");
  BOOST_TEST(c["input"][0]["dims"] == json::array({16}));
  BOOST_TEST(c["output"][0]["dims"] == json::array({8}));
  BOOST_TEST(notes.size() == 4u);
  const ServingConfig served = checkConfig(c, batchable(), {});
  BOOST_TEST(served.max_batch_size == 64);
  BOOST_TEST(served.inputs.size() == 1u);
}

BOOST_AUTO_TEST_CASE(an_unbounded_batch_takes_default_max_batch_size) {
  PackageSignature s = batchable();
  s.batch_max = -1;
  std::vector<std::string> notes;
  AutoCompleteOptions o;
  o.default_max_batch_size = 7;
  BOOST_TEST(autoCompleteConfig({{"name", "m"}}, s, o, notes)["max_batch_size"] == 7);
}

BOOST_AUTO_TEST_CASE(what_the_config_states_is_kept) {
  std::vector<std::string> notes;
  AutoCompleteOptions explicit_zero;
  explicit_zero.max_batch_size_explicit = true;
  const json c = autoCompleteConfig({{"name", "m"}, {"max_batch_size", 0}}, batchable(), explicit_zero, notes);
  BOOST_TEST(c["max_batch_size"] == 0);
  BOOST_TEST(!c.contains("dynamic_batching"));
  BOOST_TEST(c["input"][0]["dims"] == json::array({-1, 16}));  // the batch is an ordinary dimension
  const json d = autoCompleteConfig({{"name", "m"}, {"max_batch_size", 8}}, batchable(), {}, notes);
  BOOST_TEST(d["max_batch_size"] == 8);
  BOOST_TEST(!d.contains("dynamic_batching"));  // batching without the dynamic batcher, as written
}

BOOST_AUTO_TEST_CASE(static_packages_get_full_shapes_and_scalars_a_reshape) {
  std::vector<std::string> notes;
  const json c = autoCompleteConfig({{"name", "s"}}, fixed(), {}, notes);
  BOOST_TEST(c.value("max_batch_size", 0) == 0);
  BOOST_TEST(c["input"][0]["dims"] == json::array({2, 6}));
  BOOST_TEST(c["input"][0]["data_type"] == "TYPE_INT64");
  BOOST_TEST(c["input"][1]["dims"] == json::array({1}));
  BOOST_TEST(c["input"][1]["reshape"]["shape"] == json::array());
  BOOST_TEST(c["output"][0]["data_type"] == "TYPE_FP16");
  const ServingConfig served = checkConfig(c, fixed(), {});
  BOOST_TEST(served.inputs[1].scalar);
}

BOOST_AUTO_TEST_CASE(explicit_max_batch_size_is_told_from_the_file) {
  BOOST_TEST(configTextSets("backend: \"aotiplug\"\nmax_batch_size: 0\n", "max_batch_size"));
  BOOST_TEST(configTextSets("max_batch_size:8", "max_batch_size"));
  BOOST_TEST(!configTextSets("backend: \"aotiplug\"\n# max_batch_size: 0\n", "max_batch_size"));
  BOOST_TEST(!configTextSets("name: \"max_batch_size: 3\"", "max_batch_size"));
  BOOST_TEST(!configTextSets("dynamic_batching { max_batch_size: 3 }", "max_batch_size"));
  BOOST_TEST(!configTextSets("my_max_batch_size: 3", "max_batch_size"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(contradictions)

BOOST_AUTO_TEST_CASE(each_is_refused_naming_the_field) {
  const json base = {{"name", "m"}, {"max_batch_size", 8},
                     {"input", {{{"name", "x"}, {"data_type", "TYPE_FP32"}, {"dims", {16}}}}},
                     {"output", {{{"name", "y"}, {"data_type", "TYPE_FP32"}, {"dims", {8}}}}}};
  BOOST_TEST(refusal(base, batchable()) == "accepted");
  auto with = [&](const json::json_pointer& at, const json& value) {
    json c = base;
    c[at] = value;
    return refusal(c, batchable());
  };
  BOOST_TEST(with("/input/0/data_type"_json_pointer, "TYPE_FP16").find("input[0] 'x' data_type TYPE_FP16, but the package's input is float32 (TYPE_FP32)") != std::string::npos);
  BOOST_TEST(with("/input/0/data_type"_json_pointer, "TYPE_STRING").find("not BYTES") != std::string::npos);
  BOOST_TEST(with("/input/0/dims"_json_pointer, json::array({17})).find("input[0] 'x' dims[0] is 17, but the package fixes it to 16") != std::string::npos);
  BOOST_TEST(with("/input/0/dims"_json_pointer, json::array({-1})).find("dims[0] is -1, but the package fixes it to 16") != std::string::npos);
  BOOST_TEST(with("/input/0/dims"_json_pointer, json::array({4, 16})).find("has 2 dimension(s); the package's tensor has 1") != std::string::npos);
  BOOST_TEST(with("/input/0/name"_json_pointer, "z").find("input[0] 'z' is not an input of the package (its inputs: x)") != std::string::npos);
  BOOST_TEST(with("/output/0/name"_json_pointer, "w").find("output[0] 'w' is not an output") != std::string::npos);
  BOOST_TEST(with("/output/0/data_type"_json_pointer, "TYPE_INT64").find("output[0] 'y' data_type TYPE_INT64") != std::string::npos);
  BOOST_TEST(with("/max_batch_size"_json_pointer, -1).find("max_batch_size is -1") != std::string::npos);
  json no_input = base;
  no_input["input"] = json::array();
  BOOST_TEST(refusal(no_input, batchable()).find("input lacks 'x'") != std::string::npos);
  BOOST_TEST(refusal(base, fixed()).find("max_batch_size is 8, but package s.pt2 cannot batch: input 'tokens' has a static first dimension (2)") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(dims_inside_a_dynamic_range_narrow_it) {
  PackageSignature s = batchable();
  s.inputs[0] = {"x", c10::ScalarType::Float, {-1, -1}, {1, 4}, {64, 32}};
  json c = {{"name", "m"}, {"max_batch_size", 8},
            {"input", {{{"name", "x"}, {"data_type", "TYPE_FP32"}, {"dims", {16}}}}},
            {"output", {{{"name", "y"}, {"data_type", "TYPE_FP32"}, {"dims", {-1}}}}}};
  BOOST_TEST(refusal(c, s) == "accepted");
  c["input"][0]["dims"] = {33};
  BOOST_TEST(refusal(c, s).find("dims[0] is 33, outside the package's range 4..32") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(instance_kinds_must_match_the_package_s_device) {
  json c = {{"name", "m"}, {"input", {{{"name", "x"}, {"data_type", "TYPE_FP32"}, {"dims", {-1, 16}}}}},
            {"output", {{{"name", "y"}, {"data_type", "TYPE_FP32"}, {"dims", {-1, 8}}}}},
            {"instance_group", {{{"name", "g"}, {"kind", "KIND_CPU"}, {"count", 2}},
                                {{"name", "h"}, {"kind", "KIND_MODEL"}, {"count", 1}}}}};
  const ServingConfig served = checkConfig(c, batchable(), {});
  BOOST_TEST(served.instances_per_device.at("cpu") == 3);  // one executor, three model instances
  c["instance_group"][0]["kind"] = "KIND_GPU";
  c["instance_group"][0]["gpus"] = {1};
  BOOST_TEST(refusal(c, batchable()).find("instance_group[0] 'g' is KIND_GPU (device cuda:1), but package m.pt2 was compiled for cpu") != std::string::npos);
  PackageSignature gpu = batchable();
  gpu.device_type = "cuda";
  c["instance_group"] = {{{"name", "g"}, {"kind", "KIND_GPU"}, {"count", 1}, {"gpus", {0, 1}}},
                         {{"name", "h"}, {"kind", "KIND_MODEL"}, {"count", 2}}};
  const ServingConfig on_gpu = checkConfig(c, gpu, {});
  BOOST_TEST(on_gpu.instances_per_device.at("cuda:0") == 1);
  BOOST_TEST(on_gpu.instances_per_device.at("cuda:1") == 1);
  BOOST_TEST(on_gpu.instances_per_device.at("cuda") == 2);
  c["instance_group"] = {{{"name", "c"}, {"kind", "KIND_CPU"}, {"count", 1}}};
  BOOST_TEST(refusal(c, gpu).find("is KIND_CPU (device cpu), but package m.pt2 was compiled for cuda") != std::string::npos);
  ModelParameters p;
  p.device = "cuda:1";
  c["instance_group"] = {{{"name", "h"}, {"kind", "KIND_MODEL"}, {"count", 1}}};
  BOOST_TEST(checkConfig(c, gpu, p).instances_per_device.at("cuda:1") == 1);
}

BOOST_AUTO_TEST_CASE(parameters_are_read_and_unknown_ones_refused) {
  const json c = {{"name", "m"},
                  {"parameters",
                   {{"device", {{"string_value", "cuda:1"}}},
                    {"run_single_threaded", {{"string_value", "true"}}},
                    {"op_libraries", {{"string_value", "libops.so, /abs/libmore.so"}}},
                    {"initial_weights", {{"string_value", "w.pt"}}}}}};
  const ModelParameters p = parseParameters(c, "/repo/m");
  BOOST_TEST(p.device == "cuda:1");
  BOOST_TEST(p.run_single_threaded);
  BOOST_TEST(p.op_libraries == (std::vector<std::string>{"/repo/m/libops.so", "/abs/libmore.so"}), boost::test_tools::per_element());
  BOOST_TEST(p.initial_weights == "/repo/m/w.pt");
  expectError([&] { parseParameters({{"name", "m"}, {"parameters", {{"devcie", {{"string_value", "cpu"}}}}}}, "/r"); },
              StatusCode::kInvalidArgument, {"'devcie' is not a parameter of the aotiplug backend"});
  expectError([&] { parseParameters({{"name", "m"}, {"parameters", {{"device", {{"string_value", "tpu:0"}}}}}}, "/r"); },
              StatusCode::kInvalidArgument, {"parameters 'device'", "tpu:0"});
  expectError([&] { parseParameters({{"name", "m"}, {"parameters", {{"run_single_threaded", {{"string_value", "maybe"}}}}}}, "/r"); },
              StatusCode::kInvalidArgument, {"expected true or false"});
}

BOOST_AUTO_TEST_CASE(docs_list_exactly_the_parameters_the_backend_reads) {
  // The refusal of an unknown key lists the known ones; docs/serving.md's table, the same.
  std::string known;
  try {
    parseParameters({{"name", "m"}, {"parameters", {{"no_such_key", {{"string_value", ""}}}}}}, "/r");
  } catch (const Error& e) {
    known = e.what();
  }
  const std::string marker = "(its parameters: ";
  BOOST_TEST_REQUIRE(known.find(marker) != std::string::npos, known);
  known = known.substr(known.find(marker) + marker.size());
  known = known.substr(0, known.find(')'));
  std::set<std::string> code;
  std::stringstream list(known);
  for (std::string key; std::getline(list, key, ',');) code.insert(key.substr(key.find_first_not_of(' ')));
  // Table rows of the parameters section: "| `key` |" or "| `key`, `key2` |".
  const std::string doc = readFile(sourceRoot() / "docs" / "serving.md");
  const std::size_t from = doc.find("Parameters (`parameters {");
  BOOST_TEST_REQUIRE(from != std::string::npos);
  std::set<std::string> documented;
  std::stringstream lines(doc.substr(from, doc.find("\n## ", from) - from));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| `", 0) != 0) continue;
    const std::string cell = line.substr(2, line.find(" |", 2) - 2);
    for (std::size_t open = cell.find('`'); open != std::string::npos;) {
      const std::size_t close = cell.find('`', open + 1);
      BOOST_TEST_REQUIRE(close != std::string::npos, "an unclosed ` in docs/serving.md: " << line);
      documented.insert(cell.substr(open + 1, close - open - 1));
      open = cell.find('`', close + 1);
    }
  }
  BOOST_TEST(documented == code, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(input_and_output_names_rename_the_package_s_tensors) {
  auto config = [](const std::string& inputs, const std::string& outputs) {
    json c = {{"name", "m"}, {"parameters", json::object()}};
    if (!inputs.empty()) c["parameters"]["input_names"] = {{"string_value", inputs}};
    if (!outputs.empty()) c["parameters"]["output_names"] = {{"string_value", outputs}};
    return c;
  };
  const json c = config(" image ", "logits");
  PackageSignature s = batchable();
  nameTensors(c, parseParameters(c, "/r"), s);
  BOOST_TEST(s.inputs[0].name == "image");
  BOOST_TEST(s.outputs[0].name == "logits");
  // The completed config and the served one carry the new names; the package's are gone.
  std::vector<std::string> notes;
  const json done = autoCompleteConfig(c, s, {}, notes);
  BOOST_TEST(done["input"][0]["name"] == "image");
  const ServingConfig served = checkConfig(done, s, parseParameters(c, "/r"));
  BOOST_TEST(served.findInput("image") != nullptr);
  BOOST_TEST(served.findInput("x") == nullptr);
  // Only outputs renamed: inputs keep the package's names.
  PackageSignature only_outputs = batchable();
  const json o = config("", "logits");
  nameTensors(o, parseParameters(o, "/r"), only_outputs);
  BOOST_TEST(only_outputs.inputs[0].name == "x");

  // A config that still lists the package's name is told about the renaming.
  json stale = c;
  stale["input"] = json::array({{{"name", "x"}, {"data_type", "TYPE_FP32"}, {"dims", {16}}}});
  stale["max_batch_size"] = 8;
  expectError([&] { checkConfig(stale, s, parseParameters(c, "/r")); }, StatusCode::kInvalidArgument,
              {"input[0] 'x' is not an input of the package (its inputs: image)",
               "parameters 'input_names' serves x as image"});

  const json two = config("image,mask", "");
  expectError([&] { PackageSignature t = batchable(); nameTensors(two, parseParameters(two, "/r"), t); },
              StatusCode::kInvalidArgument,
              {"config of model 'm'", "'input_names' names 2 (image, mask)", "m.pt2 has 1 input (x)"});
  expectError([&] { parseParameters(config("a,,b", ""), "/r"); }, StatusCode::kInvalidArgument,
              {"'input_names' is 'a,,b': a name is empty"});
  expectError([&] { parseParameters(config("image,", ""), "/r"); }, StatusCode::kInvalidArgument,
              {"'input_names' is 'image,': a name is empty"});
  expectError([&] { parseParameters(config("", "y, y"), "/r"); }, StatusCode::kInvalidArgument,
              {"'output_names' names 'y' twice"});
  expectError([&] { parseParameters(config(" , ", ""), "/r"); }, StatusCode::kInvalidArgument,
              {"'input_names'", "a name is empty"});
}

BOOST_AUTO_TEST_CASE(a_control_model_config_is_completed_and_checked) {
  const json c = controlModelConfig({{"name", "control"}}, true);
  BOOST_TEST(c["input"].size() == 5u);
  BOOST_TEST(c["input"][2]["optional"] == true);
  BOOST_TEST(c["output"][2]["data_type"] == "TYPE_INT64");
  expectError([&] { controlModelConfig({{"name", "control"}}, false); }, StatusCode::kInvalidArgument,
              {"input lacks 'action'"});
  expectError([&] { controlModelConfig({{"name", "control"}, {"max_batch_size", 4}}, true); },
              StatusCode::kInvalidArgument, {"max_batch_size is 4"});
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(runs_cover_the_batch_within_the_package_s_range) {
  auto sizes = [](const std::vector<PlannedRun>& runs) {
    std::vector<std::int64_t> out;
    for (const auto& r : runs) out.push_back(r.size + r.padding * 1000);
    return out;
  };
  BOOST_TEST(sizes(planRuns(10, 1, 64)) == (std::vector<std::int64_t>{10}), boost::test_tools::per_element());
  BOOST_TEST(sizes(planRuns(100, 1, 64)) == (std::vector<std::int64_t>{50, 50}), boost::test_tools::per_element());
  BOOST_TEST(sizes(planRuns(40, 2, 15)) == (std::vector<std::int64_t>{14, 13, 13}), boost::test_tools::per_element());
  BOOST_TEST(sizes(planRuns(9, 4, 8)) == (std::vector<std::int64_t>{5, 4}), boost::test_tools::per_element());
  // A split whose runs fall below the range (8..12 over 13 rows): each is padded.
  BOOST_TEST(sizes(planRuns(13, 8, 12)) == (std::vector<std::int64_t>{7 + 1000, 6 + 2000}), boost::test_tools::per_element());
  BOOST_TEST(sizes(planRuns(1, 2, 15)) == (std::vector<std::int64_t>{1 + 1000}), boost::test_tools::per_element());
  BOOST_TEST(sizes(planRuns(7, 1, -1)) == (std::vector<std::int64_t>{7}), boost::test_tools::per_element());
  const auto runs = planRuns(40, 2, 15);
  BOOST_TEST(runs[1].offset == 14);
  BOOST_TEST(runs[2].offset == 27);
}

// Signatures of real packages, read through the executor and the CPU plugin.
using BuildPlugins = aotiplug_test::BuildPlugins;
BOOST_TEST_GLOBAL_FIXTURE(BuildPlugins);

BOOST_AUTO_TEST_SUITE(probe)

PackageSignature signatureOf(const std::string& fixture, std::vector<std::string>* notices = nullptr) {
  AOTIDelegateExecutor executor((fixturesDir() / (fixture + ".pt2")).string());
  return probeSignature(executor, [&](const std::string& n) {
    if (notices) notices->push_back(n);
  });
}

BOOST_AUTO_TEST_CASE(a_plain_package_with_a_dynamic_batch) {
  const PackageSignature s = signatureOf("plain_conv_dynamic");
  BOOST_TEST(s.device_type == "cpu");
  BOOST_TEST_REQUIRE(s.batchable, s.not_batchable);
  BOOST_TEST(s.batch_min == 2);  // what the generated code checks
  BOOST_TEST(s.batch_max == 15);
  BOOST_TEST(s.outputs_unknown.empty());
  BOOST_TEST_REQUIRE(s.outputs.size() == 1u);
  BOOST_TEST((s.outputs[0].dtype == c10::ScalarType::Float));
  BOOST_TEST(s.outputs[0].dims == (std::vector<std::int64_t>{-1, 10}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_packaged_model_keeps_its_recorded_outputs) {
  const PackageSignature s = signatureOf("dynamic_batch");
  BOOST_TEST_REQUIRE(s.batchable, s.not_batchable);
  BOOST_TEST(s.batch_min == 1);
  BOOST_TEST(s.batch_max == 64);
  BOOST_TEST(s.inputs[0].name == "x");
  BOOST_TEST(s.outputs[0].dims == (std::vector<std::int64_t>{-1, 8}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(static_packages_do_not_batch_and_say_why) {
  const PackageSignature s = signatureOf("multi_io");
  BOOST_TEST(!s.batchable);
  BOOST_TEST(s.not_batchable == "input 'x' has a static first dimension (4)");
  BOOST_TEST_REQUIRE(s.outputs.size() == 4u);
  BOOST_TEST((s.outputs[3].dtype == c10::ScalarType::Half));
  // Served under other names, the reason names the input as the config does.
  AOTIDelegateExecutor executor((fixturesDir() / "multi_io.pt2").string());
  const json renames = {{"name", "m"}, {"parameters", {{"input_names", {{"string_value", "tokens, index, z"}}}}}};
  const PackageSignature renamed = probeSignature(
      executor, [](const std::string&) {},
      [&](PackageSignature& sig) { nameTensors(renames, parseParameters(renames, "/r"), sig); });
  BOOST_TEST(renamed.not_batchable == "input 'tokens' has a static first dimension (4)");
  BOOST_TEST(renamed.inputs[0].package_name == "x");
  const PackageSignature plain = signatureOf("plain_tokens");
  BOOST_TEST(!plain.batchable);
  BOOST_TEST(plain.outputs_unknown.empty());
  for (const auto& o : plain.outputs) BOOST_TEST((o.dtype != c10::ScalarType::Undefined));
}

BOOST_AUTO_TEST_SUITE_END()
