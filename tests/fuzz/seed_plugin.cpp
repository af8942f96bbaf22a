// SPDX-License-Identifier: BSD-3-Clause
// A tiny shared library carrying only an aotiplug manifest: the manifest fuzzer's seed.
#include <aotiplug/plugin/manifest.h>

extern "C" __attribute__((section(".note.aotiplug"), used, aligned(4), visibility("hidden")))
const aotiplug::ManifestNote aotiplug_plugin_manifest = aotiplug::detail::makeManifestNote(
    "seed", "1.0", {c10::DeviceType::CPU}, 1, 0, "2.11.0", 2, 11, 0, 1);
