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
// Loading a directory of plugins checks the same directories (the plugin directory and
// those above it; the library directories RUNPATHs name, and theirs) once per plugin: a
// TrustMemo given to the checks of one such batch keeps what they found, so each is looked
// at once per batch. Nothing is remembered beyond the memo's life.
//
// Thread safety: reentrant; one TrustMemo is for one thread at a time.

#include <sys/stat.h>

#include <map>
#include <string>
#include <utility>

namespace aotiplug {

// aotiplug::TrustCheck — the outcome of a check: ok, or the offending path and why.
struct TrustCheck {
  std::string reason;  // empty when trusted
  std::string path;    // the path that failed
  bool ok() const noexcept { return reason.empty(); }
};

// aotiplug::TrustMemo — what the checks of one batch found (see above).
class TrustMemo {
 public:
  // lstat of `path`: its result (0 or an errno) and what it found.
  const std::pair<int, struct stat>& lstat(const std::string& path);
  // `path` resolved (symlinks followed) when it is a regular file; empty when it is not.
  const std::string& resolvedFile(const std::string& path);
  // The remembered verdict of checkTrustedPath(path), if any.
  const std::string* verdict(const std::string& path) const;
  void remember(const std::string& path, std::string reason) { verdicts_[path] = std::move(reason); }

 private:
  std::map<std::string, std::pair<int, struct stat>> stats_;
  std::map<std::string, std::string> verdicts_;
  std::map<std::string, std::string> resolved_;
};

// A directory: it and everything above it. `what` names the role in messages
// ("plugin directory").
TrustCheck checkTrustedDirectory(const std::string& directory, const char* what, TrustMemo* memo = nullptr);

// A file open at `fd` whose resolved path is `path`: the descriptor's owner and mode,
// then its directory and everything above it.
TrustCheck checkTrustedFile(int fd, const std::string& path, const char* what, TrustMemo* memo = nullptr);

// The same for a path (file or directory, symlinks resolved first); the reason, or empty.
std::string checkTrustedPath(const std::string& path, const char* what, TrustMemo* memo = nullptr);

}  // namespace aotiplug
