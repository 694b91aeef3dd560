#include "fetcher/www_authenticate.h"

#include <cctype>
#include <cstring>

namespace hoist {
namespace {

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~/", c);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Result<std::vector<AuthChallenge>> Run() {
    std::vector<AuthChallenge> out;
    while (true) {
      SkipSpaceAndCommas();
      if (AtEnd()) break;
      std::string_view scheme = Token();
      if (scheme.empty()) return Bad("expected an auth scheme");
      AuthChallenge challenge;
      challenge.scheme = Lower(scheme);
      HOIST_RETURN_IF_ERROR(Params(&challenge));
      out.push_back(std::move(challenge));
    }
    if (out.empty()) return Bad("no challenge");
    return out;
  }

 private:
  Status Params(AuthChallenge* c) {
    bool first = true;
    while (true) {
      size_t save = pos_;
      SkipSpace();
      std::string_view name = Token();
      if (name.empty()) {
        pos_ = save;
        return Ok();
      }
      SkipSpace();
      if (Peek() == '=') {
        size_t eq_start = pos_;
        while (Peek() == '=') ++pos_;
        size_t after_eq = pos_;
        SkipSpace();
        if (first && (AtEnd() || Peek() == ',') && pos_ - eq_start >= 1 &&
            NextIsNotParamValue(after_eq)) {
          // token68 with '=' padding ("Basic dXNlcg==").
          c->token68 = std::string(name) + std::string(s_.substr(eq_start, after_eq - eq_start));
          return Ok();
        }
        pos_ = eq_start + 1;
        SkipSpace();
        std::string value;
        if (Peek() == '"') {
          HOIST_RETURN_IF_ERROR(Quoted(&value));
        } else {
          size_t start = pos_;
          while (!AtEnd() && s_[pos_] != ',' &&
                 !std::isspace(static_cast<unsigned char>(s_[pos_]))) {
            ++pos_;
          }
          value = std::string(s_.substr(start, pos_ - start));
        }
        c->params[Lower(name)] = std::move(value);
        first = false;
        SkipSpace();
        if (AtEnd()) return Ok();
        if (Peek() != ',') return Bad("expected ',' between parameters");
        // Is the next item another parameter, or the next challenge's scheme?
        size_t comma = pos_;
        SkipSpaceAndCommas();
        std::string_view next = Token();
        SkipSpace();
        bool is_param = !next.empty() && Peek() == '=';
        pos_ = comma;
        if (!is_param) return Ok();
        SkipSpaceAndCommas();
        continue;
      }
      if (first) {
        c->token68 = std::string(name);
        return Ok();
      }
      pos_ = save;
      return Ok();
    }
  }

  // After "name=" the padding run ended at after_eq; a token68 is followed by end or ','.
  bool NextIsNotParamValue(size_t after_eq) const {
    size_t p = after_eq;
    while (p < s_.size() && std::isspace(static_cast<unsigned char>(s_[p]))) ++p;
    return p >= s_.size() || s_[p] == ',';
  }

  Status Quoted(std::string* out) {
    ++pos_;  // opening quote
    while (!AtEnd()) {
      char c = s_[pos_++];
      if (c == '"') return Ok();
      if (c == '\\') {
        if (AtEnd()) break;
        c = s_[pos_++];
      }
      out->push_back(c);
    }
    return Bad("unterminated quoted string");
  }

  std::string_view Token() {
    size_t start = pos_;
    while (!AtEnd() && IsTokenChar(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }
  void SkipSpace() {
    while (!AtEnd() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void SkipSpaceAndCommas() {
    while (!AtEnd() && (s_[pos_] == ',' || std::isspace(static_cast<unsigned char>(s_[pos_])))) {
      ++pos_;
    }
  }
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[pos_]; }

  std::unexpected<Error> Bad(std::string_view why) const {
    std::string shown(s_.substr(0, 120));
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    return Fail(EINVAL, "malformed WWW-Authenticate header \"" + shown + "\": " + std::string(why));
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

std::string AuthChallenge::Param(std::string_view name) const {
  auto it = params.find(std::string(name));
  return it == params.end() ? std::string() : it->second;
}

Result<std::vector<AuthChallenge>> ParseWwwAuthenticate(std::string_view header) {
  return Parser(header).Run();
}

}  // namespace hoist
