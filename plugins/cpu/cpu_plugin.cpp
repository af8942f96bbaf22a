// SPDX-License-Identifier: BSD-3-Clause
// The CPU runner plugin: AOTInductor CPU models, served for c10::DeviceType::CPU.
#include <aotiplug/plugin/plugin.h>
#include <aotiplug/version.h>

#include "cpu_runner.h"

AOTIPLUG_PLUGIN("cpu", AOTIPLUG_VERSION, c10::DeviceType::CPU);
AOTIPLUG_REGISTER_RUNNER(c10::DeviceType::CPU, aotiplug::cpu::CpuRunner);
