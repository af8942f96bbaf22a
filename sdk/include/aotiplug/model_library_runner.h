// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::ModelLibraryRunner — a ModelContainerRunner over a ModelLibrary.
//
// The shared implementation of the CPU and CUDA runners, and the natural base for a
// third-party runner: derive, check the device string in the constructor, and override
// run() when the device needs a guard or a stream (see plugins/cuda).
//
// What it adds to the raw binding (model_library.h), beyond upstream's runner:
//  - constants are validated before the model library sees them: known name, not a folded
//    constant, dtype, sizes (or byte size where the sizes are unknown), device; a mismatch
//    is refused with a message naming the constant, and the buffer is left untouched
//    (upstream copies whatever bytes it is given);
//  - tensors that are views or non-contiguous are copied into compact tensors first (the
//    model library copies storage bytes from the data pointer, which is only right for a
//    compact tensor);
//  - with user-managed buffers every tensor the library points to is kept alive by the
//    runner, including values it would otherwise borrow from the other buffer; and what
//    the library leaks is freed: AOTInductor's runtime (torch 2.11 and, as of this
//    writing, upstream's main) wraps each user-managed constant in a new tensor handle it
//    never deletes, so every replaced weight set would stay in memory for good. The runner
//    hands the library aliases of its own, and when an alias's entry is replaced (or the
//    runner destroyed) and a weak reference shows the library's handle still alive, it
//    deletes that handle — a library that frees its handles itself is left alone;
//  - it tracks both buffers' states: swapping to a buffer that was never loaded, running
//    without any weights (a model compiled without its constants), or reading a freed
//    buffer are refused with an explanation instead of failing inside the library;
//  - locking: run() takes a shared lock (an exclusive one when single-threaded, since the
//    library's single-threaded run takes none); constant-buffer calls are serialized
//    against each other, and those that touch the active buffer wait for the runs in
//    flight (the lock prefers writers: a swap is not starved by new runs).
//
// Ownership: owns its ModelLibrary. Thread safety: as ModelContainerRunner.

#include <aotiplug/error.h>
#include <aotiplug/model_library.h>
#include <aotiplug/runner.h>
#include <aotiplug/runner_registry.h>
#include <aotiplug/writer_preferring_mutex.h>

#include <ATen/ops/alias.h>
#include <ATen/ops/empty_like.h>
#include <c10/core/Device.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::ModelLibraryRunner
class ModelLibraryRunner : public ModelContainerRunner {
 public:
  ModelLibraryRunner(const std::string& model_so_path, std::size_t num_models,
                     const std::string& device_str, const std::string& cubin_dir,
                     bool run_single_threaded);
  ~ModelLibraryRunner() override;

