// SPDX-License-Identifier: BSD-3-Clause
// A test plugin for a device type no LibTorch backend is registered for: PrivateUse1. Its
// runner runs the model on the CPU underneath, but says it serves "privateuseone:0", so a
// host has to deal with a device it cannot move tensors to.
#include <aotiplug/plugin/plugin.h>
#include <aotiplug/runner/model_library_runner.h>

namespace {

class ForeignDeviceRunner final : public aotiplug::ModelContainerRunner {
 public:
  ForeignDeviceRunner(const std::string& model_so_path, std::size_t num_models, const std::string& device_str,
                      const std::string& cubin_dir, bool run_single_threaded)
      : inner_(model_so_path, num_models, "cpu", cubin_dir, run_single_threaded), info_(inner_.info()) {
    info_.device = device_str;
  }
  const aotiplug::ModelInfo& info() const noexcept override { return info_; }
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, void* stream) override {
    return inner_.run(inputs, stream);
  }
  aotiplug::ConstantMap extract_constants_map(bool use_inactive) const override {
    return inner_.extract_constants_map(use_inactive);
  }
  void update_constant_buffer(const aotiplug::ConstantMap& c, bool use_inactive, bool validate,
                              bool user_managed) override {
    inner_.update_constant_buffer(c, use_inactive, validate, user_managed);
  }
  void run_const_fold(bool use_inactive, void* stream) override { inner_.run_const_fold(use_inactive, stream); }
  void swap_constant_buffer() override { inner_.swap_constant_buffer(); }
  void free_inactive_constant_buffer() override { inner_.free_inactive_constant_buffer(); }
  void update_constants_from_blob(const void* blob, std::size_t size) override {
    inner_.update_constants_from_blob(blob, size);
  }

 private:
  aotiplug::ModelLibraryRunner inner_;
  aotiplug::ModelInfo info_;
};

}  // namespace

AOTIPLUG_PLUGIN("foreign-device", "0.0.1", c10::DeviceType::PrivateUse1);
AOTIPLUG_REGISTER_RUNNER(c10::DeviceType::PrivateUse1, ForeignDeviceRunner);
