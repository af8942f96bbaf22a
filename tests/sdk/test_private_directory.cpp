// SPDX-License-Identifier: BSD-3-Clause
// Unit tests of aotiplug::PrivateDirectory: mode 0700 and locked while alive, removed with
// its files when destroyed, refuses names that would leave it or overwrite a file, removes
// the directories only of owners that are gone.
#define BOOST_TEST_MODULE private_directory
#include <boost/test/unit_test.hpp>

#include <aotiplug/error.h>
#include <aotiplug/package/private_directory.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

struct Base {
  Base() {
    std::string pattern = fs::temp_directory_path() / "aotiplug-test-pd-XXXXXX";
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~Base() { fs::remove_all(path); }
  std::string path;
};

std::string read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_directory_is_private_while_it_lives_and_gone_after) {
  Base base;
  std::string path, file;
  {
    aotiplug::PrivateDirectory dir("unit-", base.path);
    path = dir.path();
    BOOST_TEST(fs::path(path).parent_path().string() == base.path);
    BOOST_TEST(fs::path(path).filename().string().rfind("unit-", 0) == 0u);
    struct stat st {};
    BOOST_REQUIRE(::stat(path.c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777) == 0700u);
    // Locked: nobody else can take the lock while it lives.
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY);
    BOOST_TEST(::flock(fd, LOCK_EX | LOCK_NB) != 0);
    ::close(fd);

    file = dir.writeFile("sub/dir/model.so", "abc", 3);
    BOOST_TEST(file == path + "/sub/dir/model.so");
    BOOST_TEST(read(file) == "abc");
    BOOST_REQUIRE(::stat(file.c_str(), &st) == 0);
    BOOST_TEST((st.st_mode & 0777) == 0600u);
    // Nothing existing is overwritten.
    BOOST_CHECK_THROW(dir.writeFile("sub/dir/model.so", "x", 1), aotiplug::Error);
    BOOST_TEST(read(file) == "abc");
    // A fill that throws leaves no file.
    BOOST_CHECK_THROW(dir.writeFileWith("half", [](int, const std::string&) { throw std::runtime_error("x"); }),
                      std::runtime_error);
    BOOST_TEST(!fs::exists(path + "/half"));
  }
  BOOST_TEST(!fs::exists(path));
}

BOOST_AUTO_TEST_CASE(names_that_would_leave_the_directory_are_refused) {
  for (const char* bad : {"", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/", "a\\b", "a/./b"}) {
    BOOST_TEST_CONTEXT(std::string("'") + bad + "'") {
      BOOST_TEST(!aotiplug::PrivateDirectory::isSafeRelativePath(bad));
    }
  }
  for (const char* good : {"a", "a/b.so", ".hidden", "a..b/c"}) {
    BOOST_TEST(aotiplug::PrivateDirectory::isSafeRelativePath(good));
  }
  Base base;
  aotiplug::PrivateDirectory dir("unit-", base.path);
  try {
    dir.writeFile("../escape", "x", 1);
    BOOST_ERROR("no error");
  } catch (const aotiplug::Error& e) {
    BOOST_TEST(std::string(e.what()).find("refusing to write '../escape': not a plain relative path") !=
               std::string::npos);
  }
  BOOST_TEST(!fs::exists(fs::path(base.path) / "escape"));
}

BOOST_AUTO_TEST_CASE(only_directories_whose_owner_is_gone_are_removed_as_stale) {
  Base base;
  aotiplug::PrivateDirectory alive("stale-", base.path);
  // A child creates one and dies without removing it (as a killed host would).
  const pid_t child = ::fork();
  if (child == 0) {
    new aotiplug::PrivateDirectory("stale-", base.path);  // never destroyed
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  // Another prefix, and something that is not a directory of ours, are left alone.
  aotiplug::PrivateDirectory other("other-", base.path);
  std::ofstream(base.path + "/stale-file") << "x";
  std::size_t before = 0;
  for (const auto& e : fs::directory_iterator(base.path)) before += e.path().filename().string().rfind("stale-", 0) == 0;
  BOOST_TEST(before == 3u);  // ours, the dead child's, the file

  BOOST_TEST(aotiplug::PrivateDirectory::removeStale("stale-", base.path) == 1u);
  BOOST_TEST(fs::exists(alive.path()));
  BOOST_TEST(fs::exists(other.path()));
  BOOST_TEST(fs::exists(base.path + "/stale-file"));
  BOOST_TEST(aotiplug::PrivateDirectory::removeStale("stale-", base.path) == 0u);
  BOOST_TEST(aotiplug::PrivateDirectory::removeStale("stale-", base.path + "/missing") == 0u);
}
