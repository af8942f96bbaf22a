// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::ExternKernels — aotiplug's proxy executor: runs the extern kernels of a model
// library, the operators AOTInductor has no C shim for (custom ops registered with
// TORCH_LIBRARY, torchvision's detection ops, ...).
//
// The model library calls them through LibTorch's exported C shim
// aoti_torch_proxy_executor_call_function(handle, node, num_ints, ints, num_tensors,
// tensors), which forwards to the torch::aot_inductor::ProxyExecutor the handle points at.
// LibTorch 2.11 keeps its own implementation (OSSProxyExecutor) internal, so this is ours.
//
// At load, from the extern-kernel file (<model>.json beside the library; AOTInductor
// writes it only when there are extern nodes): every node's operator is resolved through
// the c10 dispatcher and every argument is bound by name to the registered schema. What
// cannot run is refused then, never at the first run: an operator this process has not
// registered (named, with the library that usually provides it), an argument or output
// kind this executor does not handle (named), an argument the registered schema does not
// have or has with another type (the op library differs from the one the model was
// compiled against).
//
// On each call: the prefilled argument stack is copied, the flat int and tensor arguments
// are put in place (in schema order; None consumes nothing; outputs come last), the op is
// called boxed, and each output tensor is assigned to the handle the model preallocated.
// Serialized dtypes, layouts and memory formats are converted to c10's numbering (torch
// 2.11's own executor passes them raw). Device arguments become the model's device.
//
// Errors: a call never throws into the model library. torch 2.11's generated code ignores
// the shim's return code, so a failure is also kept for the calling thread; the binding
// (model_library.h) takes it after the run and fails the run with it.
//
// Ownership: owned by the ModelLibrary it serves, created before the container and
// destroyed after it. Thread safety: call_function() may run concurrently from any number
// of threads (each call copies its stack); takeError() reports the calling thread's.

#include <aotiplug/detail/export.h>

#include <c10/core/Device.h>
#include <torch/csrc/inductor/aoti_torch/proxy_executor.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace aotiplug {

class AOTIPLUG_API ExternKernels final : public torch::aot_inductor::ProxyExecutor {
 public:
  // Reads `json_path` (the extern-kernel file of the model library at `model_path`) and
  // resolves every node. Throws Error(kFailedPrecondition) for an operator that is not
  // registered, Error(kIncompatible) for a schema that differs, and Error(kModelError) for
  // a file that does not parse or a kind this executor does not handle.
  ExternKernels(const std::string& json_path, const std::string& model_path, c10::Device device);
  ~ExternKernels() override;
  ExternKernels(const ExternKernels&) = delete;
  ExternKernels& operator=(const ExternKernels&) = delete;

  // The extern-kernel file of a model library (<stem>.json beside it) when it exists and
  // lists nodes; empty otherwise.
  static std::string fileFor(const std::string& model_path);

  void call_function(int extern_node_index, int num_ints, int64_t* flatten_int_args,
                     int num_tensors, AtenTensorHandle* flatten_tensor_args) override;

  // The first failure of a call made on this thread for this executor since the last
  // takeError(); empty when there was none. Clears it.
  std::string takeError() noexcept;

  // The operators, in node order ("ns::op" or "ns::op.overload").
  std::vector<std::string> operators() const;

  // What the model library's C ABI takes.
  void* handle() noexcept { return static_cast<torch::aot_inductor::ProxyExecutor*>(this); }

 private:
  struct Node;
  std::vector<Node> nodes_;
  std::string model_path_;
};

}  // namespace aotiplug
