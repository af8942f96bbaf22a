// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The whole SDK in one include, for authors who want everything. Each header below
// defines one concept and says who owns what and what is thread-safe. The folders say who
// includes them (docs/architecture.md):
//   (top)      the vocabulary of every API: errors, statuses, the version;
//   plugin/    what a plugin's entry file uses and what crosses the plugin boundary;
//   runner/    the runner interface and the model-library binding runners are built on;
//   registry/  the process-wide registries and the host's handle on a plugin's runner;
//   executor/  the executor, its weights, input specs and eager comparison (hosts);
//   package/   reading .pt2 packages and their private extraction directories (hosts);
//   detail/    implementation; included by the headers above, never directly.

#include <aotiplug/error.h>
#include <aotiplug/status.h>
#include <aotiplug/status_code.h>
#include <aotiplug/version.h>

#include <aotiplug/plugin/manifest.h>
#include <aotiplug/plugin/plugin.h>
#include <aotiplug/plugin/registration_log.h>
#include <aotiplug/plugin/runner_abi.h>

#include <aotiplug/runner/cpu_features.h>
#include <aotiplug/runner/device.h>
#include <aotiplug/runner/elf_image_check.h>
#include <aotiplug/runner/library_messages.h>
#include <aotiplug/runner/model_info.h>
#include <aotiplug/runner/model_library.h>
#include <aotiplug/runner/model_library_runner.h>
#include <aotiplug/runner/runner.h>
#include <aotiplug/runner/wrapper_source.h>

#include <aotiplug/registry/plugin_abi.h>
#include <aotiplug/registry/registration.h>
#include <aotiplug/registry/runner_handle.h>
#include <aotiplug/registry/runner_registry.h>
#include <aotiplug/registry/typed_registry.h>

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/executor/delegate_executor.h>
#include <aotiplug/executor/eager_reference.h>
#include <aotiplug/executor/executor_config.h>
#include <aotiplug/executor/tensor_spec.h>
#include <aotiplug/executor/weights.h>

#include <aotiplug/package/private_directory.h>
#include <aotiplug/package/pt2_package.h>
