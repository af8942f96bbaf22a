// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The bodies of model_library.h's functions, kept apart so that the class reads in one screen
// (ONNX Runtime's _cxx_api.h / _cxx_inline.h pattern). Include model_library.h, not this.

#include <aotiplug/runner/model_library.h>
#include <aotiplug/runner/shim_check.h>

#include <torch/headeronly/version.h>
#if __has_include(<torch/csrc/shim_exception_state.h>)
#include <torch/csrc/shim_exception_state.h>
#endif

namespace aotiplug {

namespace detail {

// Handle arrays of a run: on the stack for the usual handful of inputs and outputs.
using HandleArray = c10::SmallVector<AtenTensorHandle, 8>;

// Whether `h` appears again after index i (a model may return one tensor twice).
inline bool appearsLater(const AtenTensorHandle* handles, std::size_t n, std::size_t i) noexcept {
  for (std::size_t j = i + 1; j < n; ++j) {
    if (handles[j] == handles[i]) return true;
  }
  return false;
}

// Frees output handles a failed run may have written (each distinct handle once).
inline void freeTensorHandles(AtenTensorHandle* handles, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    if (handles[i] != nullptr && !appearsLater(handles, n, i)) {
      aoti_torch_delete_tensor_object(handles[i]);
    }
  }
  std::fill(handles, handles + n, nullptr);
}

// New tensor objects sharing the inputs' storage, for the library to steal (and free).
// (LibTorch's unsafe_alloc_new_handles_from_tensors does the same into a heap vector.)
// With `traced`, each handle holds an alias of its own (a tensor object over the same
// memory that nothing else refers to) and `weak` a weak reference to it: after a failed
// call, an alias still alive is one whose handle the library did not steal.
inline void newInputHandles(const std::vector<at::Tensor>& inputs, HandleArray& out,
                            std::vector<c10::weak_intrusive_ptr<c10::TensorImpl>>* weak = nullptr) {
  out.reserve(inputs.size());
  try {
    for (const at::Tensor& t : inputs) {
      if (weak != nullptr) {
        at::Tensor alias = t.alias();
        weak->emplace_back(alias.getIntrusivePtr());
        out.push_back(reinterpret_cast<AtenTensorHandle>(new at::Tensor(std::move(alias))));
      } else {
        out.push_back(reinterpret_cast<AtenTensorHandle>(new at::Tensor(t)));
      }
    }
  } catch (...) {
    for (AtenTensorHandle h : out) delete reinterpret_cast<at::Tensor*>(h);
    throw;
  }
}

// After a failed call with traced handles: frees those the library did not steal.
inline void freeUnstolenInputs(const HandleArray& handles,
                               const std::vector<c10::weak_intrusive_ptr<c10::TensorImpl>>& weak) noexcept {
  for (std::size_t i = 0; i < handles.size() && i < weak.size(); ++i) {
    if (weak[i].use_count() > 0) aoti_torch_delete_tensor_object(handles[i]);
  }
}

// Takes the tensors out of the output handles the library wrote, freeing each handle once;
// a handle written at several indices yields the same tensor at each. Same contract as
// LibTorch's alloc_tensors_by_stealing_from_handles, without its per-call hash map: the
// duplicate scan is quadratic, which for a model's handful of outputs is a few compares
// (and for hundreds of outputs still far below the run itself).
inline std::vector<at::Tensor> stealOutputs(AtenTensorHandle* handles, std::size_t n) {
  std::vector<at::Tensor> out;
  try {
    out.reserve(n);
  } catch (...) {
    freeTensorHandles(handles, n);
    throw;
  }
  for (std::size_t i = 0; i < n; ++i) {
    auto* t = reinterpret_cast<at::Tensor*>(handles[i]);
    if (t == nullptr) {
      out.emplace_back();
    } else if (appearsLater(handles, n, i)) {
      out.emplace_back(*t);
    } else {
      out.emplace_back(std::move(*t));
      aoti_torch_delete_tensor_object(handles[i]);
    }
    handles[i] = nullptr;
  }
  return out;
}

}  // namespace detail

