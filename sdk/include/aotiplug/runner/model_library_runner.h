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
//    constant, dtype, device (with its index), sizes — from the active buffer, from
//    aotiplug's packager metadata, or from the generated wrapper source beside the library
//    (wrapper_source.h) — or, where no source tells them, the exact byte size the library
//    reserved; a mismatch is refused with a message naming the constant, and the buffer
//    is left untouched (upstream copies whatever bytes it is given, and reads as many
//    strides from the tensor as the constant has dimensions);
//  - tensors that are views, or not laid out with the strides the code was compiled for
//    (a parameter stored transposed is read by fused kernels with its strides), are copied into
//    compact tensors with those strides first (the model library copies storage bytes
//    from the data pointer, which is only right for a compact tensor, and with
//    user-managed buffers its kernels read the tensor itself with the compiled strides);
//  - with user-managed buffers every tensor the library points to is kept alive by the
//    runner, including values it would otherwise borrow from the other buffer; and what
//    the library leaks is freed: AOTInductor's runtime (torch 2.11 and, as of this
//    writing, upstream's main) wraps each user-managed constant in a new tensor handle it
//    never deletes, so every replaced weight set would stay in memory for good. The runner
//    hands the library aliases of its own, and when an alias's entry is replaced (or the
//    runner destroyed) and a weak reference shows the library's handle still alive, it
//    deletes that handle — a library that frees its handles itself is left alone;
//    That handle is recorded when the entry is made, never looked up later: the library
//    may meanwhile have replaced the entry with a value of its own (folding the inactive
//    buffer replaces tensor constants with clones), which it deletes itself;
//  - it tracks, per buffer and per constant, whether the buffer holds a value: a buffer
//    can be run, folded or swapped in only when every constant the model reads has one.
//    Swapping to a buffer that was never loaded (or was freed, or only partly updated, or
//    left behind by a failed update), running without weights, or loading a weights blob
//    twice are refused with an explanation naming what is missing instead of failing — or
//    reading freed memory — inside the library;
//  - the first run after the active buffer was loaded folds its constants explicitly
//    (the library would fold lazily inside Run, after which a failure leaks the inputs);
//  - locking: run() takes a shared lock (an exclusive one when single-threaded, since the
//    library's single-threaded run takes none); constant-buffer calls are serialized
//    against each other, and those that touch the active buffer wait for the runs in
//    flight (the lock prefers writers: a swap is not starved by new runs). Each of them
//    runs with the runner's device made current (a device guard), and calls
//    waitForDevice() — under the same locks — before changing a buffer GPU work may still
//    read (see waitForDevice).
//
// Ownership: owns its ModelLibrary. Thread safety: as ModelContainerRunner.

#include <aotiplug/detail/writer_preferring_mutex.h>
#include <aotiplug/error.h>
#include <aotiplug/registry/runner_registry.h>
#include <aotiplug/runner/device.h>
#include <aotiplug/runner/model_library.h>
#include <aotiplug/runner/runner.h>
#include <aotiplug/runner/wrapper_source.h>

