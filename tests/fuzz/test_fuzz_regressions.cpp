// SPDX-License-Identifier: BSD-3-Clause
// Replays every input kept in tests/fuzz/regressions/ (inputs that once crashed a reader,
// and edge cases) through the same code the fuzzers exercise. Each must be handled: an
// error at most, never a crash.
#define BOOST_TEST_MODULE fuzz_regressions
#include <boost/test/unit_test.hpp>

#include "fuzz_targets.h"

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {

std::size_t replay(const std::string& target, void (*fn)(const std::uint8_t*, std::size_t)) {
  const fs::path dir = fs::path(std::getenv("AOTIPLUG_SOURCE_ROOT")) / "tests" / "fuzz" / "regressions" / target;
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().filename() == "README.md") continue;
    std::ifstream in(e.path(), std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    BOOST_TEST_CHECKPOINT(e.path());
    fn(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
    ++n;
  }
  return n;
}

}  // namespace

BOOST_AUTO_TEST_CASE(manifest_reader_regressions) {
  BOOST_TEST(replay("manifest", aotiplug_fuzz::fuzzManifest) > 0u);
}

BOOST_AUTO_TEST_CASE(package_reader_regressions) {
  BOOST_TEST(replay("package", aotiplug_fuzz::fuzzPackage) > 0u);
}
