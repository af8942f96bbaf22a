// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::ExecutorConfig — how an AOTIDelegateExecutor runs its model.
// Ownership: a plain value; copy freely. The executor keeps its own copy, `log` included.
// Thread safety: distinct objects may be used from any thread. The executor calls `log`
// on the thread of the call that has something to report (its constructor, processWeights,
// initWeights); where those calls may overlap, `log` must be thread-safe.

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::ExecutorConfig
struct ExecutorConfig {
  // How many threads may run the model at once: the number of model instances in the
  // container (num_models). nativert's default.
  std::size_t maxNumConcurrentThreads = 8;
  // Run on this device ("cpu", "cuda:1") instead of the one the package was compiled for.
  std::string device;
  // Use the model library's single-threaded run (for CUDA graphs); needs
  // maxNumConcurrentThreads == 1.
  bool runSingleThreaded = false;
  // Where the model files are extracted (a private subdirectory is created there and
  // removed with the executor). Empty: $TMPDIR or /tmp. Must not be mounted noexec.
  std::string extractionDir;
  // Check inputs before running against the specs the package records (aotiplug's
  // packager), or else those derived from the model's generated wrapper source. Off, the
  // model library gets whatever it is given: its compiled code does not check.
  bool validateInputs = true;
  // Copy an input whose strides are not the ones the model was compiled for into that
  // layout (where it is fully known). Off, such an input is refused instead, naming it.
  bool convertInputLayouts = true;
  // Hand new weights to the model library in place, without a copy, where it supports
  // user-managed constant buffers.
  bool useUserManagedWeights = true;
  // Op libraries to load before the model is opened: shared libraries registering the
  // operators its extern kernels call (TORCH_LIBRARY; runner/extern_kernels.h). Each goes
  // through the plugin loader's trust checks (requireTrustedOpLibraries) and stays loaded
  // for the life of the process; one already loaded is not loaded again. Loading is done by
  // the host library (aotiplug/host/op_library.h), which a host that loads plugins links:
  // without it, naming op libraries here is an error saying so.
  std::vector<std::string> opLibraries;
  bool requireTrustedOpLibraries = true;
  // Where one-time notices go (e.g. weights that match no model constant).
  // Empty: standard error.
  std::function<void(const std::string&)> log;
};

}  // namespace aotiplug
