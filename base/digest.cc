#include "base/digest.h"

#include <openssl/evp.h>

#include <cstring>

namespace hoist {

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  Reset();
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Reset() { EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr); }

void Sha256::Update(const void* data, size_t size) {
  if (size) EVP_DigestUpdate(ctx_->md, data, size);
}

std::array<uint8_t, 32> Sha256::Final() {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, out.data(), &len);
  return out;
}

std::string HexEncode(const void* data, size_t size) {
  static const char kHex[] = "0123456789abcdef";
  const auto* p = static_cast<const uint8_t*>(data);
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 15];
  }
  return out;
}

Result<Digest> Digest::Parse(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  if (!text.starts_with(kPrefix) || text.size() != kPrefix.size() + 64) {
    return Fail(EINVAL, "invalid digest \"" + std::string(text.substr(0, 80)) +
                            "\" (want sha256:<64 hex digits>)");
  }
  // Lower-case hex only (upper case is not canonical). Written without a table or branches so
  // the compiler vectorises it: a TOC holds two digests per file.
  const auto* h = reinterpret_cast<const unsigned char*>(text.data() + kPrefix.size());
  uint8_t nibbles[64];
  uint8_t bad = 0;
  for (size_t i = 0; i < 64; ++i) {
    const uint8_t c = h[i];
    const uint8_t digit = static_cast<uint8_t>(c - '0');
    const uint8_t alpha = static_cast<uint8_t>(c - 'a');
    const bool is_digit = digit < 10;
    const bool is_alpha = alpha < 6;
    bad |= static_cast<uint8_t>(!(is_digit | is_alpha));
    nibbles[i] = is_digit ? digit : static_cast<uint8_t>(alpha + 10);
  }
  Digest d;
  for (size_t i = 0; i < 32; ++i) {
    d.raw_[i] = static_cast<uint8_t>(nibbles[2 * i] << 4 | nibbles[2 * i + 1]);
  }
  if (bad != 0) return Fail(EINVAL, "invalid digest \"" + std::string(text) + "\" (bad hex)");
  d.set_ = true;
  return d;
}

Digest Digest::FromSha256(const std::array<uint8_t, 32>& raw) {
  Digest d;
  d.set_ = true;
  d.raw_ = raw;
  return d;
}

Digest Digest::Of(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return FromSha256(h.Final());
}

std::string Digest::str() const {
  if (!set_) return {};
  return "sha256:" + HexEncode(raw_.data(), raw_.size());
}

std::string Digest::hex() const {
  if (!set_) return {};
  return HexEncode(raw_.data(), raw_.size());
}

size_t Digest::Hash() const {
  size_t h = 0;
  std::memcpy(&h, raw_.data(), sizeof(h));
  return h;
}

std::string Base64Encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(n < 0 ? 0 : n);
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  // Strip whitespace/newlines some producers insert.
  std::string clean;
  clean.reserve(text.size());
  for (char c : text) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') clean.push_back(c);
  }
  if (clean.size() % 4 != 0) {
    // Accept unpadded input.
    while (clean.size() % 4 != 0) clean.push_back('=');
  }
  std::string out(3 * (clean.size() / 4), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) return Fail(EINVAL, "invalid base64");
  size_t pad = 0;
  if (!clean.empty() && clean.back() == '=') ++pad;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace hoist
