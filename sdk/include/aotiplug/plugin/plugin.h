// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The plugin authoring macros. A plugin's entry file is typically:
//
//   #include <aotiplug/plugin/plugin.h>
//   #include "my_runner.h"
//
//   AOTIPLUG_PLUGIN("my-plugin", "1.0.0", c10::DeviceType::CPU);
//   AOTIPLUG_REGISTER_RUNNER(c10::DeviceType::CPU, my::MyRunner);
//
// AOTIPLUG_PLUGIN(name, version, device types...)
//   Declares the plugin once per library: writes its manifest (manifest.h) into the
//   library file as an ELF note, so a host can check name, version, SDK ABI and LibTorch
//   version before loading it. Every device type the plugin registers must be listed.
//
// AOTIPLUG_REGISTER_RUNNER(device_type, RunnerClass[, priority])
//   Registers RunnerClass (a ModelContainerRunner constructible from
//   (model_so_path, num_models, device_str, cubin_dir, run_single_threaded)) in the
//   process-wide runner registry when the library is loaded, and removes it when the
//   library is unloaded. The runner crosses to the host through RunnerAbiAdapter, so its
//   exceptions become error values inside the plugin.
//
// AOTIPLUG_ON_LOAD(function)
//   Runs `void function()` when the library is loaded, e.g. to check the machine. If it
//   throws, the host rejects the plugin with the exception's text.
//
// Nothing here ever lets an exception escape a static initializer: errors are recorded in
// the RegistrationLog for the host, which rejects the plugin with the message. A static
// initializer of the plugin's own that throws is another matter: thrown inside dlopen, it
// either terminates the process or unwinds through glibc's loader with its lock held (the
// next dlopen from any thread then hangs). Hosts therefore load every plugin they have not
// seen in a child process first (the plugin scanner, host/plugin_scan.h) and refuse one
// that throws, crashes, exits or hangs there; a plugin SHOULD NOT have such initializers,
// and in a host that opted out of scanning one takes the host down.
//
// Thread safety: registration is serialized by the registry; loading two plugins from two
// threads at once is safe.

#include <aotiplug/detail/export.h>
#include <aotiplug/plugin/manifest.h>
#include <aotiplug/plugin/registration_log.h>
#include <aotiplug/plugin/runner_abi.h>
#include <aotiplug/registry/runner_registry.h>
#include <aotiplug/version.h>

#include <c10/core/DeviceType.h>
#include <torch/headeronly/version.h>

#include <dlfcn.h>
#include <climits>
#include <cstdlib>
#include <memory>
#include <string>

// The plugin's manifest, defined by AOTIPLUG_PLUGIN. Hidden: each plugin has its own.
extern "C" AOTIPLUG_HIDDEN const aotiplug::ManifestNote aotiplug_plugin_manifest;

// Hosts under test may build plugins that claim other versions (tests/test_plugins). A
// real plugin never defines these (AOTIPLUG_TARGET_ABI_MINOR, version.h, is the way to
// build for older hosts).
#ifndef AOTIPLUG_MANIFEST_ABI_MAJOR
#define AOTIPLUG_MANIFEST_ABI_MAJOR AOTIPLUG_ABI_MAJOR
#endif
#ifndef AOTIPLUG_MANIFEST_ABI_MINOR
#define AOTIPLUG_MANIFEST_ABI_MINOR AOTIPLUG_TARGET_ABI_MINOR
#endif
#ifndef AOTIPLUG_MANIFEST_TORCH_VERSION
#define AOTIPLUG_MANIFEST_TORCH_VERSION TORCH_VERSION
#endif
#ifndef AOTIPLUG_MANIFEST_CXX11_ABI
#define AOTIPLUG_MANIFEST_CXX11_ABI _GLIBCXX_USE_CXX11_ABI
#endif

