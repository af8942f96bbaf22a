// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::AOTIDelegateExecutor — runs an AOTInductor model from a .pt2 package through
// whichever runner plugin serves its device, with nativert's weights lifecycle.
//
// Construction: opens the package (Pt2Package), picks the model (the only one, or the
// named one), extracts its files into a private directory (mode 0700, removed with the
// executor, also when construction fails; the first executor of a process also removes
// the directories hosts that died left in the same place), and creates the runner through the typed
// registry for the device the package records (AOTI_DEVICE_KEY) unless the config names
// another. num_models = ExecutorConfig::maxNumConcurrentThreads. Weights stored outside
// the model library (a weights blob, or data/weights/) are loaded; otherwise the weights
// given to the constructor or to initWeights() are used for a model compiled without them.
//
// Weights (semantics as nativert's AOTIDelegateExecutor, better checked):
//  - a Weights set maps FQNs; each is matched to the AOTI constant with that original FQN.
//    Constants produced by constant folding are skipped; weights that match no constant
//    (folded away, or baked into the compiled code) are reported once through the log;
//  - processWeights(w): validates every weight (name, dtype, sizes, device — the message
//    names the weight) and that none the model needs is missing, then loads the set into
//    the inactive buffer (in place, without a copy, where the model library supports
//    user-managed buffers) and folds it (when the model has folded constants). A refused
//    set leaves the active weights untouched;
//  - commitWeights(): makes the processed set active (a swap that waits for runs in flight);
//  - initWeights(w): a model whose weights are inside its .so keeps them (as upstream);
//    a model compiled without them gets w loaded as its active weights;
//  - processWeights/commitWeights are serialized against each other; run() may be called
//    from any number of threads meanwhile, and each run sees either the old or the new
//    weights, never a mix.
//
// Inputs are checked before the model library sees them, against the specs the package
// records (aotiplug's packager), or else those derived from the model's generated wrapper
// source (a package made by plain aoti_compile_and_package; wrapper_source.h): count,
// dtype, device (with its index), rank, static sizes, dynamic ranges and the strides the
// code was compiled for. The message names the input's index and name. An input laid out
// otherwise is copied into the compiled layout where that layout is fully known
// (ExecutorConfig::convertInputLayouts; off, it is refused). A package with neither source
// gets the count and device checks only; one whose wrapper source cannot be read is
// refused at construction unless validateInputs is off. The runner must return as many
// outputs as the model declares; anything else is an error naming the plugin's runner.
//
// Ownership: owns the runner, the private directory and the package reader; shares the
// Weights it is given. Thread safety: as described above.

#include <aotiplug/delegate_executor.h>
#include <aotiplug/error.h>
#include <aotiplug/executor_config.h>
#include <aotiplug/private_directory.h>
#include <aotiplug/pt2_package.h>
#include <aotiplug/runner.h>
#include <aotiplug/runner_registry.h>
#include <aotiplug/tensor_spec.h>
#include <aotiplug/weights.h>

#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace aotiplug {

// aotiplug::AOTIDelegateExecutor
class AOTIDelegateExecutor final : public DelegateExecutor {
 public:
  AOTIDelegateExecutor(const std::string& package_path, std::shared_ptr<Weights> weights = {},
                       ExecutorConfig config = {}, const std::string& model_name = {});
  ~AOTIDelegateExecutor() override;  // the runner goes first, then the extracted files

  void processWeights(std::shared_ptr<Weights> weights) override;
  void commitWeights() override;
  void initWeights(std::shared_ptr<Weights> weights) override;
  std::vector<at::Tensor> run(std::vector<at::Tensor>& inputs) override;

  // The same for a const vector (neither form changes the caller's inputs: converted
  // layouts are copies).
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);

  const Pt2Package& package() const noexcept { return *package_; }
  const PackagedModel& packagedModel() const noexcept { return *model_; }
  const ModelInfo& modelInfo() const noexcept { return runner_->info(); }
  ModelContainerRunner& runner() noexcept { return *runner_; }
  // The device the runner serves, with its index where the device type has one ("cpu",
  // "cuda:0"): "cuda" from the package is resolved when the runner is created.
  const std::string& device() const noexcept { return device_; }
  // The extraction directory (exists while the executor lives).
  const std::string& extractionDirectory() const noexcept { return directory_->path(); }
  // FQNs of the last processed set that matched no model constant.
  std::vector<std::string> ignoredWeights() const;
  // Whether a processed set waits for commitWeights().
  bool hasPendingWeights() const;

 private:
  // A non-folded constant, with its sizes where the runner or the package tells them.
  struct Constant {
    const ConstantInfo* info;
    std::vector<std::int64_t> sizes;  // empty: unknown
  };
  ConstantMap toConstantMap(const Weights& weights, bool require_complete);
  void notice(const std::string& text) const;
  std::vector<at::Tensor> checkedOutputs(std::vector<at::Tensor> outputs) const;
  bool onDevice(const at::Tensor& t) const noexcept {
    return t.device().type() == run_device_.type() &&
           (!run_device_.has_index() || run_device_.type() == c10::DeviceType::CPU ||
            t.device().index() == run_device_.index());
  }

  ExecutorConfig config_;
  std::unique_ptr<Pt2Package> package_;
  const PackagedModel* model_ = nullptr;
  std::unique_ptr<PrivateDirectory> directory_;   // destroyed after runner_
  std::unique_ptr<ModelContainerRunner> runner_;
  std::string device_;
  c10::Device run_device_{c10::DeviceType::CPU};  // device_, parsed
  std::unordered_map<std::string, Constant> by_fqn_;  // non-folded constants
  bool has_folded_constants_ = false;

  mutable std::mutex weights_mutex_;
  std::shared_ptr<Weights> active_weights_;
  std::shared_ptr<Weights> pending_weights_;
  std::vector<std::string> ignored_;
  bool reported_folded_ = false;
};

