#include "tools/snapshotter/filter_regex.h"

#include <cstdint>
#include <string>
#include <utility>

namespace hoist {
namespace {

constexpr size_t kMaxPattern = 256;

using Inst = FilterRegex::Inst;
using Op = FilterRegex::Op;
using Set = std::bitset<256>;

Set Range(int lo, int hi) {
  Set s;
  for (int c = lo; c <= hi; ++c) s.set(static_cast<size_t>(c));
  return s;
}
Set Digits() { return Range('0', '9'); }
Set Word() { return Range('0', '9') | Range('A', 'Z') | Range('a', 'z') | Range('_', '_'); }
Set Space() {
  Set s;
  for (char c : std::string(" \t\n\v\f\r")) s.set(static_cast<unsigned char>(c));
  return s;
}
bool IsPunct(unsigned char c) {
  return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) || (c >= 0x5b && c <= 0x60) ||
         (c >= 0x7b && c <= 0x7e);
}

// A program fragment: instructions appended to `prog`, entered at `start`; its open ends are the
// instruction fields in `outs` (index * 2 + which field) still to be patched to the next piece.
struct Frag {
  int start = 0;
  std::vector<int> outs;
};

class Compiler {
 public:
  explicit Compiler(std::string_view p) : p_(p) {}

  // The program and its entry point.
  std::optional<std::pair<std::vector<Inst>, int>> Run() {
    auto f = Alt();
    if (!f || pos_ != p_.size()) return std::nullopt;
    const int match = Emit({.op = Op::kMatch});
    Patch(f->outs, match);
    return std::make_pair(std::move(prog_), f->start);
  }

 private:
  int Emit(Inst in) {
    prog_.push_back(in);
    return static_cast<int>(prog_.size()) - 1;
  }
  void Patch(const std::vector<int>& outs, int target) {
    for (int o : outs) {
      Inst& in = prog_[o / 2];
      (o % 2 == 0 ? in.x : in.y) = target;
    }
  }
  bool More() const { return pos_ < p_.size(); }
  char Peek() const { return p_[pos_]; }

  std::optional<Frag> Alt() {
    auto left = Concat();
    if (!left) return std::nullopt;
    while (More() && Peek() == '|') {
      ++pos_;
      auto right = Concat();
      if (!right) return std::nullopt;
      const int split = Emit({.op = Op::kSplit, .x = left->start, .y = right->start});
      Frag f{split, left->outs};
      f.outs.insert(f.outs.end(), right->outs.begin(), right->outs.end());
      left = std::move(f);
    }
    return left;
  }

  // A possibly empty sequence; the empty one is a jump to be patched.
  std::optional<Frag> Concat() {
    std::optional<Frag> seq;
    while (More() && Peek() != '|' && Peek() != ')') {
      auto r = Repeat();
      if (!r) return std::nullopt;
      if (!seq) {
        seq = std::move(r);
      } else {
        Patch(seq->outs, r->start);
        seq->outs = std::move(r->outs);
      }
    }
    if (!seq) {
      const int j = Emit({.op = Op::kJmp});
      seq = Frag{j, {j * 2}};
    }
    return seq;
  }

  std::optional<Frag> Repeat() {
    auto a = Atom();
    if (!a) return std::nullopt;
    if (!More()) return a;
    const char q = Peek();
    if (q != '*' && q != '+' && q != '?') return a;
    ++pos_;
    if (More() && Peek() == '?') ++pos_;  // lazy: the same set of matches
    if (More() && (Peek() == '*' || Peek() == '+' || Peek() == '?' || Peek() == '{')) {
      return std::nullopt;  // RE2: invalid nested repetition operator
    }
    if (q == '*') {
      const int split = Emit({.op = Op::kSplit, .x = a->start});
      Patch(a->outs, split);
      return Frag{split, {split * 2 + 1}};
    }
    if (q == '+') {
      const int split = Emit({.op = Op::kSplit, .x = a->start});
      Patch(a->outs, split);
      return Frag{a->start, {split * 2 + 1}};
    }
    const int split = Emit({.op = Op::kSplit, .x = a->start});
    Frag f{split, a->outs};
    f.outs.push_back(split * 2 + 1);
    return f;
  }

  std::optional<Frag> Byte(const Set& s) {
    const int i = Emit({.op = Op::kByte, .set = s});
    return Frag{i, {i * 2}};
  }

  // An escape after '\' (in or out of a class): the byte set, or nullopt if not supported.
  std::optional<Set> Escape() {
    if (!More()) return std::nullopt;
    const unsigned char c = static_cast<unsigned char>(p_[pos_++]);
    switch (c) {
      case 'd':
        return Digits();
      case 'D':
        return ~Digits();
      case 'w':
        return Word();
      case 'W':
        return ~Word();
      case 's':
        return Space();
      case 'S':
        return ~Space();
      case 'n':
        return Range('\n', '\n');
      case 't':
        return Range('\t', '\t');
      case 'r':
        return Range('\r', '\r');
      case 'f':
        return Range('\f', '\f');
      case 'v':
        return Range('\v', '\v');
      default:
        if (IsPunct(c)) return Range(c, c);
        return std::nullopt;
    }
  }

