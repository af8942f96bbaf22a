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

#include <aotiplug/detail/export.h>
#include <aotiplug/error.h>
#include <aotiplug/status_code.h>

#include <exception>
#include <string>
#include <utility>

namespace aotiplug {

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

// Throws Error(status.code(), context + ": " + status.message()) unless status is ok.
// An empty context leaves the message as it is.
AOTIPLUG_API void throwIfError(const Status& status, const std::string& context = {});

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
