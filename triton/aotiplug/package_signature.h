// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::triton::PackageSignature — what the backend knows of a package's inputs and
// outputs: the facts a Triton model configuration is completed from and checked against.
//
// Inputs come from the specs the executor checks requests against (aotiplug's packager
// records them; for a package made by plain aoti_compile_and_package they are read from
// the model's generated wrapper source). Outputs come from the packager's specs where the
// package has them. Whether the first dimension is a batch — every input's first dimension
// dynamic, and every output's first dimension following it — and, for packages that record
// no outputs, the outputs' dtypes and dims, are learned by running the model at load on
// inputs made from the input specs (zeros; a few runs of different sizes).
//
// Thread safety: plain values; probeSignature uses the executor it is given (any thread).

#include <aotiplug/executor/tensor_spec.h>

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace aotiplug {
class AOTIDelegateExecutor;
}  // namespace aotiplug

namespace aotiplug::triton {

// aotiplug::triton::TensorSignature — one input or output.
struct TensorSignature {
  std::string name;  // the name it is served under
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::vector<std::int64_t> dims;  // the full shape; -1 for a dynamic dimension
  std::vector<std::int64_t> min;   // per dimension (equal to dims for static ones)
  std::vector<std::int64_t> max;   // per dimension; -1: unbounded
  std::string package_name = {};   // the package's own name where the config renames it, else empty
};

// aotiplug::triton::PackageSignature
struct PackageSignature {
  std::string package;      // the package file, for messages
  std::string device_type;  // what the model was compiled for: "cpu", "cuda"
  std::vector<TensorSignature> inputs;
  std::vector<TensorSignature> outputs;
  // Input dimensions that must have the size of another's (the package's symbols; indices
  // into `inputs`): the compiled code reads it from that one and trusts this one.
  std::vector<SharedSize> shared_sizes;
  // Dimension 0 of every input and output is the batch: requests can be concatenated.
  bool batchable = false;
  std::int64_t batch_min = 1;   // the package's range for the batch (over all inputs)
  std::int64_t batch_max = -1;  // -1: unbounded
  std::string not_batchable;    // why not, when !batchable
  // Why the outputs' dtypes and dims are not known (the package records none and the probe
  // run failed); empty when they are. Output names are always known.
  std::string outputs_unknown;
};

// The signature of the model `executor` runs (see above). `log` receives notices (a probe
// run that failed). `rename`, when given, is called once the package's inputs and outputs
// are read, before anything is said about them: it may rename them (the names the model
// is served under), and may throw. Never throws for a model that fails the probe: the
// signature says so.
PackageSignature probeSignature(AOTIDelegateExecutor& executor,
                                const std::function<void(const std::string&)>& log,
                                const std::function<void(PackageSignature&)>& rename = {});

}  // namespace aotiplug::triton
