// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::checkTrustedPath — may code be loaded from this file or directory?
//
// A plugin runs with the host's privileges, so the loader only takes code that nobody but
// root or the host's own user could have put there:
//  - the file itself (checked on the open descriptor that is then read and loaded);
//  - the directory holding it, the plugin directory, and every directory above them up to
//    "/" — whoever can write to one of them can swap what lies below. Each must be owned by
//    root or the current user and not writable by group or others; only above the plugin
//    directory is a root-owned world-writable directory with the sticky bit (like /tmp)
//    accepted, since the sticky bit stops others from renaming what is in it;
//  - the libraries the plugin takes from its own RUNPATH/RPATH directories (not those the
//    system's trusted directories supply), checked the same way.
// A check names the path that failed and why.
//
// Thread safety: reentrant.

#include <string>

namespace aotiplug {

// aotiplug::TrustCheck — the outcome of a check: ok, or the offending path and why.
struct TrustCheck {
  std::string reason;  // empty when trusted
  std::string path;    // the path that failed
  bool ok() const noexcept { return reason.empty(); }
};

// A directory: it and everything above it. `what` names the role in messages
// ("plugin directory").
TrustCheck checkTrustedDirectory(const std::string& directory, const char* what);

// A file open at `fd` whose resolved path is `path`: the descriptor's owner and mode,
// then its directory and everything above it.
TrustCheck checkTrustedFile(int fd, const std::string& path, const char* what);

// The same for a path (file or directory, symlinks resolved first); the reason, or empty.
std::string checkTrustedPath(const std::string& path, const char* what);

}  // namespace aotiplug
