// SPDX-License-Identifier: BSD-3-Clause
// ServedModel::execute (served_model.h): a batch of Triton requests through the executor.
//
//  1. every request is checked on its own (inputs: count, names, dtypes, shapes against the
//     package; outputs asked for; the weights version it insists on); a bad or cancelled one
//     is answered at once and never reaches the model or holds up the others;
//  2. with batching, requests whose inputs agree beyond dimension 0 are concatenated (one
//     request with one suitably placed buffer is used in place, without a copy) and run
//     once — split into several runs, all on the same weights, where the package's batch
//     range is narrower, padded where it is wider;
//  3. each request's rows of each output are copied into its response; on a GPU the
//     device's stream is synchronized before any response is sent;
//  4. statistics: one per request, one per batch run; then every request is released.

#include "batch_plan.h"
#include "served_model.h"
#include "timestamps.h"
#include "triton_error.h"

#include <aotiplug/error.h>

#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>
#include <c10/core/Stream.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace aotiplug::triton {
namespace {

std::string describe(const std::int64_t* shape, std::uint32_t dims) {
  std::string out = "[";
  for (std::uint32_t d = 0; d < dims; ++d) out += (d > 0 ? ", " : "") + std::to_string(shape[d]);
  return out + "]";
}

// A request input as Triton holds it.
struct RequestInput {
  TRITONBACKEND_Input* input = nullptr;
  std::vector<std::int64_t> item_sizes;  // sizes of one batch item (or of the whole input)
  std::uint64_t byte_size = 0;
  std::uint32_t buffer_count = 0;
};

struct Request {
  TRITONBACKEND_Request* request = nullptr;
  TRITONBACKEND_Response* response = nullptr;
  TritonErrorPtr error;          // set: answered with this error
  std::int64_t batch = 1;        // rows (dimension 0) when batching
  std::vector<RequestInput> inputs;  // by package input index
  std::vector<const ServedTensor*> outputs;
  std::string pinned_version;    // request parameter weights_version
  std::string version;           // the weights version that served it
  std::uint64_t compute_start = 0, compute_end = 0;

  bool failed() const noexcept { return error != nullptr; }
  void fail(TRITONSERVER_Error_Code code, const std::string& message) {
    if (!error) error.reset(TRITONSERVER_ErrorNew(code, message.c_str()));
  }
};

// Copies `size` bytes at `source` (in `type` memory on device `id`) to `dest` (a tensor's
// storage, on the executor's device).
void copyIn(const at::Tensor& dest, std::size_t offset, const void* source, std::size_t size,
            TRITONSERVER_MemoryType type, std::int64_t id) {
  if (size == 0) return;
  char* to = static_cast<char*>(dest.data_ptr()) + offset;
  if (dest.is_cpu() && type != TRITONSERVER_MEMORY_GPU) {
    std::memcpy(to, source, size);
    return;
  }
  const c10::Device from_device = type == TRITONSERVER_MEMORY_GPU
                                      ? c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(id))
                                      : c10::Device(c10::DeviceType::CPU);
  at::Tensor src = at::from_blob(const_cast<void*>(source), {static_cast<std::int64_t>(size)},
                                 at::TensorOptions().dtype(at::kByte).device(from_device));
  at::from_blob(to, {static_cast<std::int64_t>(size)}, at::TensorOptions().dtype(at::kByte).device(dest.device()))
      .copy_(src);
}

// Copies `src` (any device, any layout) into a Triton output buffer.
void copyOut(void* buffer, TRITONSERVER_MemoryType type, std::int64_t id, const at::Tensor& src) {
  if (src.numel() == 0) return;
  if (type != TRITONSERVER_MEMORY_GPU && src.is_cpu() && src.is_contiguous()) {
    std::memcpy(buffer, src.data_ptr(), src.nbytes());
    return;
  }
  const c10::Device device = type == TRITONSERVER_MEMORY_GPU
                                 ? c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(id))
                                 : c10::Device(c10::DeviceType::CPU);
  at::from_blob(buffer, src.sizes(), at::TensorOptions().dtype(src.scalar_type()).device(device)).copy_(src);
}

