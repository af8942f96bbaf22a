// SPDX-License-Identifier: BSD-3-Clause
#include "checked_unpickle.h"

#include "state_dict_pickle.h"

#include <aotiplug/error.h>

#include <c10/util/StringUtil.h>
#include <c10/util/safe_numerics.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace aotiplug::detail {

// Each tensor's storage is read straight from its record (one copy), on the CPU wherever it
// was saved (the executor moves weights to its device).
UnpickledArchive unpickleArchive(caffe2::serialize::PyTorchStreamReader& archive, const std::string& what) {
  UnpickledArchive out;
  auto [pickle, pickle_size] = archive.getRecord("data.pkl");
  const auto* head = static_cast<const unsigned char*>(pickle.get());
  if (pickle_size >= 2 && head[0] == 0x80 && head[1] != 2) {
    throw Error(StatusCode::kInvalidArgument,
                what + " was pickled with protocol " + std::to_string(head[1]) +
                    "; LibTorch reads protocol 2, torch.save's default (save it without pickle_protocol=)");
  }
  const std::string adapted = adaptStateDictPickle({static_cast<const char*>(pickle.get()), pickle_size});
  std::size_t offset = 0;
  auto reader = [&](char* buffer, std::size_t n) -> std::size_t {
    const std::size_t count = std::min(n, adapted.size() - offset);
    std::memcpy(buffer, adapted.data() + offset, count);
    offset += count;
    return count;
  };
  auto read_record = [&](const std::string& name) {
    auto [data, size] = archive.getRecord("data/" + name);
    out.records[data.get()] = size;
    return std::move(data);
  };
  torch::jit::Unpickler unpickler(reader, nullptr, nullptr, read_record, at::Device(at::kCPU));
  unpickler.set_version(archive.version());
  out.value = unpickler.parse_ivalue();
  return out;
}

void checkInStorage(const at::Tensor& t, const std::map<const void*, std::size_t>& records, const std::string& what) {
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

}  // namespace aotiplug::detail
