// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// How tensor element types are named on each side of the aotiplug Triton backend: c10's
// ScalarType (the package, the executor), Triton's API enum (requests and responses) and
// Triton's model-configuration names ("TYPE_FP32"). One table, so the three never disagree.
// Thread safety: pure functions.

#include "triton_api.h"

#include <c10/core/ScalarType.h>

#include <optional>
#include <string>

namespace aotiplug::triton {

// aotiplug::triton::DataType — one element type every side can name.
struct DataType {
  c10::ScalarType scalar_type;
  TRITONSERVER_DataType api;
  const char* config_name;  // as config.pbtxt writes it
  const char* api_name;     // as the API and clients write it ("FP32")
};

// The row for a ScalarType; nullopt for types Triton cannot carry (complex, quantized...).
std::optional<DataType> dataTypeOf(c10::ScalarType type) noexcept;
// The row for an API type or a config name; nullopt for BYTES, INVALID and unknown names.
std::optional<DataType> dataTypeOf(TRITONSERVER_DataType type) noexcept;
std::optional<DataType> dataTypeFromConfigName(const std::string& name) noexcept;

// "FP32", "BYTES", "<invalid>": for messages about what a request sent.
const char* apiTypeName(TRITONSERVER_DataType type) noexcept;

// torch's name of a ScalarType ("float32", "bfloat16"), for messages about a package.
std::string torchTypeName(c10::ScalarType type);

}  // namespace aotiplug::triton
