// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::RunnerHandle — the host's side of a runner that lives in a plugin.
//
// Wraps the RunnerAbi a plugin created: forwards each call, turning Status values back
// into aotiplug::Error (prefixed with the plugin's name), and holds the lease that keeps
// the plugin library loaded until the handle is destroyed. It is itself a
// ModelContainerRunner, so the executor does not care whether a runner came from a plugin.
//
// It also records the SDK ABI minor the plugin was built for (registry/plugin_abi.h) and
// never calls a method of the runner table that minor lacks; from minor 1 on it checks, when
// it is made, that the table says the same minor and method count as the manifest.
//
// Ownership: owns the plugin's runner and a lease on its library; the ModelInfo is copied
// into the handle at construction. Thread safety: as ModelContainerRunner.

#include <aotiplug/plugin/runner_abi.h>
#include <aotiplug/registry/typed_registry.h>
#include <aotiplug/version.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace aotiplug {

// aotiplug::RunnerHandle
class RunnerHandle final : public ModelContainerRunner {
 public:
  // `context` prefixes error messages, e.g. "plugin 'cpu'"; `abi_minor` is the SDK ABI
  // minor the plugin was built for, as its manifest says (pluginAbiMinor()). Throws
  // Error(kIncompatible) when the runner's table disagrees with it.
  RunnerHandle(Leased<RunnerAbi> runner, std::string context, std::uint32_t abi_minor)
      : runner_(std::move(runner)), context_(std::move(context)), abi_minor_(abi_minor) {
    checkTable();
    info_ = runner_->info();
  }

  const ModelInfo& info() const noexcept override { return info_; }

  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs,
                              void* stream_handle = nullptr) override {
    std::vector<at::Tensor> outputs;
    check(runner_->run(inputs, stream_handle, &outputs));
    return outputs;
  }
  ConstantMap extract_constants_map(bool use_inactive) const override {
    ConstantMap out;
    check(runner_->extract_constants_map(use_inactive, &out));
    return out;
  }
  void update_constant_buffer(const ConstantMap& constants, bool use_inactive,
                              bool validate_full_update, bool user_managed = false) override {
    check(runner_->update_constant_buffer(constants, use_inactive, validate_full_update,
                                          user_managed));
  }
  void run_const_fold(bool use_inactive, void* stream_handle = nullptr) override {
    check(runner_->run_const_fold(use_inactive, stream_handle));
  }
  void swap_constant_buffer() override { check(runner_->swap_constant_buffer()); }
  void free_inactive_constant_buffer() override {
    check(runner_->free_inactive_constant_buffer());
  }
  void update_constants_from_blob(const void* blob, std::size_t size) override {
    check(runner_->update_constants_from_blob(blob, size));
  }

  const std::string& context() const noexcept { return context_; }
  // The SDK ABI minor of the plugin's runner table.
  std::uint32_t abiMinor() const noexcept { return abi_minor_; }

 private:
  void checkTable() const {
#if AOTIPLUG_TARGET_ABI_MINOR >= 1
    if (abi_minor_ < 1) return;  // abi_version() is not in a minor-0 table
    const RunnerAbiVersion v = runner_->abi_version();
    if (v.abi_major != AOTIPLUG_ABI_MAJOR || v.abi_minor != abi_minor_ ||
        v.methods != runnerAbiMethods(abi_minor_)) {
      throw Error(StatusCode::kIncompatible,
                  context_ + ": its runner table says SDK ABI " + std::to_string(v.abi_major) +
                      "." + std::to_string(v.abi_minor) + " with " + std::to_string(v.methods) +
                      " methods, but its manifest says " + std::to_string(AOTIPLUG_ABI_MAJOR) +
                      "." + std::to_string(abi_minor_) + " (" +
                      std::to_string(runnerAbiMethods(abi_minor_)) +
                      " methods); the plugin was built from mixed SDK headers");
    }
#endif
  }

  void check(const Status& status) const {
    if (!status.isOk()) throwIfError(status, context_);
  }

  Leased<RunnerAbi> runner_;
  std::string context_;
  std::uint32_t abi_minor_;
  ModelInfo info_;
};

}  // namespace aotiplug
