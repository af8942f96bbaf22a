// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The whole SDK in one include, for authors who want everything. Each header below
// defines one concept and says who owns what and what is thread-safe.

#include <aotiplug/elf_image_check.h>
#include <aotiplug/error.h>
#include <aotiplug/manifest.h>
#include <aotiplug/model_info.h>
#include <aotiplug/model_library.h>
#include <aotiplug/model_library_runner.h>
#include <aotiplug/plugin.h>
#include <aotiplug/registration_log.h>
#include <aotiplug/runner.h>
#include <aotiplug/runner_abi.h>
#include <aotiplug/runner_handle.h>
#include <aotiplug/runner_registry.h>
#include <aotiplug/status.h>
#include <aotiplug/typed_registry.h>
#include <aotiplug/version.h>
