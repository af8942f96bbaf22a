// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The bodies of model_library_runner.h's functions, kept apart so that the class reads in one screen
// (ONNX Runtime's _cxx_api.h / _cxx_inline.h pattern). Include model_library_runner.h, not this.

#include <aotiplug/runner/model_library_runner.h>

namespace aotiplug {

namespace detail {

// A device string's device, with the current device's index where it names none.
inline c10::Device resolvedDevice(const std::string& device_str) {
  c10::Device device = parseDevice(device_str);
  if (device.has_index() || device.type() == c10::DeviceType::CPU) return device;
  if (!c10::impl::hasDeviceGuardImpl(device.type())) return device;  // the library decides
  try {
    return c10::Device(device.type(), c10::impl::getDeviceGuardImpl(device.type())->getDevice().index());
  } catch (const c10::Error& e) {
    throw Error(StatusCode::kUnavailable, "cannot find the current device for '" + device_str +
                                              "': " + e.what_without_backtrace());
  }
}

}  // namespace detail

inline ModelLibraryRunner::ModelLibraryRunner(const std::string& model_so_path,
                                              std::size_t num_models,
                                              const std::string& device_str,
                                              const std::string& cubin_dir,
                                              bool run_single_threaded)
    : device_(detail::resolvedDevice(device_str)), single_threaded_(run_single_threaded) {
  if (num_models == 0) {
    throw Error(StatusCode::kInvalidArgument,
                "model " + model_so_path + ": num_models must be at least 1, got 0");
  }
  if (run_single_threaded && num_models != 1) {
    throw Error(StatusCode::kInvalidArgument,
                "model " + model_so_path +
                    ": run_single_threaded needs num_models == 1 (it runs one model "
                    "instance without locks), got " +
                    std::to_string(num_models));
  }
  const std::string device_string = device_.str();
  {
    const auto guard = deviceGuard();
    library_ = std::make_unique<ModelLibrary>(model_so_path, num_models, device_string, cubin_dir);
  }
  if (run_single_threaded && !library_->features().run_single_threaded) {
    throw Error(StatusCode::kFailedPrecondition,
                "model library " + model_so_path +
                    " does not export AOTInductorModelContainerRunSingleThreaded, needed for "
                    "run_single_threaded (compiled by torch < 2.7?)");
  }
  info_.model_path = model_so_path;
  info_.device = device_string;
  info_.num_models = num_models;
  info_.run_single_threaded = run_single_threaded;
  info_.input_names = library_->inputNames();
  info_.output_names = library_->outputNames();
  std::tie(info_.in_spec, info_.out_spec) = library_->callSpec();
  info_.constants = library_->constants();
  info_.features = library_->features();
  for (const ConstantInfo& c : info_.constants) has_folded_constants_ = has_folded_constants_ || c.from_folded;

  // What the active buffer holds (everything, for a library with its weights inside; for
  // one compiled without them, nothing), and the constants' sizes from it.
  const std::size_t n = info_.constants.size();
  filled_[0].assign(n, !info_.features.extract_constants_map);
  filled_[1].assign(n, false);
  strides_.assign(n, {});
  sizes_known_.assign(n, false);
  if (info_.features.extract_constants_map) {
    const ConstantMap active = library_->extractConstantsMap(/*use_inactive=*/false);
    for (std::size_t i = 0; i < n; ++i) {
      ConstantInfo& c = info_.constants[i];
      if (c.from_folded) continue;
      auto it = active.find(c.original_fqn);
      if (it != active.end() && it->second.defined()) {
        c.sizes = it->second.sizes().vec();
        strides_[i] = it->second.strides().vec();
        sizes_known_[i] = true;
        filled_[0][i] = true;
      }
    }
  }
  // Sizes the buffer cannot tell (weights compiled outside the .so): from the constant
  // specs aotiplug's packager records in the AOTI metadata, else from the wrapper source.
  const auto metadata = library_->metadata();
  if (auto it = metadata.find("aotiplug.constants"); it != metadata.end()) {
    const nlohmann::json specs = nlohmann::json::parse(it->second, nullptr, false);
    for (std::size_t i = 0; i < n; ++i) {
      ConstantInfo& c = info_.constants[i];
      if (sizes_known_[i] || c.from_folded || !specs.is_object()) continue;
      auto spec = specs.find(c.original_fqn);
      if (spec != specs.end() && spec->contains("sizes") && (*spec)["sizes"].is_array()) {
        c.sizes = (*spec)["sizes"].get<std::vector<std::int64_t>>();
        sizes_known_[i] = true;
      }
    }
  }
  // (A 0-d constant's sizes and strides are both empty, and known once a source told them.)
  const bool unknown = std::any_of(info_.constants.begin(), info_.constants.end(), [&](const ConstantInfo& c) {
    const auto i = static_cast<std::size_t>(&c - info_.constants.data());
    return !c.from_folded && (!sizes_known_[i] || (strides_[i].empty() && !c.sizes.empty()));
  });
  if (unknown) {
    if (const auto source = ModelLibrary::readWrapperSource(model_so_path)) {
      for (std::size_t i = 0; i < n; ++i) {
        ConstantInfo& c = info_.constants[i];
        if (c.from_folded) continue;
        const WrapperConstant* w = source->findConstant(c.name);
        if (w == nullptr) continue;
        if (!sizes_known_[i]) {
          c.sizes = w->sizes;
          sizes_known_[i] = true;
        }
        if (strides_[i].empty() && w->sizes == c.sizes && w->strides.size() == c.sizes.size()) strides_[i] = w->strides;
      }
    }
  }
  settle(0);
  settle(1);
  info_.constants_in_library = state(0) != BufferState::kEmpty;
}

inline bool ModelLibraryRunner::sizesKnown(const ConstantInfo& c) const noexcept {
  return sizes_known_[static_cast<std::size_t>(&c - info_.constants.data())];
}

inline bool ModelLibraryRunner::needed(std::size_t i) const noexcept {
  const ConstantInfo& c = info_.constants[i];
  if (c.from_folded) return false;
  return !(c.kind == ConstantKind::kParameter && c.data_size == 0);
}

inline std::string ModelLibraryRunner::missingIn(int b) const {
  std::string out;
  std::size_t count = 0;
  for (std::size_t i = 0; i < info_.constants.size(); ++i) {
    if (!needed(i) || filled_[b][i]) continue;
    if (++count <= 3) out += (out.empty() ? "" : ", ") + std::string("'") + info_.constants[i].original_fqn + "'";
  }
  if (count > 3) out += " and " + std::to_string(count - 3) + " more";
  return out;
}

inline void ModelLibraryRunner::settle(int b, bool folded) {
  bool complete = true;
  for (std::size_t i = 0; i < info_.constants.size() && complete; ++i) complete = !needed(i) || filled_[b][i];
  states_[b] = !complete ? BufferState::kEmpty : folded ? BufferState::kFolded : BufferState::kLoaded;
}

inline std::vector<at::Tensor> ModelLibraryRunner::run(const std::vector<at::Tensor>& inputs,
                                                       void* stream_handle) {
  return runOnStream(inputs, stream_handle);
}

inline std::vector<at::Tensor> ModelLibraryRunner::runOnStream(
    const std::vector<at::Tensor>& inputs, void* stream) {
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const at::Tensor& t = inputs[i];
    if (!t.defined()) continue;  // the binding names it
    const bool same = t.device().type() == device_.type() &&
                      (!device_.has_index() || device_.type() == c10::DeviceType::CPU ||
                       t.device().index() == device_.index());
    if (!same) {
      const std::string name = i < info_.input_names.size() ? info_.input_names[i] : "?";
      throw Error(StatusCode::kInvalidArgument,
                  "model " + info_.model_path + ": input " + std::to_string(i) + " (" + name +
                      ") is on " + t.device().str() + ", expected " + device_.str());
    }
  }
  // Runs on the active buffer; with the lock held exclusively, folds it first if needed.
  auto run_locked = [&](bool exclusive) {
    const int active = activeIndex();
    if (state(active) == BufferState::kEmpty) {
      const std::string missing = missingIn(active);
      const bool nothing = std::none_of(filled_[active].begin(), filled_[active].end(), [](bool f) { return f; });
      throw Error(StatusCode::kFailedPrecondition,
                  "model " + info_.model_path +
                      (nothing ? std::string(" has no weights loaded: its constants are not inside the "
                                             "model library (compiled with "
                                             "aot_inductor.package_constants_in_so=False?). Load "
                                             "them with update_constant_buffer first")
                               : " cannot run: its active constant buffer has no value for " + missing +
                                     " (left out of a partial update, or left behind by a failed one)"));
    }
    if (exclusive && state(active) == BufferState::kLoaded && has_folded_constants_) {
      // Folded here rather than lazily inside Run, where a failure happens before the
      // library steals the input handles.
      library_->runConstantFolding(/*use_inactive=*/false, stream);
      states_[active] = BufferState::kFolded;
    }
    // torch <= 2.11's RunSingleThreaded checks the primary buffer's fold state whichever
    // buffer is active, and throws while the secondary is active and the primary is not
    // folded (a partial or refused inactive update, or never run). Such a run takes the
    // library's ordinary path, which checks the right buffer (one model instance: the same
    // instance runs).
    const bool single = single_threaded_ && !(active == 1 && state(0) != BufferState::kFolded);
    std::vector<at::Tensor> out = library_->run(inputs, stream, single);
    // A buffer without folded constants is marked folded by the library's first run.
    if (exclusive && state(active) == BufferState::kLoaded) states_[active] = BufferState::kFolded;
    return out;
  };
  if (single_threaded_) {
    std::unique_lock<WriterPreferringMutex> lock(run_mutex_);
    return run_locked(true);
  }
  {
    std::shared_lock<WriterPreferringMutex> lock(run_mutex_);
    if (state(activeIndex()) != BufferState::kLoaded) return run_locked(false);
  }
  // The model library folds an unfolded active buffer lazily inside its run: holding one
  // of its model instances, it waits for its lock exclusively, while other runs hold that
  // lock shared and wait for a free instance — a deadlock whenever more threads run than
  // the container has instances (the stress test hung here). On the way it also creates
  // the inactive buffer's bookkeeping and updates the active map without the lock that
  // inactive updates and extraction take (ThreadSanitizer caught them racing). So such a
  // run — the first after loading, or after a swap to an unfolded buffer — goes alone
  // (and folds first), and those calls lock runs out while the active buffer is unfolded
  // (lockRunsIfUnfolded). (This run does not also take weights_mutex_: a thread swapping
  // weights in a loop re-takes that mutex at once, and runs starved behind it — p99 12x
  // steady in the bench.)
  std::unique_lock<WriterPreferringMutex> lock(run_mutex_);
  return run_locked(true);
}

