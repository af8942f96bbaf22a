// SPDX-License-Identifier: BSD-3-Clause
// Unit tests of tensor specs (tensor_spec.h): parsing what the packager writes, refusing
// malformed specs naming the problem, matching tensors (dtype, device, rank, static sizes,
// dynamic ranges), layouts and strides, and the messages that name the input.
#define BOOST_TEST_MODULE tensor_spec
#include <boost/test/unit_test.hpp>

#include <aotiplug/executor/tensor_spec.h>

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

namespace {

using aotiplug::TensorSpec;

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const aotiplug::Error& e) {
    BOOST_TEST((e.code() == aotiplug::StatusCode::kInvalidArgument));
    return e.what();
  }
  BOOST_ERROR("no error");
  return {};
}

bool has(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return true;
  BOOST_TEST_MESSAGE("'" << part << "' not in: " << text);
  return false;
}

std::vector<TensorSpec> parse(const std::string& json) { return aotiplug::parseTensorSpecs(json, "the specs"); }

}  // namespace

BOOST_AUTO_TEST_CASE(specs_are_parsed_with_their_defaults) {
  const auto specs = parse(R"([
    {"name": "x", "dtype": "float32", "sizes": [-1, 16], "min": [1, 16], "max": [64, 16]},
    {"name": "idx", "dtype": "int64", "sizes": [4], "device": "cuda"},
    {"name": "img", "dtype": "bfloat16", "sizes": [2, 3, 8, 8], "layout": "channels_last"},
    {"dtype": "float16", "sizes": [4, 6], "layout": "strided", "strides": [1, 4]},
    {"dtype": "bool", "sizes": [3], "layout": "strided"}
  ])");
  BOOST_REQUIRE(specs.size() == 5u);
  BOOST_TEST(specs[0].name == "x");
  BOOST_TEST((specs[0].dtype == c10::kFloat));
  BOOST_TEST(specs[0].describe() == "Float [-1 (1..64), 16]");
  BOOST_TEST((specs[0].layout == TensorSpec::Layout::kContiguous));
  BOOST_TEST((specs[1].min == specs[1].sizes && specs[1].max == specs[1].sizes));
  BOOST_TEST((specs[1].device == c10::DeviceType::CUDA));
  BOOST_TEST(specs[2].layoutName() == std::string("channels_last"));
  BOOST_TEST((specs[3].strides == std::vector<std::int64_t>{1, 4}));
  // A strided spec without strides (an older packager): only density is known.
  BOOST_TEST((specs[4].strides == std::vector<std::int64_t>{-1}));
  BOOST_TEST(!aotiplug::specStridesFixed(specs[4]));
  BOOST_TEST(aotiplug::describeStrides({768, -1, 3}) == "[768, ?, 3]");
  BOOST_TEST((aotiplug::scalarTypeFromName("half") == c10::kHalf));
  BOOST_TEST(!aotiplug::scalarTypeFromName("float8").has_value());
}

BOOST_AUTO_TEST_CASE(malformed_specs_are_refused_naming_the_problem) {
  BOOST_TEST(has(errorOf([] { parse("{}"); }), "the specs is malformed: expected a JSON list"));
  BOOST_TEST(has(errorOf([] { parse("not json"); }), "expected a JSON list"));
  BOOST_TEST(has(errorOf([] { parse(R"([{"dtype": "float32"}])"); }), "each entry needs dtype and sizes"));
  BOOST_TEST(has(errorOf([] { parse(R"([{"dtype": "float8", "sizes": [1]}])"); }), "unknown dtype 'float8'"));
  BOOST_TEST(has(errorOf([] { parse(R"([{"name": "a", "dtype": "int8", "sizes": [1, 2], "min": [1]}])"); }),
                 "min/max do not match the rank of 'a'"));
  BOOST_TEST(has(errorOf([] { parse(R"([{"dtype": "int8", "sizes": [1], "device": "toaster"}])"); }),
                 "unknown device 'toaster'"));
  BOOST_TEST(has(errorOf([] { parse(R"([{"dtype": "int8", "sizes": [1], "layout": "tiled"}])"); }),
                 "unknown layout 'tiled'"));
  BOOST_TEST(has(errorOf([] { parse(R"([{"name": "s", "dtype": "int8", "sizes": [1], "strides": [1, 1]}])"); }),
                 "strides do not match the rank of 's'"));
  BOOST_TEST(has(errorOf([] { parse(R"([{"dtype": "int8", "sizes": "4"}])"); }), "a field has the wrong type"));
  BOOST_TEST(has(errorOf([] { parse(R"([{"name": "m", "dtype": "int8", "sizes": [-1], "symbols": ["s0", "s1"]}])"); }),
                 "symbols do not match the rank of 'm'"));
  BOOST_TEST(has(errorOf([] { parse(R"([{"name": "m", "dtype": "int8", "sizes": [4], "symbols": ["s0"]}])"); }),
                 "dimension 0 of 'm' is static (4) but has symbol 's0'"));
}