  const ModelInfo& info() const noexcept override { return info_; }
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs,
                              void* stream_handle = nullptr) override;
  ConstantMap extract_constants_map(bool use_inactive) const override;
  void update_constant_buffer(const ConstantMap& constants, bool use_inactive,
                              bool validate_full_update, bool user_managed = false) override;
  void run_const_fold(bool use_inactive, void* stream_handle = nullptr) override;
  void swap_constant_buffer() override;
  void free_inactive_constant_buffer() override;
  void update_constants_from_blob(const void* blob, std::size_t size) override;

 protected:
  // The device this runner was created for.
  const c10::Device& device() const noexcept { return device_; }
  ModelLibrary& library() noexcept { return *library_; }

  // Runs on the already-resolved stream; derived runners wrap it with device guards.
  std::vector<at::Tensor> runOnStream(const std::vector<at::Tensor>& inputs, void* stream);
  void foldOnStream(bool use_inactive, void* stream);
  // With weights_mutex_ held: locks runs out while the active buffer is unfolded (or in
  // single-threaded mode), for calls that otherwise overlap runs (see runOnStream).
  std::unique_lock<WriterPreferringMutex> lockRunsIfUnfolded() const;

 private:
  enum class BufferState : std::uint8_t { kEmpty, kLoaded, kFolded };

  int activeIndex() const noexcept { return active_.load(std::memory_order_acquire); }
  int targetIndex(bool use_inactive) const noexcept {
    return use_inactive ? 1 - activeIndex() : activeIndex();
  }
  BufferState state(int index) const noexcept { return states_[index].load(); }
  std::string describeConstant(const ConstantInfo& c) const;
  // Validates and normalizes one update; returns the map to hand to the library.
  ConstantMap prepareUpdate(const ConstantMap& constants, bool use_inactive,
                            bool validate_full_update, bool user_managed);
  at::Tensor compact(const at::Tensor& t) const;

  // A user-managed constant the library may have leaked a handle for (see above).
  struct Forgotten {
    AtenTensorHandle handle;                          // the library's handle, borrowed
    c10::weak_intrusive_ptr<c10::TensorImpl> alias;   // the alias it was made from
  };
  // For the user-managed entries of `buffer` named in `names` (all when null).
  std::vector<Forgotten> userManagedEntries(int buffer, const ConstantMap* names) const;
  // Call once the entries are no longer used and our own references are dropped.
  static void freeForgotten(const std::vector<Forgotten>& entries) noexcept;

  std::unique_ptr<ModelLibrary> library_;
  c10::Device device_;
  ModelInfo info_;
  bool single_threaded_;

  // run(): shared; active-buffer changes: exclusive. Writer-preferring, so a swap is not
  // starved by a steady stream of runs.
  mutable WriterPreferringMutex run_mutex_;
  mutable std::mutex weights_mutex_;     // serializes the constant-buffer calls
  std::array<std::atomic<BufferState>, 2> states_{};
  std::atomic<int> active_{0};
  std::array<ConstantMap, 2> retained_;  // per buffer: the aliases handed over user-managed
};

// ---------------------------------------------------------------------------------------

inline ModelLibraryRunner::ModelLibraryRunner(const std::string& model_so_path,
                                              std::size_t num_models,
                                              const std::string& device_str,
                                              const std::string& cubin_dir,
                                              bool run_single_threaded)
    : device_(parseDevice(device_str)), single_threaded_(run_single_threaded) {
  if (num_models == 0) {
    throw Error(StatusCode::kInvalidArgument,
                "model " + model_so_path + ": num_models must be at least 1, got 0");
  }
  if (run_single_threaded && num_models != 1) {
    throw Error(StatusCode::kInvalidArgument,
                "model " + model_so_path +
                    ": run_single_threaded needs num_models == 1 (it runs one model "
                    "instance without locks), got " +
                    std::to_string(num_models));
  }
  library_ = std::make_unique<ModelLibrary>(model_so_path, num_models, device_str, cubin_dir);
  if (run_single_threaded && !library_->features().run_single_threaded) {
    throw Error(StatusCode::kFailedPrecondition,
                "model library " + model_so_path +
                    " does not export AOTInductorModelContainerRunSingleThreaded, needed for "
                    "run_single_threaded (compiled by torch < 2.7?)");
  }
  info_.model_path = model_so_path;
  info_.device = device_str;
  info_.num_models = num_models;
  info_.run_single_threaded = run_single_threaded;
  info_.input_names = library_->inputNames();
  info_.output_names = library_->outputNames();
  std::tie(info_.in_spec, info_.out_spec) = library_->callSpec();
  info_.constants = library_->constants();
  info_.features = library_->features();

  // Sizes of the constants, and whether the .so brought its weights, from the active buffer.
  BufferState initial = BufferState::kLoaded;
  if (info_.features.extract_constants_map) {
    const ConstantMap active = library_->extractConstantsMap(/*use_inactive=*/false);
    bool any_needed = false;
    bool any_present = false;
    for (ConstantInfo& c : info_.constants) {
      if (c.from_folded) continue;
      auto it = active.find(c.original_fqn);
      if (it != active.end() && it->second.defined()) {
        c.sizes = it->second.sizes().vec();
        any_present = true;
      }
      if (c.data_size > 0) any_needed = true;
    }
    if (any_needed && !any_present) initial = BufferState::kEmpty;
  }
  // Sizes the buffer cannot tell (weights compiled outside the .so): from the constant
  // specs aotiplug's packager records in the AOTI metadata, when present.
  const auto metadata = library_->metadata();
  if (auto it = metadata.find("aotiplug.constants"); it != metadata.end()) {
    const nlohmann::json specs = nlohmann::json::parse(it->second, nullptr, false);
    for (ConstantInfo& c : info_.constants) {
      if (!c.sizes.empty() || c.from_folded || !specs.is_object()) continue;
      auto spec = specs.find(c.original_fqn);
      if (spec != specs.end() && spec->contains("sizes") && (*spec)["sizes"].is_array()) {
        c.sizes = (*spec)["sizes"].get<std::vector<std::int64_t>>();
      }
    }
  }
  states_[0] = initial;
  states_[1] = BufferState::kEmpty;
  info_.constants_in_library = initial != BufferState::kEmpty;
}