inline std::unique_lock<WriterPreferringMutex> ModelLibraryRunner::lockRunsIfUnfolded() const {
  std::unique_lock<WriterPreferringMutex> exclusive(run_mutex_, std::defer_lock);
  // Only weight calls (under weights_mutex_) make the active buffer unfolded, so this
  // cannot turn true behind our back; turning false meanwhile only costs a wait.
  // A model without folded constants folds nothing: the library's fold inside a run then
  // only rewrites the active buffer's array from its map and marks it folded, which no
  // inactive-buffer call touches — once the inactive map exists, as it does after the first
  // inactive update (before, the fold and the update could both create it). Without this,
  // every processWeights after a swap waited for the run that folds, and the run after it
  // (the bench's swap loop: processWeights 1.6-1.8 ms, three runs, against 24 us alone).
  // Read in the container code of torch 2.11 and 2.15; a library without user-managed
  // buffers comes from an older torch, whose container code was not read, and keeps the
  // lock.
  const bool checked_container = info_.features.user_managed_constant_buffer;
  const bool fold_touches_inactive = has_folded_constants_ || !inactive_map_made_ || !checked_container;
  if (single_threaded_ || (state(activeIndex()) == BufferState::kLoaded && fold_touches_inactive)) {
    exclusive.lock();
  }
  return exclusive;
}

