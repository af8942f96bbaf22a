// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::RunnerAbi — the runner interface as it crosses the plugin boundary.
//
// A plugin never hands the host a ModelContainerRunner directly: AOTIPLUG_REGISTER_RUNNER
// wraps the author's runner in a RunnerAbiAdapter<T>, compiled into the plugin, whose
// methods are noexcept and return errors as Status values. The host wraps the RunnerAbi in
// a RunnerHandle (runner_handle.h), which turns the values back into aotiplug::Error. So
// no exception ever unwinds through the boundary, and nothing thrown in a plugin outlives
// the call.
//
// ABI rules: this vtable is part of the plugin ABI (AOTIPLUG_ABI_MAJOR). New methods are
// appended at the end with a minor bump, inside `#if AOTIPLUG_TARGET_ABI_MINOR >= N`, and
// counted in runnerAbiMethods(); changing or reordering one is a major bump. The host
// learns a plugin's minor from its manifest before it loads it, keeps it in the
// RunnerHandle, and calls a method added in minor N only on runners of minor N or newer;
// from minor 1 on it also asks the table itself (abi_version()) and refuses a runner whose
// table does not say what its manifest says. docs/abi.md has the rules.
//
// Ownership: the host owns the RunnerAbi (through the registry's Leased pointer); output
// arguments are owned by the caller. info() returns a reference valid while the object
// lives. Thread safety: as ModelContainerRunner.

#include <aotiplug/runner/runner.h>
#include <aotiplug/status.h>
#include <aotiplug/version.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace aotiplug {

// What a runner's table says about itself (RunnerAbi::abi_version(), minor 1 on).
struct RunnerAbiVersion {
  std::uint32_t abi_major = 0;
  std::uint32_t abi_minor = 0;
  std::uint32_t methods = 0;  // entries of the table after the destructor
};

// How many methods (after the destructor) a RunnerAbi of that minor has.
constexpr std::uint32_t runnerAbiMethods(std::uint32_t abi_minor) noexcept {
  return abi_minor >= 1 ? 9 : 8;
}

// aotiplug::RunnerAbi
class RunnerAbi {
 public:
  virtual ~RunnerAbi() = default;

  virtual const ModelInfo& info() const noexcept = 0;
  virtual Status run(const std::vector<at::Tensor>& inputs, void* stream_handle,
                     std::vector<at::Tensor>* outputs) noexcept = 0;
  virtual Status extract_constants_map(bool use_inactive, ConstantMap* out) const noexcept = 0;
  virtual Status update_constant_buffer(const ConstantMap& constants, bool use_inactive,
                                        bool validate_full_update,
                                        bool user_managed) noexcept = 0;
  virtual Status run_const_fold(bool use_inactive, void* stream_handle) noexcept = 0;
  virtual Status swap_constant_buffer() noexcept = 0;
  virtual Status free_inactive_constant_buffer() noexcept = 0;
  virtual Status update_constants_from_blob(const void* blob, std::size_t size) noexcept = 0;
  // ---- ABI minor 1 ----
#if AOTIPLUG_TARGET_ABI_MINOR >= 1
  virtual RunnerAbiVersion abi_version() const noexcept = 0;
#endif
};

namespace detail {

// Runs f, turning any exception into a Status.
template <class F>
Status guarded(F&& f) noexcept {
  try {
    std::forward<F>(f)();
    return Status::ok();
  } catch (...) {
    return Status::fromCurrentException();
  }
}

}  // namespace detail

// aotiplug::RunnerAbiAdapter<Runner> — exposes a ModelContainerRunner as a RunnerAbi.
// Instantiated inside the plugin by AOTIPLUG_REGISTER_RUNNER, so the catch blocks run in
// the plugin's own code.
template <class Runner>
class RunnerAbiAdapter final : public RunnerAbi {
  static_assert(std::is_base_of_v<ModelContainerRunner, Runner>,
                "a registered runner must derive from aotiplug::ModelContainerRunner");

 public:
  template <class... A>
  explicit RunnerAbiAdapter(A&&... args) : runner_(std::forward<A>(args)...) {}

  const ModelInfo& info() const noexcept override { return runner_.info(); }

  Status run(const std::vector<at::Tensor>& inputs, void* stream_handle,
             std::vector<at::Tensor>* outputs) noexcept override {
    return detail::guarded([&] { *outputs = runner_.run(inputs, stream_handle); });
  }
  Status extract_constants_map(bool use_inactive, ConstantMap* out) const noexcept override {
    return detail::guarded([&] { *out = runner_.extract_constants_map(use_inactive); });
  }
  Status update_constant_buffer(const ConstantMap& constants, bool use_inactive,
                                bool validate_full_update, bool user_managed) noexcept override {
    return detail::guarded([&] {
      runner_.update_constant_buffer(constants, use_inactive, validate_full_update, user_managed);
    });
  }
  Status run_const_fold(bool use_inactive, void* stream_handle) noexcept override {
    return detail::guarded([&] { runner_.run_const_fold(use_inactive, stream_handle); });
  }
  Status swap_constant_buffer() noexcept override {
    return detail::guarded([&] { runner_.swap_constant_buffer(); });
  }
  Status free_inactive_constant_buffer() noexcept override {
    return detail::guarded([&] { runner_.free_inactive_constant_buffer(); });
  }
  Status update_constants_from_blob(const void* blob, std::size_t size) noexcept override {
    return detail::guarded([&] { runner_.update_constants_from_blob(blob, size); });
  }
#if AOTIPLUG_TARGET_ABI_MINOR >= 1
  RunnerAbiVersion abi_version() const noexcept override {
    return {AOTIPLUG_ABI_MAJOR, AOTIPLUG_TARGET_ABI_MINOR,
            runnerAbiMethods(AOTIPLUG_TARGET_ABI_MINOR)};
  }
#endif

 private:
  Runner runner_;
};

}  // namespace aotiplug
