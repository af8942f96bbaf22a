// SPDX-License-Identifier: BSD-3-Clause
#include "triton_error.h"

#include <c10/util/Exception.h>

#include <exception>
#include <new>

namespace aotiplug::triton {

TRITONSERVER_Error_Code tritonCode(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::kInvalidArgument: return TRITONSERVER_ERROR_INVALID_ARG;
    case StatusCode::kNotFound: return TRITONSERVER_ERROR_NOT_FOUND;
    case StatusCode::kAlreadyExists: return TRITONSERVER_ERROR_ALREADY_EXISTS;
    case StatusCode::kIncompatible: return TRITONSERVER_ERROR_UNSUPPORTED;
    case StatusCode::kUnavailable: return TRITONSERVER_ERROR_UNAVAILABLE;
    case StatusCode::kFailedPrecondition: return TRITONSERVER_ERROR_UNAVAILABLE;
    case StatusCode::kOk:
    case StatusCode::kModelError:
    case StatusCode::kPluginError:
    case StatusCode::kInternal: break;
  }
  return TRITONSERVER_ERROR_INTERNAL;
}

StatusCode statusCodeOf(TRITONSERVER_Error_Code code) noexcept {
  switch (code) {
    case TRITONSERVER_ERROR_INVALID_ARG: return StatusCode::kInvalidArgument;
    case TRITONSERVER_ERROR_NOT_FOUND: return StatusCode::kNotFound;
    case TRITONSERVER_ERROR_ALREADY_EXISTS: return StatusCode::kAlreadyExists;
    case TRITONSERVER_ERROR_UNSUPPORTED: return StatusCode::kIncompatible;
    case TRITONSERVER_ERROR_UNAVAILABLE: return StatusCode::kUnavailable;
    default: break;
  }
  return StatusCode::kInternal;
}

void throwIfFailed(TRITONSERVER_Error* error, const std::string& what) {
  if (error == nullptr) return;
  TritonErrorPtr owned(error);
  throw Error(statusCodeOf(TRITONSERVER_ErrorCode(error)), what + ": " + TRITONSERVER_ErrorMessage(error));
}

void logIfFailed(TRITONSERVER_Error* error, const std::string& what) noexcept {
  if (error == nullptr) return;
  TritonErrorPtr owned(error);
  try {
    logWarning(what + ": " + TRITONSERVER_ErrorMessage(error));
  } catch (...) {  // out of memory while logging: nothing more to do
  }
}

TRITONSERVER_Error* errorFromCurrentException(const std::string& context) noexcept {
  try {
    const std::string prefix = context.empty() ? std::string() : context + ": ";
    try {
      throw;
    } catch (const Error& e) {
      return TRITONSERVER_ErrorNew(tritonCode(e.code()), (prefix + e.what()).c_str());
    } catch (const c10::Error& e) {
      return TRITONSERVER_ErrorNew(TRITONSERVER_ERROR_INTERNAL, (prefix + e.what_without_backtrace()).c_str());
    } catch (const std::bad_alloc&) {
      return TRITONSERVER_ErrorNew(TRITONSERVER_ERROR_UNAVAILABLE, (prefix + "out of memory").c_str());
    } catch (const std::exception& e) {
      return TRITONSERVER_ErrorNew(TRITONSERVER_ERROR_INTERNAL, (prefix + e.what()).c_str());
    }
  } catch (...) {
  }
  return TRITONSERVER_ErrorNew(TRITONSERVER_ERROR_INTERNAL, "aotiplug backend: an error of unknown kind");
}

void logMessage(TRITONSERVER_LogLevel level, const std::string& text) noexcept {
  try {
    const std::string line = "aotiplug: " + text;
    TRITONSERVER_Error* error = TRITONSERVER_LogMessage(level, __FILE__, __LINE__, line.c_str());
    if (error != nullptr) TRITONSERVER_ErrorDelete(error);
  } catch (...) {
  }
}

}  // namespace aotiplug::triton
