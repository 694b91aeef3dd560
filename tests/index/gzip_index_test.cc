// Checkpoint (zran) indexes: built while a gzip or zstd stream is decoded once, serialized,
// parsed back, and used to extract random uncompressed ranges, which must equal the same bytes of
// a full decode; hostile indexes are refused with one line, or (when they are structurally valid
// but lie) fail to decode or give bytes a digest check catches.
#include "index/gzip_index.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <random>
#include <string>
#include <vector>

#include "base/digest.h"
#include "tests/harness/gzip_bytes.h"

namespace hoist {
namespace {

// Text-like bytes that compress about 3:1, with some incompressible runs, so deflate emits
// many blocks of both kinds.
std::string MakeData(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  static const char* kWords[] = {"import ", "json", "sqlite3", " = ",  "def ",         "(self)",
                                 "\n",      "    ", "return ", "None", "lib/python3/", ".py"};
  std::string out;
  out.reserve(n);
  while (out.size() < n) {
    if (rng() % 50 == 0) {
      for (int i = 0; i < 3000 && out.size() < n; ++i) out.push_back(static_cast<char>(rng()));
    } else {
      out += kWords[rng() % 12];
    }
  }
  out.resize(n);
  return out;
}

using testing::Gzip;

std::string Zstd(std::string_view data, int level = 3) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

struct Built {
  std::string plain;
  std::string blob;
  CheckpointIndex index;
};

// Decodes `blob` through an IndexingDecoder in uneven pieces, checking the output is `plain`.
CheckpointIndex BuildIndex(CheckpointCodec codec, const std::string& blob, const std::string& plain,
                           uint64_t span) {
  IndexingDecoder dec(codec, span);
  std::mt19937 rng(7);
  std::string got;
  std::string out(1 << 16, '\0');
  size_t at = 0;
  while (at < blob.size()) {
    const size_t n = std::min<size_t>(blob.size() - at, 1 + rng() % 100000);
    std::string_view piece(blob.data() + at, n);
    while (!piece.empty()) {
      auto step = dec.Decode(piece, std::span<char>(out.data(), 1 + rng() % out.size()));
      EXPECT_TRUE(step.has_value()) << step.error().message();
      if (!step) return {};
      got.append(out.data(), step->produced);
      piece.remove_prefix(step->consumed);
      if (step->consumed == 0 && step->produced == 0) break;
    }
    at += n;
  }
  EXPECT_TRUE(dec.at_member_end());
  EXPECT_EQ(got, plain);
  Digest digest = Digest::Of(blob);
  auto index = dec.Finish(digest, blob.size());
  EXPECT_TRUE(index.has_value()) << index.error().message();
  return index ? *index : CheckpointIndex{};
}

Result<std::string> ExtractVia(const CheckpointIndex& index, const std::string& blob,
                               uint64_t begin, uint64_t end) {
  HOIST_ASSIGN_OR_RETURN(SpanPlan plan, PlanExtract(index, begin, end));
  EXPECT_LE(plan.in_begin, plan.in_end);
  EXPECT_LE(plan.in_end, blob.size());
  return ExtractRange(index, plan,
                      std::string_view(blob).substr(plan.in_begin, plan.in_end - plan.in_begin),
                      begin, end);
}

void CheckRandomRanges(const CheckpointIndex& index, const std::string& blob,
                       const std::string& plain, int count, uint32_t seed) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < count; ++i) {
    uint64_t a = rng() % plain.size();
    uint64_t len =
        1 + rng() % (i % 4 == 0 ? plain.size() - a : std::min<uint64_t>(200000, plain.size() - a));
    uint64_t b = a + len;
    auto got = ExtractVia(index, blob, a, b);
    ASSERT_TRUE(got.has_value()) << "[" << a << ", " << b << "): " << got.error().message();
    ASSERT_EQ(*got, plain.substr(a, b - a)) << "[" << a << ", " << b << ")";
  }
  // The very first and last bytes, and ranges around every checkpoint.
  for (const Checkpoint& cp : index.checkpoints) {
    for (uint64_t a : {cp.out_offset, cp.out_offset > 0 ? cp.out_offset - 1 : 0}) {
      const uint64_t b = std::min<uint64_t>(plain.size(), a + 3);
      if (a >= b) continue;
      auto got = ExtractVia(index, blob, a, b);
      ASSERT_TRUE(got.has_value()) << got.error().message();
      ASSERT_EQ(*got, plain.substr(a, b - a));
    }
  }
  auto all = ExtractVia(index, blob, 0, plain.size());
  ASSERT_TRUE(all.has_value());
  ASSERT_EQ(*all, plain);
}