inline ModelLibrary::ModelLibrary(const std::string& model_so_path, std::size_t num_models,
                                  const std::string& device_str,
                                  const std::string& cubin_dir)
    : path_(model_so_path) {
  if (num_models == 0) {
    throw Error(StatusCode::kInvalidArgument,
                "model " + path_ + ": num_models must be at least 1, got 0");
  }
  std::error_code exists_error;
  if (!std::filesystem::is_regular_file(path_, exists_error)) {
    throw Error(StatusCode::kNotFound, "model library " + path_ + " does not exist");
  }
  if (std::string why = checkElfImage(path_); !why.empty()) {
    throw Error(StatusCode::kModelError, "cannot load model library " + path_ + ": " + why);
  }
  // Before dlopen, which would name one missing symbol and nothing else.
  if (const std::vector<std::string> shims = missingShimFunctions(path_); !shims.empty()) {
    std::string list;
    bool versioned = false;
    for (std::size_t i = 0; i < shims.size(); ++i) {
      const std::string& name = shims[i];
      const auto v = name.rfind("_v");
      versioned = versioned || (v != std::string::npos && v + 2 < name.size() &&
                                name.find_first_not_of("0123456789", v + 2) == std::string::npos);
      if (i < 5) list += (i == 0 ? "" : ", ") + name;
    }
    if (shims.size() > 5) list += " and " + std::to_string(shims.size() - 5) + " more";
    throw Error(StatusCode::kIncompatible,
                "model library " + path_ + " was compiled by another torch version than this " +
                    "host's LibTorch " + TORCH_VERSION + ": it calls " + std::to_string(shims.size()) +
                    " LibTorch C shim function(s) this LibTorch does not export (" + list + ")" +
                    (versioned ? "; versioned shims (_vN) come with newer torch releases" : "") +
                    ". Compile the model with torch " + TORCH_VERSION +
                    ", or run it on a host built against the torch that compiled it");
  }
  try {
    namespace mode = boost::dll::load_mode;
    library_.load(boost::dll::fs::path(path_), mode::rtld_now | mode::rtld_local);
  } catch (const std::exception& e) {
    throw Error(StatusCode::kModelError,
                "cannot load model library " + path_ + ": " + e.what());
  }

  std::vector<std::string> missing;
  auto container = [](const char* suffix) {
    return std::string("AOTInductorModelContainer") + suffix;
  };
  resolve(fns_.create, container("CreateWithDevice"), &missing);
  resolve(fns_.destroy, container("Delete"), &missing);
  resolve(fns_.get_num_inputs, container("GetNumInputs"), &missing);
  resolve(fns_.get_num_outputs, container("GetNumOutputs"), &missing);
  resolve(fns_.get_input_name, container("GetInputName"), &missing);
  resolve(fns_.get_output_name, container("GetOutputName"), &missing);
  resolve(fns_.get_num_constants, container("GetNumConstants"), &missing);
  resolve(fns_.get_constant_name, container("GetConstantName"), &missing);
  resolve(fns_.get_constant_fqn, container("GetConstantOriginalFQN"), &missing);
  resolve(fns_.get_constant_dtype, container("GetConstantDtype"), &missing);
  resolve(fns_.update_constant_buffer, container("UpdateConstantBuffer"), &missing);
  resolve(fns_.run_constant_folding, container("RunConstantFolding"), &missing);
  resolve(fns_.swap_constant_buffer, container("SwapConstantBuffer"), &missing);
  resolve(fns_.get_call_spec, container("GetCallSpec"), &missing);
  // Run and RunSingleThreaded: at least one must exist; which is needed depends on the mode.
  resolve(fns_.run, container("Run"), nullptr);
  resolve(fns_.run_single_threaded, container("RunSingleThreaded"), nullptr);
  if (fns_.run == nullptr && fns_.run_single_threaded == nullptr) {
    missing.push_back("AOTInductorModelContainerRun");
  }
  if (!missing.empty()) {
    std::string list;
    for (std::size_t i = 0; i < missing.size() && i < 3; ++i) list += (i == 0 ? "" : ", ") + missing[i];
    if (missing.size() > 3) list += " and " + std::to_string(missing.size() - 3) + " more";
    throw Error(StatusCode::kModelError,
                "model library " + path_ +
                    " is not an AOTInductor model library (or one of an unsupported "
                    "version): it does not export " +
                    list);
  }
  // Optional parts: feature queries.
  resolve(fns_.get_constant_from_folded, container("GetConstantFromFolded"), nullptr);
  resolve(fns_.get_constant_type, container("GetConstantType"), nullptr);
  resolve(fns_.get_constant_data_size, container("GetConstantDataSize"), nullptr);
  resolve(fns_.update_user_managed_constant_buffer,
          container("UpdateUserManagedConstantBuffer"), nullptr);
  resolve(fns_.free_inactive_constant_buffer,
          container("FreeInactiveConstantBuffer"), nullptr);
  resolve(fns_.extract_constants_map, container("ExtractConstantsMap"), nullptr);
  resolve(fns_.get_constants_blob_size, container("GetConstantsBlobSize"), nullptr);
  resolve(fns_.update_constants_from_blob, "AOTInductorModelUpdateConstantsFromBlob", nullptr);
  resolve(fns_.get_last_error, "AOTInductorGetLastError", nullptr);
  features_.run_single_threaded = fns_.run_single_threaded != nullptr;
  features_.free_inactive_constant_buffer = fns_.free_inactive_constant_buffer != nullptr;
  features_.user_managed_constant_buffer = fns_.update_user_managed_constant_buffer != nullptr;
  features_.extract_constants_map = fns_.extract_constants_map != nullptr;
  features_.constants_blob =
      fns_.get_constants_blob_size != nullptr && fns_.update_constants_from_blob != nullptr;

  if (const std::string file = ExternKernels::fileFor(path_); !file.empty()) {
    extern_kernels_ = std::make_unique<ExternKernels>(file, path_, parseDevice(device_str));
  }
  if (const char* env = std::getenv("AOTI_RUNTIME_CHECK_INPUTS"); env != nullptr && env[0] != '0') {
    library_checks_inputs_ = true;  // as the library itself reads it, once
  }

  AOTInductorModelContainerHandle handle = nullptr;
  try {
    call("CreateWithDevice", [&] {
      return fns_.create(&handle, num_models, device_str.c_str(),
                         cubin_dir.empty() ? nullptr : cubin_dir.c_str());
    });
  } catch (const Error& e) {
    throw Error(e.code(), std::string(e.what()) + " (device '" + device_str + "', " +
                              std::to_string(num_models) + " model instance(s))");
  }
  container_ = handle;
  num_inputs_ = numInputs();
  num_outputs_ = numOutputs();
}

