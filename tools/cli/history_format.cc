#include "tools/cli/history_format.h"

#include <algorithm>
#include <cstdio>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace hoist {
namespace {

constexpr const char* kFields[][2] = {
    {"ID", "IMAGE"},
    {"CreatedSince", "CREATED"},
    {"CreatedAt", "CREATED AT"},
    {"CreatedBy", "CREATED BY"},
    {"Size", "SIZE"},
    {"Comment", "COMMENT"},
};

const std::string& FieldValue(const HistoryFields& f, const std::string& name) {
  if (name == "ID") return f.id;
  if (name == "CreatedSince") return f.created_since;
  if (name == "CreatedAt") return f.created_at;
  if (name == "CreatedBy") return f.created_by;
  if (name == "Size") return f.size;
  return f.comment;
}

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

}  // namespace

std::string HumanDurationAgo(int64_t seconds) {
  std::string d;
  if (seconds < 1) {
    d = "Less than a second";
  } else if (seconds == 1) {
    d = "1 second";
  } else if (seconds < 60) {
    d = std::to_string(seconds) + " seconds";
  } else if (int64_t minutes = seconds / 60; minutes == 1) {
    d = "About a minute";
  } else if (minutes < 60) {
    d = std::to_string(minutes) + " minutes";
  } else if (int64_t hours = (seconds + 1800) / 3600; hours == 1) {
    d = "About an hour";
  } else if (hours < 48) {
    d = std::to_string(hours) + " hours";
  } else if (hours < 24 * 7 * 2) {
    d = std::to_string(hours / 24) + " days";
  } else if (hours < 24 * 30 * 2) {
    d = std::to_string(hours / 24 / 7) + " weeks";
  } else if (hours < 24 * 365 * 2) {
    d = std::to_string(hours / 24 / 30) + " months";
  } else {
    d = std::to_string(seconds / 3600 / 24 / 365) + " years";
  }
  return d + " ago";
}

std::string HumanSizeDecimal(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double size = static_cast<double>(bytes);
  size_t unit = 0;
  while (size >= 1000 && unit + 1 < std::size(kUnits)) {
    size /= 1000;
    ++unit;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.3g%s", size, kUnits[unit]);
  return buf;
}

std::string Ellipsis(const std::string& text, size_t n) {
  if (CodePoints(text) <= n) return text;
  if (n <= 3) return text.substr(0, n);  // as docker: no room for an ellipsis (ASCII here)
  std::string out;
  size_t points = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80 && ++points > n - 1) break;
    out += text[i];
  }
  return out + "\u2026";
}

Result<HistoryTemplate> ParseHistoryTemplate(const std::string& format) {
  HistoryTemplate t;
  std::string f = Trim(format);
  if (f == "json") {
    t.json = true;
    return t;
  }
  if (f.starts_with("table")) {
    t.table = true;
    f = Trim(f.substr(5));
  }
  // \t and \n as docker reads them (escapes typed in the shell, not real tabs).
  std::string unescaped;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '\\' && i + 1 < f.size() && (f[i + 1] == 't' || f[i + 1] == 'n')) {
      unescaped += f[i + 1] == 't' ? '\t' : '\n';
      ++i;
    } else {
      unescaped += f[i];
    }
  }
  f = unescaped;
  size_t pos = 0;
  while (pos < f.size()) {
    size_t open = f.find("{{", pos);
    if (open == std::string::npos) {
      t.pieces.push_back({false, f.substr(pos)});
      break;
    }
    if (open > pos) t.pieces.push_back({false, f.substr(pos, open - pos)});
    size_t close = f.find("}}", open + 2);
    if (close == std::string::npos) {
      return Fail(EINVAL, "--format: \"{{\" without \"}}\" in \"" + format + "\"");
    }
    std::string action = Trim(f.substr(open + 2, close - open - 2));
    bool known = false;
    for (const auto& [name, header] : kFields) known = known || action == std::string(".") + name;
    if (!known) {
      return Fail(EINVAL, "--format: unknown field \"" + action +
                              "\" (known: .ID .CreatedSince .CreatedAt .CreatedBy .Size .Comment)");
    }
    t.pieces.push_back({true, action.substr(1)});
    pos = close + 2;
  }
  if (t.table && t.pieces.empty()) return DefaultHistoryTemplate();
  return t;
}

HistoryTemplate DefaultHistoryTemplate() {
  HistoryTemplate t;
  t.table = true;
  const char* fields[] = {"ID", "CreatedSince", "CreatedBy", "Size", "Comment"};
  for (size_t i = 0; i < std::size(fields); ++i) {
    if (i > 0) t.pieces.push_back({false, "\t"});
    t.pieces.push_back({true, fields[i]});
  }
  return t;
}

std::string AlignColumns(const std::string& text) {
  std::vector<std::vector<std::string>> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    std::vector<std::string> cells;
    size_t c = 0;
    while (true) {
      size_t tab = line.find('\t', c);
      cells.push_back(line.substr(c, tab == std::string::npos ? std::string::npos : tab - c));
      if (tab == std::string::npos) break;
      c = tab + 1;
    }
    lines.push_back(std::move(cells));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  std::vector<size_t> widths;
  for (const auto& cells : lines) {
    for (size_t i = 0; i + 1 < cells.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], CodePoints(cells[i]));
    }
  }
  std::string out;
  for (const auto& cells : lines) {
    for (size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) {
        const size_t w = std::max<size_t>(widths[i] + 3, 10);
        out.append(w - CodePoints(cells[i]), ' ');
      }
    }
    out += '\n';
  }
  return out;
}

std::string RenderHistory(const HistoryTemplate& t, const std::vector<HistoryFields>& rows) {
  if (t.json) {
    std::string out;
    for (const HistoryFields& r : rows) {
      rapidjson::StringBuffer buf;
      rapidjson::Writer<rapidjson::StringBuffer> w(buf);
      w.StartObject();
      for (const char* name : {"Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size"}) {
        const std::string& v = FieldValue(r, name);
        w.Key(name);
        w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
      }
      w.EndObject();
      out += std::string(buf.GetString(), buf.GetSize()) + "\n";
    }
    return out;
  }
  std::string text;
  if (t.table) {
    for (const HistoryTemplate::Piece& p : t.pieces) {
      if (!p.field) {
        text += p.text;
        continue;
      }
      for (const auto& [name, header] : kFields) {
        if (p.text == name) text += header;
      }
    }
    text += '\n';
  }
  for (const HistoryFields& r : rows) {
    for (const HistoryTemplate::Piece& p : t.pieces)
      text += p.field ? FieldValue(r, p.text) : p.text;
    text += '\n';
  }
  if (!t.table) return text;
  std::string body = text.substr(0, text.size() - 1);  // AlignColumns adds the last newline
  return AlignColumns(body);
}

}  // namespace hoist