// Serializes and parses back: equal, and every range extracts.
CheckpointIndex RoundTrip(const CheckpointIndex& index, const std::string& blob) {
  std::string bytes = SerializeCheckpointIndex(index);
  auto parsed = ParseCheckpointIndex(bytes, blob.size(), index.blob);
  EXPECT_TRUE(parsed.has_value()) << parsed.error().message();
  if (!parsed) return {};
  EXPECT_EQ(*parsed, index);
  return *parsed;
}

TEST(GzipIndex, SingleMemberRandomRangesAtSeveralSpans) {
  const std::string plain = MakeData(6 << 20, 1);
  const std::string blob = Gzip(plain);
  for (uint64_t span : {64ull << 10, 256ull << 10, 512ull << 10, 1ull << 20}) {
    SCOPED_TRACE("span " + std::to_string(span));
    CheckpointIndex index = BuildIndex(CheckpointCodec::kGzip, blob, plain, span);
    EXPECT_EQ(index.stream_size, plain.size());
    EXPECT_GE(index.checkpoints.size(), blob.size() / span / 2) << "too few checkpoints";
    for (size_t i = 1; i < index.checkpoints.size(); ++i) {
      EXPECT_EQ(index.checkpoints[i].kind, CheckpointKind::kDeflateBlock);
      EXPECT_GE(index.checkpoints[i].in_offset - index.checkpoints[i - 1].in_offset, span);
    }
    CheckpointIndex parsed = RoundTrip(index, blob);
    CheckRandomRanges(parsed, blob, plain, 60, static_cast<uint32_t>(span));
  }
}

TEST(GzipIndex, ReadsFetchOnlyTheCoveringSpans) {
  const std::string plain = MakeData(8 << 20, 2);
  const std::string blob = Gzip(plain);
  CheckpointIndex index = BuildIndex(CheckpointCodec::kGzip, blob, plain, 256 << 10);
  auto plan = PlanExtract(index, 5 << 20, (5 << 20) + 1000);
  ASSERT_TRUE(plan.has_value());
  // A small read needs about one span, not the blob.
  EXPECT_LT(plan->in_end - plan->in_begin, 3u * (256 << 10));
}

TEST(GzipIndex, MultiMemberStreams) {
  // Members of uneven sizes, some smaller than a window, one empty.
  std::string plain, blob;
  std::mt19937 rng(3);
  for (int m = 0; m < 12; ++m) {
    size_t n = m == 5 ? 0 : (m % 3 == 0 ? 1000 + rng() % 20000 : 200000 + rng() % 900000);
    std::string part = MakeData(n, 100 + m);
    plain += part;
    blob += Gzip(part, m % 9 + 1);
  }
  for (uint64_t span : {4096ull, 64ull << 10, 512ull << 10, 4ull << 20}) {
    SCOPED_TRACE("span " + std::to_string(span));
    CheckpointIndex index = BuildIndex(CheckpointCodec::kGzip, blob, plain, span);
    const bool has_member_start =
        std::any_of(index.checkpoints.begin() + 1, index.checkpoints.end(),
                    [](const Checkpoint& c) { return c.kind == CheckpointKind::kMemberStart; });
    if (span == 4096) {  // every member start (each member is larger than a span)
      EXPECT_TRUE(has_member_start);
    }
    CheckpointIndex parsed = RoundTrip(index, blob);
    CheckRandomRanges(parsed, blob, plain, 60, static_cast<uint32_t>(span) + 1);
  }
}

