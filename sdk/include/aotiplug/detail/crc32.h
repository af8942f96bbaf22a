// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::detail::crc32 — the zip/gzip CRC-32, in libaotiplug (ISA-L's where it was
// built with it, else Boost.CRC's). For the package reader and the plugin scan cache; not
// part of the SDK's API.
// Thread safety: a pure function.

#include <aotiplug/detail/export.h>

#include <cstddef>
#include <cstdint>

namespace aotiplug::detail {

// CRC-32 continued from `crc` (0 to start): crc32(crc32(0, a), b) == crc32(0, a + b).
AOTIPLUG_API std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t size) noexcept;

// The same with Boost.CRC, compiled in every build so that the tests check it where ISA-L
// is installed too (crc32 uses it where ISA-L is not).
AOTIPLUG_API std::uint32_t crc32Portable(std::uint32_t crc, const void* data, std::size_t size) noexcept;

}  // namespace aotiplug::detail
