// SPDX-License-Identifier: BSD-3-Clause
// loadWeightsFile (executor/weights.h), compiled once into libaotiplug.

#include "checked_unpickle.h"

#include <aotiplug/error.h>
#include <aotiplug/executor/weights.h>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>

namespace aotiplug {

std::shared_ptr<Weights> loadWeightsFile(const std::string& path) {
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      throw Error(StatusCode::kNotFound, "weights file " + path + " cannot be opened: " + std::strerror(errno));
    }
    char magic[4] = {};
    in.read(magic, sizeof magic);
    if (in.gcount() != 4 || std::memcmp(magic, "PK\x03\x04", 4) != 0) {
      throw Error(StatusCode::kInvalidArgument,
                  "weights file " + path +
                      " is not a torch.save'd file LibTorch can read: it is not a zip archive (torch.save writes "
                      "one unless told _use_new_zipfile_serialization=False)");
    }
  }
  const std::string what = "weights file " + path;
  c10::IValue value;
  std::map<const void*, std::size_t> records;
  try {
    caffe2::serialize::PyTorchStreamReader archive(path);
    detail::UnpickledArchive unpickled = detail::unpickleArchive(archive, what);
    value = std::move(unpickled.value);
    records = std::move(unpickled.records);
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    std::string why = e.what_without_backtrace();
    if (why.find("unknown type torch.nn.") != std::string::npos) {
      why += " (the file holds a module: save its state_dict() instead)";
    }
    throw Error(StatusCode::kInvalidArgument, what + " is not a torch.save'd file LibTorch can read: " + why);
  } catch (const std::exception& e) {  // LibTorch's unpickler on a damaged pickle: .at(), allocation
    throw Error(StatusCode::kInvalidArgument, what + " is damaged (" + e.what() + ")");
  }
  if (!value.isGenericDict()) {
    throw Error(StatusCode::kInvalidArgument,
                what + " holds a " + value.tagKind() +
                    ", not a dict of tensors by name (save one with torch.save(model.state_dict(), path))");
  }
  std::map<std::string, at::Tensor> tensors;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString()) {
      throw Error(StatusCode::kInvalidArgument, what + ": a key is a " + entry.key().tagKind() + ", not a name");
    }
    const std::string& name = entry.key().toStringRef();
    if (!entry.value().isTensor()) {
      const bool nested = entry.value().isGenericDict();
      throw Error(StatusCode::kInvalidArgument,
                  what + ": '" + name + "' is a " + entry.value().tagKind() + ", not a tensor" +
                      (nested ? " (a checkpoint? save the model's state_dict() on its own)" : ""));
    }
    detail::checkInStorage(entry.value().toTensor(), records, what + ": '" + name + "'");
    tensors.emplace(name, entry.value().toTensor());
  }
  if (tensors.empty()) throw Error(StatusCode::kInvalidArgument, what + " holds no tensors");
  return std::make_shared<Weights>(std::move(tensors));
}

}  // namespace aotiplug
