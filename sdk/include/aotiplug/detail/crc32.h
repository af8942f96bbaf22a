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

// CRC-32 continued from `crc` (0 to start).
AOTIPLUG_API std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t size) noexcept;

}  // namespace aotiplug::detail
