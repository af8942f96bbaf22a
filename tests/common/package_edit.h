// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Writing modified copies of .pt2 packages for tests (a CUDA device key, missing or
// hostile entries...), with LibTorch's own archive reader and writer.

#include "test_support.h"

#include <caffe2/serialize/inline_container.h>

#include <functional>
#include <map>
#include <optional>
#include <string>

namespace aotiplug_test {

// Returns the new content of an entry, std::nullopt to drop it, or the entry unchanged.
using RecordEdit = std::function<std::optional<std::string>(const std::string& name, const std::string& data)>;

// Copies the package at src to dst (a path ending in .pt2), passing every entry through
// edit, then adding `extra` entries.
inline void rewritePackage(const fs::path& src, const fs::path& dst, const RecordEdit& edit,
                           const std::map<std::string, std::string>& extra = {}) {
  caffe2::serialize::PyTorchStreamReader reader(src.string());
  caffe2::serialize::PyTorchStreamWriter writer(dst.string());
  for (const std::string& name : reader.getAllRecords()) {
    // The writer adds its own version and serialization id.
    if (name == ".data/version" || name == "version" || name == ".data/serialization_id") continue;
    auto [ptr, size] = reader.getRecord(name);
    std::string data(static_cast<const char*>(ptr.get()), size);
    std::optional<std::string> out = edit ? edit(name, data) : std::optional<std::string>(data);
    if (out) writer.writeRecord(name, out->data(), out->size());
  }
  for (const auto& [name, data] : extra) writer.writeRecord(name, data.data(), data.size());
  writer.writeEndOfFile();
}

// Replaces `from` by `to` in every entry whose name ends with `suffix`.
inline RecordEdit replaceIn(const std::string& suffix, const std::string& from, const std::string& to) {
  return [=](const std::string& name, const std::string& data) -> std::optional<std::string> {
    if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      return data;
    }
    std::string out = data;
    for (std::size_t at = out.find(from); at != std::string::npos; at = out.find(from, at + to.size())) {
      out.replace(at, from.size(), to);
    }
    return out;
  };
}

}  // namespace aotiplug_test
