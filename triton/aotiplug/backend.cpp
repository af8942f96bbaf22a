// SPDX-License-Identifier: BSD-3-Clause
// libtriton_aotiplug: the entry points Triton calls (triton_api.h). Each turns exceptions
// into TRITONSERVER_Errors (guarded) and hands the work to BackendState, ServedModel and
// WeightsControl.

#include "backend_state.h"
#include "model_config.h"
#include "model_config_io.h"
#include "served_model.h"
#include "triton_error.h"
#include "weights_control.h"

#include <aotiplug/error.h>
#include <aotiplug/version.h>

#include <memory>

namespace aotiplug::triton {
namespace {

// The state of one Triton model: a served package, or a weights control model.
struct ModelState {
  std::shared_ptr<ServedModel> served;
  std::unique_ptr<WeightsControl> control;
};

struct InstanceState {
  ModelState* model = nullptr;
  std::shared_ptr<DeviceExecutor> executor;  // served models only
};

void checkApiVersion(const char* api, TRITONSERVER_Error* (*version)(std::uint32_t*, std::uint32_t*),
                     std::uint32_t major, std::uint32_t minor) {
  std::uint32_t have_major = 0, have_minor = 0;
  throwIfFailed(version(&have_major, &have_minor), std::string("reading the ") + api + " API version");
  if (have_major != major || have_minor < minor) {
    throw Error(StatusCode::kIncompatible,
                std::string("the aotiplug backend needs Triton's ") + api + " API " + std::to_string(major) + "." +
                    std::to_string(minor) + " or a later minor; this server has " + std::to_string(have_major) + "." +
                    std::to_string(have_minor));
  }
}

const char* kindName(TRITONSERVER_InstanceGroupKind kind) {
  switch (kind) {
    case TRITONSERVER_INSTANCEGROUPKIND_CPU: return "KIND_CPU";
    case TRITONSERVER_INSTANCEGROUPKIND_GPU: return "KIND_GPU";
    case TRITONSERVER_INSTANCEGROUPKIND_MODEL: return "KIND_MODEL";
    case TRITONSERVER_INSTANCEGROUPKIND_AUTO: break;
  }
  return "KIND_AUTO";
}

BackendState& backendOf(TRITONBACKEND_Model* model) {
  TRITONBACKEND_Backend* backend = nullptr;
  throwIfFailed(TRITONBACKEND_ModelBackend(model, &backend), "finding the model's backend");
  void* state = nullptr;
  throwIfFailed(TRITONBACKEND_BackendState(backend, &state), "reading the backend's state");
  if (state == nullptr) throw Error(StatusCode::kInternal, "the aotiplug backend was not initialized");
  return *static_cast<BackendState*>(state);
}

}  // namespace
}  // namespace aotiplug::triton

using namespace aotiplug::triton;

