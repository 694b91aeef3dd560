// FilterRegex: the "~=" operator of containerd's filters (filter.h), matched in linear time.
//
// containerd matches "~=" with Go's regexp (RE2: no backtracking, unanchored search). The
// engines at hand in C++ backtrack or blow up on hostile patterns (std::regex: exponential time
// on "(a*)*b", aborts on some backreferences; glibc regcomp: out of memory on "a+++..."), and a
// List request is input from any process that can reach the socket. So this is a small Pike VM:
// the pattern compiles to at most a few instructions per byte and a search costs O(text length
// × program size), whatever the pattern.
//
// Syntax (a subset of RE2, on bytes, not runes): literals; `.` (any byte but '\n'); `[...]`
// and `[^...]` with ranges and the escapes below; `^` and `$` (start and end of the text);
// `(...)`, `(?:...)`; `|`; `*`, `+`, `?` (a lazy `*?`, `+?`, `??` matches the same); escapes
// `\d \D \w \W \s \S \n \t \r \f \v` and a backslash before any punctuation. Anything else
// (counted repetition, `\b`, named classes, flags, backreferences, a repeated quantifier such as
// `a**`) does not compile. A pattern that does not compile matches nothing, as in containerd.
//
// Thread-safety: an immutable value after Compile; Search may run from many threads.
#pragma once

#include <bitset>
#include <optional>
#include <string_view>
#include <vector>

namespace hoist {

class FilterRegex {
 public:
  // nullopt if the pattern is not in the syntax above or longer than 256 bytes.
  static std::optional<FilterRegex> Compile(std::string_view pattern);
  // Whether the pattern matches anywhere in `text`.
  bool Search(std::string_view text) const;

  enum class Op { kByte, kSplit, kJmp, kBegin, kEnd, kMatch };
  struct Inst {
    Op op = Op::kMatch;
    std::bitset<256> set;  // kByte
    int x = 0, y = 0;      // next instruction(s): kSplit both, the others x
  };

 private:
  std::vector<Inst> prog_;
  int start_ = 0;
};

}  // namespace hoist
