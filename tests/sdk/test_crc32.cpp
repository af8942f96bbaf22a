// SPDX-License-Identifier: BSD-3-Clause
// The package reader's CRC-32 (detail::crc32) and its Boost.CRC implementation
// (detail::crc32Portable, what builds without ISA-L use): the standard check value, and a
// CRC taken in pieces equal to the CRC of the whole — the reader takes a large entry's CRC
// chunk by chunk, so a wrong continuation refuses every package with a large .so as corrupt
// (it did, on a machine without ISA-L: the GPU check of 2026-12-04).
#define BOOST_TEST_MODULE crc32
#include <boost/test/unit_test.hpp>

#include <aotiplug/detail/crc32.h>

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

namespace {

using Crc = std::uint32_t (*)(std::uint32_t, const void*, std::size_t) noexcept;

struct Implementation {
  const char* name;
  Crc crc;
};

const Implementation kImplementations[] = {{"crc32", &aotiplug::detail::crc32},
                                           {"crc32Portable", &aotiplug::detail::crc32Portable}};

std::vector<unsigned char> bytes(std::size_t n) {
  std::vector<unsigned char> v(n);
  std::uint32_t x = 2463534242u;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<unsigned char>(x);
  }
  return v;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_check_value_of_the_zip_crc) {
  constexpr std::string_view kCheck = "123456789";
  for (const auto& impl : kImplementations) {
    BOOST_TEST_INFO(impl.name);
    BOOST_TEST(impl.crc(0, kCheck.data(), kCheck.size()) == 0xCBF43926u);
    BOOST_TEST(impl.crc(0, kCheck.data(), 0) == 0u);
  }
}

BOOST_AUTO_TEST_CASE(a_crc_taken_in_pieces_is_the_crc_of_the_whole) {
  const auto data = bytes(1 << 20);
  const std::uint32_t whole = aotiplug::detail::crc32(0, data.data(), data.size());
  for (const auto& impl : kImplementations) {
    BOOST_TEST_INFO(impl.name);
    BOOST_TEST(impl.crc(0, data.data(), data.size()) == whole);
    for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, std::size_t{262144}}) {
      BOOST_TEST_INFO("pieces of " << piece << " bytes");
      std::uint32_t crc = 0;
      for (std::size_t at = 0; at < data.size(); at += piece) {
        crc = impl.crc(crc, data.data() + at, std::min(piece, data.size() - at));
      }
      BOOST_TEST(crc == whole);
    }
  }
}
