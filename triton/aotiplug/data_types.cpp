// SPDX-License-Identifier: BSD-3-Clause
#include "data_types.h"

#include <array>

namespace aotiplug::triton {
namespace {

constexpr std::array<DataType, 13> kTypes{{
    {c10::ScalarType::Bool, TRITONSERVER_TYPE_BOOL, "TYPE_BOOL", "BOOL"},
    {c10::ScalarType::Byte, TRITONSERVER_TYPE_UINT8, "TYPE_UINT8", "UINT8"},
    {c10::ScalarType::UInt16, TRITONSERVER_TYPE_UINT16, "TYPE_UINT16", "UINT16"},
    {c10::ScalarType::UInt32, TRITONSERVER_TYPE_UINT32, "TYPE_UINT32", "UINT32"},
    {c10::ScalarType::UInt64, TRITONSERVER_TYPE_UINT64, "TYPE_UINT64", "UINT64"},
    {c10::ScalarType::Char, TRITONSERVER_TYPE_INT8, "TYPE_INT8", "INT8"},
    {c10::ScalarType::Short, TRITONSERVER_TYPE_INT16, "TYPE_INT16", "INT16"},
    {c10::ScalarType::Int, TRITONSERVER_TYPE_INT32, "TYPE_INT32", "INT32"},
    {c10::ScalarType::Long, TRITONSERVER_TYPE_INT64, "TYPE_INT64", "INT64"},
    {c10::ScalarType::Half, TRITONSERVER_TYPE_FP16, "TYPE_FP16", "FP16"},
    {c10::ScalarType::Float, TRITONSERVER_TYPE_FP32, "TYPE_FP32", "FP32"},
    {c10::ScalarType::Double, TRITONSERVER_TYPE_FP64, "TYPE_FP64", "FP64"},
    {c10::ScalarType::BFloat16, TRITONSERVER_TYPE_BF16, "TYPE_BF16", "BF16"},
}};

}  // namespace

std::optional<DataType> dataTypeOf(c10::ScalarType type) noexcept {
  for (const DataType& t : kTypes) {
    if (t.scalar_type == type) return t;
  }
  return std::nullopt;
}

std::optional<DataType> dataTypeOf(TRITONSERVER_DataType type) noexcept {
  for (const DataType& t : kTypes) {
    if (t.api == type) return t;
  }
  return std::nullopt;
}

std::optional<DataType> dataTypeFromConfigName(const std::string& name) noexcept {
  for (const DataType& t : kTypes) {
    if (name == t.config_name) return t;
  }
  return std::nullopt;
}

const char* apiTypeName(TRITONSERVER_DataType type) noexcept {
  if (type == TRITONSERVER_TYPE_BYTES) return "BYTES";
  if (auto t = dataTypeOf(type)) return t->api_name;
  return "<invalid>";
}

std::string torchTypeName(c10::ScalarType type) {
  // A pair of std::string or of std::string_view, depending on the LibTorch version.
  return std::string(c10::getDtypeNames(type).first);
}

}  // namespace aotiplug::triton
