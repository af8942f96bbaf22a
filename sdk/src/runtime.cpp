// SPDX-License-Identifier: BSD-3-Clause
//
// libaotiplug: the SDK's only compiled piece. It owns what must exist once per process —
// the runner registry and the registration log — and the key functions of the types whose
// identity must be shared by the host and every plugin (aotiplug::Error).

#include <aotiplug/error.h>
#include <aotiplug/registration_log.h>
#include <aotiplug/runner_registry.h>
#include <aotiplug/status.h>

#include <c10/util/Exception.h>

#include <algorithm>
#include <new>
#include <utility>

namespace aotiplug {

Error::Error(StatusCode code, const std::string& message)
    : std::runtime_error(message), code_(code) {}

Error::~Error() = default;

void throwIfError(const Status& status, const std::string& context) {
  if (status.isOk()) return;
  if (context.empty()) throw Error(status.code(), status.message());
  throw Error(status.code(), context + ": " + status.message());
}

// ---- RegistrationLog ----

void RegistrationLog::record(const Origin& origin, const std::string& message) noexcept {
  try {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.push_back(Entry{origin, message});
  } catch (...) {
    // Out of memory while recording: the registration itself already failed and the
    // host will still see the plugin's missing registrations.
  }
}

std::vector<RegistrationLog::Entry> RegistrationLog::take(const std::string& library) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Entry> out;
  auto it = std::stable_partition(entries_.begin(), entries_.end(),
                                  [&](const Entry& e) { return e.origin.library != library; });
  std::move(it, entries_.end(), std::back_inserter(out));
  entries_.erase(it, entries_.end());
  return out;
}

std::vector<RegistrationLog::Entry> RegistrationLog::peek(const std::string& library) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Entry> out;
  for (const Entry& e : entries_) {
    if (e.origin.library == library) out.push_back(e);
  }
  return out;
}

// Both singletons are deliberately leaked: plugins unregister from their static
// destructors, which may run after this library's own static destructors at exit.
RegistrationLog& registrationLog() noexcept {
  static RegistrationLog* log = new RegistrationLog();
  return *log;
}

RunnerRegistry& runnerRegistry() noexcept {
  static RunnerRegistry* registry = new RunnerRegistry("runner registry");
  return *registry;
}

// ---- runner creation ----

c10::Device parseDevice(const std::string& device_str) {
  try {
    return c10::Device(device_str);
  } catch (const c10::Error&) {
    throw Error(StatusCode::kInvalidArgument,
                "invalid device string '" + device_str +
                    "': expected a device type and an optional index, e.g. 'cpu' or 'cuda:0'");
  }
}

std::unique_ptr<ModelContainerRunner> createRunner(c10::DeviceType device_type,
                                                   const std::string& model_so_path,
                                                   std::size_t num_models,
                                                   const std::string& device_str,
                                                   const std::string& cubin_dir,
                                                   bool run_single_threaded) {
  Origin origin;
  Leased<RunnerAbi> runner = runnerRegistry().createReporting(
      &origin, device_type, model_so_path, num_models, device_str, cubin_dir,
      run_single_threaded);
  std::string context = origin.plugin.empty() ? std::string("runner")
                                              : "plugin '" + origin.plugin + "'";
  return std::make_unique<RunnerHandle>(std::move(runner), std::move(context));
}

std::unique_ptr<ModelContainerRunner> createRunner(const std::string& model_so_path,
                                                   std::size_t num_models,
                                                   const std::string& device_str,
                                                   const std::string& cubin_dir,
                                                   bool run_single_threaded) {
  return createRunner(parseDevice(device_str).type(), model_so_path, num_models, device_str,
                      cubin_dir, run_single_threaded);
}

}  // namespace aotiplug