inline std::vector<at::Tensor> ModelLibraryRunner::run(const std::vector<at::Tensor>& inputs,
                                                       void* stream_handle) {
  return runOnStream(inputs, stream_handle);
}

inline std::vector<at::Tensor> ModelLibraryRunner::runOnStream(
    const std::vector<at::Tensor>& inputs, void* stream) {
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const at::Tensor& t = inputs[i];
    if (t.defined() && t.device().type() != device_.type()) {
      const std::string name = i < info_.input_names.size() ? info_.input_names[i] : "?";
      throw Error(StatusCode::kInvalidArgument,
                  "model " + info_.model_path + ": input " + std::to_string(i) + " (" + name +
                      ") is on " + t.device().str() + ", expected " +
                      c10::DeviceTypeName(device_.type(), true));
    }
  }
  auto run_locked = [&] {
    if (state(activeIndex()) == BufferState::kEmpty) {
      throw Error(StatusCode::kFailedPrecondition,
                  "model " + info_.model_path +
                      " has no weights loaded: its constants are not inside the model "
                      "library (compiled with aot_inductor.package_constants_in_so=False?). "
                      "Load them with update_constant_buffer first");
    }
    std::vector<at::Tensor> out = library_->run(inputs, stream, single_threaded_);
    // The library folds a loaded buffer lazily on its first run (only then a write here).
    if (state(activeIndex()) == BufferState::kLoaded) {
      BufferState expected = BufferState::kLoaded;
      states_[activeIndex()].compare_exchange_strong(expected, BufferState::kFolded);
    }
    return out;
  };
  if (single_threaded_) {
    std::unique_lock<WriterPreferringMutex> lock(run_mutex_);
    return run_locked();
  }
  {
    std::shared_lock<WriterPreferringMutex> lock(run_mutex_);
    if (state(activeIndex()) != BufferState::kLoaded) return run_locked();
  }
  // The model library folds an unfolded active buffer lazily inside its run: holding one
  // of its model instances, it waits for its lock exclusively, while other runs hold that
  // lock shared and wait for a free instance — a deadlock whenever more threads run than
  // the container has instances (the stress test hung here). On the way it also creates
  // the inactive buffer's bookkeeping and updates the active map without the lock that
  // inactive updates and extraction take (ThreadSanitizer caught them racing). So such a
  // run — the first after loading, or after a swap to an unfolded buffer — goes alone, and
  // those calls lock runs out while the active buffer is unfolded (lockRunsIfUnfolded).
  // (This run does not also take weights_mutex_: a thread swapping weights in a loop
  // re-takes that mutex at once, and runs starved behind it — p99 12x steady in the bench.)
  std::unique_lock<WriterPreferringMutex> lock(run_mutex_);
  return run_locked();
}

inline std::unique_lock<WriterPreferringMutex> ModelLibraryRunner::lockRunsIfUnfolded() const {
  std::unique_lock<WriterPreferringMutex> exclusive(run_mutex_, std::defer_lock);
  // Only weight calls (under weights_mutex_) make the active buffer unfolded, so this
  // cannot turn true behind our back; turning false meanwhile only costs a wait.
  if (single_threaded_ || state(activeIndex()) == BufferState::kLoaded) exclusive.lock();
  return exclusive;
}

