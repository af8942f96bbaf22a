// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::ModelInfo — what a loaded AOTInductor model says about itself.
//
// A runner fills one ModelInfo when it is created (everything here is fixed for the life
// of the loaded model) and hands out a const reference; the host copies it once, so reading
// it never calls into a plugin.
// Thread safety: immutable after construction.

#include <c10/core/ScalarType.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::ConstantKind — AOTInductor's constant types (aoti_runtime/constant_type.h).
enum class ConstantKind : std::int32_t {
  kUnknown = 0,
  kParameter = 1,
  kBuffer = 2,
  kTensorConstant = 3,
  kFoldedConstant = 4,
};

inline const char* constantKindName(ConstantKind kind) noexcept {
  switch (kind) {
    case ConstantKind::kParameter: return "parameter";
    case ConstantKind::kBuffer: return "buffer";
    case ConstantKind::kTensorConstant: return "tensor constant";
    case ConstantKind::kFoldedConstant: return "folded constant";
    case ConstantKind::kUnknown: break;
  }
  return "unknown";
}

// aotiplug::ConstantInfo — one of the model's constants (weights, buffers, folded values).
struct ConstantInfo {
  std::string name;          // AOTInductor's constant name: the key of constant maps
  std::string original_fqn;  // fully qualified name in the exported module
  c10::ScalarType dtype = c10::ScalarType::Undefined;
  ConstantKind kind = ConstantKind::kUnknown;
  bool from_folded = false;     // produced by constant folding: never supplied by a user
  std::size_t data_size = 0;    // bytes, as the model library reports it
  std::vector<std::int64_t> sizes;  // empty when unknown, and for a 0-d constant

  // Whether a full update must supply this constant. Mirrors AOTInductor's own rule:
  // folded constants, buffers, tensor constants and empty parameters may be left out
  // (they are then taken from the active buffer).
  bool requiredInFullUpdate() const noexcept {
    if (from_folded) return false;
    if (kind == ConstantKind::kBuffer || kind == ConstantKind::kTensorConstant) return false;
    if (kind == ConstantKind::kParameter && data_size == 0) return false;
    return true;
  }
};

// aotiplug::RunnerFeatures — optional parts of the model library ABI this model provides.
// Absent features are refused with an error; they are never called through a null pointer.
struct RunnerFeatures {
  bool run_single_threaded = false;           // AOTInductorModelContainerRunSingleThreaded
  bool free_inactive_constant_buffer = false;  // ...FreeInactiveConstantBuffer
  bool user_managed_constant_buffer = false;   // ...UpdateUserManagedConstantBuffer
  bool extract_constants_map = false;          // ...ExtractConstantsMap
  bool constants_blob = false;                 // ...GetConstantsBlobSize + UpdateConstantsFromBlob
};

// aotiplug::ModelInfo
struct ModelInfo {
  std::string model_path;    // the model library the runner loaded
  std::string device;        // the device string the runner was created for ("cpu", "cuda:0")
  std::size_t num_models = 1;
  bool run_single_threaded = false;
  std::vector<std::string> input_names;   // AOTInductor's names (graph placeholders)
  std::vector<std::string> output_names;
  std::string in_spec;       // serialized pytree specs (AOTInductorModelContainerGetCallSpec)
  std::string out_spec;
  std::vector<ConstantInfo> constants;
  RunnerFeatures features;
  // False for a model compiled without its weights (package_constants_in_so=False): it
  // cannot run until they are loaded (update_constant_buffer or a weights blob).
  bool constants_in_library = true;

  std::size_t numInputs() const noexcept { return input_names.size(); }
  std::size_t numOutputs() const noexcept { return output_names.size(); }

  // The constant named `name`, or nullptr.
  const ConstantInfo* findConstant(const std::string& name) const noexcept {
    for (const ConstantInfo& c : constants) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }
};

}  // namespace aotiplug
