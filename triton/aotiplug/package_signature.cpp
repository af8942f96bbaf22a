// SPDX-License-Identifier: BSD-3-Clause
#include "package_signature.h"

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/executor/tensor_spec.h>
#include <aotiplug/runner/device.h>

#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <optional>

namespace aotiplug::triton {
namespace {

TensorSignature fromSpec(const TensorSpec& spec) {
  TensorSignature t;
  t.name = spec.name;
  t.dtype = spec.dtype;
  t.dims = spec.sizes;
  t.min = spec.min;
  t.max = spec.max;
  if (t.min.size() != t.dims.size()) t.min.assign(t.dims.size(), 0);
  if (t.max.size() != t.dims.size()) t.max.assign(t.dims.size(), -1);
  for (std::size_t d = 0; d < t.dims.size(); ++d) {
    if (t.dims[d] >= 0) t.min[d] = t.max[d] = t.dims[d];
  }
  return t;
}

// Zeros shaped as the specs say, dynamic dimensions at `batch` (dimension 0) and at
// `other` above their smallest size.
std::vector<at::Tensor> probeInputs(const AOTIDelegateExecutor& executor, std::int64_t batch, std::int64_t other) {
  const auto& specs = executor.packagedModel().inputs;
  const c10::Device device = parseDevice(executor.device());
  std::vector<at::Tensor> out;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    std::vector<std::int64_t> sizes;
    for (std::size_t d = 0; d < s.sizes.size(); ++d) {
      if (s.sizes[d] >= 0) {
        sizes.push_back(s.sizes[d]);
        continue;
      }
      const std::int64_t lo = std::max<std::int64_t>(d < s.min.size() ? s.min[d] : 0, 1);
      const std::int64_t hi = d < s.max.size() ? s.max[d] : -1;
      std::int64_t v = d == 0 ? batch : lo + other;
      if (hi >= 0) v = std::min(v, hi);
      sizes.push_back(std::max<std::int64_t>(v, lo));
    }
    at::Tensor t = at::zeros(sizes, at::TensorOptions().dtype(s.dtype).device(device));
    out.push_back(checkTensorAgainstSpec(t, s, i, "input"));
  }
  return out;
}

}  // namespace

PackageSignature probeSignature(AOTIDelegateExecutor& executor,
                                const std::function<void(const std::string&)>& log,
                                const std::function<void(PackageSignature&)>& rename) {
  const PackagedModel& model = executor.packagedModel();
  const ModelInfo& info = executor.modelInfo();
  PackageSignature sig;
  sig.package = executor.package().path();
  sig.device_type = model.deviceKey();
  if (sig.device_type.empty() || sig.device_type.rfind("cuda", 0) == 0) {
    const c10::Device device = parseDevice(executor.device());
    sig.device_type = device.is_cpu() ? "cpu" : c10::DeviceTypeName(device.type(), true);
  }
  for (const TensorSpec& spec : model.inputs) sig.inputs.push_back(fromSpec(spec));
  sig.shared_sizes = model.shared_sizes;
  const bool outputs_recorded = !model.outputs.empty() && model.outputs.size() == info.numOutputs();
  if (outputs_recorded) {
    for (const TensorSpec& spec : model.outputs) sig.outputs.push_back(fromSpec(spec));
  } else {
    for (const std::string& name : info.output_names) {
      TensorSignature t;
      t.name = name;
      t.dtype = c10::ScalarType::Undefined;
      sig.outputs.push_back(t);
    }
  }
  if (rename) rename(sig);

  // Dimension 0 as a batch: dynamic in every input, with ranges that overlap.
  std::int64_t lo = 1, hi = -1;
  for (const TensorSignature& t : sig.inputs) {
    if (t.dims.empty()) {
      sig.not_batchable = "input '" + t.name + "' is a scalar";
      break;
    }
    if (t.dims[0] >= 0) {
      sig.not_batchable = "input '" + t.name + "' has a static first dimension (" + std::to_string(t.dims[0]) + ")";
      break;
    }
    lo = std::max(lo, t.min[0]);
    if (t.max[0] >= 0) hi = hi < 0 ? t.max[0] : std::min(hi, t.max[0]);
  }
  if (sig.inputs.empty()) sig.not_batchable = "the model takes no inputs";
  if (sig.not_batchable.empty() && hi >= 0 && hi <= lo) {
    sig.not_batchable = hi < lo ? "its inputs' first dimensions have no size in common"
                                : "its first dimension has one size only (" + std::to_string(lo) + ")";
  }
  const bool batch_candidate = sig.not_batchable.empty();

  // The probe: run A at the smallest sizes, B with one more batch item, C with the other
  // dynamic dimensions one larger. What changes between runs is dynamic.
  const bool other_dynamic = std::any_of(sig.inputs.begin(), sig.inputs.end(), [](const TensorSignature& t) {
    return std::any_of(t.dims.begin() + (t.dims.empty() ? 0 : 1), t.dims.end(), [](std::int64_t d) { return d < 0; });
  });
  struct Run {
    std::int64_t batch;
    std::vector<at::Tensor> outputs;
  };
  std::vector<Run> runs;
  std::string failure;
  try {
    runs.push_back({lo, executor.run(probeInputs(executor, lo, 0))});
    if (batch_candidate) runs.push_back({lo + 1, executor.run(probeInputs(executor, lo + 1, 0))});
    if (other_dynamic) runs.push_back({lo, executor.run(probeInputs(executor, lo, 1))});
  } catch (const Error& e) {
    failure = e.what();
  } catch (const c10::Error& e) {
    failure = e.what_without_backtrace();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure.empty()) {
    log("package " + sig.package + ": a run on inputs of zeros (to learn its outputs and whether it batches) failed: " +
        failure);
    if (!outputs_recorded) sig.outputs_unknown = "running the model on inputs of zeros failed: " + failure;
    if (batch_candidate) sig.not_batchable = "running it on inputs of zeros failed: " + failure;
    return sig;
  }

  for (std::size_t o = 0; o < sig.outputs.size(); ++o) {
    TensorSignature& out = sig.outputs[o];
    const at::Tensor& a = runs.front().outputs.at(o);
    if (!a.defined()) {
      if (sig.not_batchable.empty()) sig.not_batchable = "output '" + out.name + "' is None";
      continue;
    }
    if (!outputs_recorded) {
      out.dtype = a.scalar_type();
      out.dims = a.sizes().vec();
      for (const Run& r : runs) {
        const at::Tensor& t = r.outputs.at(o);
        for (std::size_t d = 0; d < out.dims.size(); ++d) {
          if (!t.defined() || static_cast<std::size_t>(t.dim()) != out.dims.size() || t.size(d) != out.dims[d]) {
            out.dims[d] = -1;
          }
        }
      }
      out.min.assign(out.dims.size(), 0);
      out.max.assign(out.dims.size(), -1);
    }
    if (!batch_candidate || !sig.not_batchable.empty()) continue;
    for (const Run& r : runs) {
      const at::Tensor& t = r.outputs.at(o);
      if (!t.defined() || t.dim() == 0 || t.size(0) != r.batch) {
        sig.not_batchable = "output '" + out.name + "' has " +
                            (t.defined() && t.dim() > 0 ? "first dimension " + std::to_string(t.size(0))
                                                        : std::string("no first dimension")) +
                            " for a batch of " + std::to_string(r.batch);
        break;
      }
    }
  }
  if (sig.not_batchable.empty()) {
    sig.batchable = true;
    sig.batch_min = lo;
    sig.batch_max = hi;
  }
  return sig;
}

}  // namespace aotiplug::triton
