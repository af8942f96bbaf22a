// SPDX-License-Identifier: BSD-3-Clause
// The spec functions of tensor_spec.h, compiled once into libaotiplug.

#include <aotiplug/executor/tensor_spec.h>

#include <ATen/Tensor.h>
#include <ATen/ops/empty_strided.h>
#include <c10/core/Device.h>
#include <c10/util/StringUtil.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <sstream>
#include <utility>

namespace aotiplug {
std::optional<c10::ScalarType> scalarTypeFromName(const std::string& name) {
  static const std::pair<const char*, c10::ScalarType> kNames[] = {
      {"float32", c10::kFloat},     {"float", c10::kFloat},       {"float64", c10::kDouble},
      {"double", c10::kDouble},     {"float16", c10::kHalf},      {"half", c10::kHalf},
      {"bfloat16", c10::kBFloat16}, {"int64", c10::kLong},        {"long", c10::kLong},
      {"int32", c10::kInt},         {"int", c10::kInt},           {"int16", c10::kShort},
      {"int8", c10::kChar},         {"uint8", c10::kByte},        {"bool", c10::kBool},
      {"complex64", c10::kComplexFloat}, {"complex128", c10::kComplexDouble},
  };
  for (const auto& [n, t] : kNames) {
    if (name == n) return t;
  }
  return std::nullopt;
}

std::vector<TensorSpec> parseTensorSpecs(const std::string& json, const std::string& what) {
  std::vector<TensorSpec> out;
  const nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& why) {
    return Error(StatusCode::kInvalidArgument, what + " is malformed: " + why);
  };
  try {
    if (!doc.is_array()) throw bad("expected a JSON list");
    for (const auto& item : doc) {
      if (!item.is_object() || !item.contains("dtype") || !item.contains("sizes")) {
        throw bad("each entry needs dtype and sizes");
      }
      TensorSpec s;
      s.name = item.value("name", std::string());
      auto dtype = scalarTypeFromName(item["dtype"].get<std::string>());
      if (!dtype) throw bad("unknown dtype '" + item["dtype"].get<std::string>() + "'");
      s.dtype = *dtype;
      s.sizes = item["sizes"].get<std::vector<std::int64_t>>();
      s.min = item.value("min", s.sizes);
      s.max = item.value("max", s.sizes);
      if (s.min.size() != s.sizes.size() || s.max.size() != s.sizes.size()) {
        throw bad("min/max do not match the rank of '" + s.name + "'");
      }
      s.device_type = item.value("device", std::string("cpu"));
      try {
        s.device = c10::Device(s.device_type).type();
      } catch (const c10::Error&) {
        throw bad("unknown device '" + s.device_type + "'");
      }
      const std::string layout = item.value("layout", std::string("contiguous"));
      if (layout == "contiguous") {
        s.layout = TensorSpec::Layout::kContiguous;
      } else if (layout == "channels_last") {
        s.layout = TensorSpec::Layout::kChannelsLast;
      } else if (layout == "strided") {
        s.layout = TensorSpec::Layout::kStrided;
      } else {
        throw bad("unknown layout '" + layout + "' (contiguous, channels_last or strided)");
      }
      s.strides = item.value("strides", std::vector<std::int64_t>{});
      if (!s.strides.empty() && s.strides.size() != s.sizes.size()) {
        throw bad("strides do not match the rank of '" + s.name + "'");
      }
      s.symbols = item.value("symbols", std::vector<std::string>{});
      if (!s.symbols.empty() && s.symbols.size() != s.sizes.size()) {
        throw bad("symbols do not match the rank of '" + s.name + "'");
      }
      for (std::size_t d = 0; d < s.symbols.size(); ++d) {
        if (!s.symbols[d].empty() && s.sizes[d] >= 0) {
          throw bad("dimension " + std::to_string(d) + " of '" + s.name + "' is static (" +
                    std::to_string(s.sizes[d]) + ") but has symbol '" + s.symbols[d] + "'");
        }
      }
      if (s.layout == TensorSpec::Layout::kStrided && s.strides.empty()) {
        // Written by a packager that did not record strides yet: only density is known.
        s.strides.assign(s.sizes.size(), -1);
      }
      out.push_back(std::move(s));
    }
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong JSON type (sizes given as a string, a number as a name, ...).
    throw bad(std::string("a field has the wrong type (") + e.what() + ")");
  }
  return out;
}