std::string inputNames(const ServingConfig& config) {
  std::string names;
  for (const auto& t : config.inputs) names += (names.empty() ? "" : ", ") + t.name;
  return names;
}

// One call of ServedModel::execute: the steps above, over one batch of requests.
class Execution {
 public:
  // Allocates the requests' state: may throw, before any request is answered.
  Execution(const ServingConfig& config, const PackageSignature& signature, DeviceExecutor& executor,
            TRITONBACKEND_ModelInstance* instance, std::uint32_t count)
      : config_(config), signature_(signature), executor_(executor), instance_(instance),
        batching_(config.max_batch_size > 0), device_(executor.runDevice()), model_("model '" + config.model + "'"),
        requests_(count) {}

  void run(TRITONBACKEND_Request** requests, std::uint32_t count) noexcept {
    exec_start_ = nowNs();
    for (std::uint32_t r = 0; r < count; ++r) {
      Request& req = requests_[r];
      req.request = requests[r];
      if (TRITONSERVER_Error* e = TRITONBACKEND_ResponseNew(&req.response, req.request)) {
        logIfFailed(e, model_ + ": cannot create a response");
        req.response = nullptr;
        req.fail(TRITONSERVER_ERROR_INTERNAL, "no response");
        continue;
      }
      guard(req, [&] { check(req); });
    }
    try {
      runGroups();
    } catch (...) {  // out of memory between runs: the requests not yet run fail
      TritonErrorPtr e(errorFromCurrentException(model_));
      for (Request& req : requests_) {
        if (!req.failed() && req.version.empty()) req.fail(TRITONSERVER_ErrorCode(e.get()), TRITONSERVER_ErrorMessage(e.get()));
      }
    }
    synchronizeDevice();
    finish();
  }

 private:
  // 2-3 for every group; throws only what allocating between runs throws.
  void runGroups() {
    for (std::vector<Request*>& group : groups()) {
      try {
        runGroup(group);
      } catch (...) {
        if (group.size() == 1) {
          failAll(group);
          continue;
        }
        // A run that fails on one request's values (an index out of range, say) must not
        // fail the others batched with it: each runs again on its own. Nothing was answered
        // yet (runGroup throws only before it responds).
        TritonErrorPtr e(errorFromCurrentException(""));
        logWarning(model_ + ": a batch of " + std::to_string(group.size()) + " requests failed (" +
                   TRITONSERVER_ErrorMessage(e.get()) + "); running them one by one");
        for (Request* req : group) {
          try {
            runGroup({req});
          } catch (...) {
            failAll({req});
          }
        }
      }
    }
  }

  // Fails `group` with the exception being handled.
  void failAll(const std::vector<Request*>& group) noexcept {
    TritonErrorPtr e(errorFromCurrentException(model_));
    for (Request* req : group) req->fail(TRITONSERVER_ErrorCode(e.get()), TRITONSERVER_ErrorMessage(e.get()));
  }

  template <class Body>
  static void guard(Request& req, Body&& body) {
    try {
      body();
    } catch (...) {
      TritonErrorPtr e(errorFromCurrentException(""));
      req.fail(TRITONSERVER_ErrorCode(e.get()), TRITONSERVER_ErrorMessage(e.get()));
    }
  }

