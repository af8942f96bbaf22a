// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Helpers shared by the test executables: temporary directories, locating build
// artefacts, checking error messages, asking the dynamic linker what is loaded.

#include <aotiplug/error.h>

#include <boost/test/unit_test.hpp>

#include <dlfcn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace aotiplug_test {

namespace fs = std::filesystem;

// An environment variable the meson test() sets; fails the test when missing.
inline std::string requireEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(std::string("environment variable ") + name +
                             " is not set: run this test through `meson test`");
  }
  return value;
}

inline fs::path buildRoot() { return requireEnv("AOTIPLUG_BUILD_ROOT"); }
inline fs::path sourceRoot() { return requireEnv("AOTIPLUG_SOURCE_ROOT"); }
// A library of tests/test_plugins/ in the build: testPlugin("alpha") is libtest_alpha.so.
inline fs::path testPlugin(const std::string& name) {
  return buildRoot() / "tests" / "test_plugins" / ("libtest_" + name + ".so");
}

// A private (0700) temporary directory, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "aotiplug-test-") {
    std::string pattern = (fs::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

inline void writeFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

inline std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Whether the dynamic linker has this library mapped (without loading it).
inline bool isLibraryLoaded(const std::string& path) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  ::dlclose(handle);
  return true;
}

inline bool contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

// Runs f; expects an aotiplug::Error with `code` whose message contains every fragment.
template <class F>
void expectError(F&& f, aotiplug::StatusCode code, const std::vector<std::string>& fragments) {
  try {
    f();
    BOOST_ERROR("expected an aotiplug::Error, nothing was thrown");
  } catch (const aotiplug::Error& e) {
    BOOST_TEST(static_cast<int>(e.code()) == static_cast<int>(code),
               "code " << static_cast<int>(e.code()) << " for: " << e.what());
    for (const std::string& fragment : fragments) {
      BOOST_TEST(contains(e.what(), fragment),
                 "message '" << e.what() << "' lacks '" << fragment << "'");
    }
  }
}

}  // namespace aotiplug_test

namespace aotiplug_test {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string shellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

// Runs a program with arguments, capturing its standard output, standard error and exit code.
inline CommandResult runCommand(const std::vector<std::string>& argv) {
  TempDir dir("aotiplug-cmd-");
  std::string line;
  for (const auto& a : argv) line += shellQuote(a) + " ";
  line += "> " + shellQuote((dir.path() / "out").string()) + " 2> " +
          shellQuote((dir.path() / "err").string());
  const int status = std::system(line.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = readFile(dir.path() / "out");
  r.err = readFile(dir.path() / "err");
  return r;
}

}  // namespace aotiplug_test
