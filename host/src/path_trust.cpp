// SPDX-License-Identifier: BSD-3-Clause
#include <aotiplug/host/path_trust.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace aotiplug {

namespace {

std::string octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Owner and mode of one object; `sticky_ok` accepts a root-owned sticky directory that
// anyone may write to (only for directories above the plugin directory).
TrustCheck checkStat(const struct stat& st, const std::string& path, const char* what, bool sticky_ok) {
  const uid_t me = ::geteuid();
  if (st.st_uid != 0 && st.st_uid != me) {
    return {std::string(what) + " " + path + " is owned by uid " + std::to_string(st.st_uid) +
                ", expected root or the current user (uid " + std::to_string(me) + ")",
            path};
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    if (sticky_ok && S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX) != 0 && st.st_uid == 0) return {};
    return {std::string(what) + " " + path + " is writable by " +
                ((st.st_mode & S_IWOTH) != 0 ? "others" : "its group") + " (mode " + octal(st.st_mode) +
                "); only its owner may write to it",
            path};
  }
  return {};
}

TrustCheck checkOne(const std::string& path, const char* what, bool sticky_ok, TrustMemo* memo) {
  struct stat own {};
  int error = 0;
  const struct stat* st = &own;
  if (memo != nullptr) {
    const auto& found = memo->lstat(path);
    error = found.first;
    st = &found.second;
  } else if (::lstat(path.c_str(), &own) != 0) {
    error = errno;
  }
  if (error != 0) return {std::string(what) + " " + path + ": " + std::strerror(error), path};
  return checkStat(*st, path, what, sticky_ok);
}

// Every directory strictly above `resolved` (a path without symlinks), nearest first.
TrustCheck checkAncestors(const std::string& resolved, TrustMemo* memo) {
  std::string dir = resolved;
  while (dir.size() > 1) {
    const auto slash = dir.find_last_of('/');
    dir = slash == 0 ? "/" : dir.substr(0, slash);
    if (TrustCheck c = checkOne(dir, "directory", /*sticky_ok=*/true, memo); !c.ok()) {
      c.reason += " (it is above " + resolved + ")";
      return c;
    }
  }
  return {};
}

std::string resolve(const std::string& path, std::string* error) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    *error = std::strerror(errno);
    return {};
  }
  return resolved;
}

}  // namespace

const std::pair<int, struct stat>& TrustMemo::lstat(const std::string& path) {
  auto it = stats_.find(path);
  if (it != stats_.end()) return it->second;
  std::pair<int, struct stat> found{0, {}};
  if (::lstat(path.c_str(), &found.second) != 0) found.first = errno;
  return stats_.emplace(path, found).first->second;
}

const std::string& TrustMemo::resolvedFile(const std::string& path) {
  auto it = resolved_.find(path);
  if (it != resolved_.end()) return it->second;
  std::string resolved;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    char buffer[PATH_MAX];
    resolved = ::realpath(path.c_str(), buffer) != nullptr ? std::string(buffer) : path;
  }
  return resolved_.emplace(path, std::move(resolved)).first->second;
}

const std::string* TrustMemo::verdict(const std::string& path) const {
  auto it = verdicts_.find(path);
  return it == verdicts_.end() ? nullptr : &it->second;
}

TrustCheck checkTrustedDirectory(const std::string& directory, const char* what, TrustMemo* memo) {
  std::string error;
  const std::string resolved = resolve(directory, &error);
  if (resolved.empty()) return {std::string(what) + " " + directory + ": " + error, directory};
  if (TrustCheck c = checkOne(resolved, what, /*sticky_ok=*/false, memo); !c.ok()) {
    if (resolved != directory) c.reason += " (resolved from " + directory + ")";
    return c;
  }
  return checkAncestors(resolved, memo);
}

TrustCheck checkTrustedFile(int fd, const std::string& path, const char* what, TrustMemo* memo) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {std::string(what) + " " + path + ": " + std::strerror(errno), path};
  if (TrustCheck c = checkStat(st, path, what, /*sticky_ok=*/false); !c.ok()) return c;
  // A file is only as safe as the directory it sits in (it could be replaced), and that
  // directory as the ones above it.
  const auto slash = path.find_last_of('/');
  const std::string parent = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  const std::string role = std::string("directory of the ") + what;
  if (TrustCheck c = checkOne(parent, role.c_str(), /*sticky_ok=*/false, memo); !c.ok()) return c;
  return checkAncestors(parent, memo);
}

std::string checkTrustedPath(const std::string& path, const char* what, TrustMemo* memo) {
  if (memo != nullptr) {
    if (const std::string* known = memo->verdict(path)) return *known;
    std::string reason = checkTrustedPath(path, what, nullptr);
    memo->remember(path, reason);
    return reason;
  }
  std::string error;
  const std::string resolved = resolve(path, &error);
  if (resolved.empty()) return std::string(what) + " " + path + ": " + error;
  struct stat st {};
  if (::stat(resolved.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return checkTrustedDirectory(resolved, what).reason;
  }
  const int fd = ::open(resolved.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::string(what) + " " + resolved + ": " + std::strerror(errno);
  TrustCheck c = checkTrustedFile(fd, resolved, what);
  ::close(fd);
  if (!c.ok() && resolved != path) c.reason += " (resolved from " + path + ")";
  return c.reason;
}

}  // namespace aotiplug
