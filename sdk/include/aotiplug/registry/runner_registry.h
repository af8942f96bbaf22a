// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::RunnerRegistry — the process-wide registry of model-container runners.
//
// Keyed by c10::DeviceType, with nativert's creator arguments
// (model_so_path, num_models, device_str, cubin_dir, run_single_threaded). The one instance
// lives in libaotiplug, which the host and every plugin link, so there is exactly one
// registry per process however plugins are loaded.
//
// Plugins fill it with AOTIPLUG_REGISTER_RUNNER (plugin.h); hosts and executors call
// createRunner(). Thread safety: as TypedRegistry (fully thread-safe).

#include <aotiplug/detail/export.h>
#include <aotiplug/plugin/runner_abi.h>
#include <aotiplug/registry/runner_handle.h>
#include <aotiplug/registry/typed_registry.h>

#include <c10/core/DeviceType.h>

#include <cstddef>
#include <memory>
#include <string>

namespace aotiplug {

template <>
struct RegistryKeyTraits<c10::DeviceType> {
  static std::string name(c10::DeviceType type) {
    return "device type '" + c10::DeviceTypeName(type, /*lower_case=*/true) + "'";
  }
};

using RunnerRegistry = TypedRegistry<c10::DeviceType, RunnerAbi,
                                     const std::string& /*model_so_path*/,
                                     std::size_t /*num_models*/,
                                     const std::string& /*device_str*/,
                                     const std::string& /*cubin_dir*/,
                                     bool /*run_single_threaded*/>;

// The process-wide runner registry.
AOTIPLUG_API RunnerRegistry& runnerRegistry() noexcept;

// Creates a runner for the model library at model_so_path with the registration that
// serves device_str's device type. Throws Error(kNotFound) listing the registered device
// types when none serves it, or the plugin's own error (with its name) when it fails.
AOTIPLUG_API std::unique_ptr<ModelContainerRunner> createRunner(
    const std::string& model_so_path, std::size_t num_models, const std::string& device_str,
    const std::string& cubin_dir, bool run_single_threaded);

// Same, for an explicitly chosen device type (the executor's "caller names another").
AOTIPLUG_API std::unique_ptr<ModelContainerRunner> createRunner(
    c10::DeviceType device_type, const std::string& model_so_path, std::size_t num_models,
    const std::string& device_str, const std::string& cubin_dir, bool run_single_threaded);

}  // namespace aotiplug
