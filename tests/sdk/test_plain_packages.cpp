// SPDX-License-Identifier: BSD-3-Clause
// Packages made by plain torch._inductor.aoti_compile_and_package (the plain_* fixtures):
// the executor knows every input from the model's generated wrapper source, refuses every
// kind of wrong input before the model library sees it, and still matches eager.
#define BOOST_TEST_MODULE plain_packages
#include <boost/test/unit_test.hpp>

#include "../common/fixtures.h"
#include "../common/build_plugins.h"

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/host/plugin_loader.h>
#include <aotiplug/runner/wrapper_source.h>

#include <ATen/ops/empty.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>

namespace {

using aotiplug::AOTIDelegateExecutor;
using aotiplug::ExecutorConfig;
using aotiplug::StatusCode;
using aotiplug::TensorSpec;
using aotiplug_test::expectError;
using aotiplug_test::Fixture;
using aotiplug_test::loadFixture;
namespace fs = std::filesystem;

using BuildPlugins = aotiplug_test::BuildPlugins;
BOOST_TEST_GLOBAL_FIXTURE(BuildPlugins);

ExecutorConfig quiet() {
  ExecutorConfig c;
  c.maxNumConcurrentThreads = 2;
  c.log = [](const std::string&) {};
  return c;
}

std::vector<std::string> plainFixtures() {
  std::vector<std::string> out;
  for (const auto& name : aotiplug_test::fixtureNames()) {
    if (loadFixture(name).plain) out.push_back(name);
  }
  return out;
}

fs::path wrapperSourceOf(const Fixture& f) {
  for (const auto& e : fs::directory_iterator(f.model_dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() > 12 && n.compare(n.size() - 12, 12, ".wrapper.cpp") == 0) return e.path();
  }
  throw std::runtime_error("no wrapper source in " + f.model_dir.string());
}

std::string who(std::size_t i, const TensorSpec& s) {
  return "input " + std::to_string(i) + " ('" + s.name + "')";
}

// A tensor like `t` with another dtype (an integer for a float, a float for the rest).
at::Tensor otherDtype(const at::Tensor& t) {
  return at::isFloatingType(t.scalar_type()) ? t.to(at::kLong) : t.to(at::kFloat);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_wrapper_source_agrees_with_what_the_packager_records) {
  // The packager's specs come from torch.export; the wrapper source from the compiled code.
  for (const std::string& name : aotiplug_test::fixtureNames()) {
    Fixture f = loadFixture(name);
    if (f.plain) continue;
    BOOST_TEST_CONTEXT(name) {
      const auto source = aotiplug::parseWrapperSource(aotiplug_test::readFile(wrapperSourceOf(f)), name);
      const auto& inputs = f.specs.at("inputs");
      BOOST_REQUIRE_EQUAL(source.inputs.size(), inputs.size());
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        const TensorSpec& got = source.inputs[i];
        const auto want = aotiplug::parseTensorSpecs("[" + inputs[i].dump() + "]", name).at(0);
        BOOST_TEST_CONTEXT("input " << i) {
          BOOST_TEST(c10::toString(got.dtype) == c10::toString(want.dtype));
          BOOST_TEST(got.sizes == want.sizes, "sizes");
          BOOST_TEST(got.max == want.max, "upper bounds");
          BOOST_TEST(got.device_type == "cpu");
          BOOST_TEST(got.layoutName() == want.layoutName());
        }
      }
      // Constant shapes, by original FQN, as the packager recorded them from the state dict.
      fs::path metadata = f.so;
      metadata.replace_extension();
      metadata += "_metadata.json";
      const auto constants = nlohmann::json::parse(
          nlohmann::json::parse(aotiplug_test::readFile(metadata)).at("aotiplug.constants").get<std::string>());
      std::size_t compared = 0;
      for (const auto& c : source.constants) {
        if (c.from_folded || !constants.contains(c.original_fqn)) continue;
        BOOST_TEST_CONTEXT(c.original_fqn) {
          const auto want = constants[c.original_fqn]["sizes"].get<std::vector<std::int64_t>>();
          BOOST_TEST(c.sizes == want);
          BOOST_TEST(c10::toString(c.dtype) ==
                     c10::toString(*aotiplug::scalarTypeFromName(constants[c.original_fqn]["dtype"])));
        }
        ++compared;
      }
      BOOST_TEST(compared > 0u);
    }
  }
}

// A damaged or crafted wrapper source is refused naming the line, never read into a
// structure of the size a number in it says.
BOOST_AUTO_TEST_CASE(a_wrapper_source_reading_an_impossible_dimension_is_refused) {
  const std::string source =
      "AOTI_NOINLINE static void check_input_0(\n"
      "    AtenTensorHandle* input_handles) {\n"
      "    ConstantHandle arg0_1 = ConstantHandle(input_handles[0]);\n"
      "    if (arg0_1_size[4000000000000] < 2) {\n"
      "}\n";
  expectError([&] { aotiplug::parseWrapperSource(source, "the wrapper source w.cpp"); },
              StatusCode::kInvalidArgument,
              {"the wrapper source w.cpp: line 4", "reads dimension 4000000000000; tensors have at most 64"});
}

