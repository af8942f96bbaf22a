// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::DelegateExecutor — runs a delegated (compiled) part of a model, with a weights
// lifecycle: the interface of nativert's delegate executors.
//
// Lifecycle:
//   initWeights(w)    at start-up: make the model use its initial weights;
//   processWeights(w) prepare a new set without disturbing runs: validate it, load it into
//                     an inactive copy and do any preprocessing (constant folding);
//   commitWeights()   make the processed set the active one, atomically for runs;
//   run(inputs)       run with the active weights; callable from many threads at once.
// processWeights and commitWeights may be called while other threads call run().
//
// Ownership: an executor shares the Weights it is given (std::shared_ptr) for as long as
// it uses them. Thread safety: as above; implementations say more.

#include <aotiplug/executor/weights.h>

#include <ATen/Tensor.h>

#include <memory>
#include <vector>

namespace aotiplug {

// aotiplug::DelegateExecutor
class DelegateExecutor {
 public:
  virtual ~DelegateExecutor() = default;
  virtual void processWeights(std::shared_ptr<Weights> weights) = 0;
  virtual void commitWeights() = 0;
  virtual void initWeights(std::shared_ptr<Weights> weights) = 0;
  virtual std::vector<at::Tensor> run(std::vector<at::Tensor>& inputs) = 0;
};

}  // namespace aotiplug