namespace aotiplug::detail {

template <class T>
struct TypeTag {};

// Who is registering: this plugin's name and library file.
inline Origin pluginOrigin() {
  Origin origin;
  origin.plugin = readFixed(aotiplug_plugin_manifest.data.name);
  Dl_info info{};
  if (dladdr(static_cast<const void*>(&aotiplug_plugin_manifest), &info) != 0 &&
      info.dli_fname != nullptr) {
    char resolved[PATH_MAX];
    origin.library = realpath(info.dli_fname, resolved) != nullptr ? resolved : info.dli_fname;
  }
  return origin;
}

// Records the exception being handled for the host. Call only inside a catch block.
// Never throws.
inline void recordLoadError(const char* what_was_done,
                            const c10::DeviceType* device_type = nullptr) noexcept {
  Status status = Status::fromCurrentException();
  try {
    std::string text = what_was_done;
    if (device_type != nullptr) text += " for " + RunnerRegistry::keyName(*device_type);
    registrationLog().record(pluginOrigin(), text + ": " + status.message());
  } catch (...) {
    registrationLog().record(Origin{}, status.message());
  }
}

template <class Runner>
Created<RunnerAbi> createRunnerAbi(const std::string& model_so_path, std::size_t num_models,
                                   const std::string& device_str, const std::string& cubin_dir,
                                   bool run_single_threaded) noexcept {
  try {
    return std::unique_ptr<RunnerAbi>(new RunnerAbiAdapter<Runner>(
        model_so_path, num_models, device_str, cubin_dir, run_single_threaded));
  } catch (...) {
    return Status::fromCurrentException();
  }
}

// One AOTIPLUG_REGISTER_RUNNER: registers on load, unregisters on unload.
class RunnerRegistrar {
 public:
  template <class Runner>
  RunnerRegistrar(c10::DeviceType device_type, TypeTag<Runner> /*unused*/,
                  Priority priority = kPriorityDefault) noexcept {
    try {
      id_ = runnerRegistry()
                .add(device_type, &createRunnerAbi<Runner>, priority, pluginOrigin())
                .registration.id;
    } catch (...) {
      recordLoadError("registering a runner", &device_type);
    }
  }
  RunnerRegistrar(const RunnerRegistrar&) = delete;
  RunnerRegistrar& operator=(const RunnerRegistrar&) = delete;
  ~RunnerRegistrar() {
    if (id_ != 0) runnerRegistry().remove(id_);
  }

 private:
  RegistrationId id_ = 0;
};

// One AOTIPLUG_ON_LOAD.
class LoadHook {
 public:
  explicit LoadHook(void (*function)()) noexcept {
    try {
      function();
    } catch (...) {
      recordLoadError("the plugin's load hook failed");
    }
  }
};

}  // namespace aotiplug::detail

#define AOTIPLUG_DETAIL_CONCAT2(a, b) a##b
#define AOTIPLUG_DETAIL_CONCAT(a, b) AOTIPLUG_DETAIL_CONCAT2(a, b)

#define AOTIPLUG_PLUGIN(NAME, VERSION, ...)                                                   \
  namespace {                                                                                 \
  constexpr ::aotiplug::ManifestNote aotiplug_manifest_value =                                \
      ::aotiplug::detail::makeManifestNote(                                                   \
          NAME, VERSION, {__VA_ARGS__}, AOTIPLUG_MANIFEST_ABI_MAJOR, AOTIPLUG_MANIFEST_ABI_MINOR, \
          AOTIPLUG_MANIFEST_TORCH_VERSION, TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR,          \
          TORCH_VERSION_PATCH, AOTIPLUG_MANIFEST_CXX11_ABI);                                  \
  }                                                                                           \
  extern "C" AOTIPLUG_HIDDEN __attribute__((section(".note.aotiplug"), used, aligned(4)))     \
  const ::aotiplug::ManifestNote aotiplug_plugin_manifest = aotiplug_manifest_value

#define AOTIPLUG_REGISTER_RUNNER(DEVICE_TYPE, RUNNER, ...)                                   \
  static const ::aotiplug::detail::RunnerRegistrar AOTIPLUG_DETAIL_CONCAT(                   \
      aotiplug_runner_registrar_, __LINE__) {                                                 \
    DEVICE_TYPE, ::aotiplug::detail::TypeTag<RUNNER>{}, ##__VA_ARGS__                         \
  }

#define AOTIPLUG_ON_LOAD(FUNCTION)                                                           \
  static const ::aotiplug::detail::LoadHook AOTIPLUG_DETAIL_CONCAT(aotiplug_load_hook_,       \
                                                                    __LINE__) {               \
    FUNCTION                                                                                  \
  }