BOOST_AUTO_TEST_CASE(plain_packages_know_every_input_from_their_wrapper_source) {
  const auto names = plainFixtures();
  BOOST_REQUIRE_GE(names.size(), 5u);
  for (const std::string& name : names) {
    BOOST_TEST_CONTEXT(name) {
      Fixture f = loadFixture(name);
      AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
      const auto& model = exec.packagedModel();
      BOOST_TEST(model.metadata.count("aotiplug.inputs") == 0u, "a plain package");
      BOOST_TEST(model.specs_source.rfind("wrapper source ", 0) == 0u, model.specs_source);
      BOOST_REQUIRE_EQUAL(model.inputs.size(), f.inputs.size());
      for (std::size_t i = 0; i < f.inputs.size(); ++i) {
        const TensorSpec& s = model.inputs[i];
        BOOST_TEST_CONTEXT(who(i, s)) {
          BOOST_TEST(s.name == exec.modelInfo().input_names[i]);
          BOOST_TEST(s.dtype == f.inputs[i].scalar_type());
          BOOST_REQUIRE_EQUAL(s.sizes.size(), static_cast<std::size_t>(f.inputs[i].dim()));
          BOOST_TEST(s.strides.size() == s.sizes.size());
          for (std::size_t d = 0; d < s.sizes.size(); ++d) {
            if (s.sizes[d] >= 0) BOOST_TEST(s.sizes[d] == f.inputs[i].size(static_cast<std::int64_t>(d)));
          }
        }
      }
    }
  }
  // What the code was compiled for, read back: a dynamic batch with its range, and the
  // channels-last layout of the example input.
  AOTIDelegateExecutor conv(loadFixture("plain_conv_dynamic").pt2.string(), nullptr, quiet());
  const TensorSpec& x = conv.packagedModel().inputs.at(0);
  BOOST_TEST(x.sizes == (std::vector<std::int64_t>{-1, 3, 16, 16}));
  BOOST_TEST(x.min.at(0) == 2);
  BOOST_TEST(x.max.at(0) > 2);
  BOOST_TEST(x.layoutName() == std::string("channels_last"));
}

BOOST_AUTO_TEST_CASE(every_kind_of_wrong_input_is_refused_naming_the_input) {
  for (const std::string& name : plainFixtures()) {
    Fixture f = loadFixture(name);
    AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
    const auto& specs = exec.packagedModel().inputs;
    const std::size_t n = specs.size();
    const auto with = [&](std::size_t i, at::Tensor t) {
      std::vector<at::Tensor> v = f.inputs;
      v[i] = std::move(t);
      return v;
    };
    BOOST_TEST_CONTEXT(name) {
      // Count.
      std::vector<at::Tensor> fewer(f.inputs.begin(), f.inputs.end() - 1);
      expectError([&] { exec.run(fewer); }, StatusCode::kInvalidArgument,
                  {"takes " + std::to_string(n) + " input(s)", "got " + std::to_string(n - 1)});
      std::vector<at::Tensor> more = f.inputs;
      more.push_back(f.inputs.back());
      expectError([&] { exec.run(more); }, StatusCode::kInvalidArgument,
                  {"got " + std::to_string(n + 1)});
      for (std::size_t i = 0; i < n; ++i) {
        const TensorSpec& s = specs[i];
        const at::Tensor& good = f.inputs[i];
        BOOST_TEST_CONTEXT(who(i, s)) {
          // Dtype.
          expectError([&] { exec.run(with(i, otherDtype(good))); }, StatusCode::kInvalidArgument,
                      {who(i, s), "expected " + std::string(c10::toString(s.dtype))});
          // Rank, one more and one fewer.
          expectError([&] { exec.run(with(i, good.unsqueeze(0))); }, StatusCode::kInvalidArgument,
                      {who(i, s), "expected"});
          if (good.dim() > 0) {
            expectError([&] { exec.run(with(i, good.flatten().select(0, 0))); },
                        StatusCode::kInvalidArgument, {who(i, s)});
          }
          if (good.dim() > 1) {
            // The same elements, flattened: what a read past a buffer came from before.
            expectError([&] { exec.run(with(i, good.reshape({-1}))); }, StatusCode::kInvalidArgument,
                        {who(i, s)});
          }
          for (std::size_t d = 0; d < s.sizes.size(); ++d) {
            auto sizes = good.sizes().vec();
            if (s.sizes[d] >= 0) {
              // A static size off by one.
              sizes[d] = s.sizes[d] + 1;
              expectError([&] { exec.run(with(i, at::zeros(sizes, good.options()))); },
                          StatusCode::kInvalidArgument,
                          {who(i, s), "dimension " + std::to_string(d) + " is " + std::to_string(sizes[d])});
              continue;
            }
            // A dynamic size below and above its range.
            sizes[d] = s.min[d] - 1;
            if (sizes[d] >= 0) {
              expectError([&] { exec.run(with(i, at::zeros(sizes, good.options()))); },
                          StatusCode::kInvalidArgument,
                          {who(i, s), "dimension " + std::to_string(d) + " is " + std::to_string(sizes[d])});
            }
            if (s.max[d] >= 0) {
              sizes[d] = s.max[d] + 1;
              expectError([&] { exec.run(with(i, at::zeros(sizes, good.options()))); },
                          StatusCode::kInvalidArgument,
                          {who(i, s), "dimension " + std::to_string(d) + " is " + std::to_string(sizes[d])});
            }
          }
          // Device.
          const auto meta = at::empty(good.sizes(), good.options().device(at::kMeta));
          expectError([&] { exec.run(with(i, meta)); }, StatusCode::kInvalidArgument,
                      {who(i, s), "on meta"});
          // Undefined.
          expectError([&] { exec.run(with(i, at::Tensor())); }, StatusCode::kInvalidArgument,
                      {who(i, s), "undefined"});
        }
      }
      // The right inputs still give the eager outputs.
      aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, name + " after the refusals");
    }
  }
}

