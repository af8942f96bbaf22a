// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Reading a model's configuration from Triton, and giving it back completed.
// Thread safety: Triton's (ModelSetConfig only inside ModelInitialize).

#include "triton_api.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace aotiplug::triton {

// aotiplug::triton::ModelIdentity — which model Triton is loading, and where it lives.
struct ModelIdentity {
  std::string name;
  std::uint64_t version = 0;
  std::string directory;  // <repository>/<model>
};

ModelIdentity modelIdentity(TRITONBACKEND_Model* model);

// The model's configuration (config version 1) as JSON.
nlohmann::json readModelConfig(TRITONBACKEND_Model* model);
// Gives Triton the completed configuration (only inside ModelInitialize).
void setModelConfig(TRITONBACKEND_Model* model, const nlohmann::json& config);
// Whether Triton asks backends to complete configurations (not --disable-auto-complete-config).
bool autoCompleteRequested(TRITONBACKEND_Model* model);

// The text of <directory>/config.pbtxt; empty when there is none (a config given with a
// load request instead).
std::string configText(const std::string& directory);

}  // namespace aotiplug::triton
