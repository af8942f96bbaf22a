// SPDX-License-Identifier: BSD-3-Clause
// PrivateDirectory (private_directory.h), compiled once into libaotiplug.

#include <aotiplug/package/private_directory.h>

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
#include <vector>

namespace aotiplug {
namespace {

// This process's live directories, for removeAllLive().
struct Live {
  std::mutex mutex;
  std::set<std::string> paths;
};

// Never destroyed: a signal thread may use it while the process exits.
Live& liveDirectories() {
  static Live* instance = new Live();
  return *instance;
}

}  // namespace

PrivateDirectory::PrivateDirectory(const std::string& prefix, std::string base) {
  if (base.empty()) base = defaultBase();
  // Created and registered under the live set's lock: a signal handler thread running
  // removeAllLive() meanwhile waits, then finds it.
  std::lock_guard<std::mutex> guard(liveDirectories().mutex);
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
  liveDirectories().paths.insert(path_);
}

PrivateDirectory::~PrivateDirectory() {
  {
    std::lock_guard<std::mutex> guard(liveDirectories().mutex);
    liveDirectories().paths.erase(path_);
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  ::close(lock_);  // unlocked once removed
}

std::string PrivateDirectory::defaultBase() {
  const char* tmp = std::getenv("TMPDIR");
  return (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
}

std::size_t PrivateDirectory::removeStale(const std::string& prefix, std::string base) noexcept {
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

void PrivateDirectory::removeAllLive() noexcept {
  try {
    // Held to the end: no directory is created (or registered) meanwhile.
    std::lock_guard<std::mutex> guard(liveDirectories().mutex);
    for (const std::string& path : liveDirectories().paths) {
      // Another thread may still be extracting into it: a file it creates after remove_all
      // emptied the directory makes the final rmdir fail (ENOTEMPTY). Go again; once the
      // directory is gone, its writers fail to create anything more.
      for (int attempt = 0; attempt < 100; ++attempt) {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
        if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec))) break;
        ::usleep(1000);
      }
    }
  } catch (...) {
  }
}

bool PrivateDirectory::isSafeRelativePath(const std::string& relative) {
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

std::string PrivateDirectory::writeFile(const std::string& relative, const void* data, std::size_t size) {
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

std::string PrivateDirectory::writeFileWith(
    const std::string& relative, const std::function<void(int fd, const std::string& path)>& fill) {
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

}  // namespace aotiplug
