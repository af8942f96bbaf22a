// SPDX-License-Identifier: BSD-3-Clause
// A CUDA kernel compiled to a cubin for sm_90, for `aotiplug inspect` to read its architecture.
__global__ void aotiplug_test_kernel(float* x) { x[0] = 1.0f; }
