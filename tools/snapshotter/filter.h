// containerd's filter syntax (github.com/containerd/containerd/filters), as containerd's
// garbage collector, its metadata layer and `ctr snapshots ls` send it in List requests:
//
//   selectors := selector ("," selector)*          all must match
//   selector  := fieldpath [operator value]        no operator: the field is present
//   fieldpath := field ("." field)*
//   field     := "quoted" | [A-Za-z0-9_]+
//   operator  := "==" | "!=" | "~="
//   value     := quoted | run of printable non-space characters other than ","
//   quoted    := "..." (Go escapes), or /.../ and |...| after "~="
//
// Several filter strings match if any of them does (ListSnapshotsRequest.filters). An empty
// list, or an empty string, matches everything.
//
// Examples: `labels."containerd.io/snapshot.ref"==sha256:ab..,parent=="default/3/sha256:.."`
// (containerd's metadata layer after a remote snapshotter's ALREADY_EXISTS), `kind==committed`,
// `name~=^default/`, `labels."containerd.io/gc.root"`.
//
// Differences from containerd, documented in docs/ARCHITECTURE.md: "~=" patterns are matched by
// FilterRegex (filter_regex.h: a linear-time subset of RE2's syntax, on bytes); a pattern longer
// than 256 bytes is refused (EINVAL); bytes >= 0x80 are taken as value characters without UTF-8
// validation (containerd refuses invalid UTF-8). A "~=" pattern that does not compile matches
// nothing, as in containerd.
//
// Errors: EINVAL with containerd's message shape: "filters: parse error: [before >|x|< after]:
// what". Thread-safety: a parsed Filter is immutable and may be shared.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "tools/snapshotter/filter_regex.h"

namespace hoist {

// Looks up a field path in the object being matched: its value, or nullopt if not present.
using FieldLookup = std::function<std::optional<std::string>(const std::vector<std::string>&)>;

class Filter {
 public:
  enum class Op { kPresent, kEqual, kNotEqual, kMatches };
  struct Selector {
    std::vector<std::string> field_path;
    Op op = Op::kPresent;
    std::string value;
    std::shared_ptr<const FilterRegex> re;  // kMatches; null if the pattern did not compile
  };

  // Parses filter strings; the result matches if any of them matches (all if none).
  [[nodiscard]] static Result<Filter> ParseAll(const std::vector<std::string>& filters);
  // One filter string (its selectors all must match).
  [[nodiscard]] static Result<std::vector<Selector>> Parse(std::string_view filter);

  bool Match(const FieldLookup& lookup) const;
  bool always() const { return any_.empty(); }

 private:
  std::vector<std::vector<Selector>> any_;  // OR of ANDs; empty = always
};

// containerd's Go-style unquote of a quoted token (including its quotes: "..", /../, |..|).
[[nodiscard]] Result<std::string> UnquoteFilterString(std::string_view quoted);

}  // namespace hoist
