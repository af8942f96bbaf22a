// SPDX-License-Identifier: BSD-3-Clause
// AOTIDelegateExecutor (aoti_delegate_executor.h), compiled once into libaotiplug.

#include <aotiplug/executor/aoti_delegate_executor.h>
#include "opened_model.h"
#include <aotiplug/detail/op_library_loader.h>
#include <aotiplug/detail/writer_preferring_mutex.h>
#include <aotiplug/runner/device.h>

#include <aotiplug/executor/tensor_spec.h>
#include <aotiplug/registry/runner_registry.h>

#include <algorithm>
#include <iostream>
#include <set>
#include <shared_mutex>

#include <unistd.h>
#include <sstream>

namespace aotiplug {


AOTIDelegateExecutor::AOTIDelegateExecutor(const std::string& package_path,
                                                  std::shared_ptr<Weights> weights,
                                                  ExecutorConfig config,
                                                  const std::string& model_name)
    : config_(std::move(config)), generation_mutex_(std::make_unique<WriterPreferringMutex>()) {
  opened_ = detail::openModel(package_path, model_name, config_.extractionDir);
  model_ = opened_->model;
  if (config_.validateInputs && !model_->spec_problem.empty()) {
    throw Error(StatusCode::kInvalidArgument,
                "package " + package_path + ": model '" + model_->name +
                    "' records no input specs, and they cannot be derived from its wrapper "
                    "source: " + model_->spec_problem +
                    ". Run it with input checks off (ExecutorConfig::validateInputs = false) "
                    "only if its inputs are known to be right");
  }

  device_ = !config_.device.empty() ? config_.device : model_->deviceKey();
  if (device_.empty()) {
    throw Error(StatusCode::kInvalidArgument,
                "package " + package_path + ": model '" + model_->name +
                    "' records no AOTI_DEVICE_KEY; name the device in ExecutorConfig::device");
  }
  const c10::DeviceType device_type = parseDevice(device_).type();
  if (!runnerRegistry().has(device_type)) {
    std::string registered;
    for (c10::DeviceType t : runnerRegistry().keys()) {
      registered += (registered.empty() ? "" : ", ") + c10::DeviceTypeName(t, true);
    }
    throw Error(StatusCode::kNotFound,
                "package " + package_path + ": model '" + model_->name + "' needs device '" +
                    device_ + "', but no loaded plugin serves device type '" +
                    c10::DeviceTypeName(device_type, true) + "' (registered: " +
                    (registered.empty() ? std::string("none") : registered) + ")");
  }

  if (!config_.opLibraries.empty()) {
    const detail::OpLibraryLoader load = detail::opLibraryLoader();
    if (load == nullptr) {
      throw Error(StatusCode::kFailedPrecondition,
                  "package " + package_path + ": ExecutorConfig::opLibraries names " +
                      std::to_string(config_.opLibraries.size()) + " op librar" +
                      (config_.opLibraries.size() == 1 ? "y" : "ies") + " (first: " +
                      config_.opLibraries.front() +
                      "), but nothing in this process loads them: op libraries are loaded with "
                      "the plugin loader's trust checks, by the host library — link "
                      "libaotiplug_host (pkg-config aotiplug-host)");
    }
    for (const std::string& library : config_.opLibraries) {
      try {
        load(library, config_.requireTrustedOpLibraries);
      } catch (const Error& e) {
        throw Error(e.code(), "package " + package_path + " (model '" + model_->name +
                                  "'): ExecutorConfig::opLibraries: " + e.what());
      }
    }
  }

  try {
    runner_ = createRunner(device_type, opened_->library, config_.maxNumConcurrentThreads, device_,
                           opened_->directory->path(), config_.runSingleThreaded);
  } catch (const Error& e) {
    std::string message = "package " + package_path + " (model '" + model_->name + "'): " + e.what();
    // A model whose extern kernels call ops nobody registered: say what the package needs.
    if (auto named = model_->metadata.find("aotiplug.op_libraries");
        e.code() == StatusCode::kFailedPrecondition && named != model_->metadata.end()) {
      message += "; the package says it needs the op libraries " + named->second;
    }
    if (auto made = model_->metadata.find("aotiplug.torch_version");
        e.code() == StatusCode::kIncompatible && made != model_->metadata.end()) {
      message += " (the package says it was compiled by torch " + made->second + ")";
    }
    throw Error(e.code(), message);
  }
  // The runner's device, index included ("cuda" resolved to the device it was made for).
  device_ = runner_->info().device.empty() ? device_ : runner_->info().device;
  run_device_ = parseDevice(device_);

  for (const ConstantInfo& c : runner_->info().constants) {
    has_folded_constants_ = has_folded_constants_ || c.from_folded;
    if (c.from_folded) continue;
    Constant entry{&c, c.sizes};
    if (auto w = model_->wrapper_constants.find(c.name); entry.sizes.empty() && w != model_->wrapper_constants.end()) {
      entry.sizes = w->second.sizes;
    }
    by_fqn_.emplace(c.original_fqn, std::move(entry));
  }
  if (!model_->weights_blob.empty()) {
    const std::string blob = opened_->package->readRecord(model_->weights_blob);
    runner_->update_constants_from_blob(blob.data(), blob.size());
  } else if (!model_->weights_config.empty()) {
    auto stored = opened_->package->storedWeights(*model_);
    runner_->update_constant_buffer(toConstantMap(*stored, true), /*use_inactive=*/false,
                                    /*validate_full_update=*/true);
    active_weights_ = std::move(stored);
  }
  if (weights) initWeights(std::move(weights));
}

AOTIDelegateExecutor::~AOTIDelegateExecutor() {
  runner_.reset();  // closes the model library (when no other runner has it) ...
  opened_.reset();  // ... before its files are removed (when no other executor has them)
}

const Pt2Package& AOTIDelegateExecutor::package() const noexcept { return *opened_->package; }

const std::string& AOTIDelegateExecutor::extractionDirectory() const noexcept { return opened_->directory->path(); }

void AOTIDelegateExecutor::notice(const std::string& text) const {
  if (config_.log) {
    config_.log(text);
  } else {
    std::cerr << "[aotiplug] " << text << "\n";
  }
}

ConstantMap AOTIDelegateExecutor::toConstantMap(const Weights& weights,
                                                       bool require_complete) {
  const std::string where = "model '" + model_->name + "' of " + opened_->package->path();
  ConstantMap out;
  std::vector<std::string> ignored;
  for (const auto& [fqn, tensor] : weights.all()) {
    auto it = by_fqn_.find(fqn);
    if (it == by_fqn_.end()) {
      ignored.push_back(fqn);
      continue;
    }
    const ConstantInfo& c = *it->second.info;
    const std::vector<std::int64_t>& sizes = it->second.sizes;
    if (!tensor.defined()) {
      throw Error(StatusCode::kInvalidArgument, where + ": weight '" + fqn + "' is undefined");
    }
    if (tensor.scalar_type() != c.dtype) {
      throw Error(StatusCode::kInvalidArgument,
                  where + ": weight '" + fqn + "' must be " + c10::toString(c.dtype) + ", got " +
                      c10::toString(tensor.scalar_type()));
    }
    if (!sizes.empty() && tensor.sizes().vec() != sizes) {
      std::ostringstream os;
      os << where << ": weight '" << fqn << "' must have sizes " << c10::IntArrayRef(sizes)
         << ", got " << tensor.sizes();
      throw Error(StatusCode::kInvalidArgument, os.str());
    }
    // Weights usually arrive on the CPU: the one copy a device model needs (to the
    // runner's device, index included: never read across devices).
    out.emplace(c.name, onDevice(tensor) ? tensor : tensor.to(run_device_));
  }
  if (require_complete) {
    std::string missing;
    for (const auto& [fqn, c] : by_fqn_) {
      if (c.info->requiredInFullUpdate() && out.count(c.info->name) == 0) {
        missing += (missing.empty() ? "" : ", ") + fqn;
      }
    }
    if (!missing.empty()) {
      throw Error(StatusCode::kInvalidArgument, where + ": the weights lack " + missing);
    }
  }
  if (!ignored.empty()) {
    std::sort(ignored.begin(), ignored.end());
    if (ignored != ignored_) {
      std::string list;
      for (const auto& f : ignored) list += (list.empty() ? "" : ", ") + f;
      notice(where + ": ignoring " + std::to_string(ignored.size()) +
             " weight(s) that match no model constant (folded away or compiled into the "
             "model's code): " + list);
    }
    ignored_ = std::move(ignored);
  }
  if (!reported_folded_) {
    std::size_t folded = 0;
    for (const auto& c : runner_->info().constants) folded += c.from_folded ? 1 : 0;
    if (folded > 0) {
      notice(where + ": " + std::to_string(folded) +
             " constant(s) are produced by constant folding and recomputed from the weights");
    }
    reported_folded_ = true;
  }
  return out;
}

namespace {

// The last-level cache's size in bytes; 0 when the C library cannot tell.
std::size_t lastLevelCache() {
  static const std::size_t size = [] {
    for (int name : {_SC_LEVEL4_CACHE_SIZE, _SC_LEVEL3_CACHE_SIZE, _SC_LEVEL2_CACHE_SIZE}) {
      const long v = ::sysconf(name);
      if (v > 0) return static_cast<std::size_t>(v);
    }
    return std::size_t{0};
  }();
  return size;
}

}  // namespace

void AOTIDelegateExecutor::warmInCache(const ConstantMap& constants) const {
  // Weights handed to the model in place were last written by whoever made them, often long
  // ago: the first run on them would fetch every line from memory (measured: 1.36-1.40x a
  // steady run on the medium benchmark model, which a copy into the library's buffer, as
  // upstream makes, avoids by its side effect). Reading them once here moves that cost to
  // the thread processing the weights. Only CPU weights, and only when they fit the
  // last-level cache: beyond it, every run streams them from memory anyway.
  std::size_t total = 0;
  for (const auto& [name, t] : constants) total += t.device().is_cpu() ? t.nbytes() : 0;
  const std::size_t cache = lastLevelCache();
  if (total == 0 || (cache != 0 && total > cache)) return;
  unsigned char sum = 0;
  for (const auto& [name, t] : constants) {
    if (!t.device().is_cpu() || !t.is_contiguous()) continue;
    const auto* bytes = static_cast<const volatile unsigned char*>(t.data_ptr());
    // nbytes() once: the volatile reads keep the compiler from hoisting the call out of the
    // loop (it was 9% of a server's samples while it swapped weights back to back).
    const std::size_t n = t.nbytes();
    for (std::size_t i = 0; i < n; i += 64) sum = static_cast<unsigned char>(sum + bytes[i]);
  }
  warm_sink_.store(sum, std::memory_order_relaxed);  // keeps the reads
}

void AOTIDelegateExecutor::processWeights(std::shared_ptr<Weights> weights) {
  if (!weights) throw Error(StatusCode::kInvalidArgument, "processWeights: no weights given");
  std::lock_guard<std::mutex> lock(weights_mutex_);
  // Whatever was processed before is overwritten in the inactive buffer from here on: a
  // failure below must leave nothing to commit (the runner also refuses to swap in a
  // buffer a failed update left behind).
  pending_weights_.reset();
  ConstantMap constants = toConstantMap(*weights, /*require_complete=*/true);
  const bool in_place =
      config_.useUserManagedWeights && runner_->info().features.user_managed_constant_buffer;
  runner_->update_constant_buffer(constants, /*use_inactive=*/true,
                                  /*validate_full_update=*/true, in_place);
  if (in_place) warmInCache(constants);
  // Folding computes the folded constants from the new weights. A model without any has
  // nothing to fold (its library would only print a warning); its buffer is marked folded
  // by the first run after the swap.
  if (has_folded_constants_) runner_->run_const_fold(/*use_inactive=*/true);
  pending_weights_ = std::move(weights);
}

void AOTIDelegateExecutor::commitWeights() {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  if (!pending_weights_) {
    throw Error(StatusCode::kFailedPrecondition,
                "commitWeights: no processed weights to commit (call processWeights first)");
  }
  // Runs in flight finish first; the runs after the swap see the new generation. The last
  // run out makes the swap itself on its way out (runExclusive), so neither it nor a run
  // held back sleeps until this thread wakes up to do it.
  generation_mutex_->runExclusive([this] {
    runner_->swap_constant_buffer();
    generation_.fetch_add(1, std::memory_order_acq_rel);
  });
  active_weights_ = std::move(pending_weights_);
}

void AOTIDelegateExecutor::initWeights(std::shared_ptr<Weights> weights) {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  if (!weights) throw Error(StatusCode::kInvalidArgument, "initWeights: no weights given");
  if (runner_->info().constants_in_library) {
    // The model library carries its weights: keep them (as upstream does).
    active_weights_ = std::move(weights);
    return;
  }
  runner_->update_constant_buffer(toConstantMap(*weights, true), /*use_inactive=*/false,
                                  /*validate_full_update=*/true);
  active_weights_ = std::move(weights);
}

std::vector<at::Tensor> AOTIDelegateExecutor::run(std::vector<at::Tensor>& inputs) {
  return run(static_cast<const std::vector<at::Tensor>&>(inputs));
}

std::vector<at::Tensor> AOTIDelegateExecutor::run(const std::vector<at::Tensor>& inputs) {
  std::shared_lock<WriterPreferringMutex> generation(*generation_mutex_);
  return runChecked(inputs);
}

std::vector<at::Tensor> AOTIDelegateExecutor::run(const std::vector<at::Tensor>& inputs, RunInfo& info) {
  std::shared_lock<WriterPreferringMutex> generation(*generation_mutex_);
  info.weights_generation = generation_.load(std::memory_order_relaxed);
  return runChecked(inputs);
}

std::vector<std::vector<at::Tensor>> AOTIDelegateExecutor::runAll(
    const std::vector<std::vector<at::Tensor>>& input_sets, RunInfo& info) {
  std::shared_lock<WriterPreferringMutex> generation(*generation_mutex_);
  info.weights_generation = generation_.load(std::memory_order_relaxed);
  std::vector<std::vector<at::Tensor>> out;
  out.reserve(input_sets.size());
  for (const auto& inputs : input_sets) out.push_back(runChecked(inputs));
  return out;
}

std::vector<at::Tensor> AOTIDelegateExecutor::runChecked(const std::vector<at::Tensor>& inputs) {
  const auto& specs = model_->inputs;
  if (!config_.validateInputs || specs.empty()) return checkedOutputs(runner_->run(inputs));
  if (inputs.size() != specs.size()) {
    std::string names;
    for (const auto& s : specs) names += (names.empty() ? "" : ", ") + s.name;
    throw Error(StatusCode::kInvalidArgument,
                "model '" + model_->name + "' takes " + std::to_string(specs.size()) +
                    " input(s) (" + names + "), got " + std::to_string(inputs.size()));
  }
  // The common case allocates nothing: every input matches and is laid out as expected.
  bool laid_out = true;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!tensorMatchesSpec(inputs[i], specs[i])) throw tensorSpecMismatch(inputs[i], specs[i], i, "input");
    if (!onDevice(inputs[i])) {
      throw Error(StatusCode::kInvalidArgument,
                  "input " + std::to_string(i) + " ('" + specs[i].name + "') is on " +
                      inputs[i].device().str() + ", the model runs on " + device_);
    }
    laid_out = laid_out && tensorHasSpecLayout(inputs[i], specs[i]);
  }
  checkSharedSizes(inputs, specs, model_->shared_sizes, "input");
  if (laid_out) return checkedOutputs(runner_->run(inputs));
  std::vector<at::Tensor> normalized;
  normalized.reserve(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    normalized.push_back(
        checkTensorAgainstSpec(inputs[i], specs[i], i, "input", config_.convertInputLayouts));
  }
  return checkedOutputs(runner_->run(normalized));
}

std::vector<at::Tensor> AOTIDelegateExecutor::checkedOutputs(std::vector<at::Tensor> outputs) const {
  const std::size_t declared = runner_->info().numOutputs();
  if (outputs.size() != declared) {
    throw Error(StatusCode::kPluginError,
                "the runner for model '" + model_->name + "' of " + opened_->package->path() +
                    " returned " + std::to_string(outputs.size()) + " output(s), expected " +
                    std::to_string(declared) + " (the number the model library declares)");
  }
  return outputs;
}

std::vector<std::string> AOTIDelegateExecutor::ignoredWeights() const {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  return ignored_;
}

bool AOTIDelegateExecutor::hasPendingWeights() const {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  return pending_weights_ != nullptr;
}

}  // namespace aotiplug
