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
// from any thread.

#include <aotiplug/error.h>
#include <aotiplug/status.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::PrivateDirectory
class PrivateDirectory {
 public:
  // Creates <base>/<prefix>XXXXXX, locked; base defaults to $TMPDIR or /tmp.
  explicit PrivateDirectory(const std::string& prefix = "aotiplug-", std::string base = {}) {
    if (base.empty()) base = defaultBase();
    // Made under a hidden name, locked, then given its name: removeStale() never sees one
    // of these unlocked.
    std::string pattern = base + "/." + prefix + "XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw Error(StatusCode::kUnavailable, "cannot create a private directory in " + base +
                                                ": " + std::strerror(errno));
    }
    const std::string final_path = base + "/" + prefix + pattern.substr(base.size() + 2 + prefix.size());
    lock_ = ::open(pattern.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lock_ < 0 || ::flock(lock_, LOCK_EX | LOCK_NB) != 0 ||
        ::renameat2(AT_FDCWD, pattern.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) != 0) {
      const int err = errno;
      if (lock_ >= 0) ::close(lock_);
      ::rmdir(pattern.c_str());
      throw Error(StatusCode::kUnavailable, "cannot create a private directory in " + base + ": " +
                                                std::strerror(err));
    }
    path_ = final_path;
    std::lock_guard<std::mutex> guard(live().mutex);
    live().paths.insert(path_);
  }
  ~PrivateDirectory() {
    {
      std::lock_guard<std::mutex> guard(live().mutex);
      live().paths.erase(path_);
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    ::close(lock_);  // unlocked once removed
  }
  PrivateDirectory(const PrivateDirectory&) = delete;
  PrivateDirectory& operator=(const PrivateDirectory&) = delete;

  const std::string& path() const noexcept { return path_; }

  // $TMPDIR, or /tmp.
  static std::string defaultBase() {
    const char* tmp = std::getenv("TMPDIR");
    return (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  }

  // Removes the directories <base>/<prefix>* of this user that nobody holds locked (left by
  // a process that died without removing them); returns how many. Never throws: what
  // cannot be read or removed is left alone.
  static std::size_t removeStale(const std::string& prefix, std::string base = {}) noexcept {
    std::size_t removed = 0;
    try {
      if (base.empty()) base = defaultBase();
      DIR* dir = ::opendir(base.c_str());
      if (dir == nullptr) return 0;
      std::vector<std::string> candidates;
      while (const dirent* e = ::readdir(dir)) {
        const std::string name = e->d_name;
        if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0) candidates.push_back(name);
      }
      ::closedir(dir);
      for (const std::string& name : candidates) {
        const std::string path = base + "/" + name;
        const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat st {};
        const bool ours = ::fstat(fd, &st) == 0 && st.st_uid == ::geteuid();
        if (ours && ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
          std::error_code ec;
          std::filesystem::remove_all(path, ec);
          removed += ec ? 0 : 1;
        }
        ::close(fd);
      }
    } catch (...) {
      // Out of memory while listing: nothing more is removed.
    }
    return removed;
  }

  // Removes every directory of this process that is still alive, for a thread handling a
  // terminating signal just before the process dies (the objects are not destroyed).
  static void removeAllLive() noexcept {
    try {
      std::lock_guard<std::mutex> guard(live().mutex);
      for (const std::string& path : live().paths) {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
      }
    } catch (...) {
    }
  }

  // Whether `relative` is a safe name inside the directory: not empty, not absolute, no
  // "." or ".." component, no empty component, no NUL or backslash.
  static bool isSafeRelativePath(const std::string& relative) {
    if (relative.empty() || relative.front() == '/' || relative.back() == '/') return false;
    if (relative.find('\0') != std::string::npos || relative.find('\\') != std::string::npos) {
      return false;
    }
    std::size_t start = 0;
    while (start <= relative.size()) {
      const std::size_t end = relative.find('/', start);
      const std::string part =
          relative.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (part.empty() || part == "." || part == "..") return false;
      if (end == std::string::npos) break;
      start = end + 1;
    }
    return true;
  }

  // Writes a new file at `relative` (creating subdirectories, mode 0700); returns its path.
  std::string writeFile(const std::string& relative, const void* data, std::size_t size) {
    return writeFileWith(relative, [&](int fd, const std::string& target) {
      const char* p = static_cast<const char*>(data);
      std::size_t left = size;
      while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0) {
          if (errno == EINTR) continue;
          throw Error(StatusCode::kUnavailable, "cannot write " + target + ": " + std::strerror(errno));
        }
        p += n;
        left -= static_cast<std::size_t>(n);
      }
    });
  }

  // Creates a new file at `relative` as writeFile does and lets fill(fd, path) write it;
  // the file is closed afterwards (and removed if fill throws). Returns its path.
  template <class Fill>
  std::string writeFileWith(const std::string& relative, Fill&& fill) {
    if (!isSafeRelativePath(relative)) {
      throw Error(StatusCode::kInvalidArgument,
                  "refusing to write '" + relative + "': not a plain relative path");
    }
    const std::filesystem::path target = std::filesystem::path(path_) / relative;
    std::error_code ec;
    const std::filesystem::path parent = target.parent_path();
    std::filesystem::create_directories(parent, ec);
    if (ec) throw Error(StatusCode::kUnavailable, "cannot create " + parent.string() + ": " + ec.message());
    ::chmod(parent.c_str(), 0700);
    const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      throw Error(StatusCode::kUnavailable,
                  "cannot create " + target.string() + ": " + std::strerror(errno));
    }
    try {
      fill(fd, target.string());
    } catch (...) {
      ::close(fd);
      ::unlink(target.c_str());
      throw;
    }
    if (::close(fd) != 0) {
      const int err = errno;
      ::unlink(target.c_str());
      throw Error(StatusCode::kUnavailable, "cannot write " + target.string() + ": " + std::strerror(err));
    }
    return target.string();
  }

 private:
  struct Live {
    std::mutex mutex;
    std::set<std::string> paths;
  };
  // Never destroyed: a signal thread may use it while the process exits.
  static Live& live() {
    static Live* instance = new Live();
    return *instance;
  }

  std::string path_;
  int lock_ = -1;  // the open directory, flock'ed while it exists
};

}  // namespace aotiplug