std::vector<SharedSize> sharedSizes(const std::vector<TensorSpec>& specs) {
  std::vector<SharedSize> out;
  std::map<std::string, std::pair<std::size_t, std::size_t>> first;  // symbol -> (input, dim)
  for (std::size_t i = 0; i < specs.size(); ++i) {
    for (std::size_t d = 0; d < specs[i].symbols.size(); ++d) {
      const std::string& symbol = specs[i].symbols[d];
      if (symbol.empty()) continue;
      const auto [it, added] = first.emplace(symbol, std::make_pair(i, d));
      if (!added) out.push_back({i, d, it->second.first, it->second.second, symbol});
    }
  }
  return out;
}

void checkSharedSizes(const std::vector<at::Tensor>& inputs, const std::vector<TensorSpec>& specs,
                      const std::vector<SharedSize>& shared, const std::string& what) {
  for (const SharedSize& s : shared) {
    const std::int64_t size = inputs[s.input].size(static_cast<std::int64_t>(s.dim));
    const std::int64_t bound = inputs[s.bound_input].size(static_cast<std::int64_t>(s.bound_dim));
    if (size == bound) continue;
    auto who = [&](std::size_t i) {
      return what + " " + std::to_string(i) + (specs[i].name.empty() ? "" : " ('" + specs[i].name + "')");
    };
    throw Error(StatusCode::kInvalidArgument,
                who(s.input) + " has size " + std::to_string(size) + " in dimension " + std::to_string(s.dim) +
                    ", but " + who(s.bound_input) + " has " + std::to_string(bound) + " in dimension " +
                    std::to_string(s.bound_dim) + ": the model was compiled with both the same size (symbol " +
                    s.symbol + ")");
  }
}

bool tensorMatchesSpec(const at::Tensor& t, const TensorSpec& spec) noexcept {
  // Compiled code reads dense memory: nested, sparse and mkldnn tensors have no sizes and
  // strides it could read (a nested tensor's sizes() throws).
  if (!t.defined() || t.layout() != at::kStrided || t.is_nested() || t.scalar_type() != spec.dtype ||
      t.device().type() != spec.device) {
    return false;
  }
  const auto sizes = t.sizes();
  if (sizes.size() != spec.sizes.size()) return false;
  for (std::size_t d = 0; d < sizes.size(); ++d) {
    const std::int64_t n = sizes[d];
    const bool ok = spec.sizes[d] >= 0 ? n == spec.sizes[d]
                                       : n >= spec.min[d] && (spec.max[d] < 0 || n <= spec.max[d]);
    if (!ok) return false;
  }
  return true;
}

bool tensorHasSpecLayout(const at::Tensor& t, const TensorSpec& spec) {
  // A lazily conjugated or negated view: its memory holds the values before the operation.
  if (t.is_conj() || t.is_neg()) return false;
  switch (spec.layout) {
    case TensorSpec::Layout::kContiguous: return t.is_contiguous();
    case TensorSpec::Layout::kChannelsLast: return t.is_contiguous(at::MemoryFormat::ChannelsLast);
    case TensorSpec::Layout::kStrided: break;
  }
  const auto strides = t.strides();
  const auto sizes = t.sizes();
  bool all_fixed = true;
  for (std::size_t d = 0; d < spec.strides.size() && d < strides.size(); ++d) {
    if (spec.strides[d] < 0) {
      all_fixed = false;
    } else if (sizes[d] > 1 && strides[d] != spec.strides[d]) {
      return false;
    }
  }
  return all_fixed || t.numel() == 0 || t.is_non_overlapping_and_dense();
}