inline ConstantMap ModelLibraryRunner::extract_constants_map(bool use_inactive) const {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  if (state(targetIndex(use_inactive)) == BufferState::kEmpty) {
    throw Error(StatusCode::kFailedPrecondition,
                "model " + info_.model_path + ": the " +
                    (use_inactive ? "inactive" : "active") +
                    " constant buffer holds no constants");
  }
  const auto runs = lockRunsIfUnfolded();
  return library_->extractConstantsMap(use_inactive);
}

inline std::string ModelLibraryRunner::describeConstant(const ConstantInfo& c) const {
  std::ostringstream os;
  os << "constant '" << c.original_fqn << "'";
  if (c.name != c.original_fqn) os << " (AOTI name '" << c.name << "')";
  return os.str();
}

inline at::Tensor ModelLibraryRunner::compact(const at::Tensor& t) const {
  const bool is_compact = t.is_contiguous() && t.storage_offset() == 0 &&
                          t.storage().nbytes() == t.nbytes();
  if (is_compact) return t;
  return at::empty_like(t, at::MemoryFormat::Contiguous).copy_(t);
}

inline ConstantMap ModelLibraryRunner::prepareUpdate(const ConstantMap& constants,
                                                     bool use_inactive,
                                                     bool validate_full_update,
                                                     bool user_managed) {
  const std::string& model = info_.model_path;
  ConstantMap prepared;
  prepared.reserve(constants.size());
  for (const auto& [name, tensor] : constants) {
    const ConstantInfo* c = info_.findConstant(name);
    if (c == nullptr) {
      std::string known;
      for (const ConstantInfo& k : info_.constants) {
        if (!k.from_folded) known += (known.empty() ? "" : ", ") + k.name;
      }
      throw Error(StatusCode::kNotFound, "model " + model + " has no constant named '" + name +
                                             "'; its constants are: " + known);
    }
    if (c->from_folded) {
      throw Error(StatusCode::kInvalidArgument,
                  "model " + model + ": " + describeConstant(*c) +
                      " is produced by constant folding and cannot be set");
    }
    if (!tensor.defined()) {
      throw Error(StatusCode::kInvalidArgument,
                  "model " + model + ": " + describeConstant(*c) + " is an undefined tensor");
    }
    std::ostringstream expected;
    expected << c10::toString(c->dtype) << " ";
    if (!c->sizes.empty() || c->data_size == 0) {
      expected << c10::IntArrayRef(c->sizes);
    } else {
      expected << "(" << c->data_size << " bytes)";
    }
    const bool dtype_ok = tensor.scalar_type() == c->dtype;
    // Without known sizes only the byte size can be checked; the model library pads it
    // to its constant alignment (64 bytes).
    auto padded = [](std::size_t n) { return (n + 63) / 64 * 64; };
    const bool sizes_ok =
        !c->sizes.empty() ? tensor.sizes().vec() == c->sizes
                          : padded(static_cast<std::size_t>(tensor.nbytes())) == padded(c->data_size);
    if (!dtype_ok || !sizes_ok || tensor.device().type() != device_.type()) {
      std::ostringstream got;
      got << c10::toString(tensor.scalar_type()) << " " << tensor.sizes() << " on "
          << tensor.device();
      throw Error(StatusCode::kInvalidArgument,
                  "model " + model + ": " + describeConstant(*c) + " expects " +
                      expected.str() + " on " + c10::DeviceTypeName(device_.type(), true) +
                      ", got " + got.str());
    }
    prepared.emplace(name, compact(tensor));
  }

  const int target = targetIndex(use_inactive);
  const int source = 1 - target;
  ConstantMap source_values;  // lazily read: the other buffer's constants, by FQN
  bool source_read = false;
  for (const ConstantInfo& c : info_.constants) {
    if (c.from_folded || prepared.count(c.name) != 0) continue;
    if (validate_full_update && c.requiredInFullUpdate()) {
      throw Error(StatusCode::kInvalidArgument,
                  "model " + model + ": a full update must supply " + describeConstant(c) +
                      " (" + constantKindName(c.kind) + ")");
    }
    // For the inactive buffer the library fills what is left out from the active buffer —
    // by copy, or by borrowing a pointer when user-managed. Provide it ourselves instead
    // where borrowing could dangle, and refuse where there is nothing to take it from.
    if (!use_inactive || c.data_size == 0) continue;
    const bool fallback_kind = c.kind == ConstantKind::kBuffer ||
                               c.kind == ConstantKind::kTensorConstant;
    if (!fallback_kind) continue;
    if (state(source) == BufferState::kEmpty) {
      throw Error(StatusCode::kInvalidArgument,
                  "model " + model + ": " + describeConstant(c) +
                      " was not supplied and the active buffer has no value to copy");
    }
    if (user_managed && info_.features.extract_constants_map) {
      if (!source_read) {
        source_values = library_->extractConstantsMap(source != activeIndex());
        source_read = true;
      }
      auto it = source_values.find(c.original_fqn);
      if (it != source_values.end()) prepared.emplace(c.name, it->second.clone());
    }
  }
  return prepared;
}

