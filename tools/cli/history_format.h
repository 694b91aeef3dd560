// The output side of `hoist history`, as `docker history` prints it: human times ("3 weeks
// ago"), human sizes ("7.82MB", decimal units, 3 significant digits), the truncated image ID and
// CREATED BY, a small `--format` template ({{.ID}} {{.CreatedSince}} {{.CreatedAt}}
// {{.CreatedBy}} {{.Size}} {{.Comment}}, `table ` for a header, \t and \n escapes, or `json`),
// and docker's column alignment (tabwriter: minimum width 10, padding 3).
// Plain functions, no state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace hoist {

// One row as the user sees it (already truncated/humanised as the flags ask).
struct HistoryFields {
  std::string id;             // "3f57d9401f8d", "sha256:..." (--no-trunc) or "<missing>"
  std::string created_since;  // "3 weeks ago" (-H=false: the RFC 3339 time)
  std::string created_at;     // RFC 3339, UTC
  std::string created_by;
  std::string size;  // "7.82MB" (-H=false: bytes)
  std::string comment;
};

// docker's units.HumanDuration, plus " ago": "Less than a second", "About a minute", "3 hours",
// "9 days", "3 weeks", "5 months", "2 years".
std::string HumanDurationAgo(int64_t seconds);
// Decimal units (B, kB, MB, GB, TB, PB), 3 significant digits: "0B", "512B", "1.02kB", "7.82MB".
std::string HumanSizeDecimal(uint64_t bytes);
// At most `n` characters (code points): longer text is cut to n-1 and gets "…".
std::string Ellipsis(const std::string& text, size_t n);

// A parsed --format. EINVAL names an unknown field or an unclosed action.
struct HistoryTemplate {
  bool table = false;  // "table ..." prints a header row and aligns the columns
  bool json = false;   // "json": one JSON object per row
  struct Piece {
    bool field = false;
    std::string text;  // literal text, or the field name ("ID", ...)
  };
  std::vector<Piece> pieces;
};
[[nodiscard]] Result<HistoryTemplate> ParseHistoryTemplate(const std::string& format);

// The rows rendered with `t` (each row ends with a newline; table: the header first, columns
// aligned).
std::string RenderHistory(const HistoryTemplate& t, const std::vector<HistoryFields>& rows);

// Columns separated by '\t' in each line, aligned as Go's tabwriter(minwidth 10, padding 3):
// every cell but a line's last is padded to its column's widest cell + 3, at least 10.
std::string AlignColumns(const std::string& text);

// The default template: "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
// with docker's headers IMAGE CREATED CREATED BY SIZE COMMENT.
HistoryTemplate DefaultHistoryTemplate();

}  // namespace hoist
