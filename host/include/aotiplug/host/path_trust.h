// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::checkTrustedPath — may code be loaded from this file or directory?
//
// A plugin runs with the host's privileges, so the loader only takes plugins that nobody
// but root or the host's own user could have put there: the file (after resolving
// symlinks), the directory holding it, and the plugin directory being scanned must be
// owned by root or the current user and not writable by group or others. A world-writable
// directory with the sticky bit (like /tmp) is still refused as a plugin directory.
//
// Thread safety: reentrant.

#include <string>

namespace aotiplug {

// Empty when path may be trusted; otherwise why not, naming the offending path.
// `what` names the role in messages ("plugin file", "plugin directory").
std::string checkTrustedPath(const std::string& path, const char* what);

}  // namespace aotiplug
