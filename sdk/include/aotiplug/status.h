// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::Status — an error as a value.
//
// Errors cross the plugin boundary only as Status values: every call from the host into a
// plugin goes through a noexcept trampoline that catches whatever the plugin threw and
// returns a Status holding a copy of its message. Nothing that lives in the plugin (an
// exception object, its type_info, its vtable) outlives the call, so a plugin can be
// unloaded while its errors are still being reported.
//
// Thread safety: a Status is a plain value; distinct objects may be used from any thread.

#include <cstdint>
#include <exception>
#include <string>
#include <utility>

namespace aotiplug {

// aotiplug::StatusCode — what kind of failure, so hosts can react without parsing text.
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

// aotiplug::Status
class Status {
 public:
  Status() noexcept = default;
  Status(StatusCode code, std::string message) noexcept
      : code_(code), message_(std::move(message)) {}

  static Status ok() noexcept { return Status(); }

  // Converts the exception being handled into a Status. Call only inside a catch block.
  // aotiplug::Error keeps its code; any other exception becomes kInternal with its what().
  // Never throws: if even copying the message fails, the message is left empty.
  static Status fromCurrentException() noexcept;

  bool isOk() const noexcept { return code_ == StatusCode::kOk; }
  explicit operator bool() const noexcept { return isOk(); }
  StatusCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

}  // namespace aotiplug

#include <aotiplug/error.h>

namespace aotiplug {

inline Status Status::fromCurrentException() noexcept {
  StatusCode code = StatusCode::kInternal;
  try {
    try {
      throw;
    } catch (const Error& e) {
      code = e.code();
      return Status(code, e.what());
    } catch (const std::exception& e) {
      return Status(code, e.what());
    } catch (...) {
      return Status(code, "an exception that is not a std::exception");
    }
  } catch (...) {
    // Copying the message failed (out of memory): keep the code at least.
    return Status(code, std::string());
  }
}

}  // namespace aotiplug
