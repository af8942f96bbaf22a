// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::runChild — runs a program to completion or to a deadline, and tells how it
// ended.
//
// The host runs untrusted plugin code only in child processes first (the plugin scanner,
// `aotiplug plugin check`): whatever the code does — crash, exit, hang, spin — the child
// takes it, and this function reports it in words. The child gets its own process group
// (a timeout kills everything it started), starts with no signals blocked, reads nothing
// (standard input is /dev/null), and its standard output is delivered line by line while
// it runs (a deadline can be moved, e.g. per stage). Standard error is kept (the last
// 16 KiB) for messages.
//
// Thread safety: reentrant; each call is independent. Ownership: results are plain values.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::ChildResult
struct ChildResult {
  bool started = false;
  std::string start_error;  // why it could not be started
  bool exited = false;      // ended by exit(): exit_code is valid
  int exit_code = 0;
  bool signaled = false;    // killed by a signal (not by us)
  int signal = 0;
  bool timed_out = false;   // killed by us at the deadline
  double limit_seconds = 0; // the deadline it missed (from its start, or from the line
                            // that last moved it)
  double seconds = 0;       // how long it ran
  std::vector<std::string> lines;  // its standard output, line by line
  std::string errors;              // the end of its standard error

  bool succeeded() const noexcept { return exited && exit_code == 0; }
  // "exited with status 3", "died of signal 11 (Segmentation fault)", "timed out after 10 s"
  // (the deadline it missed).
  std::string describe() const;
};

// How long a child that maps LibTorch and the SDK (the plugin scanner, the plugin probe)
// may take to start, before its first line: seconds on a cold page cache or in a sanitized
// build. Per-stage deadlines apply from its first line on.
inline constexpr std::chrono::seconds kChildStartupTimeout{60};

// What runChild does with each line of output: return a new deadline (from now) to keep
// going with it, or zero to keep the current one.
using ChildLineHandler = std::function<std::chrono::milliseconds(const std::string& line)>;

// aotiplug::ChildOptions — the rest of what a caller may want of the child.
struct ChildOptions {
  // NAME=value entries added to (or replacing those of) this process's environment.
  std::vector<std::string> environment;
  // Called about once a second while the child runs, with the seconds since it started
  // (e.g. for a progress line).
  std::function<void(double seconds)> on_tick;
  // Its own process group (a timeout kills all it started). Off, it stays in ours, so a
  // Ctrl-C at the terminal reaches it too (for work the user watches, not plugin code).
  bool own_process_group = true;
};

// Runs argv[0] (an absolute path) with argv; kills it (and its process group) when it runs
// longer than `timeout` since it started or since the last line that moved the deadline.
ChildResult runChild(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                     const ChildLineHandler& on_line = {}, const ChildOptions& options = {});

}  // namespace aotiplug
