// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::cpu::CpuRunner — runs AOTInductor CPU models.
//
// A ModelLibraryRunner (model_library_runner.h) that accepts only "cpu" device strings and
// refuses models whose code needs CPU features this machine lacks (cpu_features.h): those
// AOTI_CPU_ISA implies, and those its machine code uses.
// num_models model instances run concurrently; run_single_threaded serializes runs on one
// instance. Thread safety: as ModelContainerRunner.

#include <aotiplug/error.h>
#include <aotiplug/registry/runner_registry.h>
#include <aotiplug/runner/cpu_features.h>
#include <aotiplug/runner/device.h>
#include <aotiplug/runner/model_library_runner.h>

#include <string>

namespace aotiplug::cpu {

class CpuRunner final : public ModelLibraryRunner {
 public:
  CpuRunner(const std::string& model_so_path, std::size_t num_models,
            const std::string& device_str, const std::string& cubin_dir,
            bool run_single_threaded)
      : ModelLibraryRunner(model_so_path, num_models, checked(model_so_path, device_str),
                           cubin_dir, run_single_threaded) {}

 private:
  // Runs before the model library is loaded: the device, and the CPU features the model
  // needs (cpu_features.h).
  static const std::string& checked(const std::string& model_so_path,
                                    const std::string& device_str) {
    if (parseDevice(device_str).type() != c10::DeviceType::CPU) {
      throw Error(StatusCode::kInvalidArgument,
                  "the CPU runner serves device 'cpu' only, got '" + device_str + "'");
    }
    if (checkElfImage(model_so_path).empty()) {  // ModelLibrary names what is wrong otherwise
      const auto metadata = ModelLibrary::readMetadata(model_so_path);
      auto isa = metadata.find("AOTI_CPU_ISA");
      checkCpuFeatures(model_so_path, isa != metadata.end() ? isa->second : std::string(), cpuFlags());
    }
    return device_str;
  }
};

}  // namespace aotiplug::cpu