  // 1. One request on its own: cancellation, inputs, outputs asked for, weights pinned.
  void check(Request& req) {
    bool cancelled = false;
    throwIfFailed(TRITONBACKEND_RequestIsCancelled(req.request, &cancelled), "reading the request");
    if (cancelled) {
      req.fail(TRITONSERVER_ERROR_CANCELLED, model_ + ": the request was cancelled before it ran");
      logVerbose(model_ + ": a request was cancelled before it ran; answered CANCELLED without running it");
      return;
    }
    std::uint32_t n = 0;
    throwIfFailed(TRITONBACKEND_RequestInputCount(req.request, &n), "reading the request's inputs");
    if (n != config_.inputs.size()) {
      throw Error(StatusCode::kInvalidArgument, model_ + " takes " + std::to_string(config_.inputs.size()) +
                                                    " input(s) (" + inputNames(config_) + "); the request has " +
                                                    std::to_string(n));
    }
    req.inputs.resize(config_.inputs.size());
    for (std::uint32_t i = 0; i < n; ++i) readInput(req, i);
    checkSharedSizes(req);
    readOutputs(req);
    readParameters(req);
  }

  void readInput(Request& req, std::uint32_t i) {
    TRITONBACKEND_Input* input = nullptr;
    throwIfFailed(TRITONBACKEND_RequestInputByIndex(req.request, i, &input), "reading request input " + std::to_string(i));
    const char* name = nullptr;
    TRITONSERVER_DataType type = TRITONSERVER_TYPE_INVALID;
    const std::int64_t* shape = nullptr;
    std::uint32_t dims = 0;
    RequestInput in;
    in.input = input;
    throwIfFailed(TRITONBACKEND_InputProperties(input, &name, &type, &shape, &dims, &in.byte_size, &in.buffer_count),
                  "reading request input " + std::to_string(i));
    const std::string input_name = name != nullptr ? name : "";
    const ServedTensor* served = config_.findInput(input_name);
    if (served == nullptr) {
      throw Error(StatusCode::kInvalidArgument,
                  "input '" + input_name + "' is not an input of " + model_ + " (its inputs: " + inputNames(config_) + ")");
    }
    const std::string what = "input '" + input_name + "' of " + model_;
    if (req.inputs[served->index].input != nullptr) throw Error(StatusCode::kInvalidArgument, what + " is given twice");
    if (type != served->type.api) {
      const bool bytes = type == TRITONSERVER_TYPE_BYTES;
      throw Error(StatusCode::kInvalidArgument,
                  what + " is " + apiTypeName(type) + (bytes ? " (strings)" : "") + "; the model takes " +
                      served->type.api_name + (bytes ? ": the aotiplug backend serves tensors, not BYTES" : ""));
    }
    const TensorSignature& spec = signature_.inputs[served->index];
    std::uint32_t d0 = 0;
    if (batching_) {
      if (dims == 0 || shape[0] < 1) {
        throw Error(StatusCode::kInvalidArgument,
                    what + " has shape " + describe(shape, dims) + ": its first dimension is the batch, at least 1");
      }
      const bool first = std::all_of(req.inputs.begin(), req.inputs.end(), [](const RequestInput& r) { return r.input == nullptr; });
      if (!first && shape[0] != req.batch) {
        throw Error(StatusCode::kInvalidArgument, what + " has a batch of " + std::to_string(shape[0]) +
                                                      ", the request's other inputs " + std::to_string(req.batch));
      }
      req.batch = shape[0];
      d0 = 1;
    }
    in.item_sizes.assign(shape + d0, shape + dims);
    const std::size_t want_rank = spec.dims.size() - d0;
    if (served->scalar && in.item_sizes == std::vector<std::int64_t>{1}) in.item_sizes.clear();
    if (in.item_sizes.size() != want_rank) {
      throw Error(StatusCode::kInvalidArgument, what + " has shape " + describe(shape, dims) + "; the model takes " +
                                                    std::to_string(want_rank + d0) + " dimension(s)" +
                                                    (batching_ ? " (the first the batch)" : ""));
    }
    std::uint64_t elements = batching_ ? static_cast<std::uint64_t>(req.batch) : 1;
    for (std::size_t d = 0; d < want_rank; ++d) {
      const std::int64_t size = in.item_sizes[d];
      const std::size_t pd = d + d0;
      const std::int64_t lo = spec.min[pd], hi = spec.max[pd];
      if (spec.dims[pd] >= 0 ? size != spec.dims[pd] : (size < lo || (hi >= 0 && size > hi))) {
        throw Error(StatusCode::kInvalidArgument,
                    what + " has shape " + describe(shape, dims) + "; dimension " + std::to_string(pd) + " must be " +
                        (spec.dims[pd] >= 0 ? std::to_string(spec.dims[pd])
                                            : std::to_string(lo) + ".." + (hi >= 0 ? std::to_string(hi) : "")));
      }
      elements *= static_cast<std::uint64_t>(size);
    }
    const std::uint64_t expected = elements * c10::elementSize(served->type.scalar_type);
    if (in.byte_size != expected) {
      throw Error(StatusCode::kInvalidArgument, what + " holds " + std::to_string(in.byte_size) + " bytes; shape " +
                                                    describe(shape, dims) + " of " + served->type.api_name + " is " +
                                                    std::to_string(expected));
    }
    req.inputs[served->index] = std::move(in);
  }

