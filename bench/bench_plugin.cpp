// SPDX-License-Identifier: BSD-3-Clause
// The plugin of the plugin-directory benchmark: a real CPU-style runner plugin whose name
// and device type come from its own manifest, so the benchmark can copy one build under
// many names and registrations (it rewrites the manifest note in each copy).
#include <aotiplug/plugin/plugin.h>
#include <aotiplug/runner/model_library_runner.h>

AOTIPLUG_PLUGIN("bench-000", "1.0.0", c10::DeviceType::CPU);

namespace {

class BenchRunner final : public aotiplug::ModelLibraryRunner {
 public:
  using ModelLibraryRunner::ModelLibraryRunner;
};

// Registers for the device type the (rewritten) manifest declares; unregistered on unload.
struct Registration {
  aotiplug::RegistrationId id = 0;
  ~Registration() {
    if (id != 0) aotiplug::runnerRegistry().remove(id);
  }
} registration;

void registerFromManifest() {
  // Read through volatile: the benchmark rewrites the note in each copy of the file, and
  // the compiler would otherwise fold this constant into the code.
  const volatile std::int8_t* device = &aotiplug_plugin_manifest.data.devices[0];
  const auto type = static_cast<c10::DeviceType>(*device);
  registration.id = aotiplug::runnerRegistry()
                        .add(type, &aotiplug::detail::createRunnerAbi<BenchRunner>,
                             aotiplug::kPriorityDefault, aotiplug::detail::pluginOrigin())
                        .registration.id;
}
AOTIPLUG_ON_LOAD(registerFromManifest);

}  // namespace
