// SPDX-License-Identifier: BSD-3-Clause
#include <aotiplug/host/path_trust.h>

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

// Checks one resolved path (no symlink left in it).
std::string checkOne(const std::string& path, const char* what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return std::string(what) + " " + path + ": " + std::strerror(errno);
  }
  const uid_t me = ::geteuid();
  if (st.st_uid != 0 && st.st_uid != me) {
    return std::string(what) + " " + path + " is owned by uid " + std::to_string(st.st_uid) +
           ", expected root or the current user (uid " + std::to_string(me) + ")";
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return std::string(what) + " " + path + " is writable by " +
           ((st.st_mode & S_IWOTH) != 0 ? "others" : "its group") + " (mode " +
           octal(st.st_mode) + "); only its owner may write to it";
  }
  return {};
}

}  // namespace

std::string checkTrustedPath(const std::string& path, const char* what) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    return std::string(what) + " " + path + ": " + std::strerror(errno);
  }
  const std::string target = resolved;
  if (std::string why = checkOne(target, what); !why.empty()) {
    return target != path ? why + " (resolved from " + path + ")" : why;
  }
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    // A file is only as safe as the directory it sits in (it could be replaced).
    const std::string::size_type slash = target.find_last_of('/');
    const std::string parent = slash == 0 ? "/" : target.substr(0, slash);
    if (std::string why = checkOne(parent, "directory of the plugin"); !why.empty()) {
      return why;
    }
  }
  return {};
}

}  // namespace aotiplug
