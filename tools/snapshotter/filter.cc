#include "tools/snapshotter/filter.h"

#include <cstdint>

namespace hoist {
namespace {

constexpr size_t kMaxPatternBytes = 256;

// Tokens; non-negative values are a character the scanner did not expect.
constexpr int kEof = -1;
constexpr int kQuoted = -2;
constexpr int kValue = -3;
constexpr int kField = -4;
constexpr int kSeparator = -5;
constexpr int kOperator = -6;
constexpr int kIllegal = -7;

bool IsSpace(int c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool IsAlpha(int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool IsDigit(int c) { return c >= '0' && c <= '9'; }
bool IsFieldChar(int c) { return c == '_' || IsAlpha(c) || IsDigit(c); }
bool IsOperatorChar(int c) { return c == '=' || c == '!' || c == '~'; }
bool IsQuoteChar(int c) { return c == '/' || c == '|' || c == '"'; }
bool IsSeparatorChar(int c) { return c == ',' || c == '.'; }
bool IsValueChar(int c) { return c != ',' && !IsSpace(c) && (c >= 0x80 || (c > 0x20 && c < 0x7f)); }
int DigitVal(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 16;
}

class Scanner {
 public:
  explicit Scanner(std::string_view in) : in_(in) {}

  int Next() {
    if (ppos_ >= in_.size()) {
      pos_ = in_.size();
      return kEof;
    }
    pos_ = ppos_;
    const int c = static_cast<unsigned char>(in_[ppos_++]);
    if (c == 0) {
      Error("unexpected null");
      return kIllegal;
    }
    return c;
  }
  int Peek() {
    const size_t p = pos_, pp = ppos_;
    const int c = Next();
    pos_ = p;
    ppos_ = pp;
    return c;
  }

  struct Token {
    size_t pos;
    int tok;
    std::string_view text;
  };
  Token Scan() {
    int c = Next();
    size_t pos = pos_;
    while (c >= 0 && IsSpace(c)) {
      c = Next();
      pos = pos_;
    }
    if (c == kEof || c == kIllegal) return {pos_, c, {}};
    if (IsQuoteChar(c)) {
      if (!ScanQuoted(c)) return {pos, kIllegal, in_.substr(pos, ppos_ - pos)};
      return {pos, kQuoted, in_.substr(pos, ppos_ - pos)};
    }
    if (IsSeparatorChar(c)) {
      value_ = false;
      return {pos, kSeparator, in_.substr(pos, ppos_ - pos)};
    }
    if (IsOperatorChar(c)) {
      while (IsOperatorChar(Peek())) Next();
      value_ = true;
      return {pos, kOperator, in_.substr(pos, ppos_ - pos)};
    }
    if (value_) {
      while (Peek() >= 0 && IsValueChar(Peek())) Next();
      value_ = false;
      return {pos, kValue, in_.substr(pos, ppos_ - pos)};
    }
    if (IsFieldChar(c)) {
      while (Peek() >= 0 && IsFieldChar(Peek())) Next();
      return {pos, kField, in_.substr(pos, ppos_ - pos)};
    }
    return {pos_, c, {}};
  }

  size_t ppos() const { return ppos_; }
  const std::string& err() const { return err_; }

 private:
  void Error(const char* msg) {
    if (err_.empty()) err_ = msg;
  }
  bool ScanQuoted(int quote) {
    bool illegal = false;
    int c = Next();
    while (c != quote) {
      if (c == '\n' || c < 0) {
        Error("quoted literal not terminated");
        return false;
      }
      if (c == '\\') {
        c = ScanEscape(quote, &illegal);
      } else {
        c = Next();
      }
    }
    return !illegal;
  }
  int ScanEscape(int quote, bool* illegal) {
    int c = Next();
    switch (c) {
      case 'a':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
      case 'v':
      case '\\':
        return Next();
      case 'x':
        return ScanDigits(Next(), 16, 2, illegal);
      case 'u':
        return ScanDigits(Next(), 16, 4, illegal);
      case 'U':
        return ScanDigits(Next(), 16, 8, illegal);
      default:
        if (c == quote) return Next();
        if (c >= '0' && c <= '7') return ScanDigits(c, 8, 3, illegal);
        Error("illegal escape sequence");
        *illegal = true;
        return c;
    }
  }
  int ScanDigits(int c, int base, int n, bool* illegal) {
    while (n > 0 && c >= 0 && DigitVal(c) < base) {
      c = Next();
      --n;
    }
    if (n > 0) {
      Error("illegal numeric escape sequence");
      *illegal = true;
    }
    return c;
  }

  std::string_view in_;
  size_t pos_ = 0, ppos_ = 0;
  bool value_ = false;
  std::string err_;
};

void AppendUtf8(std::string* out, uint32_t r) {
  if (r >= 0xD800 && r <= 0xDFFF) r = 0xFFFD;  // surrogate halves, as Go's EncodeRune
  if (r < 0x80) {
    out->push_back(static_cast<char>(r));
  } else if (r < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (r >> 6)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else if (r < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (r >> 12)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (r >> 18)));
    out->push_back(static_cast<char>(0x80 | ((r >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  }
}

class Parser {
 public:
  explicit Parser(std::string_view in) : in_(in), s_(in) {}

  Result<std::vector<Filter::Selector>> Selectors() {
    std::vector<Filter::Selector> out;
    HOIST_ASSIGN_OR_RETURN(Filter::Selector first, Selector());
    out.push_back(std::move(first));
    for (;;) {
      const int c = s_.Peek();
      if (c == ',') {
        Scanner::Token t = s_.Scan();
        if (t.tok != kSeparator) return Err(t.pos, "expected a separator");
        HOIST_ASSIGN_OR_RETURN(Filter::Selector next, Selector());
        out.push_back(std::move(next));
      } else if (c == kEof) {
        return out;
      } else {
        return Err(s_.ppos(),
                   "unexpected input: " + (c >= 0 ? std::string(1, static_cast<char>(c)) : ""));
      }
    }
  }

 private:
  Result<Filter::Selector> Selector() {
    Filter::Selector sel;
    HOIST_ASSIGN_OR_RETURN(sel.field_path, FieldPath());
    const int c = s_.Peek();
    if (c == ',' || c == kEof) return sel;
    Scanner::Token t = s_.Scan();
    if (t.tok == kIllegal) return Err(t.pos, s_.err());
    if (t.tok != kOperator) return Err(t.pos, R"(expected an operator ("=="|"!="|"~="))");
    if (t.text == "==") {
      sel.op = Filter::Op::kEqual;
    } else if (t.text == "!=") {
      sel.op = Filter::Op::kNotEqual;
    } else if (t.text == "~=") {
      sel.op = Filter::Op::kMatches;
    } else {
      return Err(t.pos, "unsupported operator \"" + std::string(t.text) + "\"");
    }
    Scanner::Token v = s_.Scan();
    if (v.tok == kValue || v.tok == kField) {
      sel.value = std::string(v.text);
    } else if (v.tok == kQuoted) {
      HOIST_ASSIGN_OR_RETURN(sel.value, Unquote(v, sel.op == Filter::Op::kMatches));
    } else if (v.tok == kIllegal) {
      return Err(v.pos, s_.err());
    } else {
      return Err(v.pos, "expected value or quoted");
    }
    if (sel.op == Filter::Op::kMatches) {
      if (sel.value.size() > kMaxPatternBytes) {
        return Err(v.pos,
                   "regular expression longer than " + std::to_string(kMaxPatternBytes) + " bytes");
      }
      // A pattern outside FilterRegex's syntax matches nothing, as containerd's failed
      // regexp.Compile.
      if (auto re = FilterRegex::Compile(sel.value)) {
        sel.re = std::make_shared<const FilterRegex>(std::move(*re));
      }
    }
    return sel;
  }

  Result<std::vector<std::string>> FieldPath() {
    std::vector<std::string> path;
    HOIST_ASSIGN_OR_RETURN(std::string f, Field());
    path.push_back(std::move(f));
    while (s_.Peek() == '.') {
      Scanner::Token t = s_.Scan();
      if (t.tok != kSeparator) return Err(t.pos, "expected a field separator (`.`)");
      HOIST_ASSIGN_OR_RETURN(std::string next, Field());
      path.push_back(std::move(next));
    }
    return path;
  }

  Result<std::string> Field() {
    Scanner::Token t = s_.Scan();
    if (t.tok == kField) return std::string(t.text);
    if (t.tok == kQuoted) return Unquote(t, false);
    if (t.tok == kIllegal) return Err(t.pos, s_.err());
    return Err(t.pos, "expected field or quoted");
  }

  Result<std::string> Unquote(const Scanner::Token& t, bool allow_alt_quotes) {
    if (!allow_alt_quotes && t.text[0] != '"') return Err(t.pos, "invalid quote encountered");
    auto u = UnquoteFilterString(t.text);
    if (!u) return Err(t.pos, "unquoting failed: " + u.error().message());
    return u;
  }

  std::unexpected<Error> Err(size_t pos, const std::string& msg) {
    std::string where;
    if (pos < in_.size()) {
      where = "[" + std::string(in_.substr(0, pos)) + " >|" + std::string(in_.substr(pos, 1)) +
              "|< " + std::string(in_.substr(pos + 1)) + "]";
    } else {
      where = "[" + std::string(in_) + "]";
    }
    return Fail(EINVAL, "filters: parse error: " + where + ": " + msg);
  }

  std::string_view in_;
  Scanner s_;
};

bool MatchSelectors(const std::vector<Filter::Selector>& all, const FieldLookup& lookup) {
  for (const Filter::Selector& sel : all) {
    std::optional<std::string> v = lookup(sel.field_path);
    bool ok = false;
    switch (sel.op) {
      case Filter::Op::kPresent:
        ok = v.has_value();
        break;
      case Filter::Op::kEqual:
        ok = v.has_value() && *v == sel.value;
        break;
      case Filter::Op::kNotEqual:
        ok = v.value_or("") != sel.value;
        break;
      case Filter::Op::kMatches:
        ok = sel.re != nullptr && sel.re->Search(v.value_or(""));
        break;
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Result<std::string> UnquoteFilterString(std::string_view s) {
  auto bad = [] { return Fail(EINVAL, "invalid syntax"); };
  if (s.size() < 2) return bad();
  const char quote = s[0];
  if (quote != s.back()) return bad();
  if (quote != '"' && quote != '/' && quote != '|') return bad();
  s = s.substr(1, s.size() - 2);
  if (s.find('\n') != std::string_view::npos) return bad();
  std::string out;
  while (!s.empty()) {
    const char c = s[0];
    if (c == quote) return bad();
    if (c != '\\') {
      out.push_back(c);
      s.remove_prefix(1);
      continue;
    }
    if (s.size() < 2) return bad();
    const char e = s[1];
    s.remove_prefix(2);
    switch (e) {
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        if (s.size() < n) return bad();
        uint32_t v = 0;
        for (size_t j = 0; j < n; ++j) {
          const int d = DigitVal(static_cast<unsigned char>(s[j]));
          if (d >= 16) return bad();
          v = (v << 4) | static_cast<uint32_t>(d);
        }
        s.remove_prefix(n);
        if (e == 'x') {
          out.push_back(static_cast<char>(v));
        } else {
          if (v > 0x10FFFF) return bad();
          AppendUtf8(&out, v);
        }
        break;
      }
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6':
      case '7': {
        if (s.size() < 2) return bad();
        uint32_t v = static_cast<uint32_t>(e - '0');
        for (size_t j = 0; j < 2; ++j) {
          if (s[j] < '0' || s[j] > '7') return bad();
          v = (v << 3) | static_cast<uint32_t>(s[j] - '0');
        }
        s.remove_prefix(2);
        if (v > 255) return bad();
        out.push_back(static_cast<char>(v));
        break;
      }
      default:
        if ((e == '"' || e == '|' || e == '/') && e == quote) {
          out.push_back(e);
          break;
        }
        return bad();
    }
  }
  return out;
}

Result<std::vector<Filter::Selector>> Filter::Parse(std::string_view filter) {
  if (filter.empty()) return std::vector<Selector>{};
  Parser p(filter);
  return p.Selectors();
}

Result<Filter> Filter::ParseAll(const std::vector<std::string>& filters) {
  Filter f;
  for (const std::string& s : filters) {
    HOIST_ASSIGN_OR_RETURN(std::vector<Selector> all, Parse(s));
    if (all.empty()) return Filter();  // an empty filter string matches everything
    f.any_.push_back(std::move(all));
  }
  return f;
}

bool Filter::Match(const FieldLookup& lookup) const {
  if (any_.empty()) return true;
  for (const auto& all : any_) {
    if (MatchSelectors(all, lookup)) return true;
  }
  return false;
}

}  // namespace hoist
