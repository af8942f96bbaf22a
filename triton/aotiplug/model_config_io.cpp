// SPDX-License-Identifier: BSD-3-Clause
#include "model_config_io.h"

#include "triton_error.h"

#include <aotiplug/error.h>

#include <fstream>
#include <iterator>

namespace aotiplug::triton {

ModelIdentity modelIdentity(TRITONBACKEND_Model* model) {
  ModelIdentity id;
  const char* name = nullptr;
  throwIfFailed(TRITONBACKEND_ModelName(model, &name), "reading the model's name");
  id.name = name != nullptr ? name : "";
  throwIfFailed(TRITONBACKEND_ModelVersion(model, &id.version), "reading the version of model '" + id.name + "'");
  TRITONBACKEND_ArtifactType type = TRITONBACKEND_ARTIFACT_FILESYSTEM;
  const char* location = nullptr;
  throwIfFailed(TRITONBACKEND_ModelRepository(model, &type, &location),
                "reading the repository of model '" + id.name + "'");
  if (type != TRITONBACKEND_ARTIFACT_FILESYSTEM || location == nullptr) {
    throw Error(StatusCode::kIncompatible, "model '" + id.name + "' is not in a file-system repository");
  }
  id.directory = location;
  return id;
}

nlohmann::json readModelConfig(TRITONBACKEND_Model* model) {
  TRITONSERVER_Message* message = nullptr;
  throwIfFailed(TRITONBACKEND_ModelConfig(model, 1, &message), "reading the model configuration");
  // Ours to delete (unlike the backend configuration's message).
  std::unique_ptr<TRITONSERVER_Message, void (*)(TRITONSERVER_Message*)> owned(message, [](TRITONSERVER_Message* m) {
    logIfFailed(TRITONSERVER_MessageDelete(m), "deleting a model configuration message");
  });
  const char* base = nullptr;
  std::size_t size = 0;
  throwIfFailed(TRITONSERVER_MessageSerializeToJson(message, &base, &size), "serializing the model configuration");
  if (size == 0) return nlohmann::json::object();
  nlohmann::json config = nlohmann::json::parse(base, base + size, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) throw Error(StatusCode::kInternal, "Triton's model configuration is not a JSON object");
  return config;
}

void setModelConfig(TRITONBACKEND_Model* model, const nlohmann::json& config) {
  const std::string text = config.dump();
  TRITONSERVER_Message* message = nullptr;
  throwIfFailed(TRITONSERVER_MessageNewFromSerializedJson(&message, text.data(), text.size()),
                "making the completed model configuration");
  TRITONSERVER_Error* error = TRITONBACKEND_ModelSetConfig(model, 1, message);
  logIfFailed(TRITONSERVER_MessageDelete(message), "deleting the completed model configuration");
  throwIfFailed(error, "setting the completed model configuration");
}

bool autoCompleteRequested(TRITONBACKEND_Model* model) {
  bool requested = false;
  throwIfFailed(TRITONBACKEND_ModelAutoCompleteConfig(model, &requested), "asking whether to complete the config");
  return requested;
}

std::string configText(const std::string& directory) {
  std::ifstream in(directory + "/config.pbtxt", std::ios::binary);
  if (!in) return {};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace aotiplug::triton