  // Dimensions the compiled code assumes equal (it reads the size from the first and
  // trusts the other): refused here, naming both, rather than read out of bounds.
  void checkSharedSizes(const Request& req) const {
    const std::uint32_t d0 = batching_ ? 1 : 0;
    auto size = [&](std::size_t input, std::size_t dim) {
      return batching_ && dim == 0 ? req.batch : req.inputs[input].item_sizes[dim - d0];
    };
    for (const SharedSize& s : signature_.shared_sizes) {
      const std::int64_t a = size(s.input, s.dim), b = size(s.bound_input, s.bound_dim);
      if (a == b) continue;
      throw Error(StatusCode::kInvalidArgument,
                  "input '" + config_.inputs[s.input].name + "' of " + model_ + " has size " + std::to_string(a) +
                      " in dimension " + std::to_string(s.dim) + ", but input '" + config_.inputs[s.bound_input].name +
                      "' has " + std::to_string(b) + " in dimension " + std::to_string(s.bound_dim) +
                      ": the model was compiled with both the same size");
    }
  }

  void readOutputs(Request& req) {
    std::uint32_t outputs = 0;
    throwIfFailed(TRITONBACKEND_RequestOutputCount(req.request, &outputs), "reading the requested outputs");
    for (std::uint32_t o = 0; o < outputs; ++o) {
      const char* name = nullptr;
      throwIfFailed(TRITONBACKEND_RequestOutputName(req.request, o, &name), "reading a requested output");
      const ServedTensor* served = config_.findOutput(name != nullptr ? name : "");
      if (served == nullptr) {
        throw Error(StatusCode::kInvalidArgument,
                    "output '" + std::string(name != nullptr ? name : "") + "' is not an output of " + model_);
      }
      req.outputs.push_back(served);
    }
    if (outputs == 0) {
      for (const ServedTensor& t : config_.outputs) req.outputs.push_back(&t);
    }
  }

  void readParameters(Request& req) {
    std::uint32_t parameters = 0;
    throwIfFailed(TRITONBACKEND_RequestParameterCount(req.request, &parameters), "reading the request's parameters");
    for (std::uint32_t p = 0; p < parameters; ++p) {
      const char* key = nullptr;
      TRITONSERVER_ParameterType type = TRITONSERVER_PARAMETER_STRING;
      const void* value = nullptr;
      throwIfFailed(TRITONBACKEND_RequestParameter(req.request, p, &key, &type, &value), "reading a request parameter");
      if (key == nullptr || std::strcmp(key, "weights_version") != 0) continue;
      if (type != TRITONSERVER_PARAMETER_STRING) {
        throw Error(StatusCode::kInvalidArgument, "request parameter weights_version must be a string");
      }
      req.pinned_version = static_cast<const char*>(value);
    }
    // Refused before it runs when other weights are active (and after, should a commit
    // come in between).
    if (!req.pinned_version.empty()) checkVersion(req, executor_.activeLabel(), "serves");
  }

