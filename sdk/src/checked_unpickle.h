// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::detail::unpickleArchive, checkInStorage — reading a torch.save'd zip archive
// without trusting it.
//
// LibTorch's unpickler takes a tensor's sizes, strides and offset, and its storage's size,
// from the pickle as they are, without comparing them with the record it read: a damaged or
// crafted file can make a tensor reach past the bytes read, and whatever then reads the
// tensor (a model's code, a copy) reads past them. Weights files, a package's sample inputs,
// reference outputs and data/weights/ records, and the CLI's inputs files are all read here,
// and every tensor taken from them is checked to lie within its storage, and its storage
// within its record.
//
// Thread safety: pure functions over their arguments. Private to libaotiplug.

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <cstddef>
#include <map>
#include <string>

namespace caffe2::serialize {
class PyTorchStreamReader;
}  // namespace caffe2::serialize

namespace aotiplug::detail {

struct UnpickledArchive {
  c10::IValue value;
  std::map<const void*, std::size_t> records;  // each storage's bytes as read, by address
};

// Unpickles data.pkl of `archive` (tensors on the CPU; a module's state_dict() adapted
// first, state_dict_pickle.h). Throws Error naming `what` for a pickle protocol LibTorch
// cannot read, c10::Error (or std::exception) for a damaged pickle.
UnpickledArchive unpickleArchive(caffe2::serialize::PyTorchStreamReader& archive, const std::string& what);

// Throws Error(kInvalidArgument) "<what> is damaged: ..." unless `t` is a plain dense
// tensor whose elements lie within its storage, and its storage within the record read.
void checkInStorage(const at::Tensor& t, const std::map<const void*, std::size_t>& records, const std::string& what);

}  // namespace aotiplug::detail