  std::optional<Set> Class() {
    Set s;
    bool negate = false;
    if (More() && Peek() == '^') {
      negate = true;
      ++pos_;
    }
    bool first = true;
    while (More() && (Peek() != ']' || first)) {
      first = false;
      int lo;
      if (Peek() == '\\') {
        ++pos_;
        auto e = Escape();
        if (!e) return std::nullopt;
        if (e->count() != 1) {  // \d and friends: no ranges from them
          s |= *e;
          continue;
        }
        lo = static_cast<int>(e->_Find_first());
      } else if (Peek() == '[') {
        return std::nullopt;  // [[:alpha:]] and nested classes are not supported
      } else {
        lo = static_cast<unsigned char>(p_[pos_++]);
      }
      int hi = lo;
      if (pos_ + 1 < p_.size() && Peek() == '-' && p_[pos_ + 1] != ']') {
        ++pos_;
        if (Peek() == '\\') {
          ++pos_;
          auto e = Escape();
          if (!e || e->count() != 1) return std::nullopt;
          hi = static_cast<int>(e->_Find_first());
        } else {
          hi = static_cast<unsigned char>(p_[pos_++]);
        }
        if (hi < lo) return std::nullopt;
      }
      s |= Range(lo, hi);
    }
    if (!More()) return std::nullopt;  // no closing ']'
    ++pos_;
    return negate ? ~s : s;
  }

  std::optional<Frag> Atom() {
    const char c = p_[pos_++];
    switch (c) {
      case '(': {
        if (pos_ + 1 < p_.size() && Peek() == '?') {
          if (p_[pos_ + 1] != ':') return std::nullopt;  // flags, named groups
          pos_ += 2;
        }
        auto inner = Alt();
        if (!inner || !More() || Peek() != ')') return std::nullopt;
        ++pos_;
        return inner;
      }
      case ')':
      case '*':
      case '+':
      case '?':
      case '{':
        return std::nullopt;
      case '.':
        return Byte(~Range('\n', '\n'));
      case '[': {
        auto s = Class();
        if (!s) return std::nullopt;
        return Byte(*s);
      }
      case '^': {
        const int i = Emit({.op = Op::kBegin});
        return Frag{i, {i * 2}};
      }
      case '$': {
        const int i = Emit({.op = Op::kEnd});
        return Frag{i, {i * 2}};
      }
      case '\\': {
        auto s = Escape();
        if (!s) return std::nullopt;
        return Byte(*s);
      }
      default:
        return Byte(Range(static_cast<unsigned char>(c), static_cast<unsigned char>(c)));
    }
  }

  std::string_view p_;
  size_t pos_ = 0;
  std::vector<Inst> prog_;
};

// A sparse set of program counters (Pike VM thread list).
class PcSet {
 public:
  explicit PcSet(size_t n) : dense_(n), sparse_(n) {}
  bool Has(int pc) const {
    const size_t i = sparse_[static_cast<size_t>(pc)];
    return i < size_ && dense_[i] == pc;
  }
  void Add(int pc) {
    sparse_[static_cast<size_t>(pc)] = size_;
    dense_[size_++] = pc;
  }
  void Clear() { size_ = 0; }
  size_t size() const { return size_; }
  int at(size_t i) const { return dense_[i]; }

 private:
  std::vector<int> dense_;
  std::vector<size_t> sparse_;
  size_t size_ = 0;
};

}  // namespace

std::optional<FilterRegex> FilterRegex::Compile(std::string_view pattern) {
  if (pattern.size() > kMaxPattern) return std::nullopt;
  Compiler c(pattern);
  auto prog = c.Run();
  if (!prog) return std::nullopt;
  FilterRegex re;
  re.prog_ = std::move(prog->first);
  re.start_ = prog->second;
  return re;
}

bool FilterRegex::Search(std::string_view text) const {
  const size_t n = prog_.size();
  PcSet clist(n), nlist(n);
  std::vector<int> stack;
  // Adds `pc` and everything reachable from it without consuming a byte, at text position `at`.
  auto add = [&](PcSet& list, int start, size_t at) {
    stack.push_back(start);
    while (!stack.empty()) {
      const int pc = stack.back();
      stack.pop_back();
      if (list.Has(pc)) continue;
      list.Add(pc);
      const Inst& in = prog_[static_cast<size_t>(pc)];
      switch (in.op) {
        case Op::kJmp:
          stack.push_back(in.x);
          break;
        case Op::kSplit:
          stack.push_back(in.y);
          stack.push_back(in.x);
          break;
        case Op::kBegin:
          if (at == 0) stack.push_back(in.x);
          break;
        case Op::kEnd:
          if (at == text.size()) stack.push_back(in.x);
          break;
        case Op::kByte:
        case Op::kMatch:
          break;
      }
    }
  };
  for (size_t i = 0; i <= text.size(); ++i) {
    add(clist, start_, i);  // unanchored: a new thread at every position
    for (size_t t = 0; t < clist.size(); ++t) {
      const Inst& in = prog_[static_cast<size_t>(clist.at(t))];
      if (in.op == Op::kMatch) return true;
      if (in.op == Op::kByte && i < text.size() &&
          in.set.test(static_cast<unsigned char>(text[i]))) {
        add(nlist, in.x, i + 1);
      }
    }
    std::swap(clist, nlist);
    nlist.Clear();
  }
  return false;
}

}  // namespace hoist
