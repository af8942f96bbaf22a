// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::TensorSpec — what a model expects of one input (or produces as one output).
//
// aotiplug's packager (python/aotiplug/package.py) records specs in the package's AOTI
// metadata ("aotiplug.inputs", "aotiplug.outputs"): name, dtype, sizes (-1 marks a dynamic
// dimension, with its [min, max] range), device type, memory layout and strides. For a
// package made without it, the executor derives the same from the model's generated
// wrapper source (wrapper_source.h). The executor checks every input against them before
// the model library sees it, because the compiled code trusts its inputs: a wrong dtype or
// size is read as garbage, not refused.
//
// Thread safety: plain values and pure functions. The functions are compiled into
// libaotiplug (sdk/src/tensor_spec.cpp); only the TensorSpec type is needed by plugins.

#include <aotiplug/detail/export.h>
#include <aotiplug/error.h>
#include <aotiplug/status.h>

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace at {
class Tensor;
}  // namespace at

namespace aotiplug {

// aotiplug::TensorSpec
struct TensorSpec {
  enum class Layout { kContiguous, kChannelsLast, kStrided };

  std::string name;
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::vector<std::int64_t> sizes;  // -1: dynamic
  std::vector<std::int64_t> min;    // per dimension; equal to sizes for static ones
  std::vector<std::int64_t> max;    // -1: unbounded
  std::string device_type = "cpu";
  c10::DeviceType device = c10::DeviceType::CPU;  // device_type, parsed
  Layout layout = Layout::kContiguous;
  // The strides the compiled code was specialized for, per dimension; -1 where it reads
  // the stride from the tensor or computes it from dynamic sizes. Empty: not recorded
  // (then the layout alone says what is expected). Checked for kStrided.
  std::vector<std::int64_t> strides;
  // Per dimension, the symbolic size a dynamic dimension was compiled with ("s27"), empty
  // for static ones; empty altogether when not recorded. Dimensions with the same symbol
  // must be given the same size: the compiled code reads the symbol from the first of them
  // and trusts the others (see sharedSizes). Recorded by aotiplug's packager; a package
  // made by plain aoti_compile_and_package does not say which dimensions share a size.
  std::vector<std::string> symbols;

  const char* layoutName() const noexcept {
    switch (layout) {
      case Layout::kContiguous: return "contiguous";
      case Layout::kChannelsLast: return "channels_last";
      case Layout::kStrided: break;
    }
    return "strided";
  }

  // "float32 [-1 (1..64), 16]"
  std::string describe() const {
    std::ostringstream os;
    os << c10::toString(dtype) << " [";
    for (std::size_t d = 0; d < sizes.size(); ++d) {
      if (d > 0) os << ", ";
      if (sizes[d] >= 0) {
        os << sizes[d];
      } else {
        os << "-1 (" << (d < min.size() ? min[d] : 0) << "..";
        if (d < max.size() && max[d] >= 0) os << max[d];
        os << ")";
      }
    }
    os << "]";
    return os.str();
  }
};

// The ScalarType named like torch's dtype names ("float32", "bfloat16", "int64"...).
AOTIPLUG_API std::optional<c10::ScalarType> scalarTypeFromName(const std::string& name);

// Parses a JSON list of specs; throws Error(kInvalidArgument) naming `what` when malformed.
AOTIPLUG_API std::vector<TensorSpec> parseTensorSpecs(const std::string& json, const std::string& what);

// aotiplug::SharedSize — dimension `dim` of input `input` has the size the compiled code
// read from dimension `bound_dim` of input `bound_input` (the first with that symbol).
struct SharedSize {
  std::size_t input = 0, dim = 0;
  std::size_t bound_input = 0, bound_dim = 0;
  std::string symbol;
};

// The dimensions of `specs` that must agree with an earlier one (from their symbols).
AOTIPLUG_API std::vector<SharedSize> sharedSizes(const std::vector<TensorSpec>& specs);

// Throws Error(kInvalidArgument) naming both inputs, both dimensions and their sizes when
// `inputs` (already checked one by one against `specs`) break one of `shared`.
AOTIPLUG_API void checkSharedSizes(const std::vector<at::Tensor>& inputs, const std::vector<TensorSpec>& specs,
                                   const std::vector<SharedSize>& shared, const std::string& what);

// Whether `t` matches `spec` (dtype, device, rank, sizes and ranges); allocates nothing.
AOTIPLUG_API bool tensorMatchesSpec(const at::Tensor& t, const TensorSpec& spec) noexcept;

// Whether `t` is laid out as the compiled code expects (see checkTensorAgainstSpec). For
// a strided spec every recorded stride must match (a dimension of size 1 is never read
// with its stride, so any will do there); strides the code does not fix are computed by
// it from the sizes, so the tensor must be dense, without gaps or overlaps, for the code
// to stay inside it.
AOTIPLUG_API bool tensorHasSpecLayout(const at::Tensor& t, const TensorSpec& spec);

// Whether every stride of a strided spec is fixed, so that a tensor can be copied into it.
AOTIPLUG_API bool specStridesFixed(const TensorSpec& spec);

// "[768, 1, 48, 3]" with "?" for strides the code does not fix.
AOTIPLUG_API std::string describeStrides(const std::vector<std::int64_t>& strides);

// The error for a tensor whose layout is not the one the code was compiled for.
AOTIPLUG_API Error tensorLayoutMismatch(const at::Tensor& t, const TensorSpec& spec, std::size_t index,
                                  const std::string& what, const std::string& why);

// The error for a tensor that does not match its spec (index and name in the message).
AOTIPLUG_API Error tensorSpecMismatch(const at::Tensor& t, const TensorSpec& spec, std::size_t index,
                                const std::string& what);

// Checks `t` against `spec` (index and name in messages) and returns it in the layout the
// compiled code expects. With convert_layout, a tensor laid out otherwise is copied into
// that layout (documented in docs/host-integration.md) where the layout is fully known;
// a strided layout with strides the code computes itself cannot be produced, and is
// refused. Without convert_layout every layout mismatch is refused. Everything else about
// the tensor must already match.
AOTIPLUG_API at::Tensor checkTensorAgainstSpec(const at::Tensor& t, const TensorSpec& spec,
                                         std::size_t index, const std::string& what,
                                         bool convert_layout = true);

}  // namespace aotiplug
