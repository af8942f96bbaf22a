// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// CheckedCpuRunner — runs AOTInductor CPU models, refusing NaN and infinity.
//
// A compiled model happily turns a NaN in its input into NaNs everywhere; this runner
// names the offending input instead. It derives from the SDK's ModelLibraryRunner, which
// implements the whole runner contract over the model library's C ABI, and adds:
//   - a device check in the constructor (this runner serves "cpu" only);
//   - input (and optionally output) checks in run().
//
// Threading, per method (the host calls these through the plugin boundary; exceptions are
// turned into error values by the SDK before they leave the plugin):
//   constructor / destructor   one thread, no runs in flight
//   run()                      any number of threads at once
//   constant-buffer methods    inherited: serialized by ModelLibraryRunner

#include "options.h"

#include <aotiplug/error.h>
#include <aotiplug/registry/runner_registry.h>
#include <aotiplug/runner/device.h>
#include <aotiplug/runner/model_library_runner.h>

#include <ATen/ops/isfinite.h>

#include <string>
#include <vector>

namespace checked_cpu {

class CheckedCpuRunner final : public aotiplug::ModelLibraryRunner {
 public:
  CheckedCpuRunner(const std::string& model_so_path, std::size_t num_models,
                   const std::string& device_str, const std::string& cubin_dir,
                   bool run_single_threaded)
      : ModelLibraryRunner(model_so_path, num_models, cpuOnly(device_str), cubin_dir,
                           run_single_threaded) {}

  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs,
                              void* stream_handle = nullptr) override {
    refuseNonFinite(inputs, "input");
    std::vector<at::Tensor> outputs = ModelLibraryRunner::run(inputs, stream_handle);
    if (options().check_outputs) refuseNonFinite(outputs, "output");
    return outputs;
  }

 private:
  static const std::string& cpuOnly(const std::string& device_str) {
    if (aotiplug::parseDevice(device_str).type() != c10::DeviceType::CPU) {
      throw aotiplug::Error(aotiplug::StatusCode::kInvalidArgument,
                            "checked-cpu serves device 'cpu' only, got '" + device_str + "'");
    }
    return device_str;
  }

  void refuseNonFinite(const std::vector<at::Tensor>& tensors, const char* what) const {
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const at::Tensor& t = tensors[i];
      if (!t.defined() || !at::isFloatingType(t.scalar_type())) continue;
      if (!at::isfinite(t).all().item<bool>()) {
        throw aotiplug::Error(aotiplug::StatusCode::kInvalidArgument,
                              std::string(what) + " " + std::to_string(i) + " of model " +
                                  info().model_path + " contains NaN or infinity");
      }
    }
  }
};

}  // namespace checked_cpu