#include <ATen/ops/alias.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/empty_strided.h>
#include <c10/core/Device.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
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
  // The device this runner was created for, with its index for device types that have
  // one ("cuda" is resolved to the current device when the runner is created).
  const c10::Device& device() const noexcept { return device_; }
  ModelLibrary& library() noexcept { return *library_; }

  // Runs on the already-resolved stream; derived runners wrap it with device guards.
  std::vector<at::Tensor> runOnStream(const std::vector<at::Tensor>& inputs, void* stream);
  void foldOnStream(bool use_inactive, void* stream);
  // With weights_mutex_ held: locks runs out while the active buffer is unfolded (or in
  // single-threaded mode), for calls that otherwise overlap runs (see runOnStream).
  std::unique_lock<WriterPreferringMutex> lockRunsIfUnfolded() const;

  // Called with the constant-buffer calls serialized and runs locked out, before the
  // runner changes what work already queued on the device may still read: updating or
  // folding the active buffer, loading a blob, and swapping (so that once a swap returns,
  // nothing reads the buffer that became inactive, and it may be overwritten or freed).
  // A runner whose device runs work asynchronously waits for it here (the CUDA runner
  // synchronizes the device); the default, for synchronous devices, does nothing.
  virtual void waitForDevice() {}

 private:
  // kEmpty: not every constant the model reads has a value (never loaded, freed, partly
  // updated, or left behind by a failed update): not runnable, not swappable.
  enum class BufferState : std::uint8_t { kEmpty, kLoaded, kFolded };

  int activeIndex() const noexcept { return active_.load(std::memory_order_acquire); }
  int targetIndex(bool use_inactive) const noexcept {
    return use_inactive ? 1 - activeIndex() : activeIndex();
  }
  BufferState state(int index) const noexcept { return states_[index].load(); }
  std::string describeConstant(const ConstantInfo& c) const;
  std::string bufferName(int index) const { return index == activeIndex() ? "active" : "inactive"; }
  // Whether the model reads constant i from a buffer (folded values are computed, and
  // empty parameters may be left out, as upstream allows).
  bool needed(std::size_t i) const noexcept;
  // Whether constant c's sizes are known (its entry in info_.constants).
  bool sizesKnown(const ConstantInfo& c) const noexcept;
  // The needed constants buffer b has no value for ("a, b and 2 more"); empty: none.
  std::string missingIn(int b) const;
  // Recomputes buffer b's state from what it holds (kLoaded when complete).
  void settle(int b, bool folded = false);
  // Makes the runner's device current for a scope (nothing to do for the CPU). On the heap:
  // c10::OptionalDeviceGuard trips GCC's maybe-uninitialized warning at -O1.
  std::unique_ptr<c10::DeviceGuard> deviceGuard() const {
    return device_.type() == c10::DeviceType::CPU ? nullptr : std::make_unique<c10::DeviceGuard>(device_);
  }
  // Validates and normalizes one update; returns the map to hand to the library.
  ConstantMap prepareUpdate(const ConstantMap& constants, bool use_inactive,
                            bool validate_full_update, bool user_managed);
  // `t` as a tensor that owns exactly its bytes, laid out with `strides` (the compiled
  // ones; empty when unknown: contiguous).
  static at::Tensor compact(const at::Tensor& t, const std::vector<std::int64_t>& strides);

  // A constant handed to the library user-managed: the alias it uses, and the handle the
  // library wrapped it in (torch <= 2.11 never deletes that handle; null when unknown).
  struct Retained {
    at::Tensor alias;
    AtenTensorHandle handle = nullptr;
  };
  // Call once the library no longer refers to r.handle (its entry was replaced by an
  // update of ours, or the library is gone): frees the handle if the library leaked it.
  static void release(Retained& r) noexcept;

  std::unique_ptr<ModelLibrary> library_;
  c10::Device device_;
  ModelInfo info_;
  bool single_threaded_;
  bool has_folded_constants_ = false;
  // The library has made the inactive buffer's map (it does so lazily, on the first call
  // that asks for it, a run's fold included): set by the first inactive update. Under
  // weights_mutex_.
  bool inactive_map_made_ = false;

  // run(): shared; active-buffer changes: exclusive. Writer-preferring, so a swap is not
  // starved by a steady stream of runs.
  mutable WriterPreferringMutex run_mutex_;
  mutable std::mutex weights_mutex_;     // serializes the constant-buffer calls
  std::array<std::atomic<BufferState>, 2> states_{};
  std::atomic<int> active_{0};
  std::array<std::vector<bool>, 2> filled_;  // per buffer, per constant: holds a value
  // Per constant, the strides the code reads it with (from the active buffer or the
  // wrapper source); empty when unknown.
  std::vector<std::vector<std::int64_t>> strides_;
  // Per constant: whether its sizes are known (ConstantInfo::sizes is empty both for a
  // 0-d constant and for one whose shape nothing told).
  std::vector<bool> sizes_known_;
  // Per buffer, by constant name: what was handed over user-managed. `orphans_` keeps the
  // aliases of updates that failed half-way (the library may still use some of them).
  std::array<std::map<std::string, Retained>, 2> retained_;
  std::vector<at::Tensor> orphans_;
};

}  // namespace aotiplug

// The member functions' bodies (header-only: each plugin compiles its own copy).
#include <aotiplug/detail/model_library_runner_inline.h>