TEST(GzipIndex, ZstdMultiFrameCheckpointsAtFrames) {
  std::string plain, blob;
  for (int f = 0; f < 16; ++f) {
    std::string part = MakeData(300000 + f * 1000, 200 + f);
    plain += part;
    blob += Zstd(part);
  }
  for (uint64_t span : {4096ull, 256ull << 10, 1ull << 20}) {
    SCOPED_TRACE("span " + std::to_string(span));
    CheckpointIndex index = BuildIndex(CheckpointCodec::kZstd, blob, plain, span);
    if (span == 4096) {
      EXPECT_EQ(index.checkpoints.size(), 16u);
    }
    for (const Checkpoint& c : index.checkpoints) EXPECT_EQ(c.kind, CheckpointKind::kMemberStart);
    CheckpointIndex parsed = RoundTrip(index, blob);
    CheckRandomRanges(parsed, blob, plain, 40, static_cast<uint32_t>(span) + 2);
  }
}

TEST(GzipIndex, ZstdSingleFrameHasOnlyTheStart) {
  const std::string plain = MakeData(3 << 20, 4);
  const std::string blob = Zstd(plain);
  CheckpointIndex index = BuildIndex(CheckpointCodec::kZstd, blob, plain, 4096);
  EXPECT_EQ(index.checkpoints.size(), 1u);
  CheckRandomRanges(index, blob, plain, 5, 9);
}

TEST(GzipIndex, ZlibWrappedMemberIsNotIndexed) {
  const std::string plain = MakeData(1 << 20, 5);
  std::string blob(compressBound(plain.size()), '\0');
  uLongf n = blob.size();
  ASSERT_EQ(compress(reinterpret_cast<Bytef*>(blob.data()), &n,
                     reinterpret_cast<const Bytef*>(plain.data()), plain.size()),
            Z_OK);
  blob.resize(n);
  IndexingDecoder dec(CheckpointCodec::kGzip, 4096);
  std::string out(plain.size() + 10, '\0');
  std::string_view in = blob;
  size_t produced = 0;
  while (!in.empty()) {
    auto step = dec.Decode(in, std::span<char>(out.data() + produced, out.size() - produced));
    ASSERT_TRUE(step.has_value());
    in.remove_prefix(step->consumed);
    produced += step->produced;
  }
  EXPECT_EQ(produced, plain.size());  // decoding goes on...
  auto index = dec.Finish(Digest(), blob.size());
  ASSERT_FALSE(index.has_value());  // ...but no index is made
  EXPECT_EQ(index.error().code(), ENOTSUP);
}

// --- hostile indexes ---

class HostileIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    plain_ = MakeData(4 << 20, 6);
    blob_ = Gzip(plain_);
    index_ = BuildIndex(CheckpointCodec::kGzip, blob_, plain_, 128 << 10);
    ASSERT_GE(index_.checkpoints.size(), 4u);
  }
  // The parser's verdict on a modified index: the error's message, or "" if accepted.
  std::string Verdict(const CheckpointIndex& index) {
    auto parsed = ParseCheckpointIndex(SerializeCheckpointIndex(index), blob_.size());
    if (parsed) return "";
    EXPECT_EQ(parsed.error().code(), EBADMSG);
    EXPECT_EQ(parsed.error().message().find('\n'), std::string::npos);
    EXPECT_EQ(parsed.error().message().rfind("checkpoint index: ", 0), 0u);
    return parsed.error().message();
  }
  std::string plain_, blob_;
  CheckpointIndex index_;
};

