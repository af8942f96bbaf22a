// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::RegistrationLog — errors raised while plugins register themselves.
//
// A plugin registers its runners from static initializers, which run inside dlopen, where
// an exception would abort the host or leave the loader lock held. So the SDK's
// registration objects catch everything and record it here instead, keyed by the plugin
// library; the host's loader reads the entries for a library right after loading it and
// rejects the plugin with that text.
//
// Ownership: the process-wide log lives in libaotiplug and is never destroyed.
// Thread safety: all member functions may be called concurrently; record() never throws.

#include <aotiplug/detail/export.h>
#include <aotiplug/registry/typed_registry.h>

#include <mutex>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::RegistrationLog
class AOTIPLUG_API RegistrationLog {
 public:
  struct Entry {
    Origin origin;
    std::string message;
  };

  // Records an error for origin.library. Never throws (drops the entry if out of memory).
  void record(const Origin& origin, const std::string& message) noexcept;

  // Removes and returns the entries recorded for a library.
  std::vector<Entry> take(const std::string& library);

  // Returns the entries recorded for a library, leaving them in place.
  std::vector<Entry> peek(const std::string& library) const;

 private:
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
};

// The process-wide log.
AOTIPLUG_API RegistrationLog& registrationLog() noexcept;

}  // namespace aotiplug
