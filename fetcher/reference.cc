#include "fetcher/reference.h"

#include <arpa/inet.h>

#include <cctype>

namespace hoist {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTagLength = 128;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
bool ValidPathComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool ok = sep == "." || sep == "_" || sep == "__" ||
              sep.find_first_not_of('-') == std::string_view::npos;
    if (!ok) return false;
    i = j;
  }
  return true;
}

// [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?
bool ValidDomainComponent(std::string_view c) {
  if (c.empty() || !IsAlnum(c.front()) || !IsAlnum(c.back())) return false;
  for (char ch : c) {
    if (!IsAlnum(ch) && ch != '-') return false;
  }
  return true;
}

bool ValidPort(std::string_view p) {
  if (p.empty() || p.size() > 5) return false;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool ValidDomain(std::string_view d) {
  std::string_view host = d;
  std::string_view port;
  if (!d.empty() && d.front() == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view ip = d.substr(1, close - 1);
    in6_addr addr;
    if (ip.empty() || inet_pton(AF_INET6, std::string(ip).c_str(), &addr) != 1) return false;
    std::string_view after = d.substr(close + 1);
    if (after.empty()) return true;
    return after.front() == ':' && ValidPort(after.substr(1));
  }
  size_t colon = d.find(':');
  if (colon != std::string_view::npos) {
    host = d.substr(0, colon);
    port = d.substr(colon + 1);
    if (!ValidPort(port)) return false;
  }
  size_t i = 0;
  while (true) {
    size_t j = host.find('.', i);
    if (!ValidDomainComponent(host.substr(i, j == std::string_view::npos ? j : j - i))) {
      return false;
    }
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  return true;
}

// [\w][\w.-]{0,127}
bool ValidTag(std::string_view t) {
  if (t.empty() || t.size() > kMaxTagLength) return false;
  auto word = [](char c) { return IsAlnum(c) || c == '_'; };
  if (!word(t.front())) return false;
  for (char c : t) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool LooksLikeDomain(std::string_view first) {
  if (first.find_first_of(".:") != std::string_view::npos) return true;
  if (first == "localhost") return true;
  if (!first.empty() && first.front() == '[') return true;
  for (char c : first) {
    if (c >= 'A' && c <= 'Z') return true;
  }
  return false;
}

}  // namespace

Result<Reference> Reference::Parse(std::string_view text) {
  auto bad = [&](std::string_view why) {
    std::string shown(text.substr(0, 300));
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    return Fail(EINVAL, "invalid reference \"" + shown + "\": " + std::string(why));
  };
  if (text.empty()) return bad("empty");
  Reference ref;
  std::string_view name = text;
  size_t at = text.find('@');
  if (at != std::string_view::npos) {
    std::string_view digest_text = text.substr(at + 1);
    auto digest = Digest::Parse(digest_text);
    if (!digest) return bad("bad digest (want sha256:<64 lower-case hex>)");
    ref.digest = *digest;
    name = text.substr(0, at);
  }
  size_t last_slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = name.substr(colon + 1);
    if (!ValidTag(tag)) return bad("bad tag");
    ref.tag = std::string(tag);
    name = name.substr(0, colon);
  }
  if (name.empty()) return bad("empty name");
  size_t first_slash = name.find('/');
  std::string_view remainder;
  if (first_slash != std::string_view::npos && LooksLikeDomain(name.substr(0, first_slash))) {
    ref.registry = std::string(name.substr(0, first_slash));
    remainder = name.substr(first_slash + 1);
    if (!ValidDomain(ref.registry)) return bad("bad registry host");
  } else {
    ref.registry = std::string(kDockerHubRegistry);
    remainder = name;
  }
  if (ref.registry == "index.docker.io") ref.registry = std::string(kDockerHubRegistry);
  if (remainder.empty()) return bad("empty repository");
  size_t i = 0;
  while (true) {
    size_t j = remainder.find('/', i);
    std::string_view comp = remainder.substr(i, j == std::string_view::npos ? j : j - i);
    if (!ValidPathComponent(comp)) {
      for (char c : comp) {
        if (c >= 'A' && c <= 'Z') return bad("repository name must be lowercase");
      }
      return bad(comp.empty() ? "empty path component" : "bad repository name");
    }
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  ref.repository = std::string(remainder);
  if (ref.registry == kDockerHubRegistry && ref.repository.find('/') == std::string::npos) {
    if (IsHex64(ref.repository)) return bad("cannot be a 64-character hexadecimal string");
    ref.repository = "library/" + ref.repository;
  }
  if (ref.registry.size() + 1 + ref.repository.size() > kMaxNameLength) {
    return bad("name longer than 255 characters");
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

std::string Reference::Name() const { return registry + "/" + repository; }

std::string Reference::String() const {
  std::string out = Name();
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest.str();
  return out;
}

std::string Reference::ApiHost() const { return RegistryApiHost(registry); }

std::string Reference::Identifier() const { return digest.empty() ? tag : digest.str(); }

Reference Reference::WithTag(std::string_view new_tag) const {
  Reference r = *this;
  r.tag = std::string(new_tag);
  r.digest = Digest();
  return r;
}

Reference Reference::WithDigest(const Digest& new_digest) const {
  Reference r = *this;
  r.tag.clear();
  r.digest = new_digest;
  return r;
}

std::string RegistryApiHost(std::string_view registry) {
  if (registry == kDockerHubRegistry || registry == "index.docker.io") {
    return std::string(kDockerHubApiHost);
  }
  return std::string(registry);
}

std::string RegistryHostName(std::string_view registry) {
  if (!registry.empty() && registry.front() == '[') {
    size_t close = registry.find(']');
    if (close != std::string_view::npos) return std::string(registry.substr(1, close - 1));
    return std::string(registry);
  }
  return std::string(registry.substr(0, registry.find(':')));
}

bool IsLoopbackRegistry(std::string_view registry) {
  std::string host = RegistryHostName(registry);
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (host == "localhost" || host == "::1") return true;
  in_addr addr;
  if (inet_pton(AF_INET, host.c_str(), &addr) == 1) {
    return (ntohl(addr.s_addr) >> 24) == 127;
  }
  return false;
}

}  // namespace hoist
