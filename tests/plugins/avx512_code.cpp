// SPDX-License-Identifier: BSD-3-Clause
// A shared library whose code uses AVX-512 (foundation and byte/word) instructions, for the
// test of cpuFeaturesUsedBy; built with -mavx512f -mavx512bw and never run.
#include <immintrin.h>

extern "C" __attribute__((visibility("default"))) __m512i aotiplug_test_avx512(__m512i a, __m512i b) { return _mm512_add_epi8(_mm512_add_epi32(a, b), b); }
