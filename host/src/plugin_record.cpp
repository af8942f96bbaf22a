// SPDX-License-Identifier: BSD-3-Clause
#include <aotiplug/host/plugin_record.h>

#include <c10/core/Device.h>
#include <c10/core/DeviceType.h>

#include <cstring>

namespace aotiplug {

const char* pluginStateName(PluginState state) noexcept {
  switch (state) {
    case PluginState::kLoaded: return "loaded";
    case PluginState::kFallback: return "fallback";
    case PluginState::kRejected: return "rejected";
    case PluginState::kUnloaded: return "unloaded";
  }
  return "unknown";
}

const char* pluginProblemName(PluginProblem problem) noexcept {
  switch (problem) {
    case PluginProblem::kNone: return "none";
    case PluginProblem::kUntrusted: return "untrusted path";
    case PluginProblem::kNotSharedLibrary: return "not a shared library";
    case PluginProblem::kTruncated: return "truncated file";
    case PluginProblem::kNoManifest: return "no manifest";
    case PluginProblem::kBadManifest: return "bad manifest";
    case PluginProblem::kAbiMismatch: return "abi mismatch";
    case PluginProblem::kTorchMismatch: return "libtorch version mismatch";
    case PluginProblem::kCxx11AbiMismatch: return "cxx11 abi mismatch";
    case PluginProblem::kUnresolvedSymbol: return "unresolved symbol";
    case PluginProblem::kLoadFailed: return "load failed";
    case PluginProblem::kRegistrationError: return "registration error";
    case PluginProblem::kUndeclaredDevice: return "undeclared device type";
    case PluginProblem::kNoRegistrations: return "no registrations";
    case PluginProblem::kCrashed: return "crashed";
    case PluginProblem::kTimedOut: return "timed out";
    case PluginProblem::kNameConflict: return "name conflict";
    case PluginProblem::kInUse: return "still in use";
    case PluginProblem::kScannerMissing: return "scanner missing";
    case PluginProblem::kChanged: return "file changed";
  }
  return "unknown";
}

PluginProblem pluginProblemFromName(const std::string& name) noexcept {
  for (int p = 0; p <= static_cast<int>(PluginProblem::kChanged); ++p) {
    const auto problem = static_cast<PluginProblem>(p);
    if (name == pluginProblemName(problem)) return problem;
  }
  return PluginProblem::kNone;
}

PluginState pluginStateFromName(const std::string& name) noexcept {
  for (PluginState s : {PluginState::kLoaded, PluginState::kFallback, PluginState::kRejected,
                        PluginState::kUnloaded}) {
    if (name == pluginStateName(s)) return s;
  }
  return PluginState::kRejected;
}

nlohmann::json manifestToJson(const PluginManifest& m) {
  nlohmann::json devices = nlohmann::json::array();
  for (c10::DeviceType d : m.devices) devices.push_back(c10::DeviceTypeName(d, true));
  return {{"name", m.name},
          {"version", m.version},
          {"abi", std::to_string(m.abi_major) + "." + std::to_string(m.abi_minor)},
          {"torch_version", m.torch_version},
          {"cxx11_abi", m.cxx11_abi},
          {"sdk_version", m.sdk_version},
          {"devices", devices}};
}

nlohmann::json toJson(const PluginRecord& r) {
  nlohmann::json j;
  j["path"] = r.path;
  j["state"] = pluginStateName(r.state);
  j["problem"] = r.problem == PluginProblem::kNone ? nlohmann::json() : nlohmann::json(pluginProblemName(r.problem));
  j["reason"] = r.reason;
  if (!r.failed_path.empty()) j["failed_path"] = r.failed_path;
  if (!r.stage.empty()) j["stage"] = r.stage;
  if (r.manifest) j.update(manifestToJson(*r.manifest));
  nlohmann::json regs = nlohmann::json::array();
  for (const auto& reg : r.registrations) {
    regs.push_back({{"device", c10::DeviceTypeName(reg.device_type, true)},
                    {"priority", reg.priority},
                    {"active", reg.active},
                    {"lost_to", reg.lost_to}});
  }
  j["registrations"] = regs;
  j["warnings"] = r.warnings;
  return j;
}

PluginRecord recordFromJson(const nlohmann::json& j) {
  PluginRecord r;
  if (!j.is_object()) return r;
  r.path = j.value("path", std::string());
  r.state = pluginStateFromName(j.value("state", std::string()));
  if (j.contains("problem") && j["problem"].is_string()) r.problem = pluginProblemFromName(j["problem"]);
  r.reason = j.value("reason", std::string());
  r.failed_path = j.value("failed_path", std::string());
  r.stage = j.value("stage", std::string());
  if (j.contains("registrations") && j["registrations"].is_array()) {
    for (const auto& reg : j["registrations"]) {
      if (!reg.is_object()) continue;
      PluginRegistrationInfo info;
      try {
        info.device_type = c10::Device(reg.value("device", std::string("cpu"))).type();
      } catch (const c10::Error&) {
        continue;
      }
      info.priority = reg.value("priority", kPriorityDefault);
      info.active = reg.value("active", false);
      info.lost_to = reg.value("lost_to", std::string());
      r.registrations.push_back(std::move(info));
    }
  }
  if (j.contains("warnings") && j["warnings"].is_array()) {
    for (const auto& w : j["warnings"]) {
      if (w.is_string()) r.warnings.push_back(w);
    }
  }
  return r;  // the manifest is not restored: the reader has the file
}

}  // namespace aotiplug
