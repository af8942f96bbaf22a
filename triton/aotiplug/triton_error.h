// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Errors and logging at the edge between the aotiplug backend and Triton.
//
// Inside the backend, errors are aotiplug::Error exceptions (a StatusCode and a message that
// names the model, the input, the file). Nothing is thrown across the C API: every entry
// point runs its body through guarded(), which turns an exception into a TRITONSERVER_Error
// with the matching code; every Triton call that returns an error goes through
// throwIfFailed() (which takes ownership of the error and deletes it) or logIfFailed().
// Thread safety: stateless.

#include "triton_api.h"

#include <aotiplug/error.h>

#include <memory>
#include <string>

namespace aotiplug::triton {

// An owned TRITONSERVER_Error.
struct TritonErrorDeleter {
  void operator()(TRITONSERVER_Error* error) const noexcept { TRITONSERVER_ErrorDelete(error); }
};
using TritonErrorPtr = std::unique_ptr<TRITONSERVER_Error, TritonErrorDeleter>;

// Triton's code for an aotiplug StatusCode.
TRITONSERVER_Error_Code tritonCode(StatusCode code) noexcept;
// And back, for errors Triton returned.
StatusCode statusCodeOf(TRITONSERVER_Error_Code code) noexcept;

// Takes ownership of `error`; throws aotiplug::Error("<what>: <Triton's message>") when set.
void throwIfFailed(TRITONSERVER_Error* error, const std::string& what);
// Takes ownership of `error`; logs it as a warning when set. For calls whose failure must
// not stop the rest (releasing a request, reporting statistics).
void logIfFailed(TRITONSERVER_Error* error, const std::string& what) noexcept;

// A new TRITONSERVER_Error for the exception being handled (call inside a catch block).
TRITONSERVER_Error* errorFromCurrentException(const std::string& context) noexcept;

// Runs `body` (which returns nothing) and returns nullptr, or the error it threw.
template <class Body>
TRITONSERVER_Error* guarded(const std::string& context, Body&& body) noexcept {
  try {
    body();
    return nullptr;
  } catch (...) {
    return errorFromCurrentException(context);
  }
}

// Triton's log, with the backend's name in front ("aotiplug: ...").
void logMessage(TRITONSERVER_LogLevel level, const std::string& text) noexcept;
inline void logInfo(const std::string& text) noexcept { logMessage(TRITONSERVER_LOG_INFO, text); }
inline void logWarning(const std::string& text) noexcept { logMessage(TRITONSERVER_LOG_WARN, text); }
inline void logError(const std::string& text) noexcept { logMessage(TRITONSERVER_LOG_ERROR, text); }
inline void logVerbose(const std::string& text) noexcept {
  if (TRITONSERVER_LogIsEnabled(TRITONSERVER_LOG_VERBOSE)) logMessage(TRITONSERVER_LOG_VERBOSE, text);
}

}  // namespace aotiplug::triton