inline ModelLibrary::~ModelLibrary() {
  if (container_ != nullptr) {
    // A destructor must not throw; a failing Delete only leaks the container.
    fns_.destroy(container_);
    container_ = nullptr;
  }
  // library_ closes the library after this, exactly once.
}

namespace detail {
// "Run" -> "AOTInductorModelContainerRun"; names that already are full stay.
inline std::string abiFunctionName(const char* function) {
  return std::string(function).rfind("AOTInductor", 0) == 0
             ? std::string(function)
             : std::string("AOTInductorModelContainer") + function;
}
}  // namespace detail

inline void ModelLibrary::fail(const char* function, LibraryMessages& messages) const {
  throwIfExternKernelFailed(function);  // the kernel's error is the reason, when there is one
  std::string message = detail::abiFunctionName(function) + " failed for model " + path_;
  const char* text = nullptr;
  std::string reason = messages.takeReason();
  if (fns_.get_last_error != nullptr && fns_.get_last_error(&text) == AOTI_RUNTIME_SUCCESS &&
      text != nullptr && *text != '\0') {
    reason = text;
  }
#if __has_include(<torch/csrc/shim_exception_state.h>)
  // Newer LibTorch (2.15) no longer prints why a shim call failed: it keeps the exception's
  // message per thread, and the library's last error names only the call that failed.
  if (const std::string& why = torch::csrc::shim::details::get_torch_exception_what_without_backtrace();
      !why.empty()) {
    reason = reason.empty() || reason == why ? why : why + " (in " + reason + ")";
    torch::csrc::shim::details::set_torch_exception_what_without_backtrace(std::string());
    torch::csrc::shim::details::set_torch_exception_what(std::string());
  }
#endif
  if (!reason.empty()) {
    message += ": " + reason;
  } else if (!messages.capturing()) {
    message += " (the model library printed its reason to standard error)";
  } else {
    message += " (the model library gave no reason)";
  }
  throw Error(StatusCode::kModelError, message);
}

