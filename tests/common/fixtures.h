// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The generated model fixtures (tests/fixtures): real AOTInductor packages with their
// inputs, eager outputs and two sets of weights.

#include "test_support.h"

#include <ATen/Tensor.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/max.h>
#include <ATen/ops/sub.h>
#include <ATen/ops/equal.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/jit/serialization/pickle.h>

#include <map>
#include <string>
#include <vector>

namespace aotiplug_test {

struct Fixture {
  std::string name;
  fs::path pt2;        // the package
  fs::path so;         // its model library, extracted
  fs::path model_dir;  // everything under data/aotinductor/model/, extracted
  std::vector<at::Tensor> inputs, outputs, outputs_b, extra_inputs, extra_outputs;
  std::map<std::string, at::Tensor> weights_a, weights_b;  // by FQN
  nlohmann::json specs;  // the packager's specs; null for a plain package
  // Made by plain torch._inductor.aoti_compile_and_package: no aotiplug metadata, no
  // sample inputs or reference outputs in the package.
  bool plain = false;
};

inline fs::path fixturesDir() { return requireEnv("AOTIPLUG_FIXTURES"); }

inline std::vector<std::string> fixtureNames() {
  std::ifstream in(fixturesDir() / "fixtures.json");
  const auto index = nlohmann::json::parse(in);
  std::vector<std::string> names;
  for (auto it = index.begin(); it != index.end(); ++it) names.push_back(it.key());
  return names;
}

// Where a fixture's weights are: "in_so" (compiled into the library), "host" (nowhere: the
// host supplies them), "pickle_weights" (data/weights/) or "binary_blob" (a blob entry).
inline std::string fixtureWeights(const std::string& name) {
  std::ifstream in(fixturesDir() / "fixtures.json");
  const auto index = nlohmann::json::parse(in);
  return index.at(name).value("weights", std::string("in_so"));
}

inline std::vector<at::Tensor> tensorList(const c10::IValue& v) {
  std::vector<at::Tensor> out;
  for (const auto& item : v.toListRef()) out.push_back(item.toTensor());
  return out;
}

inline std::map<std::string, at::Tensor> tensorDict(const c10::IValue& v) {
  std::map<std::string, at::Tensor> out;
  for (const auto& entry : v.toGenericDict()) {
    out.emplace(entry.key().toStringRef(), entry.value().toTensor());
  }
  return out;
}

inline c10::IValue loadPickle(const fs::path& path) {
  const std::string bytes = readFile(path);
  return torch::jit::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
}

inline Fixture loadFixture(const std::string& name) {
  std::ifstream in(fixturesDir() / "fixtures.json");
  const auto index = nlohmann::json::parse(in);
  const auto& entry = index.at(name);
  Fixture f;
  f.name = name;
  f.pt2 = fixturesDir() / (name + ".pt2");
  f.so = entry.at("so").get<std::string>();
  f.model_dir = f.so.parent_path();
  f.specs = entry.at("specs");
  f.plain = entry.value("plain", false);
  const c10::IValue data = loadPickle(fixturesDir() / (name + ".data.pt"));
  for (const auto& item : data.toGenericDict()) {
    const std::string& key = item.key().toStringRef();
    if (key == "inputs") f.inputs = tensorList(item.value());
    if (key == "outputs") f.outputs = tensorList(item.value());
    if (key == "outputs_b") f.outputs_b = tensorList(item.value());
    if (key == "extra_inputs") f.extra_inputs = tensorList(item.value());
    if (key == "extra_outputs") f.extra_outputs = tensorList(item.value());
    if (key == "weights_a") f.weights_a = tensorDict(item.value());
    if (key == "weights_b") f.weights_b = tensorDict(item.value());
  }
  return f;
}

// Eager vs compiled: tolerances per dtype (integers must be exact).
inline bool closeToEager(const at::Tensor& got, const at::Tensor& want, std::string* why) {
  if (got.scalar_type() != want.scalar_type() || got.sizes() != want.sizes()) {
    std::ostringstream os;
    os << "got " << got.scalar_type() << got.sizes() << ", want " << want.scalar_type()
       << want.sizes();
    *why = os.str();
    return false;
  }
  if (!at::isFloatingType(want.scalar_type())) {
    if (at::equal(got, want)) return true;
    *why = "integer values differ";
    return false;
  }
  double rtol = 1e-4, atol = 1e-5;
  if (want.scalar_type() == at::kBFloat16) rtol = atol = 2e-2;
  if (want.scalar_type() == at::kHalf) rtol = atol = 2e-3;
  if (at::allclose(got.to(at::kDouble), want.to(at::kDouble), rtol, atol)) return true;
  std::ostringstream os;
  os << "max abs difference "
     << at::sub(got.to(at::kDouble), want.to(at::kDouble)).abs().max().item().toDouble();
  *why = os.str();
  return false;
}

inline void expectCloseToEager(const std::vector<at::Tensor>& got,
                               const std::vector<at::Tensor>& want, const std::string& what) {
  BOOST_TEST_CONTEXT(what) {
    BOOST_REQUIRE_EQUAL(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      std::string why;
      BOOST_TEST(closeToEager(got[i], want[i], &why), "output " << i << ": " << why);
    }
  }
}

inline void expectBitIdentical(const std::vector<at::Tensor>& got,
                               const std::vector<at::Tensor>& want, const std::string& what) {
  BOOST_TEST_CONTEXT(what) {
    BOOST_REQUIRE_EQUAL(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      BOOST_TEST((got[i].scalar_type() == want[i].scalar_type() &&
                  got[i].sizes() == want[i].sizes() && at::equal(got[i], want[i])),
                 "output " << i << " is not bit-identical");
    }
  }
}

}  // namespace aotiplug_test