inline ConstantMap ModelLibraryRunner::extract_constants_map(bool use_inactive) const {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  const int target = targetIndex(use_inactive);
  if (std::none_of(filled_[target].begin(), filled_[target].end(), [](bool f) { return f; })) {
    throw Error(StatusCode::kFailedPrecondition,
                "model " + info_.model_path + ": the " +
                    (use_inactive ? "inactive" : "active") +
                    " constant buffer holds no constants");
  }
  const auto guard = deviceGuard();
  const auto runs = lockRunsIfUnfolded();
  ConstantMap all = library_->extractConstantsMap(use_inactive);
  // Only what the buffer validly holds (entries of a freed buffer point into freed memory).
  for (std::size_t i = 0; i < info_.constants.size(); ++i) {
    if (!filled_[target][i]) all.erase(info_.constants[i].original_fqn);
  }
  return all;
}

inline std::string ModelLibraryRunner::describeConstant(const ConstantInfo& c) const {
  std::ostringstream os;
  os << "constant '" << c.original_fqn << "'";
  if (c.name != c.original_fqn) os << " (AOTI name '" << c.name << "')";
  return os.str();
}

inline at::Tensor ModelLibraryRunner::compact(const at::Tensor& t, const std::vector<std::int64_t>& strides) {
  const bool known = !strides.empty() && strides.size() == static_cast<std::size_t>(t.dim());
  bool laid_out = known ? true : t.is_contiguous();
  if (known) {
    for (std::int64_t d = 0; d < t.dim(); ++d) {
      // A dimension of size 1 is never stepped over: any stride will do there.
      if (t.size(d) > 1 && t.stride(d) != strides[static_cast<std::size_t>(d)]) laid_out = false;
    }
  }
  if (laid_out && t.storage_offset() == 0 && t.storage().nbytes() == t.nbytes()) return t;
  if (known) {
    try {
      return at::empty_strided(t.sizes(), strides, t.options()).copy_(t);
    } catch (const c10::Error&) {
      // Compiled strides that overlap (0 for an expanded constant) cannot be copied into:
      // such a constant is handed over contiguous, as before.
    }
  }
  return at::empty_like(t, at::MemoryFormat::Contiguous).copy_(t);
}

