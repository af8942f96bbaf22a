// SPDX-License-Identifier: BSD-3-Clause
#include "served_model.h"

#include "model_config_io.h"
#include "triton_error.h"

#include <aotiplug/error.h>
#include <aotiplug/runner/device.h>

#include <filesystem>

namespace aotiplug::triton {
namespace {

std::string describeTensors(const std::vector<ServedTensor>& tensors) {
  std::string out;
  for (const ServedTensor& t : tensors) {
    std::string dims;
    for (std::int64_t d : t.dims) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    out += (out.empty() ? "" : "; ") + t.name + " " + t.type.api_name + " [" + dims + "]";
  }
  return out;
}

}  // namespace

DeviceExecutor::DeviceExecutor(std::unique_ptr<AOTIDelegateExecutor> executor, std::string initial_label)
    : executor_(std::move(executor)), run_device_(parseDevice(executor_->device())), labels_{std::move(initial_label)} {}

std::string DeviceExecutor::label(std::uint64_t generation) const {
  std::lock_guard<std::mutex> lock(labels_mutex_);
  return generation < labels_.size() ? labels_[generation] : std::string("generation ") + std::to_string(generation);
}

void DeviceExecutor::commit(const std::string& label) {
  {
    // Before the swap: a run that sees the new generation finds its label.
    std::lock_guard<std::mutex> lock(labels_mutex_);
    labels_.resize(executor_->weightsGeneration() + 1);
    labels_.push_back(label);
  }
  executor_->commitWeights();
}

std::shared_ptr<ServedModel> ServedModel::open(TRITONBACKEND_Model* model, BackendState& backend) {
  std::shared_ptr<ServedModel> self(new ServedModel());
  self->backend_ = &backend;
  const ModelIdentity id = modelIdentity(model);
  self->version_ = id.version;
  self->model_directory_ = id.directory;
  const std::string where = "model '" + id.name + "' version " + std::to_string(id.version);

  nlohmann::json config = readModelConfig(model);
  const ModelParameters parameters = parseParameters(config, id.directory);
  std::string file = config.value("default_model_filename", std::string());
  if (file.empty()) file = "model.pt2";
  self->package_path_ = id.directory + "/" + std::to_string(id.version) + "/" + file;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(self->package_path_, ec)) {
    throw Error(StatusCode::kNotFound, where + ": no package at " + self->package_path_ +
                                           " (the aotiplug backend serves <repository>/<model>/<version>/model.pt2, "
                                           "or the file default_model_filename names)");
  }
  self->config_.parameters = parameters;
  if (!parameters.initial_weights.empty()) {
    self->active_weights_ = loadWeightsFile(parameters.initial_weights);
    self->active_label_ = std::filesystem::path(parameters.initial_weights).filename().string();
  }

  // One executor on the package's own device: to learn the signature, and kept for the
  // instances there when the config puts exactly one on it.
  std::shared_ptr<DeviceExecutor> probe = self->makeExecutor("", 1, where);
  const AOTIDelegateExecutor& executor = probe->executor();
  if (!executor.modelInfo().constants_in_library && executor.packagedModel().weights_blob.empty() &&
      executor.packagedModel().weights_config.empty() && !self->active_weights_) {
    throw Error(StatusCode::kInvalidArgument,
                where + ": package " + self->package_path_ +
                    " holds no weights (compiled with package_constants_in_so=False, none stored in it): "
                    "name a weights file (torch.save'd state dict) in parameters initial_weights");
  }
  self->signature_ = probeSignature(
      probe->executor(), [](const std::string& text) { logWarning(text); },
      [&](PackageSignature& s) { nameTensors(config, parameters, s); });

