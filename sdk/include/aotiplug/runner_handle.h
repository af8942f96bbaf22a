// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::RunnerHandle — the host's side of a runner that lives in a plugin.
//
// Wraps the RunnerAbi a plugin created: forwards each call, turning Status values back
// into aotiplug::Error (prefixed with the plugin's name), and holds the lease that keeps
// the plugin library loaded until the handle is destroyed. It is itself a
// ModelContainerRunner, so the executor does not care whether a runner came from a plugin.
//
// Ownership: owns the plugin's runner and a lease on its library; the ModelInfo is copied
// into the handle at construction. Thread safety: as ModelContainerRunner.

#include <aotiplug/runner_abi.h>
#include <aotiplug/typed_registry.h>

#include <string>
#include <utility>
#include <vector>

namespace aotiplug {

// aotiplug::RunnerHandle
class RunnerHandle final : public ModelContainerRunner {
 public:
  // `context` prefixes error messages, e.g. "plugin 'cpu'".
  RunnerHandle(Leased<RunnerAbi> runner, std::string context)
      : runner_(std::move(runner)), info_(runner_->info()), context_(std::move(context)) {}

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

 private:
  void check(const Status& status) const {
    if (!status.isOk()) throwIfError(status, context_);
  }

  Leased<RunnerAbi> runner_;
  ModelInfo info_;
  std::string context_;
};

}  // namespace aotiplug
