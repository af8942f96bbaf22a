// SPDX-License-Identifier: BSD-3-Clause
// loadWeightsFile (executor/weights.h), compiled once into libaotiplug.

#include "state_dict_pickle.h"

#include <aotiplug/error.h>
#include <aotiplug/executor/weights.h>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace aotiplug {

namespace {

// The pickle of a torch.save'd zip archive, unpickled by LibTorch: each tensor's storage is
// read straight from its record in the file (one copy), and a module's state_dict() (an
// OrderedDict with `_metadata`) is adapted first (state_dict_pickle.h).
c10::IValue unpickleArchive(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader archive(path);
  auto [pickle, pickle_size] = archive.getRecord("data.pkl");
  const auto* head = static_cast<const unsigned char*>(pickle.get());
  if (pickle_size >= 2 && head[0] == 0x80 && head[1] != 2) {
    throw Error(StatusCode::kInvalidArgument,
                "weights file " + path + " was pickled with protocol " + std::to_string(head[1]) +
                    "; LibTorch reads protocol 2, torch.save's default (save it without pickle_protocol=)");
  }
  const detail::AdaptedPickle adapted =
      detail::adaptStateDictPickle({static_cast<const char*>(pickle.get()), pickle_size});
  std::size_t offset = 0;
  auto reader = [&](char* buffer, std::size_t n) -> std::size_t {
    const std::size_t count = std::min(n, adapted.bytes.size() - offset);
    std::memcpy(buffer, adapted.bytes.data() + offset, count);
    offset += count;
    return count;
  };
  auto read_record = [&](const std::string& name) { return std::get<0>(archive.getRecord("data/" + name)); };
  torch::jit::Unpickler unpickler(reader, nullptr, nullptr, read_record, std::nullopt);
  unpickler.set_version(archive.version());
  return unpickler.parse_ivalue();
}

}  // namespace

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
  try {
    value = unpickleArchive(path);
  } catch (const c10::Error& e) {
    std::string why = e.what_without_backtrace();
    if (why.find("unknown type torch.nn.") != std::string::npos) {
      why += " (the file holds a module: save its state_dict() instead)";
    }
    throw Error(StatusCode::kInvalidArgument, what + " is not a torch.save'd file LibTorch can read: " + why);
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
