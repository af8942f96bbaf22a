// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::loadOpLibrary — loads a shared library that registers operators (TORCH_LIBRARY),
// so models whose extern kernels call them can be opened (runner/extern_kernels.h).
//
// An op library runs with the host's privileges, like a plugin, so it passes the plugin
// loader's checks first (path_trust.h): the file, its directory and every directory above
// it, and the libraries it takes from its own RUNPATH; then the ELF check (a truncated file
// is refused, not mapped). It is loaded with RTLD_NOW | RTLD_GLOBAL and never unloaded: the
// dispatcher keeps its registrations, and models hold its kernels, for the life of the
// process. Loading the same file again does nothing.
//
// Thread safety: may be called from any thread; loads are serialized.

#include <string>
#include <vector>

namespace aotiplug {

struct OpLibraryOptions {
  // As LoaderOptions::require_trusted_paths: refuse files others could have written.
  bool require_trusted_paths = true;
};

// Loads the op library at `path`. Throws Error(kNotFound) for a missing file,
// Error(kFailedPrecondition) naming the path that failed the trust check and why, and
// Error(kInvalidArgument) for a file dlopen refuses, with its reason — each naming the file.
void loadOpLibrary(const std::string& path, const OpLibraryOptions& options = {});

// The op libraries loaded so far, by resolved path, in load order.
std::vector<std::string> loadedOpLibraries();

}  // namespace aotiplug
