// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::triton::ServedModel — one Triton model (a name and a version) served from a
// .pt2 package: its checked configuration, the package's signature, one executor per
// device shared by the model's instances on that device, and its weights.
//
// Executors: instances on one device share one AOTIDelegateExecutor — one copy of the
// weights — created for the first of them with as many model instances (num_models) as the
// config puts on that device, so each Triton instance runs without waiting for another.
//
// Weights: processWeights loads a weights file into every executor's inactive buffer
// (validated against the model's constants; a refused file changes nothing: a set processed
// before stays pending), commitWeights makes it active in every executor (runs in flight
// finish on the old weights; later ones see the new), swapWeights does both at once (no
// other process or commit in between), abortWeights forgets a processed set. Each set has a version label; every
// response says which served it (response parameter `weights_version`), and a request may
// insist on one (request parameter `weights_version`: any other is answered UNAVAILABLE).
//
// Ownership: held by the Triton model's state and by its instances (shared_ptr); registered
// by name in the BackendState for the weights control model. Thread safety: execute() runs
// concurrently from every instance; the weights functions are serialized among themselves
// and may run while instances execute.

#include "backend_state.h"
#include "model_config.h"
#include "package_signature.h"
#include "triton_api.h"

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/executor/weights.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace aotiplug::triton {

// aotiplug::triton::DeviceExecutor — an executor, and the version label of each of its
// weights generations.
class DeviceExecutor {
 public:
  DeviceExecutor(std::unique_ptr<AOTIDelegateExecutor> executor, std::string initial_label);
  AOTIDelegateExecutor& executor() noexcept { return *executor_; }
  const std::string& device() const noexcept { return executor_->device(); }
  const c10::Device& runDevice() const noexcept { return run_device_; }
  // The label of a generation the executor reported.
  std::string label(std::uint64_t generation) const;
  std::string activeLabel() const { return label(executor_->weightsGeneration()); }
  // Commits the processed weights under `label`.
  void commit(const std::string& label);

 private:
  std::unique_ptr<AOTIDelegateExecutor> executor_;
  c10::Device run_device_;
  mutable std::mutex labels_mutex_;
  std::vector<std::string> labels_;  // by generation
};

// aotiplug::triton::WeightsStatus — what the control model reports.
struct WeightsStatus {
  std::string active_version;
  std::string pending_version;  // empty: none processed
  std::uint64_t commits = 0;
};

// aotiplug::triton::ServedModel
class ServedModel {
 public:
  // Opens the package of `model` (ModelInitialize): completes the config when Triton asks
  // for it, checks it, and sets it. Throws Error naming what is wrong.
  static std::shared_ptr<ServedModel> open(TRITONBACKEND_Model* model, BackendState& backend);
  ~ServedModel();
  ServedModel(const ServedModel&) = delete;
  ServedModel& operator=(const ServedModel&) = delete;

  const std::string& name() const noexcept { return config_.model; }
  std::uint64_t version() const noexcept { return version_; }
  const ServingConfig& config() const noexcept { return config_; }
  const PackageSignature& signature() const noexcept { return signature_; }

  // The executor of `device` (created by the first instance there).
  std::shared_ptr<DeviceExecutor> executorFor(const std::string& device);

  // Serves a batch of requests on `executor` (ModelInstanceExecute): every request gets a
  // response and is released; never throws.
  void execute(TRITONBACKEND_ModelInstance* instance, DeviceExecutor& executor, TRITONBACKEND_Request** requests,
               std::uint32_t count) noexcept;

  WeightsStatus processWeights(const std::string& path, const std::string& label);
  WeightsStatus commitWeights();
  WeightsStatus swapWeights(const std::string& path, const std::string& label);
  WeightsStatus abortWeights();
  WeightsStatus weightsStatus() const;
  // Where the model's files are (<repository>/<model>): weights files are read from there
  // unless the control model names another directory.
  const std::string& modelDirectory() const noexcept { return model_directory_; }

 private:
  ServedModel() = default;
  // An executor on `device` ("": the package's) for `instances` instances, with the
  // model's active weights.
  std::shared_ptr<DeviceExecutor> makeExecutor(const std::string& device, std::size_t instances,
                                               const std::string& where);
  std::vector<std::shared_ptr<DeviceExecutor>> executors();
  WeightsStatus statusLocked() const;
  // The steps of processWeights and commitWeights, under weights_mutex_.
  void processLocked(const std::vector<std::shared_ptr<DeviceExecutor>>& all, const std::string& path,
                     const std::string& label);
  void commitLocked(const std::vector<std::shared_ptr<DeviceExecutor>>& all);

  BackendState* backend_ = nullptr;
  std::uint64_t version_ = 0;
  std::string model_directory_;
  std::string package_path_;
  ServingConfig config_;
  PackageSignature signature_;

  std::mutex executors_mutex_;
  std::map<std::string, std::shared_ptr<DeviceExecutor>> executors_;

  mutable std::mutex weights_mutex_;
  std::shared_ptr<Weights> active_weights_;  // null: the package's own
  std::string active_label_ = "package";
  std::shared_ptr<Weights> pending_weights_;
  std::string pending_label_;
  std::uint64_t commits_ = 0;
  TRITONSERVER_Metric* commits_metric_ = nullptr;
};

}  // namespace aotiplug::triton