TEST_F(HostileIndex, CheckpointPastTheEnd) {
  CheckpointIndex bad = index_;
  bad.checkpoints.back().in_offset = blob_.size() + 10;
  EXPECT_NE(Verdict(bad).find("past the blob's end"), std::string::npos) << Verdict(bad);
  bad = index_;
  bad.checkpoints.back().out_offset = plain_.size();
  EXPECT_NE(Verdict(bad).find("past the stream's end"), std::string::npos);
}

TEST_F(HostileIndex, NonMonotonicOffsets) {
  CheckpointIndex bad = index_;
  std::swap(bad.checkpoints[1].in_offset, bad.checkpoints[2].in_offset);
  EXPECT_NE(Verdict(bad).find("does not increase"), std::string::npos);
  bad = index_;
  bad.checkpoints[2].out_offset = bad.checkpoints[1].out_offset - 1;
  EXPECT_NE(Verdict(bad).find("decreases"), std::string::npos);
}

TEST_F(HostileIndex, WindowsOfTheWrongSize) {
  CheckpointIndex bad = index_;
  std::string small(1000, 'x');
  std::string packed(ZSTD_compressBound(small.size()), '\0');
  packed.resize(ZSTD_compress(packed.data(), packed.size(), small.data(), small.size(), 1));
  bad.checkpoints[1].window = packed;
  EXPECT_NE(Verdict(bad).find("window"), std::string::npos);
  bad = index_;
  bad.checkpoints[1].window.clear();
  EXPECT_NE(Verdict(bad), "");
  bad = index_;
  bad.checkpoints[0].window = index_.checkpoints[1].window;  // a window at a member start
  EXPECT_NE(Verdict(bad).find("member start"), std::string::npos);
  bad = index_;
  bad.checkpoints[1].window.push_back('\0');  // trailing garbage after the frame
  EXPECT_NE(Verdict(bad), "");
}

TEST_F(HostileIndex, BadHeaderFieldsAndTruncation) {
  std::string bytes = SerializeCheckpointIndex(index_);
  EXPECT_FALSE(ParseCheckpointIndex(bytes, blob_.size() + 1).has_value());  // another blob size
  Digest other = Digest::Of("other");
  EXPECT_FALSE(ParseCheckpointIndex(bytes, blob_.size(), other).has_value());
  for (size_t cut : {size_t{0}, size_t{10}, size_t{71}, size_t{72}, bytes.size() - 1}) {
    EXPECT_FALSE(ParseCheckpointIndex(bytes.substr(0, cut), blob_.size()).has_value()) << cut;
  }
  EXPECT_FALSE(ParseCheckpointIndex(bytes + "x", blob_.size()).has_value());
  CheckpointIndex b = index_;
  b.checkpoints[1].bits = 8;
  EXPECT_NE(Verdict(b).find("unread bits"), std::string::npos);
  CheckpointLimits tight;
  tight.max_checkpoints = 2;
  EXPECT_FALSE(ParseCheckpointIndex(bytes, blob_.size(), {}, tight).has_value());
}

