// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::pluginAbiMinor — the SDK ABI minor each plugin library was built for.
//
// A plugin of an older minor has a shorter runner table (plugin/runner_abi.h); calling a
// method it lacks would jump through whatever follows its vtable. So the host's loader
// records the minor the plugin's manifest states when it accepts the plugin (before
// dlopen, after checking it is not newer than the host's), createRunner() hands it to the
// RunnerHandle, and the handle calls only what that minor has.
//
// Ownership: the table lives in libaotiplug, one per process. Thread safety: both
// functions may be called concurrently.

#include <aotiplug/detail/export.h>

#include <cstdint>
#include <string>

namespace aotiplug {

// Records that the plugin library at `library` (an absolute path, as the registry's Origin
// holds it) was built for SDK ABI minor `abi_minor`. A later record for the same path
// (the library reloaded after a change) replaces it.
AOTIPLUG_API void recordPluginAbiMinor(const std::string& library, std::uint32_t abi_minor);

// The minor recorded for `library`, never more than this libaotiplug's own; for the host's
// own registrations (an empty library) this libaotiplug's minor; for a library nobody
// recorded (a host that dlopened a plugin itself), 0: the oldest, so nothing newer is ever
// called on its runners.
AOTIPLUG_API std::uint32_t pluginAbiMinor(const std::string& library);

}  // namespace aotiplug