inline ConstantMap ModelLibraryRunner::prepareUpdate(const ConstantMap& constants,
                                                     bool use_inactive,
                                                     bool validate_full_update,
                                                     bool user_managed) {
  const std::string& model = info_.model_path;
  ConstantMap prepared;
  prepared.reserve(constants.size());
  for (const auto& [name, tensor] : constants) {
    const ConstantInfo* c = info_.findConstant(name);
    if (c == nullptr) {
      std::string known;
      for (const ConstantInfo& k : info_.constants) {
        if (!k.from_folded) known += (known.empty() ? "" : ", ") + k.name;
      }
      throw Error(StatusCode::kNotFound, "model " + model + " has no constant named '" + name +
                                             "'; its constants are: " + known);
    }
    if (c->from_folded) {
      throw Error(StatusCode::kInvalidArgument,
                  "model " + model + ": " + describeConstant(*c) +
                      " is produced by constant folding and cannot be set");
    }
    if (!tensor.defined()) {
      throw Error(StatusCode::kInvalidArgument,
                  "model " + model + ": " + describeConstant(*c) + " is an undefined tensor");
    }
    std::ostringstream expected;
    expected << c10::toString(c->dtype) << " ";
    const bool known = sizesKnown(*c);
    // AOTInductor rounds a constant's byte size up to 64 when the model has CPU constants.
    // Fewer bytes are taken only where the shape is compared after the update (that needs
    // the constants map): elsewhere the model would read stale bytes at the slot's end.
    const bool rounded = c->data_size % 64 == 0 && info_.features.extract_constants_map && !user_managed;
    if (known || c->data_size == 0) {
      expected << c10::IntArrayRef(c->sizes);
    } else {
      expected << "(" << c->data_size << " bytes" << (rounded ? ", or fewer rounded up to it by 64" : "") << ")";
    }
    const bool dtype_ok = tensor.scalar_type() == c->dtype;
    // Without known sizes only the byte size can be checked: the library copies the
    // tensor's bytes into the slot it reserved for the constant (data_size, maybe rounded
    // up to 64), so never more; the shape is compared once the library has made its tensor.
    const auto nbytes = static_cast<std::size_t>(tensor.nbytes());
    const bool sizes_ok = known ? tensor.sizes().vec() == c->sizes
                                : nbytes == c->data_size ||
                                      (rounded && nbytes < c->data_size && c->data_size - nbytes < 64);
    const bool device_ok = tensor.device().type() == device_.type() &&
                           (!device_.has_index() || device_.type() == c10::DeviceType::CPU ||
                            tensor.device().index() == device_.index());
    if (!dtype_ok || !sizes_ok || !device_ok) {
      std::ostringstream got;
      got << c10::toString(tensor.scalar_type()) << " " << tensor.sizes() << " on "
          << tensor.device();
      if (!known) got << " (" << tensor.nbytes() << " bytes)";
      throw Error(StatusCode::kInvalidArgument,
                  "model " + model + ": " + describeConstant(*c) + " expects " +
                      expected.str() + " on " + device_.str() + ", got " + got.str());
    }
    if (!known && c->data_size > 0 && user_managed) {
      // The library would use the tensor as it is, and nothing could tell whether its
      // shape is the constant's.
      throw Error(StatusCode::kInvalidArgument,
                  "model " + model + ": the shape of " + describeConstant(*c) +
                      " is unknown (its weights are not inside the library, and neither "
                      "aotiplug's metadata nor the wrapper source beside it tells the "
                      "shape), so it cannot be used in place; update it by copy");
    }
    prepared.emplace(name, compact(tensor, strides_[static_cast<std::size_t>(c - info_.constants.data())]));
  }

  const int target = targetIndex(use_inactive);
  const int source = 1 - target;
  ConstantMap source_values;  // lazily read: the other buffer's constants, by FQN
  bool source_read = false;
  for (std::size_t i = 0; i < info_.constants.size(); ++i) {
    const ConstantInfo& c = info_.constants[i];
    if (c.from_folded || prepared.count(c.name) != 0) continue;
    if (validate_full_update && c.requiredInFullUpdate()) {
      throw Error(StatusCode::kInvalidArgument,
                  "model " + model + ": a full update must supply " + describeConstant(c) +
                      " (" + constantKindName(c.kind) + ")");
    }
    const bool fallback_kind = c.kind == ConstantKind::kBuffer ||
                               c.kind == ConstantKind::kTensorConstant ||
                               (c.kind == ConstantKind::kParameter && c.data_size == 0);
    if (use_inactive && fallback_kind) {
      // The library fills these from the active buffer — by copy, or by borrowing a
      // pointer when user-managed. Refuse where it has nothing to take (it would
      // dereference a missing entry), and provide the value ourselves where borrowing
      // could dangle.
      if (!filled_[source][i]) {
        if (!needed(i) && (sizes_known_[i] || c.data_size == 0) &&
            std::any_of(c.sizes.begin(), c.sizes.end(), [](std::int64_t n) { return n == 0; })) {
          // An empty parameter nobody supplied: give the library an empty tensor of its
          // shape to copy, rather than let it look for one in the active buffer.
          prepared.emplace(c.name, at::empty(c.sizes, at::TensorOptions().dtype(c.dtype).device(device_)));
          continue;
        }
        throw Error(StatusCode::kInvalidArgument,
                    "model " + model + ": " + describeConstant(c) + " (" + constantKindName(c.kind) +
                        ") was not supplied and the active buffer has no value to copy");
      }
      if (user_managed && c.data_size > 0 && info_.features.extract_constants_map) {
        if (!source_read) {
          source_values = library_->extractConstantsMap(source != activeIndex());
          source_read = true;
        }
        auto it = source_values.find(c.original_fqn);
        if (it != source_values.end()) prepared.emplace(c.name, it->second.clone());
      }
      continue;
    }
    if (validate_full_update && needed(i) && !filled_[target][i]) {
      throw Error(StatusCode::kInvalidArgument,
                  "model " + model + ": a full update must supply " + describeConstant(c) +
                      " (" + constantKindName(c.kind) + "): the " + bufferName(target) +
                      " buffer has no value for it");
    }
  }
  return prepared;
}

