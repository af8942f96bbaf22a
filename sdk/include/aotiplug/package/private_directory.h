// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::PrivateDirectory — a temporary directory only this user can enter, removed
// with everything in it when the object is destroyed.
//
// Used to extract what a model library needs from a package (the .so, CUDA kernels, the
// extern-kernel file). Created with mkdtemp (mode 0700); files are created with
// O_CREAT|O_EXCL|O_NOFOLLOW (mode 0600), so nothing existing is overwritten or followed;
// relative names are checked (no "..", not absolute), so nothing lands outside it.
//
// A process that dies without destroying its directories (killed, crashed) leaves them
// behind. So each directory is locked (flock on the directory itself) from before it gets
// its final name until it is removed; removeStale() removes the directories of a prefix
// whose lock nobody holds — their owner is gone, whatever became of its pid — and
// removeAllLive() lets a signal handler thread remove this process's own before it dies.
//
// Ownership: owns the directory on disk and its lock. Thread safety: one object is not
// thread-safe (use from one thread, or serialize); the static functions may be called
// from any thread. Compiled into libaotiplug (sdk/src/private_directory.cpp): there is one
// set of live directories per process, whichever library created them.

#include <aotiplug/detail/export.h>

#include <cstddef>
#include <functional>
#include <string>

namespace aotiplug {

// aotiplug::PrivateDirectory
class AOTIPLUG_API PrivateDirectory {
 public:
  // Creates <base>/<prefix>XXXXXX, locked; base defaults to $TMPDIR or /tmp.
  explicit PrivateDirectory(const std::string& prefix = "aotiplug-", std::string base = {});
  ~PrivateDirectory();
  PrivateDirectory(const PrivateDirectory&) = delete;
  PrivateDirectory& operator=(const PrivateDirectory&) = delete;

  const std::string& path() const noexcept { return path_; }

  // $TMPDIR, or /tmp.
  static std::string defaultBase();

  // Removes the directories <base>/<prefix>* of this user that nobody holds locked (left by
  // a process that died without removing them); returns how many. Never throws: what
  // cannot be read or removed is left alone.
  static std::size_t removeStale(const std::string& prefix, std::string base = {}) noexcept;

  // Removes every directory of this process that is still alive, for a thread handling a
  // terminating signal just before the process dies (the objects are not destroyed).
  static void removeAllLive() noexcept;

  // Whether `relative` is a safe name inside the directory: not empty, not absolute, no
  // "." or ".." component, no empty component, no NUL or backslash.
  static bool isSafeRelativePath(const std::string& relative);

  // Writes a new file at `relative` (creating subdirectories, mode 0700); returns its path.
  std::string writeFile(const std::string& relative, const void* data, std::size_t size);

  // Creates a new file at `relative` as writeFile does and lets fill(fd, path) write it;
  // the file is closed afterwards (and removed if fill throws). Returns its path.
  std::string writeFileWith(const std::string& relative,
                            const std::function<void(int fd, const std::string& path)>& fill);

 private:
  std::string path_;
  int lock_ = -1;  // the open directory, flock'ed while it exists
};

}  // namespace aotiplug
