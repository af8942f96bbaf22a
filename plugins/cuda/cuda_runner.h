// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::cuda::CudaRunner — runs AOTInductor CUDA models.
//
// A ModelLibraryRunner (model_library_runner.h) for device strings "cuda" and "cuda:N"
// ("cuda" means the current device). Every call into the model library runs with that
// device made current (a device guard), on the caller's stream or, when none is given,
// the device's current stream (LibTorch's c10::cuda stream API); constant folding runs on
// the stream it is given the same way. Nothing here links a CUDA runtime of its own: all
// CUDA calls go through LibTorch's c10_cuda (device guards use c10's generic DeviceGuard,
// whose CUDA implementation lives there; c10/cuda/CUDAGuard.h would inline cudart calls).
//
// Streams: run() runs on the stream it is given (any stream of the runner's device) or the
// device's current one, and returns once the work is queued — kernels may still be reading
// the active constant buffer. The runner waits for that work, on every stream, before it
// changes what such kernels may read: updating, folding or blob-loading the active buffer,
// and swapping (waitForDevice: the device is synchronized, with runs locked out, under the
// same lock as the change). So once swap_constant_buffer() returns nothing reads the buffer
// that became inactive, and updating or freeing it needs no wait. A run's outputs are
// ordinary tensors produced on the run's stream: work on another stream that reads them
// must wait for that stream first, as with any CUDA tensor.
//
// Without a usable CUDA device the constructor throws Error(kUnavailable) naming the
// device string; the plugin itself loads and registers on any machine.
// Thread safety: as ModelContainerRunner.

#include <aotiplug/error.h>
#include <aotiplug/registry/runner_registry.h>
#include <aotiplug/runner/device.h>
#include <aotiplug/runner/model_library_runner.h>

#include <c10/core/DeviceGuard.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <string>

namespace aotiplug::cuda {

// The device a runner is for, checked, made current while the runner is constructed.
class CudaDeviceScope {
 public:
  explicit CudaDeviceScope(const std::string& device_str) {
    const c10::Device device = parseDevice(device_str);
    if (device.type() != c10::DeviceType::CUDA) {
      throw Error(StatusCode::kInvalidArgument,
                  "the CUDA runner serves 'cuda' and 'cuda:N' devices, got '" + device_str + "'");
    }
    const c10::DeviceIndex count = c10::cuda::device_count();
    if (count <= 0) {
      throw Error(StatusCode::kUnavailable,
                  "no CUDA device is available for device '" + device_str +
                      "' (no GPU or no driver on this machine)");
    }
    const c10::DeviceIndex index = device.has_index() ? device.index() : c10::cuda::current_device();
    if (index < 0 || index >= count) {
      throw Error(StatusCode::kInvalidArgument,
                  "device '" + device_str + "' does not exist: this machine has " +
                      std::to_string(count) + " CUDA device(s)");
    }
    index_ = index;
    device_ = "cuda:" + std::to_string(index);
    guard_.reset_device(c10::Device(c10::DeviceType::CUDA, index));
  }
  const std::string& device() const noexcept { return device_; }
  c10::DeviceIndex index() const noexcept { return index_; }

 private:
  std::string device_;
  c10::DeviceIndex index_ = 0;
  c10::OptionalDeviceGuard guard_;
};

class CudaRunner final : public ModelLibraryRunner {
 public:
  CudaRunner(const std::string& model_so_path, std::size_t num_models,
             const std::string& device_str, const std::string& cubin_dir,
             bool run_single_threaded)
      // The scope is a temporary of this mem-initializer: it keeps the device current
      // until the delegated-to constructor (and so the model library's) has finished.
      : CudaRunner(CudaDeviceScope(device_str), model_so_path, num_models, cubin_dir,
                   run_single_threaded) {}

  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs,
                              void* stream_handle = nullptr) override {
    c10::DeviceGuard guard(c10::Device(c10::DeviceType::CUDA, index_));
    return runOnStream(inputs, resolve(stream_handle));
  }

  void run_const_fold(bool use_inactive, void* stream_handle = nullptr) override {
    c10::DeviceGuard guard(c10::Device(c10::DeviceType::CUDA, index_));
    foldOnStream(use_inactive, resolve(stream_handle));
  }

 protected:
  // With runs locked out (ModelLibraryRunner calls it under the lock of the change): the
  // kernels already queued, on whatever streams, finish before a buffer they read changes.
  void waitForDevice() override {
    c10::DeviceGuard guard(c10::Device(c10::DeviceType::CUDA, index_));
    c10::cuda::device_synchronize();
  }

 private:
  CudaRunner(const CudaDeviceScope& scope, const std::string& model_so_path,
             std::size_t num_models, const std::string& cubin_dir, bool run_single_threaded)
      : ModelLibraryRunner(model_so_path, num_models, scope.device(), cubin_dir,
                           run_single_threaded),
        index_(scope.index()) {}

  void* resolve(void* stream_handle) const {
    return stream_handle != nullptr ? stream_handle
                                    : static_cast<void*>(c10::cuda::getCurrentCUDAStream(index_).stream());
  }

  c10::DeviceIndex index_;
};

}  // namespace aotiplug::cuda
