// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::AOTIDelegateExecutor — runs an AOTInductor model from a .pt2 package through
// whichever runner plugin serves its device, with nativert's weights lifecycle.
//
// Construction: opens the package (Pt2Package), picks the model (the only one, or the
// named one), extracts its files into a private directory (mode 0700, removed with the
// last executor using it, also when construction fails; the first executor of a process
// also removes the directories hosts that died left in the same place), and creates the
// runner through the typed registry for the device the package records (AOTI_DEVICE_KEY)
// unless the config names another. Executors of one process that open the same unchanged
// file (and model, and extraction place) share the opened package and its extracted files:
// a second one neither reads the archive nor extracts it again, and its runner maps the
// library already mapped. num_models = ExecutorConfig::maxNumConcurrentThreads. Weights stored outside
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
//    user-managed buffers; then read once, on the CPU, so that the first run on them
//    finds them in the cache) and folds it (when the model has folded constants). A
//    refused set leaves the active weights untouched;
//  - commitWeights(): makes the processed set active (a swap that waits for runs in flight;
//    the last run out makes the swap on its own thread before its run() returns, so the
//    runs held back meanwhile do not wait for the committing thread to wake up);
//  - initWeights(w): a model whose weights are inside its .so keeps them (as upstream);
//    a model compiled without them gets w loaded as its active weights;
//  - processWeights/commitWeights are serialized against each other; run() may be called
//    from any number of threads meanwhile, and each run sees either the old or the new
//    weights, never a mix;
//  - weightsGeneration() counts the commits; run(inputs, info) tells which generation a
//    run used (a commit waits for the runs in flight, and runs that start after it see the
//    new generation).
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
// Weights it is given. Thread safety: as described above. Compiled into libaotiplug
// (sdk/src/aoti_delegate_executor.cpp).

#include <aotiplug/detail/export.h>
#include <aotiplug/error.h>
#include <aotiplug/executor/delegate_executor.h>
#include <aotiplug/executor/executor_config.h>
#include <aotiplug/executor/weights.h>
#include <aotiplug/package/private_directory.h>
#include <aotiplug/package/pt2_package.h>
#include <aotiplug/runner/runner.h>

#include <c10/core/Device.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace aotiplug {

class WriterPreferringMutex;  // detail/writer_preferring_mutex.h
namespace detail {
struct OpenedModel;  // the package and the files extracted from it, shared (sdk/src)
}  // namespace detail

// aotiplug::AOTIDelegateExecutor
class AOTIPLUG_API AOTIDelegateExecutor final : public DelegateExecutor {
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

  // aotiplug::AOTIDelegateExecutor::RunInfo — what one run used.
  struct RunInfo {
    std::uint64_t weights_generation = 0;  // see weightsGeneration()
  };
  // run(), also saying which weights the run used.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, RunInfo& info);
  // Runs each input set in turn, all with the same weights (a commit waits for the last):
  // for one batch split into several runs. Returns the outputs of each run.
  std::vector<std::vector<at::Tensor>> runAll(const std::vector<std::vector<at::Tensor>>& input_sets,
                                              RunInfo& info);
  // How many times commitWeights() has made new weights active: 0 for the weights the
  // executor started with.
  std::uint64_t weightsGeneration() const noexcept {
    return generation_.load(std::memory_order_acquire);
  }

  const Pt2Package& package() const noexcept;
  const PackagedModel& packagedModel() const noexcept { return *model_; }
  const ModelInfo& modelInfo() const noexcept { return runner_->info(); }
  ModelContainerRunner& runner() noexcept { return *runner_; }
  // The device the runner serves, with its index where the device type has one ("cpu",
  // "cuda:0"): "cuda" from the package is resolved when the runner is created.
  const std::string& device() const noexcept { return device_; }
  // The extraction directory (exists while the executor lives).
  const std::string& extractionDirectory() const noexcept;
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
  std::vector<at::Tensor> runChecked(const std::vector<at::Tensor>& inputs);
  // Reads weights just handed over in place once, so the first run on them finds them cached.
  void warmInCache(const ConstantMap& constants) const;
  bool onDevice(const at::Tensor& t) const noexcept {
    return t.device().type() == run_device_.type() &&
           (!run_device_.has_index() || run_device_.type() == c10::DeviceType::CPU ||
            t.device().index() == run_device_.index());
  }

  ExecutorConfig config_;
  std::shared_ptr<const detail::OpenedModel> opened_;  // the package, its extracted files: after runner_
  const PackagedModel* model_ = nullptr;
  std::unique_ptr<ModelContainerRunner> runner_;
  std::string device_;
  c10::Device run_device_{c10::DeviceType::CPU};  // device_, parsed
  std::unordered_map<std::string, Constant> by_fqn_;  // non-folded constants
  bool has_folded_constants_ = false;

  mutable std::mutex weights_mutex_;
  // Held shared by runs, exclusively by a commit: so a run knows its generation.
  std::unique_ptr<WriterPreferringMutex> generation_mutex_;
  std::atomic<std::uint64_t> generation_{0};
  mutable std::atomic<unsigned char> warm_sink_{0};
  std::shared_ptr<Weights> active_weights_;
  std::shared_ptr<Weights> pending_weights_;
  std::vector<std::string> ignored_;
  bool reported_folded_ = false;
};

}  // namespace aotiplug
