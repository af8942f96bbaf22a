// SPDX-License-Identifier: BSD-3-Clause
// adaptStateDictPickle (state_dict_pickle.h).

#include "state_dict_pickle.h"

#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace aotiplug::detail {
namespace {

// One opcode: where it lies in the pickle, and what the rewrite needs of its argument.
struct Op {
  char code = 0;
  std::size_t begin = 0, end = 0;
  std::string_view global;      // GLOBAL: "module\nname"
  long long memo = -1;          // PUT/BINPUT/LONG_BINPUT, GET/BINGET/LONG_BINGET: the index
};

std::uint64_t littleEndian(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// The opcode at `pos`, or nothing when it is unknown or its argument runs past the end.
std::optional<Op> readOp(std::string_view s, std::size_t pos) {
  Op op;
  op.code = s[pos];
  op.begin = pos;
  std::size_t at = pos + 1;
  const std::size_t n = s.size();
  auto fixed = [&](std::size_t bytes) -> bool {
    if (n - at < bytes) return false;
    at += bytes;
    return true;
  };
  auto counted = [&](int length_bytes) -> bool {  // a length, then that many bytes
    if (n - at < static_cast<std::size_t>(length_bytes)) return false;
    const std::uint64_t length = littleEndian(s.data() + at, length_bytes);
    at += length_bytes;
    if (n - at < length) return false;
    at += length;
    return true;
  };
  auto line = [&]() -> bool {  // text up to and including '\n'
    const std::size_t nl = s.find('\n', at);
    if (nl == std::string_view::npos) return false;
    at = nl + 1;
    return true;
  };
  auto number = [&](std::size_t from, std::size_t to) -> long long {  // decimal text
    if (to - from > 18) return -1;  // no memo is that large; and no overflow
    long long v = 0;
    for (std::size_t i = from; i < to; ++i) {
      if (s[i] < '0' || s[i] > '9') return -1;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  bool ok = true;
  switch (op.code) {
    // No argument.
    case '(': case '.': case '0': case '1': case '2': case 'N': case 'Q': case 'R': case 'a':
    case 'b': case 'd': case '}': case 'e': case 'l': case ']': case 'o': case 's': case 't':
    case ')': case 'u': case '\x81': case '\x85': case '\x86': case '\x87': case '\x88':
    case '\x89': case '\x8f': case '\x90': case '\x91': case '\x92': case '\x93': case '\x94':
    case '\x97': case '\x98':
      break;
    // Fixed-size arguments.
    case '\x80': case 'K': case '\x82': ok = fixed(1); break;
    case 'h': case 'q':
      ok = fixed(1);
      if (ok) op.memo = static_cast<unsigned char>(s[at - 1]);
      break;
    case 'M': case '\x83': ok = fixed(2); break;
    case 'J': case '\x84': ok = fixed(4); break;
    case 'j': case 'r':
      ok = fixed(4);
      if (ok) op.memo = static_cast<long long>(littleEndian(s.data() + at - 4, 4));
      break;
    case 'G': case '\x95': ok = fixed(8); break;
    // Length-prefixed arguments.
    case 'U': case '\x8c': case 'C': case '\x8a': ok = counted(1); break;
    case 'T': case 'X': case 'B': case '\x8b': ok = counted(4); break;
    case '\x8d': case '\x8e': case '\x96': ok = counted(8); break;
    // Newline-terminated arguments.
    case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': ok = line(); break;
    case 'p': case 'g': {
      const std::size_t from = at;
      ok = line();
      if (ok) op.memo = number(from, at - 1);
      break;
    }
    case 'c': case 'i': {
      const std::size_t from = at;
      ok = line() && line();
      if (ok) op.global = s.substr(from, at - 1 - from);
      break;
    }
    default:
      ok = false;
  }
  if (!ok) return std::nullopt;
  op.end = at;
  return op;
}

bool isPut(char c) { return c == 'p' || c == 'q' || c == 'r'; }
bool isGet(char c) { return c == 'g' || c == 'h' || c == 'j'; }

// How an opcode changes the stack: items it pops (kToMark: down to the topmost MARK, which
// goes too) and items it pushes. MARK itself is marked by `mark`.
constexpr int kToMark = -1;
struct Effect {
  int pops = 0;
  int pushes = 0;
  bool mark = false;
};

Effect effectOf(char code) {
  switch (code) {
    case '(': return {0, 0, true};
    case '\x80': case '\x95': case 'p': case 'q': case 'r': case '\x94': return {0, 0};
    case '.': case '0': return {1, 0};
    case '1': return {kToMark, 0};
    case '2': return {1, 2};
    case 'Q': case '\x85': case '\x98': return {1, 1};
    case 'R': case '\x86': case '\x81': case '\x93': return {2, 1};
    case '\x87': case '\x92': return {3, 1};
    case 'a': case 'b': return {2, 1};
    case 's': return {3, 1};
    case 'e': case 'u': case '\x90': return {kToMark, 0};  // into the object below the mark
    case 't': case 'l': case 'd': case 'o': case 'i': case '\x91': return {kToMark, 1};
    default: return {0, 1};  // every other opcode pushes one value
  }
}

// A value on the simulated stack.
struct Item {
  std::size_t start = 0;       // the op its construction began with
  bool fetched = false;        // a GET or DUP: an object that may exist elsewhere too
  bool ordered_dict = false;   // one of the OrderedDicts made empty dicts
};

// An op that changes an object already on the stack (APPEND(S), SETITEM(S), ADDITEMS,
// BUILD), and that object.
struct Mutation {
  std::size_t op = 0;
  Item target;
  std::size_t state_start = 0;  // BUILD only: where its state began
};

// Deletes each BUILD applied to one of the rewritten OrderedDicts (at `dict_offsets` in
// the bytes), with the ops that built its state (state_dict's `_metadata`), keeping the
// dict. False — the caller then leaves the pickle alone — when the pickle cannot be walked
// so, when a BUILD applies to anything else, when a deleted op changed an object made
// outside the deleted ops (dropping it would lose that change silently), or when a later
// op fetches from the memo something put there by a deleted op.
bool dropBuilds(std::string& bytes, const std::set<std::size_t>& dict_offsets) {
  std::vector<Op> ops;
  std::vector<Item> stack;
  std::vector<std::pair<std::size_t, std::size_t>> marks;  // stack size, MARK op
  std::vector<Mutation> mutations;
  for (std::size_t pos = 0; pos < bytes.size();) {
    auto read = readOp(bytes, pos);
    if (!read) return false;
    const Op& op = ops.emplace_back(*read);
    const std::size_t i = ops.size() - 1;
    pos = op.end;
    if (op.code == '\x94' || op.code == '\x95') return false;  // MEMOIZE, FRAME: protocol 4
    const Effect e = effectOf(op.code);
    if (e.mark) {
      marks.emplace_back(stack.size(), i);
      continue;
    }
    const std::size_t floor = marks.empty() ? 0 : marks.back().first;
    std::size_t lowest = 0;  // the lowest stack slot the op pops
    if (e.pops == kToMark) {
      if (marks.empty() || floor > stack.size()) return false;
      lowest = floor;
    } else {
      if (stack.size() - floor < static_cast<std::size_t>(e.pops)) return false;
      lowest = stack.size() - e.pops;
    }
    switch (op.code) {
      case 'a': case 's': case 'b':  // the object stays, changed
        mutations.push_back({i, stack[lowest], op.code == 'b' ? stack.back().start : 0});
        stack.resize(lowest + 1);
        break;
      case 'e': case 'u': case '\x90':
        if (lowest == 0) return false;
        mutations.push_back({i, stack[lowest - 1], 0});
        stack.resize(lowest);
        marks.pop_back();
        break;
      case '2':
        stack.push_back({i, true, stack.back().ordered_dict});
        break;
      default: {
        Item made{i, isGet(op.code), op.code == '}' && dict_offsets.count(op.begin) != 0};
        if (e.pops == kToMark) {
          made.start = marks.back().second;
          marks.pop_back();
        } else if (e.pops > 0) {
          made.start = stack[lowest].start;
        }
        stack.resize(lowest);
        if (e.pushes == 1) stack.push_back(made);
      }
    }
    if (op.code == '.') break;
  }
  // Each BUILD, last first (a BUILD inside a state already deleted goes with it).
  std::vector<bool> deleted(ops.size(), false);
  std::vector<std::size_t> range_start(ops.size(), 0);
  for (auto m = mutations.rbegin(); m != mutations.rend(); ++m) {
    if (ops[m->op].code != 'b' || deleted[m->op]) continue;
    if (!m->target.ordered_dict) return false;
    for (std::size_t i = m->state_start; i <= m->op; ++i) {
      deleted[i] = true;
      range_start[i] = m->state_start;
    }
  }
  for (const Mutation& m : mutations) {
    if (!deleted[m.op]) continue;
    const bool is_dropped_build = ops[m.op].code == 'b' && range_start[m.op] == m.state_start;
    if (is_dropped_build) continue;  // its target is the dict kept, by design
    if (m.target.fetched || m.target.start < range_start[m.op]) return false;
  }
  std::set<long long> deleted_memo;
  std::string kept;
  kept.reserve(bytes.size());
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (deleted[i]) {
      if (isPut(ops[i].code)) deleted_memo.insert(ops[i].memo);
      continue;
    }
    if (isGet(ops[i].code) && deleted_memo.count(ops[i].memo) != 0) return false;
    kept.append(bytes, ops[i].begin, ops[i].end - ops[i].begin);
  }
  bytes = std::move(kept);
  return true;
}

}  // namespace

std::string adaptStateDictPickle(std::string_view pickle) {
  std::vector<Op> ops;
  for (std::size_t pos = 0; pos < pickle.size();) {
    auto op = readOp(pickle, pos);
    if (!op) return std::string(pickle);
    ops.push_back(*op);
    pos = op->end;
    if (op->code == '.') break;  // STOP
  }
  std::string out;
  out.reserve(pickle.size());
  auto copy = [&](const Op& op) { out.append(pickle.substr(op.begin, op.end - op.begin)); };
  std::set<long long> ordered_dict_memo;  // memo slots holding the OrderedDict class
  std::set<std::size_t> dict_offsets;     // where the dicts made of them begin in out
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    const bool is_class = (op.code == 'c' && op.global == "collections\nOrderedDict");
    const bool pushes_class = is_class || (isGet(op.code) && ordered_dict_memo.count(op.memo) != 0);
    if (!pushes_class) {
      if (isPut(op.code)) ordered_dict_memo.erase(op.memo);  // the slot holds something else now
      copy(op);
      continue;
    }
    std::size_t next = i + 1;
    const Op* put = nullptr;
    if (is_class && next < ops.size() && isPut(ops[next].code)) {
      put = &ops[next];
      ++next;
    }
    if (next + 1 < ops.size() && ops[next].code == ')' && ops[next + 1].code == 'R') {
      dict_offsets.insert(out.size());
      out += '}';
      // The class's memo slot is filled with this dict (LibTorch's unpickler has no POP to
      // fill it with something else): its GETs are rewritten too, or give the class back.
      if (put != nullptr) {
        copy(*put);
        ordered_dict_memo.insert(put->memo);
      }
      i = next + 1;
      continue;
    }
    if (is_class) {  // the class itself, used otherwise: kept, and its slot remembered
      copy(op);
      if (put != nullptr) {
        copy(*put);
        ordered_dict_memo.insert(put->memo);
        i = next - 1;
      }
    } else {
      out += "ccollections\nOrderedDict\n";  // the class, not the dict in its slot
    }
  }
  if (dict_offsets.empty()) return std::string(pickle);
  if (!dropBuilds(out, dict_offsets)) return std::string(pickle);
  return out;
}

}  // namespace aotiplug::detail