BOOST_AUTO_TEST_CASE(a_layout_the_code_was_not_compiled_for_is_converted_or_refused) {
  // plain_conv_dynamic was compiled for a channels-last input; plain_attention for a
  // contiguous one.
  for (const std::string name : {"plain_conv_dynamic", "plain_attention"}) {
    BOOST_TEST_CONTEXT(name) {
      Fixture f = loadFixture(name);
      const at::Tensor& good = f.inputs.at(0);
      // The same values in the other layout: contiguous for the first, a permuted view
      // for the second.
      const at::Tensor other = name == std::string("plain_conv_dynamic")
                                   ? good.contiguous()
                                   : good.transpose(0, 1).contiguous().transpose(0, 1);
      BOOST_REQUIRE(other.strides() != good.strides());
      {
        AOTIDelegateExecutor exec(f.pt2.string(), nullptr, quiet());
        aotiplug_test::expectCloseToEager(exec.run(std::vector<at::Tensor>{other}), f.outputs,
                                          "converted to the compiled layout");
      }
      ExecutorConfig strict = quiet();
      strict.convertInputLayouts = false;
      AOTIDelegateExecutor exec(f.pt2.string(), nullptr, strict);
      expectError([&] { exec.run(std::vector<at::Tensor>{other}); }, StatusCode::kInvalidArgument,
                  {"input 0 ('" + exec.packagedModel().inputs[0].name + "')", "compiled for a",
                   "got strides"});
      aotiplug_test::expectCloseToEager(exec.run(f.inputs), f.outputs, "in its own layout");
    }
  }
}

BOOST_AUTO_TEST_CASE(strided_specs_check_every_stride) {
  TensorSpec s;
  s.name = "x";
  s.sizes = {4, 6};
  s.min = s.sizes;
  s.max = s.sizes;
  s.layout = TensorSpec::Layout::kStrided;
  s.strides = {1, 4};  // a transposed [6, 4]
  const at::Tensor compiled = at::randn({6, 4}).t();
  const at::Tensor contiguous = compiled.contiguous();
  BOOST_TEST(aotiplug::tensorHasSpecLayout(compiled, s));
  BOOST_TEST(!aotiplug::tensorHasSpecLayout(contiguous, s));
  // Converted into the exact strides when they are all known ...
  const at::Tensor converted = aotiplug::checkTensorAgainstSpec(contiguous, s, 0, "input");
  BOOST_TEST(converted.strides().vec() == (std::vector<std::int64_t>{1, 4}));
  BOOST_TEST(at::equal(converted, contiguous));
  // ... refused when the code computes one of them from a dynamic size.
  s.sizes = {-1, 6};
  s.min = {1, 6};
  s.max = {-1, 6};
  s.strides = {1, -1};
  BOOST_TEST(aotiplug::tensorHasSpecLayout(compiled, s));
  BOOST_TEST(!aotiplug::tensorHasSpecLayout(contiguous, s));
  expectError([&] { aotiplug::checkTensorAgainstSpec(contiguous, s, 0, "input"); },
              StatusCode::kInvalidArgument, {"input 0 ('x')", "strides [1, ?]", "got strides [6, 1]"});
  // A gap the code does not know of: where it computes strides, the tensor must be dense.
  const at::Tensor gappy = at::randn({6, 8}).t().slice(0, 0, 4);  // [4, 6], strides [1, 8]
  BOOST_REQUIRE(gappy.stride(0) == 1);
  BOOST_TEST(!aotiplug::tensorHasSpecLayout(gappy, s));
}
