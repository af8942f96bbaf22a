// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// AOTIPLUG_API marks what libaotiplug (the SDK's one compiled library) exports.
//
// Everything else in the SDK is header-only. Plugins are built with hidden visibility, so
// the inline code they instantiate stays private to each plugin; only symbols marked here
// are shared, and they all live in libaotiplug, which the host and every plugin link.
#if defined(__GNUC__)
#define AOTIPLUG_API __attribute__((visibility("default")))
#define AOTIPLUG_HIDDEN __attribute__((visibility("hidden")))
#else
#define AOTIPLUG_API
#define AOTIPLUG_HIDDEN
#endif