inline void ModelLibrary::missingFeature(const char* function, const char* purpose) const {
  throw Error(StatusCode::kFailedPrecondition,
              "model library " + path_ + " does not export " + function + ", needed to " +
                  purpose + " (compiled by an older torch?)");
}

inline std::size_t ModelLibrary::count(CountFn fn, const char* name) const {
  std::size_t n = 0;
  call(name, [&] { return fn(container_, &n); });
  return n;
}

inline void ModelLibrary::throwIfExternKernelFailed(const char* function) const {
  if (!extern_kernels_) return;
  std::string error = extern_kernels_->takeError();
  if (error.empty()) return;
  throw Error(StatusCode::kModelError,
              detail::abiFunctionName(function) + " failed for model " + path_ + ": " + error);
}

inline std::unordered_map<std::string, std::string> ModelLibrary::readMetadata(
    const std::string& model_so_path) {
  std::filesystem::path file = model_so_path;
  file.replace_extension();
  file += "_metadata.json";
  std::unordered_map<std::string, std::string> out;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return out;
  try {
    std::ifstream in(file, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const nlohmann::json doc = nlohmann::json::parse(text);  // not char by char from `in`
    for (auto it = doc.begin(); it != doc.end(); ++it) {
      if (it->is_string()) out.emplace(it.key(), it->get<std::string>());
    }
  } catch (const std::exception& e) {
    throw Error(StatusCode::kModelError,
                "cannot read the metadata " + file.string() + " of model " + model_so_path + ": " +
                    e.what());
  }
  return out;
}

inline std::optional<WrapperSource> ModelLibrary::readWrapperSource(const std::string& model_so_path) {
  std::filesystem::path file = model_so_path;
  file.replace_extension(".cpp");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return std::nullopt;
  try {
    std::ifstream in(file, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parseWrapperSource(text, "the wrapper source " + file.string());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

inline std::vector<std::string> ModelLibrary::inputNames() const {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < num_inputs_; ++i) {
    const char* name = nullptr;
    call("GetInputName", [&] { return fns_.get_input_name(container_, i, &name); });
    names.emplace_back(name != nullptr ? name : "");
  }
  return names;
}

inline std::vector<std::string> ModelLibrary::outputNames() const {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < num_outputs_; ++i) {
    const char* name = nullptr;
    call("GetOutputName", [&] { return fns_.get_output_name(container_, i, &name); });
    names.emplace_back(name != nullptr ? name : "");
  }
  return names;
}

inline std::pair<std::string, std::string> ModelLibrary::callSpec() const {
  const char* in = nullptr;
  const char* out = nullptr;
  call("GetCallSpec", [&] { return fns_.get_call_spec(container_, &in, &out); });
  return {in != nullptr ? in : "", out != nullptr ? out : ""};
}

inline std::vector<ConstantInfo> ModelLibrary::constants() const {
  std::size_t n = 0;
  call("GetNumConstants", [&] { return fns_.get_num_constants(container_, &n); });
  std::vector<ConstantInfo> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    ConstantInfo& c = out[i];
    const char* text = nullptr;
    call("GetConstantName", [&] { return fns_.get_constant_name(container_, i, &text); });
    c.name = text != nullptr ? text : "";
    text = nullptr;
    call("GetConstantOriginalFQN", [&] { return fns_.get_constant_fqn(container_, i, &text); });
    c.original_fqn = text != nullptr ? text : "";
    std::int32_t dtype = 0;
    call("GetConstantDtype", [&] { return fns_.get_constant_dtype(container_, i, &dtype); });
    c.dtype = static_cast<c10::ScalarType>(dtype);
    if (fns_.get_constant_from_folded != nullptr) {
      bool folded = false;
      call("GetConstantFromFolded", [&] { return fns_.get_constant_from_folded(container_, i, &folded); });
      c.from_folded = folded;
    }
    if (fns_.get_constant_type != nullptr) {
      std::int32_t type = 0;
      call("GetConstantType", [&] { return fns_.get_constant_type(container_, i, &type); });
      c.kind = static_cast<ConstantKind>(type);
    }
    if (fns_.get_constant_data_size != nullptr) {
      std::size_t size = 0;
      call("GetConstantDataSize", [&] { return fns_.get_constant_data_size(container_, i, &size); });
      c.data_size = size;
    }
  }
  return out;
}

inline std::vector<at::Tensor> ModelLibrary::run(const std::vector<at::Tensor>& inputs,
                                                 void* stream_handle, bool single_threaded) {
  RunFn fn = single_threaded ? fns_.run_single_threaded : fns_.run;
  if (fn == nullptr) {
    missingFeature(single_threaded ? "AOTInductorModelContainerRunSingleThreaded"
                                   : "AOTInductorModelContainerRun",
                   single_threaded ? "run single-threaded" : "run on several threads");
  }
  // The library checks the count outside its exception guard (the throw would cross its
  // C ABI) and dereferences every handle: check both here.
  if (inputs.size() != num_inputs_) {
    throw Error(StatusCode::kInvalidArgument,
                "model " + path_ + " takes " + std::to_string(num_inputs_) + " input(s), got " +
                    std::to_string(inputs.size()));
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      throw Error(StatusCode::kInvalidArgument,
                  "model " + path_ + ": input " + std::to_string(i) + " is an undefined tensor");
    }
  }
  // Handle arrays stay on the stack: the heap allocations LibTorch's converters make per
  // call were most of this binding's overhead on a small model (docs/performance.md).
  detail::HandleArray input_handles;
  std::vector<c10::weak_intrusive_ptr<c10::TensorImpl>> traced;
  detail::newInputHandles(inputs, input_handles, library_checks_inputs_ ? &traced : nullptr);
  detail::HandleArray output_handles(num_outputs_, nullptr);
  LibraryMessages messages;
  const AOTIRuntimeError code =
      fn(container_, input_handles.data(), input_handles.size(), output_handles.data(),
         output_handles.size(), reinterpret_cast<AOTInductorStreamHandle>(stream_handle),
         proxyExecutor());
  if (code != AOTI_RUNTIME_SUCCESS) {
    detail::freeTensorHandles(output_handles.data(), output_handles.size());
    detail::freeUnstolenInputs(input_handles, traced);
    fail(single_threaded ? "RunSingleThreaded" : "Run", messages);
  }
  if (extern_kernels_) {
    try {
      throwIfExternKernelFailed(single_threaded ? "RunSingleThreaded" : "Run");
    } catch (...) {
      detail::freeTensorHandles(output_handles.data(), output_handles.size());
      throw;
    }
  }
  return detail::stealOutputs(output_handles.data(), output_handles.size());
}

