// SPDX-License-Identifier: BSD-3-Clause
// checked-cpu: a CPU runner that refuses non-finite inputs (and, optionally, outputs).
//
// The entry file only declares the plugin and registers its pieces; everything else is
// ordinary C++ in its own file.
#include <aotiplug/plugin/plugin.h>

#include "checked_cpu_runner.h"
#include "options.h"

AOTIPLUG_PLUGIN("checked-cpu", "1.0.0", c10::DeviceType::CPU);

// Runs once, when the host loads the library. If the options are malformed it throws,
// and the host rejects the plugin with the message (nothing escapes into dlopen).
AOTIPLUG_ON_LOAD(checked_cpu::loadOptions);

// Fallback priority: next to the built-in CPU plugin, that one serves CPU and the loader
// rejects this one, saying which plugin won. Raise it to kPriorityPreferred to take over.
AOTIPLUG_REGISTER_RUNNER(c10::DeviceType::CPU, checked_cpu::CheckedCpuRunner,
                         aotiplug::kPriorityFallback);
