// The smallest useful aotiplug plugin: a runner for AOTInductor CPU models.
//
// ModelLibraryRunner (from the SDK) does all the work over the model library's C ABI;
// this plugin only names itself and registers the runner for CPU, at a priority above
// the built-in CPU plugin's so that it wins when both are in a plugin directory.
#include <aotiplug/plugin/plugin.h>
#include <aotiplug/runner/model_library_runner.h>

class MinimalCpuRunner final : public aotiplug::ModelLibraryRunner {
 public:
  using ModelLibraryRunner::ModelLibraryRunner;
};

AOTIPLUG_PLUGIN("minimal", "1.0.0", c10::DeviceType::CPU);
AOTIPLUG_REGISTER_RUNNER(c10::DeviceType::CPU, MinimalCpuRunner, aotiplug::kPriorityPreferred);
