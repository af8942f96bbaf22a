// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::ModelLibrary — a binding to the C ABI of an AOTInductor model library.
//
// AOTInductor compiles a model into a shared library exporting the
// AOTInductorModelContainer* functions (torch/csrc/inductor/aoti_runtime/interface.h).
// ModelLibrary loads one such library and owns one model container in it. It is the
// reusable, header-only piece every runner plugin builds on (CPU, CUDA, third-party):
//  - the library is opened with dlopen(RTLD_NOW | RTLD_LOCAL); every required symbol is
//    resolved up front and a missing one is named in the error; optional ones (the
//    single-threaded run, freeing the inactive buffer, user-managed buffers, extracting
//    constants, weight blobs) are feature queries (features()), refused with an error when
//    absent, never called through a null pointer;
//  - every non-zero return becomes an aotiplug::Error naming the function and the model
//    file, with the library's reason: the model library of torch <= 2.11 prints it to
//    std::cerr ("Error: ...", with a C++ stack trace for a failed LibTorch call) and
//    returns 1, so every call runs with that thread's std::cerr output captured
//    (library_messages.h) — the reason reaches the caller once, in the error, and nothing
//    reaches the terminal; where a library exports AOTInductorGetLastError its text is used;
//  - at::Tensor <-> AtenTensorHandle follow the ABI's ownership rules: input handles are
//    new tensor objects the library steals; output handles are stolen by us; on a failed
//    call any output handle already written is freed. The library fails before stealing
//    its inputs in two places: its own input checks (only when AOTI_RUNTIME_CHECK_INPUTS
//    is set; then the handles are made so that the binding can tell, and frees those the
//    library left) and a lazy constant fold of the active buffer (callers fold first:
//    ModelLibraryRunner does);
//  - the container is deleted, and the library closed, exactly once, in the destructor;
//  - a model whose extern-kernel file (<model>.json beside the .so) lists kernels runs them
//    through aotiplug's proxy executor (ExternKernels, extern_kernels.h), made before the
//    container and passed to every run and fold; an operator that is not registered in
//    this process (its op library not loaded) fails the constructor, naming the op. A
//    kernel that fails fails the run with its error, even where the library's generated
//    code ignores it (torch 2.11).
//
// This is the raw binding: it checks only what would otherwise crash the library (input
// count, undefined tensors). Validation of constants and inputs is the runner's job
// (ModelLibraryRunner).
//
// Ownership: owns the library handle and the container; tensors returned by run() are the
// caller's. extractConstantsMap() returns views of the container's memory, valid while
// the ModelLibrary lives.
// Thread safety: run() may be called concurrently (the container serializes what it
// must); the constant-buffer calls must not run concurrently with each other — callers
// serialize them (ModelLibraryRunner does).

#include <aotiplug/error.h>
#include <aotiplug/runner/device.h>
#include <aotiplug/runner/elf_image_check.h>
#include <aotiplug/runner/extern_kernels.h>
#include <aotiplug/runner/library_messages.h>
#include <aotiplug/runner/model_info.h>
#include <aotiplug/runner/runner.h>
#include <aotiplug/runner/wrapper_source.h>
#include <aotiplug/status.h>

#include <ATen/Tensor.h>
#include <ATen/ops/alias.h>
#include <boost/dll/shared_library.hpp>
#include <c10/util/SmallVector.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/inductor/aoti_runtime/interface.h>
#include <torch/csrc/inductor/aoti_torch/c/shim.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <iterator>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace aotiplug {

// aotiplug::ModelLibrary
class ModelLibrary {
 public:
  // Loads the library at model_so_path and creates a container of num_models model
  // instances for device_str. cubin_dir: where the CUDA kernels are (empty: none).
  ModelLibrary(const std::string& model_so_path, std::size_t num_models,
               const std::string& device_str, const std::string& cubin_dir);
  ~ModelLibrary();
  ModelLibrary(const ModelLibrary&) = delete;
  ModelLibrary& operator=(const ModelLibrary&) = delete;

  const std::string& path() const noexcept { return path_; }
  const RunnerFeatures& features() const noexcept { return features_; }

  // ---- what the model says about itself ----
  std::size_t numInputs() const { return count(fns_.get_num_inputs, "GetNumInputs"); }
  std::size_t numOutputs() const { return count(fns_.get_num_outputs, "GetNumOutputs"); }
  std::vector<std::string> inputNames() const;
  std::vector<std::string> outputNames() const;
  std::pair<std::string, std::string> callSpec() const;
  // Every constant, including folded ones; sizes left empty (see constantSizes()).
  std::vector<ConstantInfo> constants() const;

  // The AOTI metadata beside the library (<stem>_metadata.json, written by AOTInductor:
  // AOTI_DEVICE_KEY, AOTI_CPU_ISA, and anything given as aot_inductor.metadata). Empty when
  // absent. The static form reads it before loading anything.
  std::unordered_map<std::string, std::string> metadata() const { return readMetadata(path_); }
  static std::unordered_map<std::string, std::string> readMetadata(const std::string& model_so_path);
  // The generated wrapper source beside the library (<stem>.cpp, wrapper_source.h), read;
  // nullopt when it is absent or cannot be read (it is a helper, never required).
  static std::optional<WrapperSource> readWrapperSource(const std::string& model_so_path);

