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
// Ownership: owns the directory on disk. Thread safety: not thread-safe; use from one
// thread (or serialize).

#include <aotiplug/error.h>
#include <aotiplug/status.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace aotiplug {

// aotiplug::PrivateDirectory
class PrivateDirectory {
 public:
  // Creates <base>/<prefix>XXXXXX; base defaults to $TMPDIR or /tmp.
  explicit PrivateDirectory(const std::string& prefix = "aotiplug-", std::string base = {}) {
    if (base.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      base = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
    }
    std::string pattern = base + "/" + prefix + "XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw Error(StatusCode::kUnavailable, "cannot create a private directory in " + base +
                                                ": " + std::strerror(errno));
    }
    path_ = pattern;
  }
  ~PrivateDirectory() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  PrivateDirectory(const PrivateDirectory&) = delete;
  PrivateDirectory& operator=(const PrivateDirectory&) = delete;

  const std::string& path() const noexcept { return path_; }

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
  std::string path_;
};

}  // namespace aotiplug