  void checkVersion(const Request& req, const std::string& version, const char* verb) const {
    if (!req.pinned_version.empty() && req.pinned_version != version) {
      throw Error(StatusCode::kUnavailable, model_ + " " + verb + " weights version '" + version +
                                                "'; the request asks for '" + req.pinned_version + "'");
    }
  }

  // 2. What can run together: with batching, requests whose inputs agree beyond
  // dimension 0; without, each request on its own.
  std::vector<std::vector<Request*>> groups() {
    std::vector<std::vector<Request*>> out;
    std::map<std::vector<std::vector<std::int64_t>>, std::size_t> index;
    for (Request& req : requests_) {
      if (req.failed()) continue;
      if (!batching_) {
        out.push_back({&req});
        continue;
      }
      std::vector<std::vector<std::int64_t>> key;
      for (const RequestInput& in : req.inputs) key.push_back(in.item_sizes);
      auto [it, added] = index.emplace(std::move(key), out.size());
      if (added) out.emplace_back();
      out[it->second].push_back(&req);
    }
    return out;
  }

  // The group's input `k` as one tensor on the device: the request's own buffer where it
  // can be used in place, else its buffers (and the group's) copied one after another.
  at::Tensor gather(const std::vector<Request*>& group, std::size_t k, std::int64_t rows, std::int64_t padding) {
    const c10::ScalarType dtype = config_.inputs[k].type.scalar_type;
    std::vector<std::int64_t> sizes = group.front()->inputs[k].item_sizes;
    if (batching_) sizes.insert(sizes.begin(), rows + padding);
    const RequestInput& first = group.front()->inputs[k];
    if (group.size() == 1 && padding == 0 && first.buffer_count == 1) {
      const void* buffer = nullptr;
      std::uint64_t size = 0;
      TRITONSERVER_MemoryType type = device_.is_cpu() ? TRITONSERVER_MEMORY_CPU : TRITONSERVER_MEMORY_GPU;
      std::int64_t id = device_.is_cpu() ? 0 : device_.index();
      throwIfFailed(TRITONBACKEND_InputBuffer(first.input, 0, &buffer, &size, &type, &id), "reading an input buffer");
      const bool here = device_.is_cpu() ? type != TRITONSERVER_MEMORY_GPU
                                         : type == TRITONSERVER_MEMORY_GPU && id == device_.index();
      // Inductor's kernels may assume 16-byte aligned inputs: others are copied.
      if (here && reinterpret_cast<std::uintptr_t>(buffer) % 16 == 0) {
        return at::from_blob(const_cast<void*>(buffer), sizes, at::TensorOptions().dtype(dtype).device(device_));
      }
    }
    at::Tensor gathered = at::empty(sizes, at::TensorOptions().dtype(dtype).device(device_));
    std::size_t offset = 0;
    for (Request* req : group) {
      const RequestInput& in = req->inputs[k];
      if (in.buffer_count > 1) {
        logVerbose(model_ + ": input '" + config_.inputs[k].name + "' arrived in " + std::to_string(in.buffer_count) +
                   " buffers");
      }
      for (std::uint32_t b = 0; b < in.buffer_count; ++b) {
        const void* buffer = nullptr;
        std::uint64_t size = 0;
        TRITONSERVER_MemoryType type = TRITONSERVER_MEMORY_CPU;
        std::int64_t id = 0;
        throwIfFailed(TRITONBACKEND_InputBuffer(in.input, b, &buffer, &size, &type, &id), "reading an input buffer");
        if (offset + size > gathered.nbytes()) {
          throw Error(StatusCode::kInvalidArgument, "input '" + config_.inputs[k].name + "' holds more bytes than its shape");
        }
        copyIn(gathered, offset, buffer, size, type, id);
        offset += size;
      }
    }
    if (padding > 0) gathered.narrow(0, rows, padding).zero_();
    return gathered;
  }