extern "C" {

TRITONSERVER_Error* TRITONBACKEND_Initialize(TRITONBACKEND_Backend* backend) {
  return guarded("aotiplug backend", [&] {
    checkApiVersion("TRITONBACKEND", TRITONBACKEND_ApiVersion, kBackendApiMajor, kBackendApiMinor);
    checkApiVersion("TRITONSERVER", TRITONSERVER_ApiVersion, kServerApiMajor, kServerApiMinor);
    TRITONSERVER_Message* message = nullptr;  // Triton's: never deleted here
    throwIfFailed(TRITONBACKEND_BackendConfig(backend, &message), "reading the backend config");
    const char* base = nullptr;
    std::size_t size = 0;
    throwIfFailed(TRITONSERVER_MessageSerializeToJson(message, &base, &size), "reading the backend config");
    BackendSettings settings = parseBackendSettings(std::string(base, size), AOTIPLUG_TRITON_DEFAULT_PLUGIN_DIR);
    auto state = std::make_unique<BackendState>(std::move(settings));
    logInfo(std::string("aotiplug ") + AOTIPLUG_VERSION + " backend: plugins from " +
            state->settings().plugin_dir + "; serving " + state->servingSummary());
    throwIfFailed(TRITONBACKEND_BackendSetState(backend, state.get()), "keeping the backend's state");
    state.release();
  });
}

TRITONSERVER_Error* TRITONBACKEND_Finalize(TRITONBACKEND_Backend* backend) {
  return guarded("aotiplug backend", [&] {
    void* state = nullptr;
    throwIfFailed(TRITONBACKEND_BackendState(backend, &state), "reading the backend's state");
    delete static_cast<BackendState*>(state);
  });
}

TRITONSERVER_Error* TRITONBACKEND_GetBackendAttribute(TRITONBACKEND_Backend*, TRITONBACKEND_BackendAttribute* attributes) {
  // A config without instance_group runs one instance where the package was compiled for.
  return guarded("aotiplug backend", [&] {
    throwIfFailed(TRITONBACKEND_BackendAttributeAddPreferredInstanceGroup(
                      attributes, TRITONSERVER_INSTANCEGROUPKIND_MODEL, 1, nullptr, 0),
                  "declaring the default instance group");
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelInitialize(TRITONBACKEND_Model* model) {
  const char* name = nullptr;
  logIfFailed(TRITONBACKEND_ModelName(model, &name), "reading a model's name");
  return guarded(std::string("model '") + (name != nullptr ? name : "?") + "'", [&] {
    BackendState& backend = backendOf(model);
    auto state = std::make_unique<ModelState>();
    const ModelIdentity id = modelIdentity(model);
    if (parseParameters(readModelConfig(model), id.directory).weights_control) {
      state->control = WeightsControl::open(model, backend);
    } else {
      state->served = ServedModel::open(model, backend);
    }
    throwIfFailed(TRITONBACKEND_ModelSetState(model, state.get()), "keeping the model's state");
    state.release();
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelFinalize(TRITONBACKEND_Model* model) {
  return guarded("aotiplug backend", [&] {
    void* state = nullptr;
    throwIfFailed(TRITONBACKEND_ModelState(model, &state), "reading the model's state");
    delete static_cast<ModelState*>(state);
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelInstanceInitialize(TRITONBACKEND_ModelInstance* instance) {
  const char* name = nullptr;
  logIfFailed(TRITONBACKEND_ModelInstanceName(instance, &name), "reading an instance's name");
  const std::string where = std::string("instance '") + (name != nullptr ? name : "?") + "'";
  return guarded(where, [&] {
    TRITONBACKEND_Model* model = nullptr;
    throwIfFailed(TRITONBACKEND_ModelInstanceModel(instance, &model), "finding the instance's model");
    void* model_state = nullptr;
    throwIfFailed(TRITONBACKEND_ModelState(model, &model_state), "reading the model's state");
    auto state = std::make_unique<InstanceState>();
    state->model = static_cast<ModelState*>(model_state);
    if (state->model->served) {
      TRITONSERVER_InstanceGroupKind kind = TRITONSERVER_INSTANCEGROUPKIND_AUTO;
      std::int32_t device_id = 0;
      throwIfFailed(TRITONBACKEND_ModelInstanceKind(instance, &kind), "reading the instance's kind");
      throwIfFailed(TRITONBACKEND_ModelInstanceDeviceId(instance, &device_id), "reading the instance's device");
      const ServedModel& served = *state->model->served;
      const std::string device =
          instanceDevice(kindName(kind), device_id, served.signature(), served.config().parameters, where);
      state->executor = state->model->served->executorFor(device);
      logInfo(where + " of model '" + served.name() + "' runs on " + state->executor->device());
    }
    throwIfFailed(TRITONBACKEND_ModelInstanceSetState(instance, state.get()), "keeping the instance's state");
    state.release();
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelInstanceFinalize(TRITONBACKEND_ModelInstance* instance) {
  return guarded("aotiplug backend", [&] {
    void* state = nullptr;
    throwIfFailed(TRITONBACKEND_ModelInstanceState(instance, &state), "reading the instance's state");
    delete static_cast<InstanceState*>(state);
  });
}

TRITONSERVER_Error* TRITONBACKEND_ModelInstanceExecute(TRITONBACKEND_ModelInstance* instance,
                                                       TRITONBACKEND_Request** requests, const std::uint32_t count) {
  void* raw = nullptr;
  // Before any request is answered: an error here hands them back to Triton, which fails them.
  if (TRITONSERVER_Error* e = TRITONBACKEND_ModelInstanceState(instance, &raw)) return e;
  auto* state = static_cast<InstanceState*>(raw);
  if (state->model->control) {
    state->model->control->execute(instance, requests, count);
  } else {
    state->model->served->execute(instance, *state->executor, requests, count);
  }
  return nullptr;
}

}  // extern "C"
