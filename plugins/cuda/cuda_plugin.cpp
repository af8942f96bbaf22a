// SPDX-License-Identifier: BSD-3-Clause
// The CUDA runner plugin: AOTInductor CUDA models, served for c10::DeviceType::CUDA.
#include <aotiplug/plugin/plugin.h>
#include <aotiplug/version.h>

#include "cuda_runner.h"

AOTIPLUG_PLUGIN("cuda", AOTIPLUG_VERSION, c10::DeviceType::CUDA);
AOTIPLUG_REGISTER_RUNNER(c10::DeviceType::CUDA, aotiplug::cuda::CudaRunner);
