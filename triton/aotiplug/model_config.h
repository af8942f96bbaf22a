// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::triton model configuration: a Triton model config (the JSON form of
// config.pbtxt) completed from a package's signature, and checked against it.
//
//  - autoCompleteConfig fills what the config leaves out: inputs and outputs (names, data
//    types, dims with -1 for dynamic ones), max_batch_size (when the package can batch and
//    the config does not set it: the package's largest batch, or default-max-batch-size
//    when it has none) and then dynamic_batching. What the config states is kept.
//  - checkConfig refuses a config that contradicts the package, naming the field
//    ("input[0] 'x' dims[1]"), and returns what the backend serves by.
//  - parameters: package_model, device, run_single_threaded, op_libraries,
//    initial_weights, input_names, output_names; weights_control and weights_dir for a
//    weights control model. Unknown keys are refused (a misspelt parameter would otherwise
//    do nothing).
//  - nameTensors gives the package's inputs and outputs the names input_names and
//    output_names list (a plain package's are AOTInductor's graph names: arg4_1, output0).
//
// Thread safety: pure functions on values.

#include "data_types.h"
#include "package_signature.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace aotiplug::triton {

// aotiplug::triton::ModelParameters — the config's `parameters` this backend reads.
struct ModelParameters {
  std::string package_model;             // the model inside a multi-model package
  std::string device;                    // the device of KIND_MODEL instances
  bool run_single_threaded = false;      // the model library's single-threaded run
  std::vector<std::string> op_libraries; // loaded (trust-checked) before the package opens
  std::string initial_weights;           // a weights file (torch.save'd state dict) to start with
  bool weights_control = false;          // this model controls other models' weights
  std::string weights_dir;               // where a control model may read weights files
  std::vector<std::string> input_names;  // served names of the package's inputs, in its order
  std::vector<std::string> output_names; // served names of the package's outputs, in its order
};

// Parses `parameters`; relative paths are resolved against `model_directory`.
ModelParameters parseParameters(const nlohmann::json& config, const std::string& model_directory);

// Renames the signature's inputs and outputs to the parameters' input_names and
// output_names (where given); refuses a list of the wrong length, naming the package's.
void nameTensors(const nlohmann::json& config, const ModelParameters& parameters, PackageSignature& signature);

// aotiplug::triton::AutoCompleteOptions
struct AutoCompleteOptions {
  int default_max_batch_size = 4;  // Triton's default-max-batch-size
  // Whether config.pbtxt writes max_batch_size itself (Triton's JSON always carries the
  // field, 0 when unset: only the file tells an explicit 0 from none).
  bool max_batch_size_explicit = false;
};

// The config completed from the signature; `notes` says what was filled in.
nlohmann::json autoCompleteConfig(nlohmann::json config, const PackageSignature& signature,
                                  const AutoCompleteOptions& options, std::vector<std::string>& notes);

// Whether config.pbtxt text sets `field` at its top level (comments ignored).
bool configTextSets(const std::string& pbtxt, const std::string& field);

// aotiplug::triton::ServedTensor — one configured input or output.
struct ServedTensor {
  std::string name;
  DataType type;
  std::vector<std::int64_t> dims;  // as configured: without the batch dimension when batching
  std::size_t index = 0;           // the package's input or output index
  bool scalar = false;             // the package's tensor is rank 0 (per batch item): config dims [1]
};

// aotiplug::triton::ServingConfig — what the backend serves a model by.
struct ServingConfig {
  std::string model;  // Triton's model name
  int max_batch_size = 0;
  std::vector<ServedTensor> inputs;   // one per package input, in the package's order
  std::vector<ServedTensor> outputs;  // the configured outputs
  // How many instances run on each device ("cpu", "cuda:0", or the package's "cuda").
  std::map<std::string, int> instances_per_device;
  ModelParameters parameters;

  const ServedTensor* findInput(const std::string& name) const noexcept;
  const ServedTensor* findOutput(const std::string& name) const noexcept;
};

// The device an instance of `kind` ("KIND_CPU", "KIND_GPU", "KIND_MODEL", "KIND_AUTO") on
// `device_id` runs on; throws Error(kIncompatible) naming both when the package cannot
// run there. `where` names the instance or group in messages.
std::string instanceDevice(const std::string& kind, std::int64_t device_id, const PackageSignature& signature,
                           const ModelParameters& parameters, const std::string& where);

// Checks `config` against the package; throws Error(kInvalidArgument) naming the field.
ServingConfig checkConfig(const nlohmann::json& config, const PackageSignature& signature,
                          const ModelParameters& parameters);

// The config JSON for a weights control model (max_batch_size 0, the control inputs and
// outputs, one CPU instance unless the config says otherwise); checked and completed.
nlohmann::json controlModelConfig(nlohmann::json config, bool auto_complete);

}  // namespace aotiplug::triton
