// Content digests ("sha256:<64 lowercase hex>") and the hashing that produces them.
//
// Sha256 is a streaming hasher (OpenSSL EVP underneath). Digest is a validated value: a
// Digest always holds a well-formed algorithm:hex string, so code that receives one never
// re-validates it. Only sha256 is accepted (what every registry and format here uses).
//
// Thread-safety: Sha256 objects are not shared between threads; Digest is a plain value.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace hoist {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Returns the raw 32-byte hash. The hasher must not be used afterwards except via Reset.
  std::array<uint8_t, 32> Final();
  void Reset();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

class Digest {
 public:
  Digest() = default;  // empty: "no digest"
  // Parses "sha256:<64 hex>". Upper-case hex is rejected, as the OCI spec says.
  static Result<Digest> Parse(std::string_view text);
  static Digest FromSha256(const std::array<uint8_t, 32>& raw);
  static Digest Of(std::string_view data);

  bool empty() const { return !set_; }
  // "sha256:<hex>", or "" for an empty digest. Built on each call (the value holds raw bytes,
  // 33 bytes with no heap, because layer indexes hold millions of them): never keep a
  // string_view into the result past the full expression.
  std::string str() const;
  // The 64 hex digits ("" for an empty digest).
  std::string hex() const;
  // The 32 raw bytes (all zero for an empty digest).
  const std::array<uint8_t, 32>& raw() const { return raw_; }
  // A well-mixed hash for unordered containers (the digest's own first bytes).
  size_t Hash() const;

  friend bool operator==(const Digest&, const Digest&) = default;
  // Empty first, then by bytes (the same order as by text).
  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  bool set_ = false;
  std::array<uint8_t, 32> raw_{};
};

struct DigestHash {
  size_t operator()(const Digest& d) const { return d.Hash(); }
};

std::string HexEncode(const void* data, size_t size);

// Standard base64 (RFC 4648, with padding).
std::string Base64Encode(std::string_view data);
Result<std::string> Base64Decode(std::string_view text);

}  // namespace hoist
