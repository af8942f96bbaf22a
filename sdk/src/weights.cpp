// SPDX-License-Identifier: BSD-3-Clause
// loadWeightsFile (executor/weights.h), compiled once into libaotiplug.

#include <aotiplug/error.h>
#include <aotiplug/executor/weights.h>

#include <torch/csrc/jit/serialization/pickle.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace aotiplug {

std::shared_ptr<Weights> loadWeightsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(StatusCode::kNotFound, "weights file " + path + " cannot be opened: " + std::strerror(errno));
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string what = "weights file " + path;
  c10::IValue value;
  try {
    value = torch::jit::pickle_load(bytes);
  } catch (const c10::Error& e) {
    throw Error(StatusCode::kInvalidArgument,
                what + " is not a torch.save'd file LibTorch can read: " + e.what_without_backtrace());
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
      throw Error(StatusCode::kInvalidArgument,
                  what + ": '" + name + "' is a " + entry.value().tagKind() + ", not a tensor");
    }
    tensors.emplace(name, entry.value().toTensor());
  }
  if (tensors.empty()) throw Error(StatusCode::kInvalidArgument, what + " holds no tensors");
  return std::make_shared<Weights>(std::move(tensors));
}

}  // namespace aotiplug