inline void ModelLibrary::updateConstantBuffer(const ConstantMap& constants, bool use_inactive,
                                               bool validate_full_update, bool user_managed) {
  if (user_managed && fns_.update_user_managed_constant_buffer == nullptr) {
    missingFeature("AOTInductorModelContainerUpdateUserManagedConstantBuffer",
                   "use constants in place (user-managed buffers)");
  }
  // The ABI's map type: name -> handle. Handles point at the caller's tensor objects,
  // which the library only borrows (copies from them, or keeps them when user-managed).
  std::unordered_map<std::string, AtenTensorHandle> handles;
  handles.reserve(constants.size());
  for (const auto& [name, tensor] : constants) {
    handles.emplace(name, reinterpret_cast<AtenTensorHandle>(const_cast<at::Tensor*>(&tensor)));
  }
  auto* map = reinterpret_cast<AOTInductorConstantMapHandle>(&handles);
  if (user_managed) {
    call("UpdateUserManagedConstantBuffer", [&] {
      return fns_.update_user_managed_constant_buffer(container_, map, use_inactive,
                                                      validate_full_update);
    });
  } else {
    call("UpdateConstantBuffer", [&] {
      return fns_.update_constant_buffer(container_, map, use_inactive, validate_full_update);
    });
  }
}