// External windows (format version 2, published indexes): SplitWindows moves every window into
// one blob, the table round-trips, and every range extracts with the window fetched from that
// blob by its recorded range, as the reader does.
TEST(GzipIndex, ExternalWindowsRoundTripAndExtract) {
  const std::string plain = MakeData(3 << 20, 11);
  const std::string blob = Gzip(plain);
  const CheckpointIndex inline_index = BuildIndex(CheckpointCodec::kGzip, blob, plain, 128 << 10);
  SplitIndex split = SplitWindows(inline_index);
  ASSERT_TRUE(split.index.external_windows());
  EXPECT_EQ(split.index.windows_blob, Digest::Of(split.windows));
  EXPECT_EQ(split.index.windows_size, split.windows.size());
  size_t windows = 0, packed_bytes = 0;
  for (size_t i = 0; i < inline_index.checkpoints.size(); ++i) {
    const Checkpoint& was = inline_index.checkpoints[i];
    const Checkpoint& cp = split.index.checkpoints[i];
    EXPECT_TRUE(cp.window.empty());
    if (cp.kind != CheckpointKind::kDeflateBlock) continue;
    ++windows;
    packed_bytes += was.window.size();
    ASSERT_EQ(split.windows.substr(cp.window_offset, cp.window_size), was.window);
    EXPECT_TRUE(CheckWindow(cp, was.window).has_value());
  }
  ASSERT_GT(windows, 3u);
  EXPECT_EQ(split.windows.size(), packed_bytes);
  const std::string table = SerializeCheckpointIndex(split.index);
  EXPECT_LE(table.size(), 112 + inline_index.checkpoints.size() * 64);
  auto parsed = ParseCheckpointIndex(table, blob.size(), Digest::Of(blob));
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
  EXPECT_EQ(*parsed, split.index);
  // The version 1 index still parses (the store keeps what a mount indexed itself that way).
  EXPECT_TRUE(ParseCheckpointIndex(SerializeCheckpointIndex(inline_index), blob.size()));
  std::mt19937_64 rng(3);
  for (int i = 0; i < 40; ++i) {
    const uint64_t a = rng() % plain.size();
    const uint64_t b = std::min<uint64_t>(plain.size(), a + 1 + rng() % 300000);
    auto plan = PlanExtract(*parsed, a, b);
    ASSERT_TRUE(plan.has_value());
    const Checkpoint& cp = parsed->checkpoints[plan->checkpoint];
    const std::string_view span =
        std::string_view(blob).substr(plan->in_begin, plan->in_end - plan->in_begin);
    std::string_view window;
    if (cp.kind == CheckpointKind::kDeflateBlock) {
      window = std::string_view(split.windows).substr(cp.window_offset, cp.window_size);
      // Without its window a block checkpoint cannot be decoded.
      auto missing = ExtractRange(*parsed, *plan, span, a, b);
      ASSERT_FALSE(missing.has_value());
      EXPECT_EQ(missing.error().code(), EIO);
    }
    auto got = ExtractRange(*parsed, *plan, span, a, b, window);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    ASSERT_EQ(*got, plain.substr(a, b - a));
  }
  // No window to move (a zstd index): unchanged, no blob.
  std::string frames;
  for (int f = 0; f < 4; ++f) frames += Zstd(MakeData(300000, 40 + f));
  const CheckpointIndex z = BuildIndex(
      CheckpointCodec::kZstd, frames,
      MakeData(300000, 40) + MakeData(300000, 41) + MakeData(300000, 42) + MakeData(300000, 43),
      4096);
  SplitIndex zsplit = SplitWindows(z);
  EXPECT_TRUE(zsplit.windows.empty());
  EXPECT_EQ(zsplit.index, z);
}

