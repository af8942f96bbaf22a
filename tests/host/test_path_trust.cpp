// SPDX-License-Identifier: BSD-3-Clause
// Unit tests of the trust checks (path_trust.h): a file or directory is trusted only when
// it and every directory above it are owned by root or this user and writable by nobody
// else (a root-owned sticky directory such as /tmp above the plugin directory is fine);
// a refusal names the path that failed and why.
#define BOOST_TEST_MODULE path_trust
#include <boost/test/unit_test.hpp>

#include <aotiplug/host/path_trust.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;
namespace utf = boost::unit_test;

namespace {

struct Dir {
  Dir() {
    std::string pattern = fs::temp_directory_path() / "aotiplug-test-trust-XXXXXX";
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = fs::canonical(pattern).string();
  }
  ~Dir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, ec);
    fs::remove_all(path, ec);
  }
  std::string path;
};

std::string makeFile(const std::string& path, mode_t mode) {
  std::ofstream(path) << "x";
  ::chmod(path.c_str(), mode);
  return path;
}

bool contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return true;
  BOOST_TEST_MESSAGE("'" << part << "' not in: " << text);
  return false;
}

boost::test_tools::assertion_result runningAsRoot(utf::test_unit_id) {
  boost::test_tools::assertion_result r(::geteuid() == 0);
  r.message() << "giving a file to another user needs root";
  return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(private_files_and_directories_are_trusted) {
  Dir d;
  BOOST_TEST(aotiplug::checkTrustedDirectory(d.path, "plugin directory").ok());
  const std::string file = makeFile(d.path + "/libp.so", 0755);
  BOOST_TEST(aotiplug::checkTrustedPath(file, "plugin").empty());
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  BOOST_TEST(aotiplug::checkTrustedFile(fd, file, "plugin").ok());
  ::close(fd);
}

BOOST_AUTO_TEST_CASE(writable_by_others_or_the_group_is_refused_naming_the_path) {
  Dir d;
  const std::string file = makeFile(d.path + "/libp.so", 0666);
  BOOST_TEST(contains(aotiplug::checkTrustedPath(file, "plugin"),
                      "plugin " + file + " is writable by others (mode 0666); only its owner may write to it"));
  ::chmod(file.c_str(), 0664);
  BOOST_TEST(contains(aotiplug::checkTrustedPath(file, "plugin"), "is writable by its group (mode 0664)"));
  // The descriptor is what is checked: a file made writable after it was opened still is.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  const aotiplug::TrustCheck c = aotiplug::checkTrustedFile(fd, file, "plugin");
  ::close(fd);
  BOOST_TEST(!c.ok());
  BOOST_TEST(c.path == file);

  ::chmod(d.path.c_str(), 0777);
  const aotiplug::TrustCheck dir = aotiplug::checkTrustedDirectory(d.path, "plugin directory");
  BOOST_TEST(dir.path == d.path);
  BOOST_TEST(contains(dir.reason, "plugin directory " + d.path + " is writable by others (mode 0777)"));
}

BOOST_AUTO_TEST_CASE(every_directory_above_counts) {
  Dir d;
  const std::string middle = d.path + "/middle";
  const std::string plugins = middle + "/plugins";
  fs::create_directories(plugins);
  ::chmod(middle.c_str(), 0777);  // world-writable, no sticky bit: anyone could swap plugins/
  const aotiplug::TrustCheck c = aotiplug::checkTrustedDirectory(plugins, "plugin directory");
  BOOST_TEST(c.path == middle);
  BOOST_TEST(contains(c.reason, "directory " + middle + " is writable by others (mode 0777)"));
  BOOST_TEST(contains(c.reason, "(it is above " + plugins + ")"));
  const std::string file = makeFile(plugins + "/libp.so", 0755);
  BOOST_TEST(contains(aotiplug::checkTrustedPath(file, "plugin"), middle + " is writable by others"));
  // A sticky bit only helps root-owned directories (like /tmp), and only above.
  ::chmod(middle.c_str(), 01777);
  if (::geteuid() == 0) {
    BOOST_TEST(aotiplug::checkTrustedDirectory(plugins, "plugin directory").ok());
    ::chmod(plugins.c_str(), 01777);
    BOOST_TEST(contains(aotiplug::checkTrustedDirectory(plugins, "plugin directory").reason,
                        "plugin directory " + plugins + " is writable by others (mode 1777)"));
  } else {
    BOOST_TEST(!aotiplug::checkTrustedDirectory(plugins, "plugin directory").ok());
  }
}

BOOST_AUTO_TEST_CASE(a_memo_gives_the_same_verdicts_and_lives_for_one_batch) {
  Dir d;
  const std::string middle = d.path + "/middle";
  const std::string plugins = middle + "/plugins";
  fs::create_directories(plugins);
  const std::string a = makeFile(plugins + "/liba.so", 0755);
  const std::string b = makeFile(plugins + "/libb.so", 0666);
  auto fileCheck = [](const std::string& path, aotiplug::TrustMemo* memo) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const aotiplug::TrustCheck c = aotiplug::checkTrustedFile(fd, path, "plugin", memo);
    ::close(fd);
    return c.reason;
  };
  {
    aotiplug::TrustMemo memo;
    for (int i = 0; i < 2; ++i) {  // the second time from the memo
      BOOST_TEST(fileCheck(a, &memo) == fileCheck(a, nullptr));
      BOOST_TEST(fileCheck(b, &memo) == fileCheck(b, nullptr));  // the file's own mode, not remembered
      BOOST_TEST(aotiplug::checkTrustedPath(b, "library", &memo) == aotiplug::checkTrustedPath(b, "library"));
      BOOST_TEST(memo.resolvedFile(plugins + "/../plugins/liba.so") == a);
      BOOST_TEST(memo.resolvedFile(plugins + "/missing.so").empty());
    }
    BOOST_TEST(fileCheck(a, &memo).empty());
  }
  // A directory made unsafe after one batch is seen by the next (a new memo).
  ::chmod(middle.c_str(), 0777);
  aotiplug::TrustMemo next;
  BOOST_TEST(contains(fileCheck(a, &next), middle + " is writable by others"));
}

BOOST_AUTO_TEST_CASE(symlinks_are_resolved_before_the_check) {
  Dir d;
  const std::string real = makeFile(d.path + "/real.so", 0666);
  const std::string link = d.path + "/link.so";
  fs::create_symlink(real, link);
  const std::string reason = aotiplug::checkTrustedPath(link, "plugin");
  BOOST_TEST(contains(reason, "plugin " + real + " is writable by others"));
  BOOST_TEST(contains(reason, "(resolved from " + link + ")"));
  BOOST_TEST(contains(aotiplug::checkTrustedPath(d.path + "/missing.so", "plugin"), "No such file"));
}

BOOST_AUTO_TEST_CASE(files_of_other_users_are_refused, *utf::precondition(runningAsRoot)) {
  Dir d;
  const std::string file = makeFile(d.path + "/libp.so", 0755);
  BOOST_REQUIRE(::chown(file.c_str(), 65534, 65534) == 0);
  BOOST_TEST(contains(aotiplug::checkTrustedPath(file, "plugin"),
                      "plugin " + file + " is owned by uid 65534, expected root or the current user"));
}