bool specStridesFixed(const TensorSpec& spec) {
  return std::all_of(spec.strides.begin(), spec.strides.end(), [](std::int64_t s) { return s >= 0; });
}

std::string describeStrides(const std::vector<std::int64_t>& strides) {
  std::string out = "[";
  for (std::size_t d = 0; d < strides.size(); ++d) {
    out += (d > 0 ? ", " : "") + (strides[d] >= 0 ? std::to_string(strides[d]) : std::string("?"));
  }
  return out + "]";
}

Error tensorLayoutMismatch(const at::Tensor& t, const TensorSpec& spec, std::size_t index,
                                  const std::string& what, const std::string& why) {
  const std::string who = what + " " + std::to_string(index) +
                          (spec.name.empty() ? "" : " ('" + spec.name + "')");
  std::string expected = spec.layoutName();
  if (spec.layout == TensorSpec::Layout::kStrided) expected += " with strides " + describeStrides(spec.strides);
  return Error(StatusCode::kInvalidArgument,
               who + ": the model was compiled for a " + expected + " tensor, got strides " +
                   describeStrides(t.strides().vec()) + " (" + why + ")");
}

Error tensorSpecMismatch(const at::Tensor& t, const TensorSpec& spec, std::size_t index,
                                const std::string& what) {
  const std::string who = what + " " + std::to_string(index) +
                          (spec.name.empty() ? "" : " ('" + spec.name + "')");
  std::ostringstream got;
  if (!t.defined()) {
    got << "an undefined tensor";
  } else if (t.layout() != at::kStrided || t.is_nested()) {
    got << (t.is_nested() ? std::string("a nested") : "a " + c10::str(t.layout())) << " tensor of "
        << c10::toString(t.scalar_type()) << " on " << t.device() << " (the model reads a dense, strided one)";
  } else {
    got << c10::toString(t.scalar_type()) << " " << t.sizes() << " on " << t.device();
    if (t.scalar_type() == spec.dtype && t.device().type() == spec.device &&
        static_cast<std::size_t>(t.dim()) == spec.sizes.size()) {
      for (std::size_t d = 0; d < spec.sizes.size(); ++d) {
        const std::int64_t n = t.size(static_cast<std::int64_t>(d));
        const bool ok = spec.sizes[d] >= 0 ? n == spec.sizes[d]
                                           : n >= spec.min[d] && (spec.max[d] < 0 || n <= spec.max[d]);
        if (!ok) {
          got << " (dimension " << d << " is " << n << ")";
          break;
        }
      }
    }
  }
  return Error(StatusCode::kInvalidArgument,
               who + ": expected " + spec.describe() + " on " + spec.device_type + ", got " + got.str());
}

at::Tensor checkTensorAgainstSpec(const at::Tensor& t, const TensorSpec& spec,
                                         std::size_t index, const std::string& what,
                                         bool convert_layout) {
  if (!tensorMatchesSpec(t, spec)) throw tensorSpecMismatch(t, spec, index, what);
  if (t.is_conj() || t.is_neg()) {
    // The values the caller means, materialized: not a layout change, so done regardless.
    return checkTensorAgainstSpec(t.resolve_conj().resolve_neg(), spec, index, what, convert_layout);
  }
  if (tensorHasSpecLayout(t, spec)) return t;
  if (!convert_layout) {
    throw tensorLayoutMismatch(t, spec, index, what, "layout conversion is switched off");
  }
  switch (spec.layout) {
    case TensorSpec::Layout::kContiguous: return t.contiguous();
    case TensorSpec::Layout::kChannelsLast: return t.contiguous(at::MemoryFormat::ChannelsLast);
    case TensorSpec::Layout::kStrided: break;
  }
  if (!specStridesFixed(spec)) {
    throw tensorLayoutMismatch(t, spec, index, what,
                               "strides marked ? depend on its dynamic sizes, so it cannot be "
                               "copied into that layout; pass it in that layout");
  }
  return at::empty_strided(t.sizes(), spec.strides, t.options()).copy_(t);
}

}  // namespace aotiplug
