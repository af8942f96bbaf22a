// SPDX-License-Identifier: BSD-3-Clause
#include <aotiplug/host/plugin_probe.h>
#include <aotiplug/runner/device.h>

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/executor/eager_reference.h>
#include <aotiplug/registry/runner_registry.h>


#include <ATen/ops/zeros.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <dlfcn.h>

#include <algorithm>
#include <sstream>

namespace aotiplug {

namespace {

bool isMapped(const std::string& path) {
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return false;
  ::dlclose(h);
  return true;
}

}  // namespace

std::string defaultDeviceString(c10::DeviceType type) { return c10::DeviceTypeName(type, true); }

nlohmann::json ProbeReport::toJson() const {
  nlohmann::json j;
  j["path"] = record.path;
  j["state"] = pluginStateName(record.state);
  j["problem"] = record.problem == PluginProblem::kNone ? "" : pluginProblemName(record.problem);
  j["reason"] = record.reason;
  j["name"] = record.name();
  j["registered"] = registered;
  j["reports_errors"] = reports_errors;
  j["error_example"] = error_example;
  j["model_checked"] = model_checked;
  j["model_compared"] = model_compared;
  j["model_matches_eager"] = model_matches_eager;
  j["model_summary"] = model_summary;
  j["unloads_cleanly"] = unloads_cleanly;
  j["problems"] = problems;
  j["ok"] = ok();
  return j;
}

ProbeReport probePlugin(const std::string& path, const ProbeOptions& options) {
  ProbeReport report;
  const auto stage = [&](const char* name) {
    if (options.on_stage) options.on_stage(name);
  };
  {
    PluginLoader loader(options.loader);
    stage("loading");
    report.record = loader.load(path);
    if (!report.record.loaded()) {
      report.problems.push_back("rejected (" + std::string(pluginProblemName(report.record.problem)) +
                                "): " + report.record.reason);
      report.unloads_cleanly = !isMapped(report.record.path);
      return report;
    }
    for (const auto& w : report.record.warnings) report.problems.push_back(w);
    for (const auto& reg : report.record.registrations) {
      report.registered.push_back(c10::DeviceTypeName(reg.device_type, true));
    }

    // Errors must come back as errors.
    stage("asking for a runner");
    const std::vector<c10::DeviceType> declared =
        report.record.manifest ? report.record.manifest->devices : std::vector<c10::DeviceType>{};
    report.reports_errors = !declared.empty();
    for (c10::DeviceType type : declared) {
      try {
        auto runner = createRunner(type, "/nonexistent/aotiplug-probe/model.so", 1,
                                   defaultDeviceString(type), "", false);
        report.reports_errors = false;
        report.problems.push_back("created a " + defaultDeviceString(type) +
                                  " runner for a model file that does not exist");
      } catch (const Error& e) {
        if (std::string(e.what()).empty()) {
          report.reports_errors = false;
          report.problems.push_back("refused a missing model file without a message");
        } else if (report.error_example.empty()) {
          report.error_example = e.what();
        }
      }
    }

    // A real model, when given.
    if (!options.model_package.empty()) {
      stage("running the model");
      report.model_checked = true;
      try {
        ExecutorConfig config;
        config.maxNumConcurrentThreads = 1;
        config.device = options.device;
        config.log = [](const std::string&) {};
        AOTIDelegateExecutor exec(options.model_package, nullptr, config);
        std::vector<at::Tensor> inputs = exec.package().sampleInputs(exec.packagedModel());
        const bool made_up = inputs.empty();
        if (made_up) {
          // A plain aoti_compile_and_package package has none: zeros shaped as its specs
          // say (dynamic sizes at their smallest), so the plugin still runs it.
          for (const TensorSpec& s : exec.packagedModel().inputs) {
            std::vector<std::int64_t> sizes;
            for (std::size_t d = 0; d < s.sizes.size(); ++d) {
              sizes.push_back(s.sizes[d] >= 0 ? s.sizes[d] : std::max<std::int64_t>(s.min[d], 1));
            }
            // On the spec's device type (a CUDA package's specs say cuda); moved to the
            // executor's own device below.
            at::Tensor zeros = at::zeros(sizes, at::TensorOptions().dtype(s.dtype));
            if (s.device != c10::DeviceType::CPU && c10::impl::hasDeviceGuardImpl(s.device)) {
              zeros = zeros.to(parseDevice(exec.device()));
            }
            inputs.push_back(checkTensorAgainstSpec(zeros, s, inputs.size(), "input"));
          }
        }
        if (inputs.empty() && exec.modelInfo().numInputs() > 0) {
          report.problems.push_back("the model package has no sample inputs and no input specs to make them from");
        } else {
          const c10::Device device = parseDevice(exec.device());
          if (!c10::impl::hasDeviceGuardImpl(device.type())) {
            throw Error(StatusCode::kUnavailable,
                        "this host cannot move the sample inputs to " + device.str() +
                            ": its LibTorch has no backend for that device type");
          }
          for (auto& t : inputs) t = t.to(device);
          const auto outputs = exec.run(inputs);
          const auto reference = exec.package().referenceOutputs(exec.packagedModel());
          const EagerComparison eager =
              reference.empty() ? EagerComparison{} : compareWithEager(outputs, reference);
          report.model_compared = !reference.empty();
          report.model_matches_eager = eager.match;
          std::ostringstream os;
          os << outputs.size() << " output(s)";
          if (made_up) os << " from zeros shaped as its input specs (the package has no sample inputs)";
          if (!reference.empty()) os << ", max abs difference from eager " << eager.max_abs_diff;
          if (!eager.mismatch.empty()) os << "; " << eager.mismatch;
          report.model_summary = os.str();
          if (!reference.empty() && !report.model_matches_eager) {
            report.problems.push_back("the model's outputs differ from eager: " + report.model_summary);
          }
        }
      } catch (const c10::Error& e) {
        report.problems.push_back(std::string("running the model failed: ") + e.what_without_backtrace());
      } catch (const std::exception& e) {
        report.problems.push_back(std::string("running the model failed: ") + e.what());
      }
    }
    stage("unloading");
  }  // the loader unloads everything here
  report.unloads_cleanly = !isMapped(report.record.path);
  if (!report.unloads_cleanly) {
    report.problems.push_back(
        "still mapped after unloading (STB_GNU_UNIQUE symbols, RTLD_NODELETE, or something it "
        "started keeps it loaded)");
  }
  return report;
}

}  // namespace aotiplug
