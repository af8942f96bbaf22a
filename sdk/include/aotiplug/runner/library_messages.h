// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::LibraryMessages — what a model library prints while it is being called.
//
// A model library compiled by torch <= 2.11 reports a failure by printing to std::cerr
// ("Error: <what>", and for a failed LibTorch call "Exception in aoti_torch: <what>" with
// a C++ stack trace of a few dozen frames) and returning 1; the message itself is lost to
// its caller. While a LibraryMessages object lives, whatever the calling thread writes to
// std::cerr is kept in it instead of reaching the terminal: the binding (model_library.h)
// puts the library's reason into its aotiplug::Error, once, without the stack trace, and
// passes anything printed by a call that succeeded (warnings) on to standard error.
// Other threads' output is not affected.
//
// How: libaotiplug replaces std::cerr's stream buffer, once, when it is loaded, with one
// that forwards every write to the original buffer unless the writing thread is
// capturing. A host that later replaces std::cerr's buffer itself (or calls
// std::ios::sync_with_stdio(false), which does) turns the capture off: the library's text
// then reaches the terminal as before, and errors say it was printed there.
//
// Ownership: owns the captured text. Thread safety: one object per thread at a time (a
// nested one captures for the outer one's duration, then hands back); objects on
// different threads are independent.

#include <aotiplug/detail/export.h>

#include <string>

namespace aotiplug {

// aotiplug::LibraryMessages
class AOTIPLUG_API LibraryMessages {
 public:
  LibraryMessages() noexcept;
  // Passes whatever was captured and not taken on to standard error.
  ~LibraryMessages();
  LibraryMessages(const LibraryMessages&) = delete;
  LibraryMessages& operator=(const LibraryMessages&) = delete;

  // Whether std::cerr output of this thread is being captured (false if the host replaced
  // std::cerr's buffer after libaotiplug was loaded).
  bool capturing() const noexcept;

  // The text captured so far, cleaned for one line of an error message: the "Error: "
  // prefixes and C++ stack traces removed, lines joined with "; ". Clears what it read.
  std::string takeReason();

 private:
  std::string text_;
  std::string* outer_;
};

}  // namespace aotiplug
