// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::parseDevice — a device string ("cpu", "cuda", "cuda:1") as a c10::Device.
//
// The one parser for every device string the SDK takes: the executor's configured device,
// the device_str a runner's creator receives, the CLI's --device. Thread safety: a pure
// function.

#include <aotiplug/detail/export.h>

#include <c10/core/Device.h>

#include <string>

namespace aotiplug {

// Throws Error(kInvalidArgument) that quotes the string when it is not a device.
AOTIPLUG_API c10::Device parseDevice(const std::string& device_str);

}  // namespace aotiplug
