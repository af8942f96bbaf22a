// SPDX-License-Identifier: BSD-3-Clause
// loadWeightsFile (executor/weights.h), compiled once into libaotiplug.

#include "state_dict_pickle.h"

#include <aotiplug/error.h>
#include <aotiplug/executor/weights.h>

#include <c10/util/StringUtil.h>
#include <c10/util/safe_numerics.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>

namespace aotiplug {

namespace {

// The pickle of a torch.save'd zip archive, unpickled by LibTorch: each tensor's storage is
// read straight from its record in the file (one copy), on the CPU wherever it was saved
// (the executor moves weights to its device), and a module's state_dict() (an OrderedDict
// with `_metadata`) is adapted first (state_dict_pickle.h). `records` gets each storage's
// bytes as read, by address, for checkInStorage.
c10::IValue unpickleArchive(const std::string& path, std::map<const void*, std::size_t>& records) {
  caffe2::serialize::PyTorchStreamReader archive(path);
  auto [pickle, pickle_size] = archive.getRecord("data.pkl");
  const auto* head = static_cast<const unsigned char*>(pickle.get());
  if (pickle_size >= 2 && head[0] == 0x80 && head[1] != 2) {
    throw Error(StatusCode::kInvalidArgument,
                "weights file " + path + " was pickled with protocol " + std::to_string(head[1]) +
                    "; LibTorch reads protocol 2, torch.save's default (save it without pickle_protocol=)");
  }
  const std::string adapted =
      detail::adaptStateDictPickle({static_cast<const char*>(pickle.get()), pickle_size});
  std::size_t offset = 0;
  auto reader = [&](char* buffer, std::size_t n) -> std::size_t {
    const std::size_t count = std::min(n, adapted.size() - offset);
    std::memcpy(buffer, adapted.data() + offset, count);
    offset += count;
    return count;
  };
  auto read_record = [&](const std::string& name) {
    auto [data, size] = archive.getRecord("data/" + name);
    records[data.get()] = size;
    return std::move(data);
  };
  torch::jit::Unpickler unpickler(reader, nullptr, nullptr, read_record, at::Device(at::kCPU));
  unpickler.set_version(archive.version());
  return unpickler.parse_ivalue();
}

// LibTorch's unpickler takes a tensor's sizes, strides and offset, and its storage's size,
// from the pickle as they are: a damaged or crafted file could make a tensor reach past the
// bytes read, and the model would read there. Each must lie within its storage, and the
// storage within its record.
void checkInStorage(const at::Tensor& t, const std::map<const void*, std::size_t>& records,
                    const std::string& what) {
  const auto fail = [&](const std::string& why) {
    throw Error(StatusCode::kInvalidArgument, what + " is damaged: " + why);
  };
  if (!t.has_storage() || t.layout() != at::kStrided || t.is_quantized()) fail("not a plain dense tensor");
  const std::size_t storage_bytes = t.storage().nbytes();
  if (storage_bytes > 0) {
    auto record = records.find(t.storage().data());
    if (record == records.end()) fail("its storage was not read from the file");
    if (storage_bytes != record->second) {  // torch.load refuses this too
      fail("its storage says " + std::to_string(storage_bytes) + " bytes, its record in the file holds " +
           std::to_string(record->second));
    }
  }
  if (t.storage_offset() < 0) fail("a negative storage offset");
  // The byte just past the last element: (offset + sum((size - 1) * stride) + 1) * itemsize.
  std::uint64_t last = static_cast<std::uint64_t>(t.storage_offset());
  bool overflow = false;
  for (std::int64_t d = 0; d < t.dim(); ++d) {
    const std::int64_t size = t.sizes()[d], stride = t.strides()[d];
    if (size < 0 || stride < 0) fail("a negative size or stride");
    if (size == 0) return;  // no element to read
    std::uint64_t reach = 0;
    overflow |= c10::mul_overflows(static_cast<std::uint64_t>(size - 1), static_cast<std::uint64_t>(stride), &reach);
    overflow |= c10::add_overflows(last, reach, &last);
  }
  std::uint64_t end = 0;
  overflow |= c10::mul_overflows(last + 1, static_cast<std::uint64_t>(t.element_size()), &end);
  if (overflow || end > storage_bytes) {
    fail("sizes " + c10::str(t.sizes()) + ", strides " + c10::str(t.strides()) + " and offset " +
         std::to_string(t.storage_offset()) + " reach past its storage of " + std::to_string(storage_bytes) +
         " bytes");
  }
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
  std::map<const void*, std::size_t> records;
  try {
    value = unpickleArchive(path, records);
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
    checkInStorage(entry.value().toTensor(), records, what + ": '" + name + "'");
    tensors.emplace(name, entry.value().toTensor());
  }
  if (tensors.empty()) throw Error(StatusCode::kInvalidArgument, what + " holds no tensors");
  return std::make_shared<Weights>(std::move(tensors));
}

}  // namespace aotiplug
