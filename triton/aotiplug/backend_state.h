// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::triton::BackendState — what the aotiplug backend holds for the life of the
// server process: the runner plugins (loaded once, with the loader's trust checks, from
// --backend-config=aotiplug,plugin-dir=DIR or the installed plugin directory), the backend
// settings, the served models by name (so a weights control model can find them), and the
// metric family counting weight commits.
//
// Ownership: created by TRITONBACKEND_Initialize, destroyed by TRITONBACKEND_Finalize
// (Triton finalizes every model first). Served models register themselves and unregister
// in their destructor. Thread safety: every member function may be called from any thread.

#include "triton_api.h"

#include <aotiplug/host/plugin_loader.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace aotiplug::triton {

class ServedModel;

// aotiplug::triton::BackendSettings — the backend's part of Triton's --backend-config.
struct BackendSettings {
  std::string plugin_dir;           // "plugin-dir"
  int default_max_batch_size = 4;   // Triton's "default-max-batch-size"
};

// Reads the settings from the backend config JSON ({"cmdline": {"plugin-dir": "..."}});
// `default_plugin_dir` where none is given.
BackendSettings parseBackendSettings(const std::string& json, const std::string& default_plugin_dir);

// aotiplug::triton::BackendState
class BackendState {
 public:
  // Loads the plugins; throws Error when the plugin directory cannot be used at all
  // (a plugin that is refused is logged with its reason, and the others serve).
  explicit BackendState(BackendSettings settings);
  ~BackendState();
  BackendState(const BackendState&) = delete;
  BackendState& operator=(const BackendState&) = delete;

  const BackendSettings& settings() const noexcept { return settings_; }
  // Names of the plugins serving each device type, for messages ("cpu (plugin 'cpu')").
  std::string servingSummary() const;

  // A model registers itself once loaded (replacing the entry of a model being reloaded at
  // the same version) and unregisters from its destructor: that removes the entry only when
  // it is expired, i.e. its own, never the live one of the model that replaced it.
  void registerModel(const std::string& name, std::uint64_t version, const std::shared_ptr<ServedModel>& model);
  void unregisterModel(const std::string& name, std::uint64_t version) noexcept;
  // The served model `name` at `version` (0: the highest loaded); null when none.
  std::shared_ptr<ServedModel> findModel(const std::string& name, std::uint64_t version) const;
  // The loaded versions of `name`, ascending.
  std::vector<std::uint64_t> modelVersions(const std::string& name) const;

  // The weight-commit counter family; null where Triton's metrics are off.
  TRITONSERVER_MetricFamily* commitsFamily() const noexcept { return commits_family_; }

 private:
  BackendSettings settings_;
  std::unique_ptr<PluginLoader> loader_;
  mutable std::mutex models_mutex_;
  std::map<std::string, std::map<std::uint64_t, std::weak_ptr<ServedModel>>> models_;
  TRITONSERVER_MetricFamily* commits_family_ = nullptr;
};

}  // namespace aotiplug::triton
