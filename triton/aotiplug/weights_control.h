// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::triton::WeightsControl — a model of the aotiplug backend that changes the
// weights of the models it serves while they serve, without reloading them.
//
// A model whose config sets parameters { key: "weights_control" value: { string_value:
// "true" } } holds no package: its requests name an action, a served model, and for
// `process`/`swap` a weights file on the server (a torch.save'd state dict):
//   inputs   action (BYTES: process | commit | swap | abort | status), model (BYTES),
//            weights (BYTES, optional), version (BYTES, optional: the label responses of
//            the model will carry; default the file's name), model_version (INT64,
//            optional; default the highest loaded)
//   outputs  status (BYTES), active_version (BYTES), commits (INT64)
// process loads the file into every executor of the model (inactive buffers, validated:
// a bad file is refused and the active weights keep serving); commit makes it active;
// swap is both; abort forgets a processed set. Two steps, so that a rollout over several
// servers can process everywhere, then commit everywhere (docs/serving.md).
//
// Weights files are read only from the served model's directory (<repository>/<model>/)
// or from parameters weights_dir: whoever may send requests may otherwise make the server
// read any file it can.
//
// Ownership: the Triton model's state. Thread safety: one instance (Triton serializes its
// requests); the served models' weights functions are serialized anyway.

#include "backend_state.h"
#include "triton_api.h"

#include <cstdint>
#include <memory>
#include <string>

namespace aotiplug::triton {

// aotiplug::triton::WeightsControl
class WeightsControl {
 public:
  // Completes and checks the control model's config (ModelInitialize).
  static std::unique_ptr<WeightsControl> open(TRITONBACKEND_Model* model, BackendState& backend);

  // Answers and releases every request; never throws.
  void execute(TRITONBACKEND_ModelInstance* instance, TRITONBACKEND_Request** requests, std::uint32_t count) noexcept;

 private:
  BackendState* backend_ = nullptr;
  std::string name_;
  std::string weights_dir_;  // empty: each served model's directory
};

}  // namespace aotiplug::triton