BOOST_AUTO_TEST_CASE(dimensions_with_one_symbol_are_bound_to_the_first) {
  const auto specs = parse(R"([
    {"name": "ids", "dtype": "int64", "sizes": [-1, -1], "symbols": ["s0", "s1"]},
    {"name": "old", "dtype": "int64", "sizes": [-1]},
    {"name": "mask", "dtype": "bool", "sizes": [-1, 4, -1], "symbols": ["s0", "", "s1"]},
    {"name": "pair", "dtype": "int64", "sizes": [-1, -1], "symbols": ["s2", "s2"]}
  ])");
  const auto shared = aotiplug::sharedSizes(specs);
  BOOST_REQUIRE(shared.size() == 3u);
  BOOST_TEST((shared[0].input == 2u && shared[0].dim == 0u && shared[0].bound_input == 0u && shared[0].bound_dim == 0u));
  BOOST_TEST((shared[1].input == 2u && shared[1].dim == 2u && shared[1].bound_input == 0u && shared[1].bound_dim == 1u));
  BOOST_TEST((shared[2].input == 3u && shared[2].dim == 1u && shared[2].bound_input == 3u && shared[2].bound_dim == 0u));
  BOOST_TEST(specs[1].symbols.empty());  // not recorded: nothing is bound
  const auto l = at::TensorOptions().dtype(at::kLong);
  const std::vector<at::Tensor> good = {at::zeros({2, 5}, l), at::zeros({7}, l),
                                        at::zeros({2, 4, 5}, at::kBool), at::zeros({3, 3}, l)};
  aotiplug::checkSharedSizes(good, specs, shared, "input");
  auto bad = good;
  bad[3] = at::zeros({3, 2}, l);
  BOOST_TEST(has(errorOf([&] { aotiplug::checkSharedSizes(bad, specs, shared, "input"); }),
                 "input 3 ('pair') has size 2 in dimension 1, but input 3 ('pair') has 3 in dimension 0"));
}

BOOST_AUTO_TEST_CASE(tensors_are_matched_and_mismatches_name_the_input) {
  const auto specs = parse(R"([{"name": "x", "dtype": "float32", "sizes": [-1, 16], "min": [2, 16], "max": [8, 16]}])");
  const TensorSpec& x = specs[0];
  BOOST_TEST(aotiplug::tensorMatchesSpec(at::zeros({2, 16}), x));
  BOOST_TEST(aotiplug::tensorMatchesSpec(at::zeros({8, 16}), x));
  BOOST_TEST(!aotiplug::tensorMatchesSpec(at::zeros({1, 16}), x));
  BOOST_TEST(!aotiplug::tensorMatchesSpec(at::zeros({9, 16}), x));
  BOOST_TEST(!aotiplug::tensorMatchesSpec(at::zeros({4, 15}), x));
  BOOST_TEST(!aotiplug::tensorMatchesSpec(at::zeros({4, 16}, at::kDouble), x));
  BOOST_TEST(!aotiplug::tensorMatchesSpec(at::zeros({4, 16, 1}), x));
  BOOST_TEST(!aotiplug::tensorMatchesSpec(at::Tensor(), x));

  auto message = [&](const at::Tensor& t) {
    return std::string(aotiplug::tensorSpecMismatch(t, x, 3, "input").what());  // the Error is a temporary
  };
  BOOST_TEST(has(message(at::zeros({9, 16})),
                 "input 3 ('x'): expected Float [-1 (2..8), 16] on cpu, got Float [9, 16] on cpu (dimension 0 is 9)"));
  BOOST_TEST(has(message(at::zeros({4, 16}, at::kInt)), "got Int [4, 16] on cpu"));
  BOOST_TEST(has(message(at::Tensor()), "got an undefined tensor"));
  BOOST_TEST(has(errorOf([&] { aotiplug::checkTensorAgainstSpec(at::zeros({4, 1}), x, 0, "input"); }),
                 "input 0 ('x')"));
}