  if (autoCompleteRequested(model)) {
    AutoCompleteOptions options;
    options.default_max_batch_size = backend.settings().default_max_batch_size;
    options.max_batch_size_explicit = configTextSets(configText(id.directory), "max_batch_size");
    std::vector<std::string> notes;
    config = autoCompleteConfig(std::move(config), self->signature_, options, notes);
    if (!notes.empty()) {
      std::string list;
      for (const auto& n : notes) list += (list.empty() ? "" : "; ") + n;
      logInfo(where + ": completed the config from the package: " + list);
      setModelConfig(model, config);
    }
  }
  self->config_ = checkConfig(config, self->signature_, parameters);
  if (self->config_.max_batch_size > 0 && self->signature_.batch_max > 0 &&
      self->config_.max_batch_size > self->signature_.batch_max) {
    logInfo(where + ": max_batch_size " + std::to_string(self->config_.max_batch_size) +
            " is above the package's largest batch (" + std::to_string(self->signature_.batch_max) +
            "): larger batches are split into several runs");
  }
  if (auto it = self->config_.instances_per_device.find(self->signature_.device_type);
      it != self->config_.instances_per_device.end() && it->second == 1) {
    self->executors_[self->signature_.device_type] = probe;
  }

  std::string devices;
  for (const auto& [device, count] : self->config_.instances_per_device) {
    devices += (devices.empty() ? "" : ", ") + device + " x" + std::to_string(count);
  }
  logInfo(where + ": serving package " + self->package_path_ + " (compiled for " + self->signature_.device_type +
          "); inputs " + describeTensors(self->config_.inputs) + "; outputs " +
          describeTensors(self->config_.outputs) + "; max_batch_size " +
          std::to_string(self->config_.max_batch_size) +
          (self->signature_.batchable ? "" : " (not batchable: " + self->signature_.not_batchable + ")") +
          "; instances " + devices + "; weights '" + self->active_label_ + "'");

  if (TRITONSERVER_MetricFamily* family = backend.commitsFamily()) {
    const std::string version = std::to_string(id.version);
    TRITONSERVER_Parameter* labels[2] = {
        TRITONSERVER_ParameterNew("model", TRITONSERVER_PARAMETER_STRING, id.name.c_str()),
        TRITONSERVER_ParameterNew("version", TRITONSERVER_PARAMETER_STRING, version.c_str())};
    logIfFailed(TRITONSERVER_MetricNew(&self->commits_metric_, family,
                                       const_cast<const TRITONSERVER_Parameter**>(labels), 2),
                where + ": no weight-commit metric");
    for (TRITONSERVER_Parameter* p : labels) TRITONSERVER_ParameterDelete(p);
  }
  backend.registerModel(id.name, id.version, self);
  return self;
}

ServedModel::~ServedModel() {
  if (backend_ != nullptr) backend_->unregisterModel(config_.model, version_);
  if (commits_metric_ != nullptr) logIfFailed(TRITONSERVER_MetricDelete(commits_metric_), "deleting a metric");
}

std::shared_ptr<DeviceExecutor> ServedModel::makeExecutor(const std::string& device, std::size_t instances,
                                                          const std::string& where) {
  ExecutorConfig ec;
  ec.maxNumConcurrentThreads = std::max<std::size_t>(instances, 1);
  ec.device = device;
  ec.runSingleThreaded = config_.parameters.run_single_threaded;
  ec.opLibraries = config_.parameters.op_libraries;
  ec.log = [where](const std::string& text) { logInfo(where + ": " + text); };
  if (ec.runSingleThreaded && ec.maxNumConcurrentThreads != 1) {
    throw Error(StatusCode::kInvalidArgument,
                where + ": parameters run_single_threaded needs one instance per device; the config puts " +
                    std::to_string(instances) + " on " + device);
  }
  std::shared_ptr<Weights> active;
  std::string label;
  {
    std::lock_guard<std::mutex> lock(weights_mutex_);
    active = active_weights_;
    label = active_label_;
  }
  // initWeights: the weights a model compiled without them starts with.
  auto executor = std::make_unique<AOTIDelegateExecutor>(package_path_, active, ec, config_.parameters.package_model);
  const bool in_library = executor->modelInfo().constants_in_library;
  auto made = std::make_shared<DeviceExecutor>(std::move(executor), in_library && active ? "package" : label);
  if (active && in_library) {  // a model with its own weights swaps them out
    made->executor().processWeights(active);
    made->commit(label);
  }
  return made;
}

