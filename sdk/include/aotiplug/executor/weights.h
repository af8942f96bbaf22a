// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::Weights — a model's weights by fully qualified name ("fc1.weight").
//
// An immutable set, shared (std::shared_ptr<Weights>) between the caller and the executor
// that uses it. The executor validates names, dtypes and sizes when the set is processed.
// When the model library supports user-managed constant buffers the executor runs the
// model on these very tensors (no copy): changing one in place then changes the model's
// weights, so treat a Weights handed to an executor as read-only.
//
// loadWeightsFile reads a set from a file: a torch.save'd dict of tensors by FQN — what
// `torch.save(module.state_dict(), path)` writes (an OrderedDict with `_metadata`, which
// LibTorch's own pickle_load cannot read; the metadata is dropped), or a plain dict. Each
// tensor is read once from its record in the archive, onto the CPU wherever it was saved
// (the executor moves weights to its device). Refused, saying why: a module saved whole, a
// checkpoint holding the state dict, pickle protocols other than 2 (torch.save's default),
// the pre-1.6 non-zip format, and a damaged file — a tensor reaching past its storage, a
// storage unlike its record. Compiled into libaotiplug.
//
// Thread safety: immutable after construction; safe to share between threads.

#include <aotiplug/detail/export.h>

#include <ATen/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace aotiplug {

// aotiplug::Weights
class Weights {
 public:
  Weights() = default;
  explicit Weights(std::map<std::string, at::Tensor> tensors) : tensors_(std::move(tensors)) {}

  bool contains(const std::string& fqn) const { return tensors_.count(fqn) != 0; }
  // Throws std::out_of_range for an unknown name.
  const at::Tensor& at(const std::string& fqn) const { return tensors_.at(fqn); }
  std::size_t size() const noexcept { return tensors_.size(); }
  bool empty() const noexcept { return tensors_.empty(); }
  const std::map<std::string, at::Tensor>& all() const noexcept { return tensors_; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, t] : tensors_) out.push_back(name);
    return out;
  }

 private:
  std::map<std::string, at::Tensor> tensors_;
};

// The weights in a torch.save'd dict of tensors keyed by FQN. Throws Error(kNotFound) when
// the file cannot be read, Error(kInvalidArgument) naming the file (and the entry) when it
// is not such a dict.
AOTIPLUG_API std::shared_ptr<Weights> loadWeightsFile(const std::string& path);

}  // namespace aotiplug
