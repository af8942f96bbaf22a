// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::ModelContainerRunner — runs one AOTInductor-compiled model.
//
// This is the interface plugin authors implement (usually by deriving from
// ModelLibraryRunner, which implements it over the model library's C ABI) and the one the
// host and the executor use. Its methods mirror torch::inductor::AOTIModelContainerRunner,
// so code written against upstream's runner reads the same.
//
// Constant buffers: the model keeps two constant buffers, "active" (used by run()) and
// "inactive". New weights go into the inactive buffer (update_constant_buffer with
// use_inactive=true), are folded there (run_const_fold(true)) and become active with
// swap_constant_buffer(). A ConstantMap passed *in* (update_constant_buffer) is keyed by
// AOTInductor constant *names* (ModelInfo::constants[i].name), not module FQNs; the one
// extract_constants_map returns is keyed by original FQNs, as upstream's.
//
// Ownership: a runner owns its loaded model. Tensors passed in are only borrowed for the
// call, except with user_managed=true, where the runner keeps references to them for as
// long as they are part of a constant buffer.
//
// Thread safety (what every implementation must provide): run() may be called from many
// threads at once (at most num_models run in parallel, the others wait) unless the runner
// was created with run_single_threaded, in which case runs are serialized. The constant
// buffer calls may be made while other threads call run(); implementations serialize them
// against each other and against run() where the model library requires it.
//
// Errors: every method throws aotiplug::Error whose message names the model library and
// what was expected. Across the plugin boundary the host sees the same errors, converted
// to values and back (runner_abi.h).

#include <aotiplug/runner/model_info.h>

#include <ATen/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace aotiplug {

// AOTInductor constant name -> tensor.
using ConstantMap = std::unordered_map<std::string, at::Tensor>;

// aotiplug::ModelContainerRunner
class ModelContainerRunner {
 public:
  virtual ~ModelContainerRunner() = default;

  // What the loaded model says about itself; fixed for the runner's lifetime.
  virtual const ModelInfo& info() const noexcept = 0;

  // Runs the model. stream_handle is the device stream to run on (a cudaStream_t for
  // CUDA); nullptr means the device's current stream.
  virtual std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs,
                                      void* stream_handle = nullptr) = 0;

  // The constants of one buffer, keyed by original FQN (folded constants are left out),
  // as upstream's extract_constants_map. Needs RunnerFeatures::extract_constants_map.
  virtual ConstantMap extract_constants_map(bool use_inactive) const = 0;

  // Loads constants into the active or inactive buffer. Each tensor must have the
  // constant's dtype, sizes and device (checked: a mismatch is refused naming the
  // constant, and the buffer is left as it was). validate_full_update requires every
  // constant for which ConstantInfo::requiredInFullUpdate() holds. With user_managed the
  // tensors are used in place instead of copied (RunnerFeatures::user_managed_constant_buffer).
  virtual void update_constant_buffer(const ConstantMap& constants, bool use_inactive,
                                      bool validate_full_update,
                                      bool user_managed = false) = 0;

  // Runs constant folding on one buffer (on stream_handle, as run()).
  virtual void run_const_fold(bool use_inactive, void* stream_handle = nullptr) = 0;

  // Makes the inactive buffer active. Refused when the inactive buffer was never loaded.
  virtual void swap_constant_buffer() = 0;

  // Releases the inactive buffer's memory (RunnerFeatures::free_inactive_constant_buffer).
  virtual void free_inactive_constant_buffer() = 0;

  // Loads the active buffer from a weights blob written by AOTInductor
  // (package_constants_on_disk_format="binary_blob"). Needs RunnerFeatures::constants_blob.
  virtual void update_constants_from_blob(const void* blob, std::size_t size) = 0;

  // ---- conveniences, derived from the above ----

  std::size_t num_inputs() const noexcept { return info().numInputs(); }
  std::size_t num_outputs() const noexcept { return info().numOutputs(); }

  // {in_spec, out_spec}, as upstream's get_call_spec().
  std::vector<std::string> get_call_spec() const { return {info().in_spec, info().out_spec}; }

  void update_inactive_constant_buffer(const ConstantMap& constants) {
    update_constant_buffer(constants, /*use_inactive=*/true, /*validate_full_update=*/true);
  }

  std::unordered_map<std::string, std::string> getConstantNamesToOriginalFQNs() const {
    std::unordered_map<std::string, std::string> out;
    for (const ConstantInfo& c : info().constants) out.emplace(c.name, c.original_fqn);
    return out;
  }

  // Values are c10::ScalarType numbers, as upstream's getConstantNamesToDtypes().
  std::unordered_map<std::string, std::int32_t> getConstantNamesToDtypes() const {
    std::unordered_map<std::string, std::int32_t> out;
    for (const ConstantInfo& c : info().constants) {
      out.emplace(c.name, static_cast<std::int32_t>(c.dtype));
    }
    return out;
  }
};

}  // namespace aotiplug