inline std::vector<ModelLibraryRunner::Forgotten> ModelLibraryRunner::userManagedEntries(
    int buffer, const ConstantMap* names) const {
  std::vector<Forgotten> out;
  if (retained_[buffer].empty() || !info_.features.extract_constants_map) return out;
  const auto handles = library_->extractConstantHandles(/*use_inactive=*/buffer != activeIndex());
  for (const auto& [name, alias] : retained_[buffer]) {
    if (names != nullptr && names->count(name) == 0) continue;
    const ConstantInfo* c = info_.findConstant(name);
    auto h = c != nullptr ? handles.find(c->original_fqn) : handles.end();
    if (h == handles.end() || h->second == nullptr) continue;
    out.push_back(Forgotten{h->second, c10::weak_intrusive_ptr<c10::TensorImpl>(alias.getIntrusivePtr())});
  }
  return out;
}

inline void ModelLibraryRunner::freeForgotten(const std::vector<Forgotten>& entries) noexcept {
  for (const Forgotten& f : entries) {
    // Nobody but the library's handle can hold the alias now: alive means leaked.
    if (f.alias.use_count() > 0) aoti_torch_delete_tensor_object(f.handle);
  }
}

inline ModelLibraryRunner::~ModelLibraryRunner() {
  std::vector<Forgotten> forgotten;
  try {
    for (int b = 0; b < 2; ++b) {
      auto entries = userManagedEntries(b, nullptr);
      forgotten.insert(forgotten.end(), entries.begin(), entries.end());
    }
  } catch (...) {
    forgotten.clear();  // could not read them back: leak rather than guess
  }
  library_.reset();  // the container goes; its user-managed handles may not
  retained_[0].clear();
  retained_[1].clear();
  freeForgotten(forgotten);
}

