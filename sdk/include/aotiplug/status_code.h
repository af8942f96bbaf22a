// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::StatusCode — what kind of failure, so hosts can react without parsing text.
// Shared by aotiplug::Error (error.h), the exception, and aotiplug::Status (status.h), the
// value that crosses the plugin boundary. Part of the ABI: codes are never renumbered.
// Thread safety: plain values and a pure function.

#include <cstdint>

namespace aotiplug {

enum class StatusCode : std::int32_t {
  kOk = 0,
  kInvalidArgument = 1,    // the caller passed something malformed (an input, a weight)
  kNotFound = 2,           // a key, file, model or constant that does not exist
  kAlreadyExists = 3,      // a duplicate registration from the same plugin
  kIncompatible = 4,       // ABI / LibTorch / device mismatch
  kFailedPrecondition = 5, // the call is valid but not in this state
  kModelError = 6,         // the AOTInductor model library reported a failure
  kPluginError = 7,        // a plugin misbehaved (threw, returned nothing, broke a rule)
  kUnavailable = 8,        // a resource is missing on this machine (e.g. no CUDA device)
  kInternal = 9,           // a bug, or an exception of unknown kind
};

// Short lowercase name of a code ("invalid argument"), for messages and JSON.
inline const char* statusCodeName(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kAlreadyExists: return "already exists";
    case StatusCode::kIncompatible: return "incompatible";
    case StatusCode::kFailedPrecondition: return "failed precondition";
    case StatusCode::kModelError: return "model error";
    case StatusCode::kPluginError: return "plugin error";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kInternal: return "internal";
  }
  return "unknown";
}

}  // namespace aotiplug
