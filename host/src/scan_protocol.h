// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The lines aotiplug-plugin-scanner writes on its standard output, one per event, flushed
// at once (host/scanner/plugin_scanner.cpp writes them, plugin_scan.cpp reads them):
//   begin <path>          about to load this plugin
//   stage loading         dlopen: its static initializers run
//   stage unloading       dlclose: its static destructors run
//   record <json>         the child's PluginRecord after loading (plugin_record.h)
//   unloaded yes|no       whether the library is gone after unloading
//   end                   done with it
// A child that stops writing (crash, exit, hang) is answered by the last stage it named.

namespace aotiplug::scan {

inline constexpr const char* kBegin = "begin";
inline constexpr const char* kStage = "stage";
inline constexpr const char* kRecord = "record";
inline constexpr const char* kUnloaded = "unloaded";
inline constexpr const char* kEnd = "end";
inline constexpr const char* kStageLoading = "loading";
inline constexpr const char* kStageUnloading = "unloading";

}  // namespace aotiplug::scan
