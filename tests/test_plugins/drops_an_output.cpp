// SPDX-License-Identifier: BSD-3-Clause
// A test plugin with a bug: its CPU runner (the SDK's ModelLibraryRunner) returns one
// output fewer than the model has. Registered at the preferred priority, so that it wins
// over the real CPU plugin in the directory it is staged in.
#include <aotiplug/plugin/plugin.h>
#include <aotiplug/runner/model_library_runner.h>

namespace {

class DroppingRunner final : public aotiplug::ModelLibraryRunner {
 public:
  using ModelLibraryRunner::ModelLibraryRunner;
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, void* stream) override {
    std::vector<at::Tensor> out = ModelLibraryRunner::run(inputs, stream);
    if (!out.empty()) out.pop_back();
    return out;
  }
};

}  // namespace

AOTIPLUG_PLUGIN("drops-an-output", "0.0.1", c10::DeviceType::CPU);
AOTIPLUG_REGISTER_RUNNER(c10::DeviceType::CPU, DroppingRunner, aotiplug::kPriorityPreferred);