inline void ModelLibraryRunner::release(Retained& r) noexcept {
  if (r.handle == nullptr) {
    r.alias.reset();
    return;
  }
  c10::weak_intrusive_ptr<c10::TensorImpl> weak(r.alias.getIntrusivePtr());
  r.alias.reset();
  // Nobody but the library's handle can hold the alias now: alive means leaked.
  if (weak.use_count() > 0) aoti_torch_delete_tensor_object(r.handle);
  r.handle = nullptr;
}

inline ModelLibraryRunner::~ModelLibraryRunner() {
  library_.reset();  // the container goes; its user-managed handles may not
  for (auto& buffer : retained_) {
    for (auto& [name, r] : buffer) release(r);
  }
}

inline void ModelLibraryRunner::update_constant_buffer(const ConstantMap& constants,
                                                       bool use_inactive,
                                                       bool validate_full_update,
                                                       bool user_managed) {
  std::lock_guard<std::mutex> weights(weights_mutex_);
  if (user_managed && !info_.features.user_managed_constant_buffer) {
    throw Error(StatusCode::kFailedPrecondition,
                "model library " + info_.model_path +
                    " does not support user-managed constant buffers");
  }
  const auto guard = deviceGuard();
  // Changing the active buffer, or any buffer in single-threaded mode (the library's
  // single-threaded run takes no lock), must wait for runs in flight; so must an inactive
  // update while a run may be folding the active buffer (lockRunsIfUnfolded) — also while
  // the update is prepared, since that reads the active buffer's entries.
  std::unique_lock<WriterPreferringMutex> exclusive =
      use_inactive ? lockRunsIfUnfolded() : std::unique_lock<WriterPreferringMutex>(run_mutex_);
  ConstantMap prepared =
      prepareUpdate(constants, use_inactive, validate_full_update, user_managed);
  const int target = targetIndex(use_inactive);
  if (!use_inactive) waitForDevice();
  if (user_managed) {
    // Aliases: new tensor objects over the same memory (no copy) that only this runner and
    // the library hold, so a weak reference can tell whether the library let go.
    for (auto& [name, t] : prepared) t = t.alias();
  }
  try {
    library_->updateConstantBuffer(prepared, use_inactive, validate_full_update, user_managed);
  } catch (const Error& e) {
    // The library may have replaced some entries: nothing in this buffer can be trusted.
    std::fill(filled_[target].begin(), filled_[target].end(), false);
    settle(target);
    if (user_managed) {
      for (auto& [name, t] : prepared) orphans_.push_back(std::move(t));
    }
    throw Error(e.code(), std::string(e.what()) + "; the " + (use_inactive ? "inactive" : "active") +
                              " constant buffer must be loaded again in full");
  }
  if (use_inactive) inactive_map_made_ = true;
  const int source = 1 - target;
  // Constants whose shape nothing told: the library made its tensor with the constant's
  // real shape and the strides of ours, so compare the two now. A mismatch leaves that
  // constant without a usable value in this buffer.
  std::string wrong_shape;
  std::set<std::string> unusable;
  if (!user_managed && info_.features.extract_constants_map) {
    std::unordered_map<std::string, AtenTensorHandle> handles;
    for (const auto& [name, t] : prepared) {
      const ConstantInfo* c = info_.findConstant(name);
      if (c == nullptr || sizesKnown(*c) || c->data_size == 0) continue;
      if (handles.empty()) handles = library_->extractConstantHandles(use_inactive);
      auto h = handles.find(c->original_fqn);
      if (h == handles.end() || h->second == nullptr) continue;
      const at::Tensor& stored = *reinterpret_cast<at::Tensor*>(h->second);
      if (stored.sizes() == t.sizes()) continue;
      std::ostringstream os;
      os << describeConstant(*c) << " expects sizes " << stored.sizes() << ", got " << t.sizes();
      wrong_shape += (wrong_shape.empty() ? "" : "; ") + os.str();
      unusable.insert(name);
    }
  }
  for (std::size_t i = 0; i < info_.constants.size(); ++i) {
    const ConstantInfo& c = info_.constants[i];
    if (c.from_folded) continue;
    if (unusable.count(c.name) != 0) {
      filled_[target][i] = false;
      continue;
    }
    const bool fallback_kind = c.kind == ConstantKind::kBuffer ||
                               c.kind == ConstantKind::kTensorConstant ||
                               (c.kind == ConstantKind::kParameter && c.data_size == 0);
    if (prepared.count(c.name) != 0 || (use_inactive && fallback_kind && filled_[source][i])) {
      filled_[target][i] = true;
    }
  }
  // Entries we had handed over and just replaced: the library no longer refers to them.
  for (const auto& [name, t] : prepared) {
    auto it = retained_[target].find(name);
    if (it == retained_[target].end()) continue;
    release(it->second);
    retained_[target].erase(it);
  }
  if (user_managed) {
    std::unordered_map<std::string, AtenTensorHandle> handles;
    if (info_.features.extract_constants_map) {
      try {
        handles = library_->extractConstantHandles(use_inactive);
      } catch (const Error&) {
        handles.clear();  // unknown handles are leaked, never guessed
      }
    }
    for (auto& [name, alias] : prepared) {
      Retained r{std::move(alias), nullptr};
      const ConstantInfo* c = info_.findConstant(name);
      auto h = c != nullptr ? handles.find(c->original_fqn) : handles.end();
      if (h != handles.end() && h->second != nullptr &&
          reinterpret_cast<at::Tensor*>(h->second)->unsafeGetTensorImpl() == r.alias.unsafeGetTensorImpl()) {
        r.handle = h->second;
      }
      retained_[target].emplace(name, std::move(r));
    }
  }
  settle(target);
  if (!wrong_shape.empty()) {
    throw Error(StatusCode::kInvalidArgument,
                "model " + info_.model_path + ": " + wrong_shape + "; the " + bufferName(target) +
                    " buffer has no usable value for it until it is updated again");
  }
  if (single_threaded_ && use_inactive && state(target) == BufferState::kLoaded) {
    // torch <= 2.11: RunSingleThreaded checks the wrong buffer's fold state and throws
    // while the inactive buffer is loaded but not folded. Fold it right away.
    library_->runConstantFolding(/*use_inactive=*/true, nullptr);
    states_[target] = BufferState::kFolded;
  }
}