inline void ModelLibraryRunner::update_constant_buffer(const ConstantMap& constants,
                                                       bool use_inactive,
                                                       bool validate_full_update,
                                                       bool user_managed) {
  std::lock_guard<std::mutex> weights(weights_mutex_);
  if (user_managed && !info_.features.user_managed_constant_buffer) {
    throw Error(StatusCode::kFailedPrecondition,
                "model library " + info_.model_path +
                    " does not support user-managed constant buffers");
  }
  ConstantMap prepared =
      prepareUpdate(constants, use_inactive, validate_full_update, user_managed);
  // Changing the active buffer, or any buffer in single-threaded mode (the library's
  // single-threaded run takes no lock), must wait for runs in flight; so must an inactive
  // update while a run may be folding the active buffer lazily (lockRunsIfUnfolded).
  std::unique_lock<WriterPreferringMutex> exclusive =
      use_inactive ? lockRunsIfUnfolded() : std::unique_lock<WriterPreferringMutex>(run_mutex_);
  const int target = targetIndex(use_inactive);
  if (user_managed) {
    // Aliases: new tensor objects over the same memory (no copy) that only this runner and
    // the library hold, so a weak reference can tell whether the library let go.
    for (auto& [name, t] : prepared) t = t.alias();
  }
  const std::vector<Forgotten> replaced = userManagedEntries(target, &prepared);
  library_->updateConstantBuffer(prepared, use_inactive, validate_full_update, user_managed);
  states_[target] = BufferState::kLoaded;
  for (const auto& [name, t] : prepared) retained_[target].erase(name);
  freeForgotten(replaced);
  if (user_managed) {
    for (auto& [name, t] : prepared) retained_[target].emplace(name, std::move(t));
  }
  if (single_threaded_ && use_inactive) {
    // torch <= 2.11: RunSingleThreaded checks the wrong buffer's fold state and throws
    // while the inactive buffer is loaded but not folded. Fold it right away.
    library_->runConstantFolding(/*use_inactive=*/true, nullptr);
    states_[target] = BufferState::kFolded;
  }
}

inline void ModelLibraryRunner::foldOnStream(bool use_inactive, void* stream) {
  std::lock_guard<std::mutex> weights(weights_mutex_);
  const int target = targetIndex(use_inactive);
  if (state(target) == BufferState::kEmpty) {
    throw Error(StatusCode::kFailedPrecondition,
                "model " + info_.model_path + ": cannot fold the " +
                    (use_inactive ? "inactive" : "active") +
                    " constant buffer, it holds no constants");
  }
  // Exclusive even for the inactive buffer: the library folds on a model instance taken
  // from the same pool as runs, and under steady load it waits for a free one for a long
  // time (measured: 50-390 ms per fold with one instance and one busy thread). Waiting for
  // the runs in flight and holding new ones for the fold is shorter and bounded.
  std::unique_lock<WriterPreferringMutex> exclusive(run_mutex_);
  library_->runConstantFolding(use_inactive, stream);
  states_[target] = BufferState::kFolded;
}

inline void ModelLibraryRunner::run_const_fold(bool use_inactive, void* stream_handle) {
  foldOnStream(use_inactive, stream_handle);
}

inline void ModelLibraryRunner::swap_constant_buffer() {
  std::lock_guard<std::mutex> weights(weights_mutex_);
  const int inactive = targetIndex(true);
  if (state(inactive) == BufferState::kEmpty) {
    throw Error(StatusCode::kFailedPrecondition,
                "model " + info_.model_path +
                    ": the inactive constant buffer was never loaded (or was freed); call "
                    "update_constant_buffer(use_inactive=true) before swapping");
  }
  std::unique_lock<WriterPreferringMutex> exclusive(run_mutex_);
  library_->swapConstantBuffer();
  active_.store(inactive, std::memory_order_release);
}

inline void ModelLibraryRunner::free_inactive_constant_buffer() {
  std::lock_guard<std::mutex> weights(weights_mutex_);
  if (single_threaded_ && activeIndex() == 1) {
    throw Error(StatusCode::kFailedPrecondition,
                "model " + info_.model_path +
                    ": cannot free the inactive buffer in single-threaded mode while the "
                    "secondary buffer is active (torch <= 2.11's RunSingleThreaded would then "
                    "fail on the freed buffer's state)");
  }
  const auto runs = lockRunsIfUnfolded();
  const int inactive = targetIndex(true);
  library_->freeInactiveConstantBuffer();
  states_[inactive] = BufferState::kEmpty;
  // User-managed entries stay in the library's map (only folded values are freed): keep
  // their aliases, to be released when the entries are replaced or the runner destroyed.
}

inline void ModelLibraryRunner::update_constants_from_blob(const void* blob, std::size_t size) {
  std::lock_guard<std::mutex> weights(weights_mutex_);
  std::unique_lock<WriterPreferringMutex> exclusive(run_mutex_);
  library_->updateConstantsFromBlob(blob, size);
  states_[activeIndex()] = BufferState::kLoaded;
}

}  // namespace aotiplug
