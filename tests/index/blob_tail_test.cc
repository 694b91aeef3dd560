// BlobTail: one request for footer + TOC when the guess covers it, exactly the missing part
// otherwise, and exact bytes either way.
#include "index/blob_tail.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace hoist {
namespace {

struct CountingBlob {
  std::string bytes;
  std::vector<std::pair<uint64_t, uint64_t>> reads;
  BlobRangeReader Reader() {
    return [this](uint64_t off, uint64_t len) -> Result<std::string> {
      reads.emplace_back(off, len);
      return bytes.substr(off, len);
    };
  }
};

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 256) & 0xff);
  return s;
}

TEST(BlobTailTest, GuessIsAboutOnePercentBetweenBounds) {
  EXPECT_EQ(TailGuess(10, 51), 10u);             // never more than the blob
  EXPECT_EQ(TailGuess(1 << 20, 51), 64u << 10);  // the floor
  EXPECT_EQ(TailGuess(50ull << 20, 51), (50ull << 20) / 100);
  EXPECT_EQ(TailGuess(10ull << 30, 51), 1u << 20);        // the ceiling
  EXPECT_EQ(TailGuess(10ull << 30, 2u << 20), 2u << 20);  // at least the footer
}

TEST(BlobTailTest, RangeInsideTheTailCostsNoRequest) {
  CountingBlob blob{Pattern(1 << 20), {}};
  auto tail = ReadBlobTail(blob.Reader(), blob.bytes.size(), 51);
  ASSERT_TRUE(tail) << tail.error().message();
  ASSERT_EQ(blob.reads.size(), 1u);
  EXPECT_EQ(blob.reads[0], std::make_pair(uint64_t{(1 << 20) - (64 << 10)}, uint64_t{64 << 10}));
  auto toc = ReadBlobRange(blob.Reader(), *tail, (1 << 20) - 1000, 900);
  ASSERT_TRUE(toc);
  EXPECT_EQ(*toc, blob.bytes.substr((1 << 20) - 1000, 900));
  EXPECT_EQ(blob.reads.size(), 1u);
}

TEST(BlobTailTest, RangeStartingBeforeTheTailFetchesOnlyTheHead) {
  CountingBlob blob{Pattern(1 << 20), {}};
  auto tail = ReadBlobTail(blob.Reader(), blob.bytes.size(), 51);
  ASSERT_TRUE(tail);
  const uint64_t start = tail->start - 5000;
  auto toc = ReadBlobRange(blob.Reader(), *tail, start, 7000);
  ASSERT_TRUE(toc);
  EXPECT_EQ(*toc, blob.bytes.substr(start, 7000));
  ASSERT_EQ(blob.reads.size(), 2u);
  EXPECT_EQ(blob.reads[1], std::make_pair(start, uint64_t{5000}));
}

TEST(BlobTailTest, RangeBeforeTheTailIsOneRead) {
  CountingBlob blob{Pattern(1 << 20), {}};
  auto tail = ReadBlobTail(blob.Reader(), blob.bytes.size(), 51);
  ASSERT_TRUE(tail);
  auto bytes = ReadBlobRange(blob.Reader(), *tail, 100, 200);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(*bytes, blob.bytes.substr(100, 200));
  ASSERT_EQ(blob.reads.size(), 2u);
  EXPECT_EQ(blob.reads[1], std::make_pair(uint64_t{100}, uint64_t{200}));
}

TEST(BlobTailTest, ShortReadIsAnError) {
  BlobRangeReader shorty = [](uint64_t, uint64_t len) -> Result<std::string> {
    return std::string(len / 2, 'x');
  };
  auto tail = ReadBlobTail(shorty, 1 << 20, 51);
  ASSERT_FALSE(tail);
  EXPECT_EQ(tail.error().code(), EIO);
}

}  // namespace
}  // namespace hoist