  // 2-3. Gather, run (split or padded to the package's range, all on one weights
  // generation), and give each request its rows of each output.
  void runGroup(const std::vector<Request*>& group) {
    std::int64_t rows = 0;
    for (Request* req : group) rows += req->batch;
    const std::vector<PlannedRun> plan =
        batching_ ? planRuns(rows, signature_.batch_min, signature_.batch_max) : std::vector<PlannedRun>{{0, 1, 0}};
    // One run is padded where it is gathered; several are sliced, each padded on its own.
    const std::int64_t padding = plan.size() == 1 ? plan.front().padding : 0;
    std::vector<at::Tensor> inputs;
    for (std::size_t k = 0; k < config_.inputs.size(); ++k) inputs.push_back(gather(group, k, rows, padding));
    std::vector<std::vector<at::Tensor>> sets;
    if (plan.size() == 1) {
      sets.push_back(std::move(inputs));
    } else {
      for (const PlannedRun& run : plan) {
        std::vector<at::Tensor> slice;
        for (const at::Tensor& t : inputs) {
          at::Tensor part = t.narrow(0, run.offset, run.size);
          if (run.padding > 0) {
            std::vector<std::int64_t> sizes = part.sizes().vec();
            sizes[0] += run.padding;
            at::Tensor padded = at::zeros(sizes, part.options());
            padded.narrow(0, 0, run.size).copy_(part);
            part = padded;
          }
          slice.push_back(part);
        }
        sets.push_back(std::move(slice));
      }
    }

    const std::uint64_t compute_start = nowNs();
    AOTIDelegateExecutor::RunInfo info;
    const std::vector<std::vector<at::Tensor>> results = executor_.executor().runAll(sets, info);
    const std::uint64_t compute_end = nowNs();
    batches_.push_back({static_cast<std::uint64_t>(batching_ ? rows : 1), compute_start, compute_end});
    const std::string version = executor_.label(info.weights_generation);

    std::vector<at::Tensor> outputs;
    for (std::size_t o = 0; o < signature_.outputs.size(); ++o) {
      std::vector<at::Tensor> parts;  // each run's rows, without its padding
      for (std::size_t r = 0; r < results.size(); ++r) {
        const at::Tensor& part = results[r][o];
        parts.push_back(plan[r].padding > 0 ? part.narrow(0, 0, plan[r].size) : part);
      }
      outputs.push_back(parts.size() == 1 ? parts.front() : at::cat(parts, 0));
    }
    std::int64_t offset = 0;
    for (Request* req : group) {
      guard(*req, [&] {
        checkVersion(*req, version, "served");
        for (const ServedTensor* out : req->outputs) {
          respond(*req, *out, batching_ ? outputs[out->index].narrow(0, offset, req->batch) : outputs[out->index]);
        }
        req->version = version;
        req->compute_start = compute_start;
        req->compute_end = compute_end;
      });
      offset += req->batch;
    }
  }

  // 3. One output of one request, into the buffer Triton gives (on the device where it can).
  void respond(Request& req, const ServedTensor& out, const at::Tensor& value) {
    if (!value.defined()) throw Error(StatusCode::kInternal, "output '" + out.name + "' of " + model_ + " is None");
    if (value.scalar_type() != out.type.scalar_type) {
      throw Error(StatusCode::kInternal, "output '" + out.name + "' of " + model_ + " is " +
                                             torchTypeName(value.scalar_type()) + ", the config says " +
                                             out.type.config_name);
    }
    std::vector<std::int64_t> shape = value.sizes().vec();
    if (out.scalar) shape.push_back(1);
    TRITONBACKEND_Output* output = nullptr;
    throwIfFailed(TRITONBACKEND_ResponseOutput(req.response, &output, out.name.c_str(), out.type.api, shape.data(),
                                               static_cast<std::uint32_t>(shape.size())),
                  "making output '" + out.name + "'");
    void* buffer = nullptr;
    TRITONSERVER_MemoryType type = device_.is_cpu() ? TRITONSERVER_MEMORY_CPU : TRITONSERVER_MEMORY_GPU;
    std::int64_t id = device_.is_cpu() ? 0 : device_.index();
    throwIfFailed(TRITONBACKEND_OutputBuffer(output, &buffer, value.nbytes(), &type, &id),
                  "allocating output '" + out.name + "'");
    copyOut(buffer, type, id, value);
  }

