// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::detail::adaptStateDictPickle — makes the pickle of `torch.save(module.state_dict())`
// readable by LibTorch's C++ unpickler.
//
// A module's state_dict() is a collections.OrderedDict carrying a `_metadata` attribute, so
// its pickle (protocol 2, torch.save's default) is `GLOBAL collections OrderedDict`,
// `EMPTY_TUPLE`, `REDUCE`, the items, then `BUILD` with {'_metadata': ...}. LibTorch's
// unpickler (2.11 and 2.15 alike) turns every OrderedDict into None, as it expects one only
// as a tensor's empty backward-hooks argument, and has no BUILD for a dict: the load fails
// with "isGenericDict() INTERNAL ASSERT FAILED ... Expected GenericDict but got None".
//
// The adapter walks the opcodes (their argument formats and stack effects are those of
// Python's pickletools) and rewrites only two things: an OrderedDict made from an empty
// tuple becomes an empty dict (`}`), and, in a pickle where that happened, each `BUILD` is
// removed together with the ops that built the state it would apply (`_metadata`, the
// modules' version numbers); LibTorch's unpickler has no POP to discard it. Everything else
// is copied byte for byte. A pickle it cannot walk (an unknown opcode, a truncated
// argument, a removed memo entry fetched later) comes back unchanged: LibTorch's unpickler
// then reports what is wrong with it.
//
// Ownership: returns a new string. Thread safety: a pure function. Private to libaotiplug.

#include <string>
#include <string_view>

namespace aotiplug::detail {

std::string adaptStateDictPickle(std::string_view pickle);

}  // namespace aotiplug::detail