inline void ModelLibrary::runConstantFolding(bool use_inactive, void* stream_handle) {
  call("RunConstantFolding", [&] {
    return fns_.run_constant_folding(container_, use_inactive,
                                     reinterpret_cast<AOTInductorStreamHandle>(stream_handle),
                                     proxyExecutor());
  });
}

inline void ModelLibrary::swapConstantBuffer() {
  call("SwapConstantBuffer", [&] { return fns_.swap_constant_buffer(container_); });
}

inline void ModelLibrary::freeInactiveConstantBuffer() {
  if (fns_.free_inactive_constant_buffer == nullptr) {
    missingFeature("AOTInductorModelContainerFreeInactiveConstantBuffer",
                   "free the inactive constant buffer");
  }
  call("FreeInactiveConstantBuffer", [&] { return fns_.free_inactive_constant_buffer(container_); });
}

inline std::unordered_map<std::string, AtenTensorHandle> ModelLibrary::extractConstantHandles(
    bool use_inactive) const {
  if (fns_.extract_constants_map == nullptr) {
    missingFeature("AOTInductorModelContainerExtractConstantsMap", "read constants back");
  }
  std::unordered_map<std::string, AtenTensorHandle> handles;
  call("ExtractConstantsMap", [&] {
    return fns_.extract_constants_map(
        container_, reinterpret_cast<AOTInductorConstantMapHandle>(&handles), use_inactive);
  });
  return handles;
}

inline ConstantMap ModelLibrary::extractConstantsMap(bool use_inactive) const {
  const auto handles = extractConstantHandles(use_inactive);
  ConstantMap out;
  out.reserve(handles.size());
  for (const auto& [fqn, handle] : handles) {
    // Borrowed handles into the container's map: hand out aliases (same memory, tensor
    // objects of their own), so holding one never pins the container's tensor objects.
    if (handle != nullptr) out.emplace(fqn, reinterpret_cast<at::Tensor*>(handle)->alias());
  }
  return out;
}

inline std::uint64_t ModelLibrary::constantsBlobSize() const {
  if (fns_.get_constants_blob_size == nullptr) {
    missingFeature("AOTInductorModelContainerGetConstantsBlobSize", "load a weights blob");
  }
  std::uint64_t size = 0;
  call("GetConstantsBlobSize", [&] { return fns_.get_constants_blob_size(container_, &size); });
  return size;
}

inline void ModelLibrary::updateConstantsFromBlob(const void* blob, std::size_t size) {
  if (fns_.update_constants_from_blob == nullptr) {
    missingFeature("AOTInductorModelUpdateConstantsFromBlob", "load a weights blob");
  }
  // The library loads a blob into the active buffer's map with emplace, which keeps an
  // entry that is already there, and frees the memory of its previous blob: a second load
  // would leave the old entries pointing into freed memory. Only an empty buffer is loaded.
  if (features_.extract_constants_map && !extractConstantHandles(/*use_inactive=*/false).empty()) {
    throw Error(StatusCode::kFailedPrecondition,
                "model " + path_ +
                    ": a weights blob can only be loaded into a model that holds no weights "
                    "yet (the model library keeps existing entries and frees the memory they "
                    "point into); load new weights with update_constant_buffer instead");
  }
  const std::uint64_t expected = constantsBlobSize();
  if (size < expected) {
    throw Error(StatusCode::kInvalidArgument,
                "weights blob for model " + path_ + " holds " + std::to_string(size) +
                    " bytes, the model needs " + std::to_string(expected));
  }
  call("AOTInductorModelUpdateConstantsFromBlob", [&] {
    return fns_.update_constants_from_blob(container_, static_cast<const std::uint8_t*>(blob));
  });
}

}  // namespace aotiplug
