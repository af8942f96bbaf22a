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
#include "triton_error.h"

#include <aotiplug/error.h>

#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/Stream.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <cstring>
#include <map>

namespace aotiplug::triton {
namespace {

std::uint64_t nowNs() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

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

}  // namespace

void ServedModel::execute(TRITONBACKEND_ModelInstance* instance, DeviceExecutor& executor,
                          TRITONBACKEND_Request** requests, std::uint32_t count) noexcept {
  const std::uint64_t exec_start = nowNs();
  const bool batching = config_.max_batch_size > 0;
  const std::string model = "model '" + config_.model + "'";
  const c10::Device device = executor.runDevice();
  std::vector<Request> batch(count);

  // 1. Check each request on its own.
  for (std::uint32_t r = 0; r < count; ++r) {
    Request& req = batch[r];
    req.request = requests[r];
    if (TRITONSERVER_Error* e = TRITONBACKEND_ResponseNew(&req.response, req.request)) {
      logIfFailed(e, model + ": cannot create a response");
      req.response = nullptr;
      req.fail(TRITONSERVER_ERROR_INTERNAL, "no response");
      continue;
    }
    try {
      bool cancelled = false;
      throwIfFailed(TRITONBACKEND_RequestIsCancelled(req.request, &cancelled), "reading the request");
      if (cancelled) {
        req.fail(TRITONSERVER_ERROR_CANCELLED, model + ": the request was cancelled before it ran");
        continue;
      }
      std::uint32_t n = 0;
      throwIfFailed(TRITONBACKEND_RequestInputCount(req.request, &n), "reading the request's inputs");
      if (n != config_.inputs.size()) {
        std::string names;
        for (const auto& t : config_.inputs) names += (names.empty() ? "" : ", ") + t.name;
        throw Error(StatusCode::kInvalidArgument, model + " takes " + std::to_string(config_.inputs.size()) +
                                                      " input(s) (" + names + "); the request has " + std::to_string(n));
      }
      req.inputs.resize(config_.inputs.size());
      bool first = true;
      for (std::uint32_t i = 0; i < n; ++i) {
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
          std::string names;
          for (const auto& t : config_.inputs) names += (names.empty() ? "" : ", ") + t.name;
          throw Error(StatusCode::kInvalidArgument,
                      "input '" + input_name + "' is not an input of " + model + " (its inputs: " + names + ")");
        }
        const std::string what = "input '" + input_name + "' of " + model;
        if (req.inputs[served->index].input != nullptr) throw Error(StatusCode::kInvalidArgument, what + " is given twice");
        if (type != served->type.api) {
          throw Error(StatusCode::kInvalidArgument,
                      what + " is " + apiTypeName(type) + (type == TRITONSERVER_TYPE_BYTES ? " (strings)" : "") +
                          "; the model takes " + served->type.api_name +
                          (type == TRITONSERVER_TYPE_BYTES ? ": the aotiplug backend serves tensors, not BYTES" : ""));
        }
        const TensorSignature& spec = signature_.inputs[served->index];
        std::uint32_t d0 = 0;
        if (batching) {
          if (dims == 0 || shape[0] < 1) {
            throw Error(StatusCode::kInvalidArgument, what + " has shape " + describe(shape, dims) +
                                                          ": its first dimension is the batch, at least 1");
          }
          if (!first && shape[0] != req.batch) {
            throw Error(StatusCode::kInvalidArgument, what + " has a batch of " + std::to_string(shape[0]) +
                                                          ", the request's other inputs " + std::to_string(req.batch));
          }
          req.batch = shape[0];
          d0 = 1;
        }
        first = false;
        in.item_sizes.assign(shape + d0, shape + dims);
        const std::size_t want_rank = spec.dims.size() - d0;
        if (served->scalar && in.item_sizes == std::vector<std::int64_t>{1}) in.item_sizes.clear();
        if (in.item_sizes.size() != want_rank) {
          throw Error(StatusCode::kInvalidArgument,
                      what + " has shape " + describe(shape, dims) + "; the model takes " +
                          std::to_string(want_rank + d0) + " dimension(s)" +
                          (batching ? " (the first the batch)" : ""));
        }
        std::uint64_t elements = batching ? static_cast<std::uint64_t>(req.batch) : 1;
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
                                                        describe(shape, dims) + " of " + served->type.api_name +
                                                        " is " + std::to_string(expected));
        }
        req.inputs[served->index] = std::move(in);
      }
      std::uint32_t outputs = 0;
      throwIfFailed(TRITONBACKEND_RequestOutputCount(req.request, &outputs), "reading the requested outputs");
      for (std::uint32_t o = 0; o < outputs; ++o) {
        const char* name = nullptr;
        throwIfFailed(TRITONBACKEND_RequestOutputName(req.request, o, &name), "reading a requested output");
        const ServedTensor* served = config_.findOutput(name != nullptr ? name : "");
        if (served == nullptr) {
          throw Error(StatusCode::kInvalidArgument,
                      "output '" + std::string(name != nullptr ? name : "") + "' is not an output of " + model);
        }
        req.outputs.push_back(served);
      }
      if (outputs == 0) {
        for (const ServedTensor& t : config_.outputs) req.outputs.push_back(&t);
      }
      std::uint32_t parameters = 0;
      throwIfFailed(TRITONBACKEND_RequestParameterCount(req.request, &parameters), "reading the request's parameters");
      for (std::uint32_t p = 0; p < parameters; ++p) {
        const char* key = nullptr;
        TRITONSERVER_ParameterType type = TRITONSERVER_PARAMETER_STRING;
        const void* value = nullptr;
        throwIfFailed(TRITONBACKEND_RequestParameter(req.request, p, &key, &type, &value), "reading a request parameter");
        if (key != nullptr && std::strcmp(key, "weights_version") == 0) {
          if (type != TRITONSERVER_PARAMETER_STRING) {
            throw Error(StatusCode::kInvalidArgument, "request parameter weights_version must be a string");
          }
          req.pinned_version = static_cast<const char*>(value);
        }
      }
      if (!req.pinned_version.empty()) {
        const std::string active = executor.activeLabel();
        if (active != req.pinned_version) {
          throw Error(StatusCode::kUnavailable, model + " serves weights version '" + active +
                                                    "'; the request asks for '" + req.pinned_version + "'");
        }
      }
    } catch (...) {
      TritonErrorPtr e(errorFromCurrentException(""));
      req.fail(TRITONSERVER_ErrorCode(e.get()), TRITONSERVER_ErrorMessage(e.get()));
    }
  }

  // 2. Group what can run together, gather, run.
  std::map<std::vector<std::vector<std::int64_t>>, std::vector<Request*>> groups;
  std::vector<std::vector<Request*>> singles;
  for (Request& req : batch) {
    if (req.failed()) continue;
    if (!batching) {
      singles.push_back({&req});
      continue;
    }
    std::vector<std::vector<std::int64_t>> key;
    for (const RequestInput& in : req.inputs) key.push_back(in.item_sizes);
    groups[key].push_back(&req);
  }
  for (auto& [key, members] : groups) singles.push_back(members);

  struct BatchRun {
    std::uint64_t size, compute_start, compute_end;
  };
  std::vector<BatchRun> runs;
  for (std::vector<Request*>& group : singles) {
    try {
      std::int64_t rows = 0;
      for (Request* req : group) rows += req->batch;
      const std::vector<PlannedRun> plan =
          batching ? planRuns(rows, signature_.batch_min, signature_.batch_max) : std::vector<PlannedRun>{{0, 1, 0}};
      const std::int64_t padding = plan.size() == 1 ? plan.front().padding : 0;
      std::vector<at::Tensor> inputs;
      for (std::size_t k = 0; k < config_.inputs.size(); ++k) {
        const c10::ScalarType dtype = config_.inputs[k].type.scalar_type;
        std::vector<std::int64_t> sizes = group.front()->inputs[k].item_sizes;
        if (batching) sizes.insert(sizes.begin(), rows + padding);
        const RequestInput& first = group.front()->inputs[k];
        if (group.size() == 1 && padding == 0 && first.buffer_count == 1) {
          const void* buffer = nullptr;
          std::uint64_t size = 0;
          TRITONSERVER_MemoryType type = device.is_cpu() ? TRITONSERVER_MEMORY_CPU : TRITONSERVER_MEMORY_GPU;
          std::int64_t id = device.is_cpu() ? 0 : device.index();
          throwIfFailed(TRITONBACKEND_InputBuffer(first.input, 0, &buffer, &size, &type, &id), "reading an input buffer");
          const bool here = device.is_cpu() ? type != TRITONSERVER_MEMORY_GPU
                                            : type == TRITONSERVER_MEMORY_GPU && id == device.index();
          // Inductor's kernels may assume 16-byte aligned inputs: others are copied.
          if (here && reinterpret_cast<std::uintptr_t>(buffer) % 16 == 0) {
            inputs.push_back(at::from_blob(const_cast<void*>(buffer), sizes,
                                           at::TensorOptions().dtype(dtype).device(device)));
            continue;
          }
        }
        at::Tensor gathered = at::empty(sizes, at::TensorOptions().dtype(dtype).device(device));
        std::size_t offset = 0;
        for (Request* req : group) {
          const RequestInput& in = req->inputs[k];
          if (in.buffer_count > 1) {
            logVerbose(model + ": input '" + config_.inputs[k].name + "' arrived in " + std::to_string(in.buffer_count) +
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
        inputs.push_back(std::move(gathered));
      }

      std::vector<std::vector<at::Tensor>> sets;
      for (const PlannedRun& run : plan) {
        if (!batching || plan.size() == 1) {
          sets.push_back(inputs);
          continue;
        }
        std::vector<at::Tensor> slice;
        for (const at::Tensor& t : inputs) slice.push_back(t.narrow(0, run.offset, run.size));
        sets.push_back(std::move(slice));
      }
      const std::uint64_t compute_start = nowNs();
      AOTIDelegateExecutor::RunInfo info;
      std::vector<std::vector<at::Tensor>> results = executor.executor().runAll(sets, info);
      const std::uint64_t compute_end = nowNs();
      runs.push_back({static_cast<std::uint64_t>(batching ? rows : 1), compute_start, compute_end});
      const std::string version = executor.label(info.weights_generation);

      // 3. Each request's rows of each output.
      std::vector<at::Tensor> outputs;
      const std::size_t declared = signature_.outputs.size();
      for (std::size_t o = 0; o < declared; ++o) {
        if (results.size() == 1) {
          outputs.push_back(padding > 0 ? results.front()[o].narrow(0, 0, rows) : results.front()[o]);
        } else {
          std::vector<at::Tensor> parts;
          for (const auto& r : results) parts.push_back(r[o]);
          outputs.push_back(at::cat(parts, 0));
        }
      }
      std::int64_t offset = 0;
      for (Request* req : group) {
        try {
          if (!req->pinned_version.empty() && req->pinned_version != version) {
            throw Error(StatusCode::kUnavailable, model + " served weights version '" + version +
                                                      "'; the request asks for '" + req->pinned_version + "'");
          }
          for (const ServedTensor* out : req->outputs) {
            const at::Tensor& full = outputs[out->index];
            if (!full.defined()) throw Error(StatusCode::kInternal, "output '" + out->name + "' of " + model + " is None");
            if (full.scalar_type() != out->type.scalar_type) {
              throw Error(StatusCode::kInternal, "output '" + out->name + "' of " + model + " is " +
                                                     c10::getDtypeNames(full.scalar_type()).first + ", the config says " +
                                                     out->type.config_name);
            }
            const at::Tensor rows_of = batching ? full.narrow(0, offset, req->batch) : full;
            std::vector<std::int64_t> shape = rows_of.sizes().vec();
            if (out->scalar) shape.push_back(1);
            TRITONBACKEND_Output* output = nullptr;
            throwIfFailed(TRITONBACKEND_ResponseOutput(req->response, &output, out->name.c_str(), out->type.api,
                                                       shape.data(), static_cast<std::uint32_t>(shape.size())),
                          "making output '" + out->name + "'");
            void* buffer = nullptr;
            TRITONSERVER_MemoryType type = device.is_cpu() ? TRITONSERVER_MEMORY_CPU : TRITONSERVER_MEMORY_GPU;
            std::int64_t id = device.is_cpu() ? 0 : device.index();
            throwIfFailed(TRITONBACKEND_OutputBuffer(output, &buffer, rows_of.nbytes(), &type, &id),
                          "allocating output '" + out->name + "'");
            copyOut(buffer, type, id, rows_of);
          }
          req->version = version;
          req->compute_start = compute_start;
          req->compute_end = compute_end;
        } catch (...) {
          TritonErrorPtr e(errorFromCurrentException(""));
          req->fail(TRITONSERVER_ErrorCode(e.get()), TRITONSERVER_ErrorMessage(e.get()));
        }
        offset += req->batch;
      }
    } catch (...) {
      TritonErrorPtr e(errorFromCurrentException(model));
      for (Request* req : group) req->fail(TRITONSERVER_ErrorCode(e.get()), TRITONSERVER_ErrorMessage(e.get()));
    }
  }

  // Output copies on a GPU may still be queued on the device's stream.
  if (!device.is_cpu()) {
    try {
      c10::impl::VirtualGuardImpl guard(device.type());
      guard.getStream(device).synchronize();
    } catch (...) {
      TritonErrorPtr e(errorFromCurrentException(model + ": synchronizing " + device.str()));
      for (Request& req : batch) req.fail(TRITONSERVER_ErrorCode(e.get()), TRITONSERVER_ErrorMessage(e.get()));
    }
  }

  // 4. Answer, report, release.
  const std::uint64_t exec_end = nowNs();
  for (Request& req : batch) {
    if (req.response != nullptr) {
      if (!req.failed()) {
        logIfFailed(TRITONBACKEND_ResponseSetStringParameter(req.response, "weights_version", req.version.c_str()),
                    model + ": setting weights_version");
      }
      logIfFailed(TRITONBACKEND_ResponseSend(req.response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, req.error.get()),
                  model + ": sending a response");
    }
    logIfFailed(TRITONBACKEND_ModelInstanceReportStatistics(instance, req.request, !req.failed(), exec_start,
                                                            req.compute_start, req.compute_end, exec_end),
                model + ": reporting statistics");
    logIfFailed(TRITONBACKEND_RequestRelease(req.request, TRITONSERVER_REQUEST_RELEASE_ALL),
                model + ": releasing a request");
  }
  for (const BatchRun& run : runs) {
    logIfFailed(TRITONBACKEND_ModelInstanceReportBatchStatistics(instance, run.size, exec_start, run.compute_start,
                                                                 run.compute_end, exec_end),
                model + ": reporting batch statistics");
  }
}

}  // namespace aotiplug::triton
