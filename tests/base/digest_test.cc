#include "base/digest.h"

#include <gtest/gtest.h>

namespace hoist {
namespace {

TEST(DigestTest, OfEmptyStringIsWellKnown) {
  EXPECT_EQ(Digest::Of("").str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(DigestTest, ParseRejectsMalformed) {
  EXPECT_FALSE(Digest::Parse("sha256:abc").has_value());
  EXPECT_FALSE(Digest::Parse("md5:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
                   .has_value());
  EXPECT_FALSE(
      Digest::Parse("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")
          .has_value());
  auto d = Digest::Parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->raw()[0], 0xe3);
  EXPECT_EQ(d->raw()[31], 0x55);
  EXPECT_EQ(Digest::FromSha256(d->raw()), *d);
}

// Every byte value at every hex position: accepted exactly when it is 0-9 or a-f, and then it
// lands in the right nibble.
TEST(DigestTest, ParseAcceptsExactlyLowerCaseHexAtEveryPosition) {
  const std::string base = "sha256:" + std::string(64, '0');
  for (size_t pos = 0; pos < 64; ++pos) {
    for (int c = 0; c < 256; ++c) {
      std::string text = base;
      text[7 + pos] = static_cast<char>(c);
      auto d = Digest::Parse(text);
      const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      ASSERT_EQ(d.has_value(), hex) << "byte " << c << " at " << pos;
      if (!hex) continue;
      const int value = c <= '9' ? c - '0' : c - 'a' + 10;
      const uint8_t byte = d->raw()[pos / 2];
      ASSERT_EQ(pos % 2 == 0 ? byte >> 4 : byte & 15, value) << "byte " << c << " at " << pos;
      ASSERT_EQ(pos % 2 == 0 ? byte & 15 : byte >> 4, 0) << "byte " << c << " at " << pos;
    }
  }
}

TEST(DigestTest, StreamingEqualsOneShot) {
  Sha256 h;
  h.Update("hello ");
  h.Update("world");
  EXPECT_EQ(Digest::FromSha256(h.Final()), Digest::Of("hello world"));
}

TEST(Base64Test, RoundTripsBinary) {
  std::string data("\x00\xff\x10 a=b", 7);
  EXPECT_EQ(Base64Encode(data), "AP8QIGE9Yg==");
  auto back = Base64Decode("AP8QIGE9Yg==");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, data);
  EXPECT_EQ(*Base64Decode("dXNlcjpwYXNz"), "user:pass");
  EXPECT_EQ(*Base64Decode("YQ"), "a");
  EXPECT_FALSE(Base64Decode("!!!!").has_value());
}

}  // namespace
}  // namespace hoist
