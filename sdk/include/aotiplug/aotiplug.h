// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The whole SDK in one include, for authors who want everything. Each header below
// defines one concept and says who owns what and what is thread-safe.

#include <aotiplug/aoti_delegate_executor.h>
#include <aotiplug/cpu_features.h>
#include <aotiplug/delegate_executor.h>
#include <aotiplug/eager_reference.h>
#include <aotiplug/elf_image_check.h>
#include <aotiplug/error.h>
#include <aotiplug/executor_config.h>
#include <aotiplug/library_messages.h>
#include <aotiplug/manifest.h>
#include <aotiplug/model_info.h>
#include <aotiplug/model_library.h>
#include <aotiplug/model_library_runner.h>
#include <aotiplug/plugin.h>
#include <aotiplug/private_directory.h>
#include <aotiplug/pt2_package.h>
#include <aotiplug/registration_log.h>
#include <aotiplug/runner.h>
#include <aotiplug/runner_abi.h>
#include <aotiplug/runner_handle.h>
#include <aotiplug/runner_registry.h>
#include <aotiplug/status.h>
#include <aotiplug/tensor_spec.h>
#include <aotiplug/typed_registry.h>
#include <aotiplug/version.h>
#include <aotiplug/weights.h>
#include <aotiplug/wrapper_source.h>
#include <aotiplug/writer_preferring_mutex.h>
