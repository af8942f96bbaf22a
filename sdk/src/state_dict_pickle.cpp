// SPDX-License-Identifier: BSD-3-Clause
// adaptStateDictPickle (state_dict_pickle.h).

#include "state_dict_pickle.h"

#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
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
    case '.': case '\x80': case '\x95': case 'p': case 'q': case 'r': case '\x94': return {0, 0};
    case '0': return {1, 0};
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

// Deletes each BUILD and the ops that built its state (state_dict's `_metadata`), keeping
// the object it would have set attributes on. The state is the one value the BUILD pops
// off the top: its ops run from just after the last op that left the object on top (at the
// same MARK nesting) up to the BUILD. False when the pickle cannot be read so, or when a
// later op fetches from the memo something put there by a deleted op.
bool dropBuilds(AdaptedPickle& out) {
  std::vector<Op> ops;
  std::vector<int> depth_after, marks_after;
  std::vector<int> marks;
  int depth = 0;
  for (std::size_t pos = 0; pos < out.bytes.size();) {
    auto op = readOp(out.bytes, pos);
    if (!op) return false;
    const Effect e = effectOf(op->code);
    if (e.mark) {
      marks.push_back(depth);
    } else if (e.pops == kToMark) {
      if (marks.empty()) return false;
      depth = marks.back();
      marks.pop_back();
    } else {
      if (depth < e.pops) return false;
      depth -= e.pops;
    }
    depth += e.pushes;
    ops.push_back(*op);
    depth_after.push_back(depth);
    marks_after.push_back(static_cast<int>(marks.size()));
    pos = op->end;
    if (op->code == '.') break;
  }
  std::vector<bool> deleted(ops.size(), false);
  for (std::size_t b = 0; b < ops.size(); ++b) {
    if (ops[b].code != 'b' || deleted[b] || b == 0) continue;
    const int object_on_top = depth_after[b - 1] - 1;
    const int nesting = marks_after[b - 1];
    std::size_t k = b - 1;
    while (k > 0 && !(depth_after[k] == object_on_top && marks_after[k] == nesting)) --k;
    if (!(depth_after[k] == object_on_top && marks_after[k] == nesting)) return false;
    for (std::size_t i = k + 1; i <= b; ++i) deleted[i] = true;
    ++out.builds;
  }
  std::set<long long> deleted_memo;
  std::string kept;
  kept.reserve(out.bytes.size());
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (deleted[i]) {
      if (isPut(ops[i].code)) deleted_memo.insert(ops[i].memo);
      if (ops[i].code == '\x94') return false;  // MEMOIZE: its slot is implicit
      continue;
    }
    if (isGet(ops[i].code) && deleted_memo.count(ops[i].memo) != 0) return false;
    kept.append(out.bytes, ops[i].begin, ops[i].end - ops[i].begin);
  }
  out.bytes = std::move(kept);
  return true;
}

}  // namespace

AdaptedPickle adaptStateDictPickle(std::string_view pickle) {
  std::vector<Op> ops;
  for (std::size_t pos = 0; pos < pickle.size();) {
    auto op = readOp(pickle, pos);
    if (!op) return {std::string(pickle), 0, 0};
    ops.push_back(*op);
    pos = op->end;
    if (op->code == '.') break;  // STOP
  }
  AdaptedPickle out;
  out.bytes.reserve(pickle.size());
  auto copy = [&](const Op& op) { out.bytes.append(pickle.substr(op.begin, op.end - op.begin)); };
  std::set<long long> ordered_dict_memo;  // memo slots holding the OrderedDict class
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    const bool is_class = (op.code == 'c' && op.global == "collections\nOrderedDict");
    const bool pushes_class = is_class || (isGet(op.code) && ordered_dict_memo.count(op.memo) != 0);
    if (pushes_class) {
      std::size_t next = i + 1;
      const Op* put = nullptr;
      if (is_class && next < ops.size() && isPut(ops[next].code)) {
        put = &ops[next];
        ordered_dict_memo.insert(put->memo);
        ++next;
      }
      if (next + 1 < ops.size() && ops[next].code == ')' && ops[next + 1].code == 'R') {
        out.bytes += '}';
        // The class's memo slot stays filled (LibTorch's unpickler has no POP to fill it
        // with something else); the GETs of it that follow are rewritten the same way.
        if (put != nullptr) copy(*put);
        ++out.ordered_dicts;
        i = next + 1;
        continue;
      }
    }
    copy(op);
  }
  if (out.ordered_dicts == 0) return {std::string(pickle), 0, 0};
  if (!dropBuilds(out)) return {std::string(pickle), 0, 0};
  return out;
}

}  // namespace aotiplug::detail