// Hostile external windows: a range past the end of the windows blob, a bad windows blob size
// in the table, and (at fetch time, CheckWindow) a window whose sha256 or size is not the
// table's, or that is not a 32 KiB frame: each refused with one line.
TEST_F(HostileIndex, ExternalWindowsThatLie) {
  SplitIndex split = SplitWindows(index_);
  ASSERT_TRUE(split.index.external_windows());
  ASSERT_EQ(Verdict(split.index), "");
  size_t k = 1;
  while (split.index.checkpoints[k].kind != CheckpointKind::kDeflateBlock) ++k;
  CheckpointIndex bad = split.index;
  bad.checkpoints[k].window_offset = split.windows.size() - 10;
  EXPECT_NE(Verdict(bad).find("past the end of the windows blob"), std::string::npos)
      << Verdict(bad);
  bad = split.index;
  bad.checkpoints[k].window_offset = UINT64_MAX - 5;  // no overflow
  EXPECT_NE(Verdict(bad).find("past the end of the windows blob"), std::string::npos);
  bad = split.index;
  bad.checkpoints[k].window_size = 0;
  EXPECT_NE(Verdict(bad).find("packed bytes"), std::string::npos);
  bad = split.index;
  bad.checkpoints[k].window_size = 1u << 20;
  EXPECT_NE(Verdict(bad).find("packed bytes"), std::string::npos);
  bad = split.index;
  bad.windows_size = 0;
  EXPECT_NE(Verdict(bad).find("windows blob of 0 bytes"), std::string::npos);
  // Truncated inside the external fields.
  const std::string bytes = SerializeCheckpointIndex(split.index);
  for (size_t cut : {size_t{80}, size_t{111}, bytes.size() - 1, bytes.size() - 33}) {
    EXPECT_FALSE(ParseCheckpointIndex(bytes.substr(0, cut), blob_.size()).has_value()) << cut;
  }

  const Checkpoint& cp = split.index.checkpoints[k];
  const std::string good = split.windows.substr(cp.window_offset, cp.window_size);
  ASSERT_TRUE(CheckWindow(cp, good).has_value());
  auto expect_refused = [](const Status& st, std::string_view why) {
    ASSERT_FALSE(st.has_value()) << why;
    EXPECT_EQ(st.error().code(), EBADMSG);
    EXPECT_NE(st.error().message().find(why), std::string::npos) << st.error().message();
    EXPECT_EQ(st.error().message().find('\n'), std::string::npos);
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 1;
  expect_refused(CheckWindow(cp, flipped), "does not match its sha256");
  expect_refused(CheckWindow(cp, good + "x"), "the index says");
  expect_refused(CheckWindow(cp, good.substr(1)), "the index says");
  // The right digest and size of a frame that is not 32 KiB.
  const std::string half(kDeflateWindowBytes / 2, 'x');
  std::string packed(ZSTD_compressBound(half.size()), '\0');
  packed.resize(ZSTD_compress(packed.data(), packed.size(), half.data(), half.size(), 1));
  Checkpoint liar = cp;
  liar.window_size = static_cast<uint32_t>(packed.size());
  liar.window_digest = Digest::Of(packed);
  expect_refused(CheckWindow(liar, packed), "32768");
}

// A span table that lies but passes the parser: a wrong bit count or a shifted compressed
// offset. Decoding either fails or gives bytes that differ from the truth; a digest check (as
// the read path does for a whole file) catches every such case, so nothing wrong is served.
TEST_F(HostileIndex, LyingOffsetsNeverPassADigestCheck) {
  int refused = 0, decode_errors = 0, caught_by_digest = 0;
  for (size_t k = 1; k < index_.checkpoints.size(); ++k) {
    for (int variant = 0; variant < 3; ++variant) {
      CheckpointIndex bad = index_;
      Checkpoint& cp = bad.checkpoints[k];
      if (variant == 0) cp.bits = static_cast<uint8_t>((cp.bits + 3) % 8);
      if (variant == 1) cp.in_offset += 1;
      if (variant == 2) cp.out_offset += 1;
      auto parsed = ParseCheckpointIndex(SerializeCheckpointIndex(bad), blob_.size());
      if (!parsed) {
        ++refused;
        continue;
      }
      const uint64_t a = parsed->checkpoints[k].out_offset;
      const uint64_t b = std::min<uint64_t>(plain_.size(), a + 70000);
      auto got = ExtractVia(*parsed, blob_, a, b);
      if (!got) {
        EXPECT_EQ(got.error().code(), EIO);
        ++decode_errors;
        continue;
      }
      // A lie can be harmless (one more unread bit before a stored block's zero header): then
      // the bytes are right. Otherwise the digest check catches them.
      const std::string truth = plain_.substr(a, b - a);
      if (Digest::Of(*got) != Digest::Of(truth)) ++caught_by_digest;
    }
  }
  EXPECT_GT(decode_errors + caught_by_digest, 0);
  (void)refused;
}

}  // namespace
}  // namespace hoist
