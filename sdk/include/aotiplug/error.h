// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::Error — the exception the SDK and the host throw.
//
// Inside C++ code (the host, the SDK's own headers, a plugin's internals) errors are
// exceptions whose message names the thing at fault (the plugin file, the device, the
// input index, the constant) and says what was expected. At the plugin boundary they are
// turned into aotiplug::Status values (status.h) and back; throwIfError (status.h) turns a
// Status into an Error.
//
// Error's type_info and vtable live in libaotiplug, so every module catches the same type.
//
// Ownership: an Error owns a copy of its message; nothing in it points into the module that
// threw it, so it may outlive an unloaded plugin.
// Thread safety: an immutable value once thrown; what() may be read from any thread.

#include <aotiplug/detail/export.h>
#include <aotiplug/status_code.h>

#include <stdexcept>
#include <string>

namespace aotiplug {

// aotiplug::Error
class AOTIPLUG_API Error : public std::runtime_error {
 public:
  Error(StatusCode code, const std::string& message);
  ~Error() override;

  StatusCode code() const noexcept { return code_; }

 private:
  StatusCode code_;
};

}  // namespace aotiplug
