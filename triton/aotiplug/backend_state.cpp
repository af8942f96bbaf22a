// SPDX-License-Identifier: BSD-3-Clause
#include "backend_state.h"

#include "triton_error.h"

#include <aotiplug/error.h>

#include <nlohmann/json.hpp>

#include <filesystem>

namespace aotiplug::triton {

BackendSettings parseBackendSettings(const std::string& json, const std::string& default_plugin_dir) {
  BackendSettings s;
  s.plugin_dir = default_plugin_dir;
  if (json.empty()) return s;
  const nlohmann::json config = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) {
    throw Error(StatusCode::kInvalidArgument, "the backend config is not a JSON object: " + json);
  }
  auto cmdline = config.find("cmdline");
  if (cmdline == config.end() || !cmdline->is_object()) return s;
  if (auto dir = cmdline->find("plugin-dir"); dir != cmdline->end() && dir->is_string()) {
    // Typed on the server's command line: relative to where the server was started (the
    // plugin loader itself takes absolute paths only).
    s.plugin_dir = std::filesystem::absolute(dir->get<std::string>()).lexically_normal().string();
  }
  if (auto mbs = cmdline->find("default-max-batch-size"); mbs != cmdline->end() && mbs->is_string()) {
    try {
      s.default_max_batch_size = std::stoi(mbs->get<std::string>());
    } catch (const std::exception&) {
      throw Error(StatusCode::kInvalidArgument,
                  "--backend-config default-max-batch-size is '" + mbs->get<std::string>() + "', not a number");
    }
  }
  return s;
}

BackendState::BackendState(BackendSettings settings) : settings_(std::move(settings)) {
  LoaderOptions options;
  options.log = [](const std::string& text) { logInfo(text); };
  loader_ = std::make_unique<PluginLoader>(options);
  const DirectoryLoad load = loader_->loadDirectory(settings_.plugin_dir);
  if (!load.usable()) {
    throw Error(StatusCode::kNotFound, "plugin directory " + settings_.plugin_dir + " cannot be used: " + load.error +
                                           " (set it with --backend-config=aotiplug,plugin-dir=DIR)");
  }
  for (const PluginRecord& record : load) {
    if (record.loaded()) {
      std::string devices;
      for (const auto& r : record.registrations) {
        devices += (devices.empty() ? "" : ", ") + c10::DeviceTypeName(r.device_type, true) +
                   (r.active ? "" : " (fallback)");
      }
      logInfo("plugin '" + record.name() + "' (" + record.path + ") serves " + devices);
    } else {
      logWarning("plugin " + record.path + " rejected (" + pluginProblemName(record.problem) + "): " + record.reason);
    }
    for (const std::string& w : record.warnings) logWarning("plugin " + record.path + ": " + w);
  }
  if (load.empty()) logWarning("plugin directory " + settings_.plugin_dir + " holds no plugins");

  TRITONSERVER_Error* error = TRITONSERVER_MetricFamilyNew(
      &commits_family_, TRITONSERVER_METRIC_KIND_COUNTER, "aotiplug_weight_commits",
      "Weight sets made active (processWeights then commitWeights) in a model served by the aotiplug backend");
  if (error != nullptr) {
    commits_family_ = nullptr;
    logIfFailed(error, "no weight-commit metric");
  }
}

BackendState::~BackendState() {
  if (commits_family_ != nullptr) {
    logIfFailed(TRITONSERVER_MetricFamilyDelete(commits_family_), "deleting the weight-commit metric family");
  }
}

std::string BackendState::servingSummary() const {
  std::string out;
  for (const auto& [type, record] : loader_->servingPlugins()) {
    out += (out.empty() ? "" : ", ") + c10::DeviceTypeName(type, true) + " (plugin '" + record.name() + "')";
  }
  return out.empty() ? "no device (no plugin loaded from " + settings_.plugin_dir + ")" : out;
}

void BackendState::registerModel(const std::string& name, std::uint64_t version,
                                 const std::shared_ptr<ServedModel>& model) {
  std::lock_guard<std::mutex> lock(models_mutex_);
  models_[name][version] = model;
}

void BackendState::unregisterModel(const std::string& name, std::uint64_t version) noexcept {
  std::lock_guard<std::mutex> lock(models_mutex_);
  auto it = models_.find(name);
  if (it == models_.end()) return;
  // Called from the model's destructor, when its own entry has expired. A reload of the same
  // version registers the new model before Triton finalizes the old one: that entry is live
  // and stays.
  auto entry = it->second.find(version);
  if (entry == it->second.end() || !entry->second.expired()) return;
  it->second.erase(entry);
  if (it->second.empty()) models_.erase(it);
}

std::shared_ptr<ServedModel> BackendState::findModel(const std::string& name, std::uint64_t version) const {
  std::lock_guard<std::mutex> lock(models_mutex_);
  auto it = models_.find(name);
  if (it == models_.end()) return nullptr;
  for (auto v = it->second.rbegin(); v != it->second.rend(); ++v) {
    if (version != 0 && v->first != version) continue;
    if (auto model = v->second.lock()) return model;
  }
  return nullptr;
}

std::vector<std::uint64_t> BackendState::modelVersions(const std::string& name) const {
  std::lock_guard<std::mutex> lock(models_mutex_);
  std::vector<std::uint64_t> out;
  auto it = models_.find(name);
  if (it == models_.end()) return out;
  for (const auto& [version, model] : it->second) {
    if (!model.expired()) out.push_back(version);
  }
  return out;
}

}  // namespace aotiplug::triton