  // ---- running ----
  // Runs the model. single_threaded uses AOTInductorModelContainerRunSingleThreaded
  // (features().run_single_threaded), which takes no lock: the caller serializes.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, void* stream_handle,
                              bool single_threaded);

  // ---- constant buffers (see ModelContainerRunner for the semantics) ----
  // `constants` is keyed by AOTI constant name; the tensors are borrowed for the call
  // (with user_managed, for as long as the buffer uses them: the caller keeps them).
  void updateConstantBuffer(const ConstantMap& constants, bool use_inactive,
                            bool validate_full_update, bool user_managed);
  void runConstantFolding(bool use_inactive, void* stream_handle);
  void swapConstantBuffer();
  void freeInactiveConstantBuffer();
  // Keyed by original FQN; folded constants left out. Views of the container's memory.
  ConstantMap extractConstantsMap(bool use_inactive) const;
  // The same, as the raw handles the container holds (borrowed, by FQN).
  std::unordered_map<std::string, AtenTensorHandle> extractConstantHandles(bool use_inactive) const;
  std::uint64_t constantsBlobSize() const;
  void updateConstantsFromBlob(const void* blob, std::size_t size);

 private:
  using RunFn = decltype(&AOTInductorModelContainerRun);
  using CountFn = decltype(&AOTInductorModelContainerGetNumInputs);
  using NameFn = decltype(&AOTInductorModelContainerGetInputName);
  using LastErrorFn = AOTIRuntimeError (*)(const char**);

  struct Functions {
    decltype(&AOTInductorModelContainerCreateWithDevice) create = nullptr;
    decltype(&AOTInductorModelContainerDelete) destroy = nullptr;
    RunFn run = nullptr;
    RunFn run_single_threaded = nullptr;
    CountFn get_num_inputs = nullptr;
    CountFn get_num_outputs = nullptr;
    NameFn get_input_name = nullptr;
    NameFn get_output_name = nullptr;
    decltype(&AOTInductorModelContainerGetNumConstants) get_num_constants = nullptr;
    decltype(&AOTInductorModelContainerGetConstantName) get_constant_name = nullptr;
    decltype(&AOTInductorModelContainerGetConstantOriginalFQN) get_constant_fqn = nullptr;
    decltype(&AOTInductorModelContainerGetConstantDtype) get_constant_dtype = nullptr;
    decltype(&AOTInductorModelContainerGetConstantFromFolded) get_constant_from_folded = nullptr;
    decltype(&AOTInductorModelContainerGetConstantType) get_constant_type = nullptr;
    decltype(&AOTInductorModelContainerGetConstantDataSize) get_constant_data_size = nullptr;
    decltype(&AOTInductorModelContainerUpdateConstantBuffer) update_constant_buffer = nullptr;
    decltype(&AOTInductorModelContainerUpdateUserManagedConstantBuffer)
        update_user_managed_constant_buffer = nullptr;
    decltype(&AOTInductorModelContainerRunConstantFolding) run_constant_folding = nullptr;
    decltype(&AOTInductorModelContainerSwapConstantBuffer) swap_constant_buffer = nullptr;
    decltype(&AOTInductorModelContainerFreeInactiveConstantBuffer)
        free_inactive_constant_buffer = nullptr;
    decltype(&AOTInductorModelContainerExtractConstantsMap) extract_constants_map = nullptr;
    decltype(&AOTInductorModelContainerGetConstantsBlobSize) get_constants_blob_size = nullptr;
    decltype(&AOTInductorModelUpdateConstantsFromBlob) update_constants_from_blob = nullptr;
    decltype(&AOTInductorModelContainerGetCallSpec) get_call_spec = nullptr;
    LastErrorFn get_last_error = nullptr;  // newest torch only
  };

  template <class Fn>
  void resolve(Fn& fn, const std::string& name, std::vector<std::string>* missing) {
    if (library_.has(name)) {
      fn = library_.get<std::remove_pointer_t<Fn>>(name);
    } else if (missing != nullptr) {
      missing->push_back(name);
    }
  }

  // Calls f() (a call into the library returning its error code) with this thread's
  // std::cerr captured; throws Error(kModelError) naming the call, the model and the
  // library's reason unless it returned success.
  template <class F>
  void call(const char* function, F&& f) const {
    LibraryMessages messages;
    const AOTIRuntimeError code = std::forward<F>(f)();
    if (code != AOTI_RUNTIME_SUCCESS) fail(function, messages);
    throwIfExternKernelFailed(function);
  }
  // The proxy executor's handle for the C ABI (null without extern kernels).
  AOTIProxyExecutorHandle proxyExecutor() const noexcept {
    return extern_kernels_ ? reinterpret_cast<AOTIProxyExecutorHandle>(extern_kernels_->handle())
                           : nullptr;
  }
  // Throws Error(kModelError) when an extern kernel failed on this thread during the call.
  void throwIfExternKernelFailed(const char* function) const;
  [[noreturn]] void fail(const char* function, LibraryMessages& messages) const;
  [[noreturn]] void missingFeature(const char* function, const char* purpose) const;
  std::size_t count(CountFn fn, const char* name) const;

  std::string path_;
  boost::dll::shared_library library_;
  Functions fns_;
  RunnerFeatures features_;
  AOTInductorModelContainerHandle container_ = nullptr;
  std::size_t num_inputs_ = 0;
  std::size_t num_outputs_ = 0;
  std::unique_ptr<ExternKernels> extern_kernels_;  // outlives the container (deleted first)
  // AOTI_RUNTIME_CHECK_INPUTS is set: the library's own input checks run, and fail before
  // it steals the input handles.
  bool library_checks_inputs_ = false;
};

}  // namespace aotiplug

// The member functions' bodies (header-only: each plugin compiles its own copy).
#include <aotiplug/detail/model_library_inline.h>