std::shared_ptr<DeviceExecutor> ServedModel::executorFor(const std::string& device) {
  std::lock_guard<std::mutex> lock(executors_mutex_);
  if (auto it = executors_.find(device); it != executors_.end()) return it->second;
  auto count = config_.instances_per_device.find(device);
  const std::size_t instances = count == config_.instances_per_device.end() ? 1 : static_cast<std::size_t>(count->second);
  auto made = makeExecutor(device, instances, "model '" + name() + "' version " + std::to_string(version_));
  executors_[device] = made;
  return made;
}

std::vector<std::shared_ptr<DeviceExecutor>> ServedModel::executors() {
  std::lock_guard<std::mutex> lock(executors_mutex_);
  std::vector<std::shared_ptr<DeviceExecutor>> out;
  for (const auto& [device, e] : executors_) out.push_back(e);
  return out;
}

WeightsStatus ServedModel::statusLocked() const {
  return {active_label_, pending_weights_ ? pending_label_ : std::string(), commits_};
}

WeightsStatus ServedModel::processWeights(const std::string& path, const std::string& label) {
  const auto all = executors();
  std::lock_guard<std::mutex> lock(weights_mutex_);
  processLocked(all, path, label);
  return statusLocked();
}

void ServedModel::processLocked(const std::vector<std::shared_ptr<DeviceExecutor>>& all, const std::string& path,
                                const std::string& label) {
  std::shared_ptr<Weights> weights = loadWeightsFile(path);  // unreadable: nothing has changed
  try {
    for (const auto& e : all) e->executor().processWeights(weights);
  } catch (...) {
    // Refused by an executor, which then holds nothing pending (and the ones before it hold
    // the refused set): the set processed before is made pending again everywhere.
    if (pending_weights_) {
      try {
        for (const auto& e : all) e->executor().processWeights(pending_weights_);
      } catch (...) {
        logWarning("model '" + name() + "' version " + std::to_string(version_) + ": weights '" + pending_label_ +
                   "' could not be made pending again after a refused set; process them again");
        pending_weights_.reset();
        pending_label_.clear();
      }
    }
    throw;
  }
  pending_weights_ = std::move(weights);
  pending_label_ = label.empty() ? std::filesystem::path(path).filename().string() : label;
}

WeightsStatus ServedModel::commitWeights() {
  const auto all = executors();
  std::lock_guard<std::mutex> lock(weights_mutex_);
  commitLocked(all);
  return statusLocked();
}

WeightsStatus ServedModel::swapWeights(const std::string& path, const std::string& label) {
  const auto all = executors();
  std::lock_guard<std::mutex> lock(weights_mutex_);
  processLocked(all, path, label);
  commitLocked(all);
  return statusLocked();
}

void ServedModel::commitLocked(const std::vector<std::shared_ptr<DeviceExecutor>>& all) {
  if (!pending_weights_) {
    throw Error(StatusCode::kFailedPrecondition, "model '" + name() + "' version " + std::to_string(version_) +
                                                     " has no processed weights to commit (process a weights file first)");
  }
  for (const auto& e : all) e->commit(pending_label_);
  active_weights_ = std::move(pending_weights_);
  active_label_ = pending_label_;
  pending_label_.clear();
  ++commits_;
  if (commits_metric_ != nullptr) logIfFailed(TRITONSERVER_MetricIncrement(commits_metric_, 1), "counting a commit");
  logInfo("model '" + name() + "' version " + std::to_string(version_) + ": weights '" + active_label_ +
          "' active (commit " + std::to_string(commits_) + ")");
}

WeightsStatus ServedModel::abortWeights() {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  pending_weights_.reset();
  pending_label_.clear();
  return statusLocked();
}

WeightsStatus ServedModel::weightsStatus() const {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  return statusLocked();
}

}  // namespace aotiplug::triton