// Tensors without dense memory are refused with an error, never a crash (a nested
// tensor's sizes() throws, and tensorMatchesSpec is noexcept); lazily conjugated or negated
// views are given to the model with their values resolved.
BOOST_AUTO_TEST_CASE(nested_sparse_and_lazy_views_are_refused_or_resolved) {
  const auto specs = parse(R"([{"name": "x", "dtype": "float32", "sizes": [2, 3]},
                               {"name": "z", "dtype": "complex64", "sizes": [3]}])");
  const at::Tensor nested = at::_nested_tensor_from_tensor_list({at::zeros({2, 3}), at::zeros({1, 3})});
  BOOST_TEST(!aotiplug::tensorMatchesSpec(nested, specs[0]));
  BOOST_TEST(has(errorOf([&] { aotiplug::checkTensorAgainstSpec(nested, specs[0], 0, "input"); }),
                 "input 0 ('x'): expected Float [2, 3] on cpu, got a nested tensor of Float on cpu"));
  const at::Tensor sparse = at::ones({2, 3}).to_sparse();
  BOOST_TEST(!aotiplug::tensorMatchesSpec(sparse, specs[0]));
  BOOST_TEST(has(errorOf([&] { aotiplug::checkTensorAgainstSpec(sparse, specs[0], 0, "input"); }),
                 "got a Sparse tensor of Float on cpu (the model reads a dense, strided one)"));
  const at::Tensor z = at::randn({3}, at::kComplexFloat);
  for (const at::Tensor& lazy : {z.conj(), at::_neg_view(z)}) {
    BOOST_REQUIRE((lazy.is_conj() || lazy.is_neg()));
    BOOST_TEST(!aotiplug::tensorHasSpecLayout(lazy, specs[1]));
    const at::Tensor given = aotiplug::checkTensorAgainstSpec(lazy, specs[1], 1, "input");
    BOOST_TEST((!given.is_conj() && !given.is_neg()));
    BOOST_TEST(at::equal(given, lazy.resolve_conj().resolve_neg()));
  }
}

BOOST_AUTO_TEST_CASE(layouts_are_checked_and_converted_only_where_fully_known) {
  const auto specs = parse(R"([
    {"name": "c", "dtype": "float32", "sizes": [4, 6]},
    {"name": "cl", "dtype": "float32", "sizes": [2, 3, 4, 4], "layout": "channels_last"},
    {"name": "s", "dtype": "float32", "sizes": [4, 6], "layout": "strided", "strides": [1, 4]},
    {"name": "d", "dtype": "float32", "sizes": [-1, 6], "min": [1, 6], "max": [-1, 6], "layout": "strided", "strides": [-1, 1]}
  ])");
  const at::Tensor plain = at::arange(24, at::kFloat).reshape({4, 6});
  const at::Tensor transposed = at::arange(24, at::kFloat).reshape({6, 4}).t();  // strides [1, 4]

  BOOST_TEST(aotiplug::tensorHasSpecLayout(plain, specs[0]));
  BOOST_TEST(!aotiplug::tensorHasSpecLayout(transposed, specs[0]));
  at::Tensor got = aotiplug::checkTensorAgainstSpec(transposed, specs[0], 0, "input");
  BOOST_TEST(got.is_contiguous());
  BOOST_TEST(at::equal(got, transposed));
  BOOST_TEST(has(errorOf([&] { aotiplug::checkTensorAgainstSpec(transposed, specs[0], 0, "input", false); }),
                 "input 0 ('c'): the model was compiled for a contiguous tensor, got strides [1, 4] "
                 "(layout conversion is switched off)"));

  const at::Tensor image = at::rand({2, 3, 4, 4});
  BOOST_TEST(!aotiplug::tensorHasSpecLayout(image, specs[1]));
  got = aotiplug::checkTensorAgainstSpec(image, specs[1], 1, "input");
  BOOST_TEST(got.is_contiguous(at::MemoryFormat::ChannelsLast));
  BOOST_TEST(at::equal(got, image));

  // Strides the code fixed: they must match, or the tensor is copied into them.
  BOOST_TEST(aotiplug::tensorHasSpecLayout(transposed, specs[2]));
  BOOST_TEST(!aotiplug::tensorHasSpecLayout(plain, specs[2]));
  got = aotiplug::checkTensorAgainstSpec(plain, specs[2], 2, "input");
  BOOST_TEST((got.strides().vec() == std::vector<std::int64_t>{1, 4}));
  BOOST_TEST(at::equal(got, plain));

  // Strides the code computes from dynamic sizes: any dense tensor with the fixed ones
  // passes; one that is not cannot be converted and is refused.
  BOOST_TEST(aotiplug::tensorHasSpecLayout(plain, specs[3]));
  const at::Tensor gappy = at::zeros({4, 12}).slice(1, 0, 12, 2);  // strides [12, 2]
  BOOST_TEST(!aotiplug::tensorHasSpecLayout(gappy, specs[3]));
  BOOST_TEST(has(errorOf([&] { aotiplug::checkTensorAgainstSpec(gappy, specs[3], 3, "input"); }),
                 "input 3 ('d'): the model was compiled for a strided with strides [?, 1] tensor, "
                 "got strides [12, 2] (strides marked ? depend on its dynamic sizes"));
  // Size-1 dimensions are never read with their stride.
  const auto one = parse(R"([{"dtype": "float32", "sizes": [1, 6], "layout": "strided", "strides": [6, 1]}])");
  BOOST_TEST(aotiplug::tensorHasSpecLayout(at::zeros({6, 1}).t(), one[0]));
}
