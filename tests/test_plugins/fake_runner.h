// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// A runner that needs no model library, for testing the plugin machinery: run() returns
// each input times the factor given as the model path ("x3" -> times 3).

#include <aotiplug/error.h>
#include <aotiplug/runner/runner.h>

#include <ATen/ops/mul.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace aotiplug_test {

class FakeRunner final : public aotiplug::ModelContainerRunner {
 public:
  FakeRunner(const std::string& model_so_path, std::size_t num_models,
             const std::string& device_str, const std::string& /*cubin_dir*/,
             bool run_single_threaded) {
#ifdef TEST_PLUGIN_CREATOR_THROWS
    throw std::runtime_error("this test plugin refuses to create runners");
#endif
    if (model_so_path.rfind("x", 0) != 0) {
      throw aotiplug::Error(aotiplug::StatusCode::kInvalidArgument,
                            "fake model path '" + model_so_path + "' must look like x<factor>");
    }
    factor_ = std::stod(model_so_path.substr(1));
    info_.model_path = model_so_path;
    info_.device = device_str;
    info_.num_models = num_models;
    info_.run_single_threaded = run_single_threaded;
    info_.input_names = {"x"};
    info_.output_names = {"y"};
  }

  const aotiplug::ModelInfo& info() const noexcept override { return info_; }

  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, void*) override {
    if (inputs.size() != 1) {
      throw aotiplug::Error(aotiplug::StatusCode::kInvalidArgument,
                            "fake runner takes 1 input, got " + std::to_string(inputs.size()));
    }
    return {at::mul(inputs[0], factor_)};
  }
  aotiplug::ConstantMap extract_constants_map(bool) const override { return {}; }
  void update_constant_buffer(const aotiplug::ConstantMap&, bool, bool, bool) override {}
  void run_const_fold(bool, void*) override {}
  void swap_constant_buffer() override {}
  void free_inactive_constant_buffer() override {}
  void update_constants_from_blob(const void*, std::size_t) override {
    throw aotiplug::Error(aotiplug::StatusCode::kFailedPrecondition, "no blob support");
  }

 private:
  double factor_ = 1.0;
  aotiplug::ModelInfo info_;
};

}  // namespace aotiplug_test