inline void ModelLibraryRunner::foldOnStream(bool use_inactive, void* stream) {
  std::lock_guard<std::mutex> weights(weights_mutex_);
  const int target = targetIndex(use_inactive);
  if (state(target) == BufferState::kEmpty) {
    const std::string missing = missingIn(target);
    throw Error(StatusCode::kFailedPrecondition,
                "model " + info_.model_path + ": cannot fold the " +
                    (use_inactive ? "inactive" : "active") + " constant buffer, it has no value for " +
                    missing);
  }
  const auto guard = deviceGuard();
  // Exclusive even for the inactive buffer: the library folds on a model instance taken
  // from the same pool as runs, and under steady load it waits for a free one for a long
  // time (measured: 50-390 ms per fold with one instance and one busy thread). Waiting for
  // the runs in flight and holding new ones for the fold is shorter and bounded.
  std::unique_lock<WriterPreferringMutex> exclusive(run_mutex_);
  if (!use_inactive) waitForDevice();
  library_->runConstantFolding(use_inactive, stream);
  states_[target] = BufferState::kFolded;
}

inline void ModelLibraryRunner::run_const_fold(bool use_inactive, void* stream_handle) {
  foldOnStream(use_inactive, stream_handle);
}

inline void ModelLibraryRunner::swap_constant_buffer() {
  std::lock_guard<std::mutex> weights(weights_mutex_);
  const int inactive = targetIndex(true);
  if (state(inactive) == BufferState::kEmpty) {
    const bool nothing = std::none_of(filled_[inactive].begin(), filled_[inactive].end(), [](bool f) { return f; });
    throw Error(StatusCode::kFailedPrecondition,
                "model " + info_.model_path +
                    (nothing ? std::string(": the inactive constant buffer was never loaded (or was "
                                           "freed); call update_constant_buffer(use_inactive=true) "
                                           "before swapping")
                             : ": the inactive constant buffer has no value for " + missingIn(inactive) +
                                   " (left out of a partial update, or left behind by a failed "
                                   "one); supply them before swapping"));
  }
  const auto guard = deviceGuard();
  std::unique_lock<WriterPreferringMutex> exclusive(run_mutex_);
  waitForDevice();
  library_->swapConstantBuffer();
  active_.store(inactive, std::memory_order_release);
}

