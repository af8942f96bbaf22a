// SPDX-License-Identifier: BSD-3-Clause
#include "weights_control.h"

#include "model_config.h"
#include "model_config_io.h"
#include "served_model.h"
#include "timestamps.h"
#include "triton_error.h"

#include <aotiplug/error.h>

#include <cstring>
#include <filesystem>
#include <map>

namespace aotiplug::triton {
namespace {

namespace fs = std::filesystem;

// The bytes of a request input (its buffers, in host memory), by name.
std::map<std::string, std::pair<TRITONSERVER_DataType, std::string>> readInputs(TRITONBACKEND_Request* request) {
  std::map<std::string, std::pair<TRITONSERVER_DataType, std::string>> out;
  std::uint32_t count = 0;
  throwIfFailed(TRITONBACKEND_RequestInputCount(request, &count), "reading the request's inputs");
  for (std::uint32_t i = 0; i < count; ++i) {
    TRITONBACKEND_Input* input = nullptr;
    throwIfFailed(TRITONBACKEND_RequestInputByIndex(request, i, &input), "reading a request input");
    const char* name = nullptr;
    TRITONSERVER_DataType type = TRITONSERVER_TYPE_INVALID;
    std::uint32_t buffers = 0;
    throwIfFailed(TRITONBACKEND_InputProperties(input, &name, &type, nullptr, nullptr, nullptr, &buffers),
                  "reading a request input");
    std::string bytes;
    for (std::uint32_t b = 0; b < buffers; ++b) {
      const void* buffer = nullptr;
      std::uint64_t size = 0;
      TRITONSERVER_MemoryType memory = TRITONSERVER_MEMORY_CPU;
      std::int64_t id = 0;
      throwIfFailed(TRITONBACKEND_InputBuffer(input, b, &buffer, &size, &memory, &id), "reading an input buffer");
      if (memory == TRITONSERVER_MEMORY_GPU) {
        throw Error(StatusCode::kInvalidArgument, std::string("input '") + name + "' is in GPU memory; send it from the host");
      }
      bytes.append(static_cast<const char*>(buffer), size);
    }
    out[name != nullptr ? name : ""] = {type, std::move(bytes)};
  }
  return out;
}

// The first element of a BYTES tensor (each element: a 4-byte little-endian length, then
// the bytes).
std::string firstString(const std::string& name, const std::pair<TRITONSERVER_DataType, std::string>& input) {
  if (input.first != TRITONSERVER_TYPE_BYTES) {
    throw Error(StatusCode::kInvalidArgument, "input '" + name + "' must be BYTES, not " + apiTypeName(input.first));
  }
  const std::string& b = input.second;
  if (b.size() < 4) throw Error(StatusCode::kInvalidArgument, "input '" + name + "' holds no string");
  const std::uint32_t length = static_cast<std::uint8_t>(b[0]) | static_cast<std::uint8_t>(b[1]) << 8 |
                               static_cast<std::uint8_t>(b[2]) << 16 |
                               static_cast<std::uint32_t>(static_cast<std::uint8_t>(b[3])) << 24;
  if (b.size() - 4 < length) throw Error(StatusCode::kInvalidArgument, "input '" + name + "' is cut short");
  return b.substr(4, length);
}

void addOutput(TRITONBACKEND_Response* response, const char* name, TRITONSERVER_DataType type,
               const std::string& bytes) {
  const std::int64_t shape[1] = {1};
  TRITONBACKEND_Output* output = nullptr;
  throwIfFailed(TRITONBACKEND_ResponseOutput(response, &output, name, type, shape, 1), std::string("making output ") + name);
  void* buffer = nullptr;
  TRITONSERVER_MemoryType memory = TRITONSERVER_MEMORY_CPU;
  std::int64_t id = 0;
  throwIfFailed(TRITONBACKEND_OutputBuffer(output, &buffer, bytes.size(), &memory, &id),
                std::string("allocating output ") + name);
  if (memory == TRITONSERVER_MEMORY_GPU) throw Error(StatusCode::kInternal, "Triton gave a GPU buffer for a control output");
  std::memcpy(buffer, bytes.data(), bytes.size());
}

std::string bytesElement(const std::string& s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  std::string out{static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff), static_cast<char>((n >> 16) & 0xff),
                  static_cast<char>((n >> 24) & 0xff)};
  return out + s;
}

// Whether `path` lies inside `directory` (both resolved, symlinks followed).
bool inside(const fs::path& path, const fs::path& directory) {
  std::error_code path_error, directory_error;
  const fs::path p = fs::weakly_canonical(path, path_error);
  const fs::path d = fs::weakly_canonical(directory, directory_error);
  if (path_error || directory_error || p.empty() || d.empty()) return false;  // unknown: not inside
  auto pi = p.begin();
  for (auto di = d.begin(); di != d.end(); ++di, ++pi) {
    if (di->empty()) continue;  // a trailing separator
    if (pi == p.end() || *pi != *di) return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<WeightsControl> WeightsControl::open(TRITONBACKEND_Model* model, BackendState& backend) {
  auto control = std::make_unique<WeightsControl>();
  control->backend_ = &backend;
  const ModelIdentity id = modelIdentity(model);
  control->name_ = id.name;
  nlohmann::json config = readModelConfig(model);
  control->weights_dir_ = parseParameters(config, id.directory).weights_dir;
  const bool complete = autoCompleteRequested(model);
  nlohmann::json completed = controlModelConfig(config, complete);
  if (complete && completed != config) setModelConfig(model, completed);
  logInfo("model '" + id.name + "': a weights control model; weights files are read from " +
          (control->weights_dir_.empty() ? std::string("each served model's directory") : control->weights_dir_));
  return control;
}

void WeightsControl::execute(TRITONBACKEND_ModelInstance* instance, TRITONBACKEND_Request** requests,
                             std::uint32_t count) noexcept {
  for (std::uint32_t r = 0; r < count; ++r) {
    const std::uint64_t start = nowNs();
    TRITONBACKEND_Request* request = requests[r];
    TRITONBACKEND_Response* response = nullptr;
    TritonErrorPtr error;
    if (TRITONSERVER_Error* e = TRITONBACKEND_ResponseNew(&response, request)) {
      logIfFailed(e, "model '" + name_ + "': cannot create a response");
      response = nullptr;
    }
    std::string target_name = "?";
    try {
      const auto inputs = readInputs(request);
      auto get = [&](const char* name) -> const std::pair<TRITONSERVER_DataType, std::string>* {
        auto it = inputs.find(name);
        return it == inputs.end() ? nullptr : &it->second;
      };
      if (get("action") == nullptr || get("model") == nullptr) {
        throw Error(StatusCode::kInvalidArgument, "a request to weights control model '" + name_ +
                                                      "' needs inputs 'action' and 'model'");
      }
      const std::string action = firstString("action", *get("action"));
      target_name = firstString("model", *get("model"));
      std::uint64_t version = 0;
      if (const auto* v = get("model_version")) {
        if (v->first != TRITONSERVER_TYPE_INT64 || v->second.size() < 8) {
          throw Error(StatusCode::kInvalidArgument, "input 'model_version' must be one INT64");
        }
        std::int64_t value = 0;
        std::memcpy(&value, v->second.data(), 8);
        version = static_cast<std::uint64_t>(value);
      }
      std::shared_ptr<ServedModel> target = backend_->findModel(target_name, version);
      if (!target) {
        throw Error(StatusCode::kNotFound, "no model '" + target_name + "'" +
                                               (version != 0 ? " version " + std::to_string(version) : std::string()) +
                                               " is served by the aotiplug backend");
      }
      const std::string label = get("version") != nullptr ? firstString("version", *get("version")) : std::string();
      auto weightsFile = [&]() {
        if (get("weights") == nullptr) {
          throw Error(StatusCode::kInvalidArgument, "action '" + action + "' needs input 'weights' (a file on the server)");
        }
        const fs::path dir = weights_dir_.empty() ? fs::path(target->modelDirectory()) : fs::path(weights_dir_);
        fs::path file = firstString("weights", *get("weights"));
        if (file.is_relative()) file = dir / file;
        if (!inside(file, dir)) {
          throw Error(StatusCode::kInvalidArgument,
                      "weights file " + file.string() + " is outside " + dir.string() +
                          ", where this control model reads weights (set its parameters weights_dir)");
        }
        return file.string();
      };
      WeightsStatus status;
      std::string message;
      const std::string what = "model '" + target_name + "' version " + std::to_string(target->version());
      if (action == "process") {
        status = target->processWeights(weightsFile(), label);
        message = "processed weights '" + status.pending_version + "' for " + what + ": commit to make them active";
      } else if (action == "commit") {
        status = target->commitWeights();
        message = "weights '" + status.active_version + "' active in " + what;
      } else if (action == "swap") {
        status = target->swapWeights(weightsFile(), label);
        message = "weights '" + status.active_version + "' active in " + what;
      } else if (action == "abort") {
        status = target->abortWeights();
        message = "no processed weights pending for " + what;
      } else if (action == "status") {
        status = target->weightsStatus();
        message = what + " serves weights '" + status.active_version + "'" +
                  (status.pending_version.empty() ? std::string() : "; '" + status.pending_version + "' processed");
      } else {
        throw Error(StatusCode::kInvalidArgument,
                    "action '" + action + "': expected process, commit, swap, abort or status");
      }
      if (response != nullptr) {
        addOutput(response, "status", TRITONSERVER_TYPE_BYTES, bytesElement(message));
        addOutput(response, "active_version", TRITONSERVER_TYPE_BYTES, bytesElement(status.active_version));
        const auto commits = static_cast<std::int64_t>(status.commits);
        addOutput(response, "commits", TRITONSERVER_TYPE_INT64, std::string(reinterpret_cast<const char*>(&commits), 8));
      }
    } catch (...) {
      error.reset(errorFromCurrentException("weights control of model '" + target_name + "'"));
      logWarning(TRITONSERVER_ErrorMessage(error.get()));
    }
    if (response != nullptr) {
      logIfFailed(TRITONBACKEND_ResponseSend(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, error.get()),
                  "model '" + name_ + "': sending a response");
    }
    const std::uint64_t end = nowNs();
    logIfFailed(TRITONBACKEND_ModelInstanceReportStatistics(instance, request, error == nullptr, start, start, end, end),
                "model '" + name_ + "': reporting statistics");
    logIfFailed(TRITONBACKEND_RequestRelease(request, TRITONSERVER_REQUEST_RELEASE_ALL),
                "model '" + name_ + "': releasing a request");
  }
}

}  // namespace aotiplug::triton