// ---------------------------------------------------------------------------------------

inline AOTIDelegateExecutor::AOTIDelegateExecutor(const std::string& package_path,
                                                  std::shared_ptr<Weights> weights,
                                                  ExecutorConfig config,
                                                  const std::string& model_name)
    : config_(std::move(config)) {
  package_ = std::make_unique<Pt2Package>(package_path);
  model_ = &package_->model(model_name);
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

  // Once per process and place: what hosts that died left behind there.
  static std::mutex cleaned_mutex;
  static std::set<std::string> cleaned;
  {
    std::lock_guard<std::mutex> lock(cleaned_mutex);
    if (cleaned.insert(config_.extractionDir).second) {
      PrivateDirectory::removeStale("aotiplug-model-", config_.extractionDir);
    }
  }
  directory_ = std::make_unique<PrivateDirectory>("aotiplug-model-", config_.extractionDir);
  const std::string so_path = package_->extract(*model_, *directory_);
  try {
    runner_ = createRunner(device_type, so_path, config_.maxNumConcurrentThreads, device_,
                           directory_->path(), config_.runSingleThreaded);
  } catch (const Error& e) {
    throw Error(e.code(), "package " + package_path + " (model '" + model_->name + "'): " + e.what());
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
    const std::string blob = package_->readRecord(model_->weights_blob);
    runner_->update_constants_from_blob(blob.data(), blob.size());
  } else if (!model_->weights_config.empty()) {
    auto stored = package_->storedWeights(*model_);
    runner_->update_constant_buffer(toConstantMap(*stored, true), /*use_inactive=*/false,
                                    /*validate_full_update=*/true);
    active_weights_ = std::move(stored);
  }
  if (weights) initWeights(std::move(weights));
}

inline AOTIDelegateExecutor::~AOTIDelegateExecutor() {
  runner_.reset();     // closes the model library ...
  directory_.reset();  // ... before its files are removed
}

inline void AOTIDelegateExecutor::notice(const std::string& text) const {
  if (config_.log) {
    config_.log(text);
  } else {
    std::cerr << "[aotiplug] " << text << "\n";
  }
}

inline ConstantMap AOTIDelegateExecutor::toConstantMap(const Weights& weights,
                                                       bool require_complete) {
  const std::string where = "model '" + model_->name + "' of " + package_->path();
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

inline void AOTIDelegateExecutor::processWeights(std::shared_ptr<Weights> weights) {
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
  // Folding computes the folded constants from the new weights. A model without any has
  // nothing to fold (its library would only print a warning); its buffer is marked folded
  // by the first run after the swap.
  if (has_folded_constants_) runner_->run_const_fold(/*use_inactive=*/true);
  pending_weights_ = std::move(weights);
}

inline void AOTIDelegateExecutor::commitWeights() {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  if (!pending_weights_) {
    throw Error(StatusCode::kFailedPrecondition,
                "commitWeights: no processed weights to commit (call processWeights first)");
  }
  runner_->swap_constant_buffer();
  active_weights_ = std::move(pending_weights_);
}

inline void AOTIDelegateExecutor::initWeights(std::shared_ptr<Weights> weights) {
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

inline std::vector<at::Tensor> AOTIDelegateExecutor::run(std::vector<at::Tensor>& inputs) {
  return run(static_cast<const std::vector<at::Tensor>&>(inputs));
}

inline std::vector<at::Tensor> AOTIDelegateExecutor::run(const std::vector<at::Tensor>& inputs) {
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
  if (laid_out) return checkedOutputs(runner_->run(inputs));
  std::vector<at::Tensor> normalized;
  normalized.reserve(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    normalized.push_back(
        checkTensorAgainstSpec(inputs[i], specs[i], i, "input", config_.convertInputLayouts));
  }
  return checkedOutputs(runner_->run(normalized));
}

inline std::vector<at::Tensor> AOTIDelegateExecutor::checkedOutputs(std::vector<at::Tensor> outputs) const {
  const std::size_t declared = runner_->info().numOutputs();
  if (outputs.size() != declared) {
    throw Error(StatusCode::kPluginError,
                "the runner for model '" + model_->name + "' of " + package_->path() +
                    " returned " + std::to_string(outputs.size()) + " output(s), expected " +
                    std::to_string(declared) + " (the number the model library declares)");
  }
  return outputs;
}

inline std::vector<std::string> AOTIDelegateExecutor::ignoredWeights() const {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  return ignored_;
}

inline bool AOTIDelegateExecutor::hasPendingWeights() const {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  return pending_weights_ != nullptr;
}

}  // namespace aotiplug