inline void ModelLibraryRunner::free_inactive_constant_buffer() {
  std::lock_guard<std::mutex> weights(weights_mutex_);
  if (single_threaded_ && activeIndex() == 1) {
    throw Error(StatusCode::kFailedPrecondition,
                "model " + info_.model_path +
                    ": cannot free the inactive buffer in single-threaded mode while the "
                    "secondary buffer is active (torch <= 2.11's RunSingleThreaded would then "
                    "fail on the freed buffer's state)");
  }
  const auto guard = deviceGuard();
  const auto runs = lockRunsIfUnfolded();
  const int inactive = targetIndex(true);
  library_->freeInactiveConstantBuffer();
  // Its entries now point into freed memory (all but the user-managed ones, which stay in
  // the library's map: their aliases are kept, to be released when the entries are
  // replaced or the runner destroyed).
  std::fill(filled_[inactive].begin(), filled_[inactive].end(), false);
  settle(inactive);
}

inline void ModelLibraryRunner::update_constants_from_blob(const void* blob, std::size_t size) {
  std::lock_guard<std::mutex> weights(weights_mutex_);
  const auto guard = deviceGuard();
  std::unique_lock<WriterPreferringMutex> exclusive(run_mutex_);
  const int active = activeIndex();
  waitForDevice();
  library_->updateConstantsFromBlob(blob, size);  // refuses a buffer that holds anything
  // The library loads a blob only if it was compiled for external weights, and says
  // nothing when it was not: see what the buffer holds now.
  if (info_.features.extract_constants_map) {
    const auto handles = library_->extractConstantHandles(/*use_inactive=*/false);
    for (std::size_t i = 0; i < info_.constants.size(); ++i) {
      const ConstantInfo& c = info_.constants[i];
      if (!c.from_folded && handles.count(c.original_fqn) != 0) filled_[active][i] = true;
    }
  } else {
    std::fill(filled_[active].begin(), filled_[active].end(), true);
  }
  settle(active);
  if (state(active) == BufferState::kEmpty) {
    throw Error(StatusCode::kModelError,
                "model library " + info_.model_path + " did not load the weights blob: its " +
                    "constants " + missingIn(active) +
                    " still have no value (a library compiled with its weights inside, or "
                    "without support for external weights, ignores blobs)");
  }
}

}  // namespace aotiplug