  // Output copies on a GPU may still be queued on the device's stream.
  void synchronizeDevice() noexcept {
    if (device_.is_cpu()) return;
    try {
      c10::impl::VirtualGuardImpl guard(device_.type());
      guard.getStream(device_).synchronize();
    } catch (...) {
      TritonErrorPtr e(errorFromCurrentException(model_ + ": synchronizing " + device_.str()));
      for (Request& req : requests_) req.fail(TRITONSERVER_ErrorCode(e.get()), TRITONSERVER_ErrorMessage(e.get()));
    }
  }

  // 4. Answer, report, release.
  void finish() noexcept {
    const std::uint64_t exec_end = nowNs();
    for (Request& req : requests_) {
      if (req.response != nullptr) {
        if (!req.failed()) {
          logIfFailed(TRITONBACKEND_ResponseSetStringParameter(req.response, "weights_version", req.version.c_str()),
                      model_ + ": setting weights_version");
        }
        logIfFailed(TRITONBACKEND_ResponseSend(req.response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, req.error.get()),
                    model_ + ": sending a response");
      }
      logIfFailed(TRITONBACKEND_ModelInstanceReportStatistics(instance_, req.request, !req.failed(), exec_start_,
                                                              req.compute_start, req.compute_end, exec_end),
                  model_ + ": reporting statistics");
      logIfFailed(TRITONBACKEND_RequestRelease(req.request, TRITONSERVER_REQUEST_RELEASE_ALL),
                  model_ + ": releasing a request");
    }
    for (const Batch& b : batches_) {
      logIfFailed(TRITONBACKEND_ModelInstanceReportBatchStatistics(instance_, b.rows, exec_start_, b.compute_start,
                                                                   b.compute_end, exec_end),
                  model_ + ": reporting batch statistics");
    }
  }

  struct Batch {
    std::uint64_t rows, compute_start, compute_end;
  };
  const ServingConfig& config_;
  const PackageSignature& signature_;
  DeviceExecutor& executor_;
  TRITONBACKEND_ModelInstance* instance_;
  const bool batching_;
  const c10::Device device_;
  const std::string model_;
  std::uint64_t exec_start_ = 0;
  std::vector<Request> requests_;
  std::vector<Batch> batches_;
};

}  // namespace

void ServedModel::execute(TRITONBACKEND_ModelInstance* instance, DeviceExecutor& executor,
                          TRITONBACKEND_Request** requests, std::uint32_t count) noexcept {
  try {
    Execution execution(config_, signature_, executor, instance, count);
    execution.run(requests, count);
  } catch (...) {  // only allocating the execution's state can throw here
    for (std::uint32_t r = 0; r < count; ++r) {
      TRITONBACKEND_Response* response = nullptr;
      if (TRITONSERVER_Error* e = TRITONBACKEND_ResponseNew(&response, requests[r])) {
        logIfFailed(e, "model '" + name() + "': cannot create a response");
      } else {
        TritonErrorPtr error(errorFromCurrentException("model '" + name() + "'"));
        logIfFailed(TRITONBACKEND_ResponseSend(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, error.get()),
                    "model '" + name() + "': sending a response");
      }
      logIfFailed(TRITONBACKEND_RequestRelease(requests[r], TRITONSERVER_REQUEST_RELEASE_ALL), "releasing a request");
    }
  }
}

}  // namespace aotiplug::triton
