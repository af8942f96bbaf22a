// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::detail::opLibraryLoader — how an executor loads the op libraries its config
// names (ExecutorConfig::opLibraries).
//
// Loading code into the process takes the plugin loader's trust checks, which live in the
// host library (libaotiplug_host: path trust, the RUNPATH libraries through libelf, the ELF
// check). libaotiplug has none of them, so it holds only this slot: libaotiplug_host fills
// it with aotiplug::loadOpLibrary (aotiplug/host/op_library.h) while it is being loaded,
// and an executor asked for op libraries while the slot is empty refuses, saying what to
// link. A host with its own loader may install that instead.
//
// Thread safety: the slot is atomic; set it before executors are made.

#include <aotiplug/detail/export.h>

#include <string>

namespace aotiplug::detail {

// Loads the op library at `path` (with the trust checks when require_trusted_paths), or
// throws aotiplug::Error naming it. Loading the same library twice does nothing.
using OpLibraryLoader = void (*)(const std::string& path, bool require_trusted_paths);

AOTIPLUG_API void setOpLibraryLoader(OpLibraryLoader loader) noexcept;
// The loader installed, or null.
AOTIPLUG_API OpLibraryLoader opLibraryLoader() noexcept;

}  // namespace aotiplug::detail
