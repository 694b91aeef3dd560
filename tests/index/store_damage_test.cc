// A damaged cache file never crashes an open (docs/RELIABILITY.md "A damaged cache"): data.mdb
// truncated, zeroed, bit-flipped or replaced is set aside whole (its bytes kept), an empty store
// is started, one warning line names the file and the reason; damage found at run time (the
// file truncated under an open store) turns reads into misses and puts into drops, and the next
// open sets the file aside. The damage is done to the file as a whole (truncate, zero, flip many
// bytes at seeded offsets, flip the head of every page), never by looking for a record.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "index/lmdb_env.h"
#include "index/lmdb_file_check.h"
#include "index/store.h"
#include "tests/index/store_test_util.h"

namespace hoist {
namespace {

using testutil::ChunkBody;
using testutil::SampleIndex;
using testutil::TempDir;

constexpr int kChunks = 40;

Digest ChunkDigest(int i, size_t size) { return Digest::Of(ChunkBody(i, size)); }
size_t ChunkSize(int i) { return 1000 + 997 * static_cast<size_t>(i % 7); }

// Fills a store: a layer index, two blobs, a ref, kChunks chunks (and `big_chunks` of 64 KiB).
// Each chunk is committed alone (Flush after each Put), so the file's layout is the same on
// every run and a seeded damage always hits the same bytes.
void Fill(const std::string& dir, int big_chunks = 0) {
  auto store = Store::Open(dir);
  ASSERT_TRUE(store) << store.error().message();
  ASSERT_TRUE((*store)->PutLayerIndex(SampleIndex(Digest::Of("layer"))));
  ASSERT_TRUE((*store)->PutBlob(Digest::Of("manifest"), "manifest"));
  ASSERT_TRUE((*store)->PutBlob(Digest::Of("config"), "config"));
  ASSERT_TRUE((*store)->PutRef("example.com/a:1", Digest::Of("manifest")));
  for (int i = 0; i < kChunks; ++i) {
    ASSERT_TRUE((*store)->chunks().Put(ChunkDigest(i, ChunkSize(i)), ChunkBody(i, ChunkSize(i))));
    ASSERT_TRUE((*store)->chunks().Flush());
  }
  for (int i = 0; i < big_chunks; ++i) {
    std::string body = ChunkBody(1000 + i, 64 << 10);
    ASSERT_TRUE((*store)->chunks().Put(Digest::Of(body), body));
    ASSERT_TRUE((*store)->chunks().Flush());
  }
}

std::vector<std::string> AsideFiles(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    if (std::string_view(e->d_name).starts_with("data.mdb.damaged-")) out.push_back(e->d_name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

void WriteWhole(const std::string& path, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

enum class Damage {
  kTruncateHalf,
  kTruncate8K,
  kTruncate100,
  kZeroed,
  kFlip20000,
  kFlipPages,
  kNotLmdb
};

std::string Name(Damage d) {
  switch (d) {
    case Damage::kTruncateHalf:
      return "TruncatedToHalf";
    case Damage::kTruncate8K:
      return "TruncatedTo8KiB";
    case Damage::kTruncate100:
      return "TruncatedTo100Bytes";
    case Damage::kZeroed:
      return "Zeroed";
    case Damage::kFlip20000:
      return "Flipped20000Bytes";
    case Damage::kFlipPages:
      return "FlippedEveryPage";
    case Damage::kNotLmdb:
      return "NotLmdb";
  }
  return "";
}

// Damages `bytes` (the whole data file) and returns the new content.
std::string Apply(Damage d, std::string bytes) {
  switch (d) {
    case Damage::kTruncateHalf:
      bytes.resize(bytes.size() / 2);
      break;
    case Damage::kTruncate8K:
      bytes.resize(8192);
      break;
    case Damage::kTruncate100:
      bytes.resize(100);
      break;
    case Damage::kZeroed:
      bytes.assign(bytes.size(), '\0');
      break;
    case Damage::kFlip20000: {
      std::mt19937_64 rng(20000);
      for (int i = 0; i < 20000; ++i) {
        bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
      }
      break;
    }
    case Damage::kFlipPages:
      // The first 64 bytes of every 4 KiB: page headers, and the meta fields of pages 0 and 1.
      for (size_t p = 0; p < bytes.size(); p += 4096) {
        for (size_t i = p; i < std::min(bytes.size(), p + 64); ++i) bytes[i] ^= 0x5a;
      }
      break;
    case Damage::kNotLmdb: {
      std::string text;
      while (text.size() < 64 << 10) text += "this is not an LMDB file\n";
      bytes = text;
      break;
    }
  }
  return bytes;
}

class StoreDamageTest : public ::testing::TestWithParam<Damage> {};

TEST_P(StoreDamageTest, OpenSetsTheFileAsideAndStartsEmpty) {
  TempDir dir;
  Fill(dir.path());
  const std::string data = dir.path() + "/data.mdb";
  auto original = ReadFile(data);
  ASSERT_TRUE(original);
  const std::string damaged = Apply(GetParam(), *original);
  WriteWhole(data, damaged);
  if (GetParam() != Damage::kTruncateHalf && GetParam() != Damage::kTruncate8K &&
      GetParam() != Damage::kTruncate100) {
    ASSERT_EQ(::truncate(data.c_str(), damaged.size()), 0);
  }
  if (GetParam() != Damage::kFlip20000) {  // that one may be found by the walk after the header
    ASSERT_TRUE(CheckLmdbDataFile(data).value().has_value()) << "the header check misses it";
  }

  ::testing::internal::CaptureStderr();
  auto store = Store::Open(dir.path());
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(store) << store.error().message();

  // One warning line naming the file, the reason and where it went.
  const std::vector<std::string> aside = AsideFiles(dir.path());
  ASSERT_EQ(aside.size(), 1u);
  const std::string aside_path = dir.path() + "/" + aside[0];
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  EXPECT_NE(log.find("hoist warning: cache " + dir.path() + ": data.mdb is damaged ("),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("moved it to " + aside_path + " and started an empty cache"),
            std::string::npos)
      << log;
  // The damaged bytes are kept as they were.
  auto kept = ReadFile(aside_path);
  ASSERT_TRUE(kept);
  EXPECT_TRUE(*kept == damaged);

  // A fresh store that works. No chunk comes back; a reference, blob or layer index comes back
  // only if it verifies (which ones survive depends on where the damage fell: either way).
  auto refs = (*store)->ListRefs();
  ASSERT_TRUE(refs) << refs.error().message();
  const bool recovered = log.find("recovered from it") != std::string::npos;
  if (!refs->empty()) {
    EXPECT_TRUE(recovered) << log;
    ASSERT_EQ(refs->size(), 1u);
    EXPECT_EQ((*refs)[0], std::make_pair(std::string("example.com/a:1"), Digest::Of("manifest")));
    EXPECT_EQ((*store)->GetBlob(Digest::Of("manifest")).value(), "manifest");
  }
  auto index = (*store)->GetLayerIndex(Digest::Of("layer"));
  ASSERT_TRUE(index) << index.error().message();
  if (index->has_value()) testutil::ExpectSameIndex(SampleIndex(Digest::Of("layer")), **index);
  if (!recovered) {
    EXPECT_TRUE(refs->empty());
    EXPECT_FALSE(index->has_value());
  }
  EXPECT_FALSE((*store)->chunks().Get(ChunkDigest(0, ChunkSize(0))).value().has_value());
  ASSERT_TRUE((*store)->PutRef("example.com/b:2", Digest::Of("x")));
  ASSERT_TRUE((*store)->chunks().Put(ChunkDigest(1, ChunkSize(1)), ChunkBody(1, ChunkSize(1))));
  ASSERT_TRUE((*store)->chunks().Flush());
  EXPECT_TRUE((*store)->Check(true));
  store->reset();

  // The next open finds a sound file: nothing more is set aside, the new records are there.
  ::testing::internal::CaptureStderr();
  auto again = Store::Open(dir.path());
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(AsideFiles(dir.path()).size(), 1u);
  EXPECT_EQ((*again)->GetRef("example.com/b:2").value(), Digest::Of("x"));
  EXPECT_EQ((*again)->chunks().Get(ChunkDigest(1, ChunkSize(1))).value(),
            ChunkBody(1, ChunkSize(1)));
}

INSTANTIATE_TEST_SUITE_P(Damages, StoreDamageTest,
                         ::testing::Values(Damage::kTruncateHalf, Damage::kTruncate8K,
                                           Damage::kTruncate100, Damage::kZeroed,
                                           Damage::kFlip20000, Damage::kFlipPages,
                                           Damage::kNotLmdb),
                         [](const auto& info) { return Name(info.param); });

TEST(StoreDamageTest, SoundFilePassesTheHeaderCheck) {
  TempDir dir;
  Fill(dir.path(), 20);
  auto r = CheckLmdbDataFile(dir.path() + "/data.mdb");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(r->has_value()) << **r;
  ::testing::internal::CaptureStderr();
  auto store = Store::Open(dir.path());
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  ASSERT_TRUE(store);
  EXPECT_TRUE(AsideFiles(dir.path()).empty());
  EXPECT_TRUE((*store)->Check(true));
}

// Reads every record back in a child process; exits 0, or 3 if any record read back differs
// from what Fill stored (a crash kills it otherwise).
[[noreturn]] void ReadEverythingAndExit(const std::string& dir) {
  bool wrong = false;
  {
    auto store = Store::Open(dir);
    if (!store) _exit(4);
    for (int i = 0; i < kChunks; ++i) {
      auto got = (*store)->chunks().Get(ChunkDigest(i, ChunkSize(i)));
      if (!got) _exit(5);
      wrong |= got->has_value() && **got != ChunkBody(i, ChunkSize(i));
    }
    for (int i = 0; i < 60; ++i) {
      const std::string body = ChunkBody(1000 + i, 64 << 10);
      auto got = (*store)->chunks().Get(Digest::Of(body));
      if (!got) _exit(5);
      wrong |= got->has_value() && **got != body;
    }
    auto index = (*store)->GetLayerIndex(Digest::Of("layer"));
    wrong |= index && index->has_value() &&
             (*index)->entries.size() != SampleIndex(Digest::Of("layer")).entries.size();
    auto blob = (*store)->GetBlob(Digest::Of("manifest"));
    wrong |= blob && blob->has_value() && **blob != "manifest";
    auto refs = (*store)->ListRefs();
    wrong |= refs && !refs->empty() &&
             (refs->size() != 1 || (*refs)[0].second != Digest::Of("manifest"));
    if (!(*store)->chunks().Put(Digest::Of("after"), "after")) _exit(6);
    if (!(*store)->chunks().Flush()) _exit(6);
  }
  _exit(wrong ? 3 : 0);
}

// 20,000 bytes flipped at seeded offsets of a 4 MB file, eight seeds. The open sets the file
// aside, or (damage only where the open does not look: inside the chunk tables) keeps it; then
// either every record read back is right (or a miss), or liblmdb crashes on a damaged page. That
// crash is the one thing not turned into an error; it is confined to one process: the next open
// sets the file aside and the store works.
TEST(StoreDamageTest, FlippedBytesNeverReadBackWrongAndNeverCrashTwice) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir dir;
    Fill(dir.path(), 60);
    const std::string data = dir.path() + "/data.mdb";
    auto bytes = ReadFile(data);
    ASSERT_TRUE(bytes);
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 20000; ++i) {
      (*bytes)[rng() % bytes->size()] ^= static_cast<char>(1 + rng() % 255);
    }
    WriteWhole(data, *bytes);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Quiet: the child's warnings (and a sanitizer's crash report) are not the test's output.
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 2);
      ReadEverythingAndExit(dir.path());
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    ASSERT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) >= 3)
        << "exit " << WEXITSTATUS(status) << " (3: a record read back wrong)";
    ::testing::internal::CaptureStderr();
    auto store = Store::Open(dir.path());
    const std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(store) << store.error().message();
    if (!clean) {
      EXPECT_FALSE((*store)->set_aside_at_open().empty()) << "a crash was not marked: " << log;
    }
    ASSERT_TRUE((*store)->PutRef("example.com/c:3", Digest::Of("y")));
    EXPECT_EQ((*store)->GetRef("example.com/c:3").value(), Digest::Of("y"));
  }
}

// At most kKeptDamagedFiles set-aside files stay; the newest are kept.
TEST(StoreDamageTest, KeepsTheNewestDamagedFiles) {
  TempDir dir;
  std::vector<std::string> asides;
  for (int round = 0; round < kKeptDamagedFiles + 2; ++round) {
    Fill(dir.path());
    const std::string data = dir.path() + "/data.mdb";
    ASSERT_EQ(::truncate(data.c_str(), 100), 0);
    ::testing::internal::CaptureStderr();
    auto store = Store::Open(dir.path());
    ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(store);
    asides = AsideFiles(dir.path());
    ASSERT_EQ(asides.size(), std::min(round + 1, kKeptDamagedFiles));
  }
}

// A file reported damaged at run time is usually readable apart from the damage: its image
// references, manifests/configs and layer indexes come back (verified); chunks do not; a
// reference whose manifest is not there does not either.
TEST(StoreDamageTest, RecoversVerifiedImageRecordsFromTheDamagedFile) {
  TempDir dir;
  Fill(dir.path());
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE(store);
    ASSERT_TRUE((*store)->PutRef("example.com/orphan:1", Digest::Of("no such manifest")));
  }
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() + "/data.mdb").c_str(), &st), 0);
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/data.mdb.damage-report",
                              std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) +
                                  "\nreading cache record: MDB_CORRUPTED\n"));
  ::testing::internal::CaptureStderr();
  auto store = Store::Open(dir.path());
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(store) << store.error().message();
  EXPECT_EQ(log, "hoist warning: cache " + dir.path() +
                     ": data.mdb is damaged (marked damaged at run time: reading cache record: "
                     "MDB_CORRUPTED); moved it to " +
                     (*store)->set_aside_at_open() +
                     " and started an empty cache: recovered from it 1 image references, 2 "
                     "manifests/configs and 1 layer indexes (chunks are fetched again; images "
                     "not recovered must be pulled or loaded again)\n");
  EXPECT_EQ(
      (*store)->ListRefs().value(),
      (std::vector<std::pair<std::string, Digest>>{{"example.com/a:1", Digest::Of("manifest")}}));
  EXPECT_EQ((*store)->GetBlob(Digest::Of("config")).value(), "config");
  auto index = (*store)->GetLayerIndex(Digest::Of("layer"));
  ASSERT_TRUE(index && index->has_value());
  testutil::ExpectSameIndex(SampleIndex(Digest::Of("layer")), **index);
  EXPECT_FALSE((*store)->chunks().Get(ChunkDigest(0, ChunkSize(0))).value().has_value());
  EXPECT_TRUE((*store)->Check(true));
}

// The file is truncated while a store has it open: reads become misses (never other bytes),
// puts are dropped, nothing crashes; the next open sets the file aside.
TEST(StoreDamageTest, TruncatedUnderAnOpenStore) {
  TempDir dir;
  Fill(dir.path(), 60);  // ~4 MB
  const std::string data = dir.path() + "/data.mdb";
  ::testing::internal::CaptureStderr();
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE(store);
    for (int i = 0; i < kChunks; ++i) {
      auto got = (*store)->chunks().Get(ChunkDigest(i, ChunkSize(i)));
      ASSERT_TRUE(got && got->has_value());
    }
    struct stat st {};
    ASSERT_EQ(::stat(data.c_str(), &st), 0);
    ASSERT_EQ(::truncate(data.c_str(), 8192), 0);
    int hits = 0;
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < 60; ++i) {
        const std::string body = ChunkBody(1000 + i, 64 << 10);
        auto got = (*store)->chunks().Get(Digest::Of(body));
        ASSERT_TRUE(got);
        if (got->has_value()) {
          EXPECT_TRUE(**got == body);
          ++hits;
        }
        std::string out(100, 'x');
        auto read = (*store)->chunks().Read(Digest::Of(body), 5, out);
        ASSERT_TRUE(read);
        if (read->has_value()) {
          EXPECT_EQ(out, body.substr(5, 100));
        }
      }
    }
    EXPECT_EQ(hits, 0);
    EXPECT_TRUE((*store)->damaged());
    // Puts are dropped, not an error; other calls fail with one clear error.
    EXPECT_TRUE((*store)->chunks().Put(Digest::Of("new"), "new"));
    EXPECT_TRUE((*store)->chunks().Flush());
    auto refs = (*store)->ListRefs();
    ASSERT_FALSE(refs);
    EXPECT_EQ(refs.error().code(), EIO);
    EXPECT_NE(refs.error().message().find("is damaged"), std::string::npos);
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  EXPECT_NE(log.find("data.mdb is damaged (data.mdb was truncated under a running process)"),
            std::string::npos)
      << log;

  ::testing::internal::CaptureStderr();
  auto store = Store::Open(dir.path());
  const std::string log2 = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(store) << store.error().message();
  EXPECT_EQ(AsideFiles(dir.path()).size(), 1u);
  EXPECT_NE(log2.find("moved it to"), std::string::npos) << log2;
  // Cut to 8 KiB: the recovery's child process finds nothing (or dies on a page past the end).
  EXPECT_TRUE((*store)->ListRefs().value().empty());
}

// A file marked damaged at run time by another process is set aside at the next open; a marker
// about a file that was replaced since is ignored (and removed).
TEST(StoreDamageTest, MarkerAboutAnotherFileIsIgnored) {
  TempDir dir;
  Fill(dir.path());
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/data.mdb.damage-report", "1 2\nold damage\n"));
  ::testing::internal::CaptureStderr();
  auto store = Store::Open(dir.path());
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  ASSERT_TRUE(store);
  EXPECT_TRUE(AsideFiles(dir.path()).empty());
  EXPECT_EQ((*store)->GetRef("example.com/a:1").value(), Digest::Of("manifest"));
  struct stat st {};
  EXPECT_NE(::stat((dir.path() + "/data.mdb.damage-report").c_str(), &st), 0);
}

// Processes that open one damaged directory at the same moment set it aside once: the check
// and the move happen under an flock, so the later ones find the fresh file sound.
TEST(StoreDamageTest, ConcurrentOpenersSetTheFileAsideOnce) {
  TempDir dir;
  Fill(dir.path());
  ASSERT_EQ(::truncate((dir.path() + "/data.mdb").c_str(), 8192), 0);
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> children;
  for (int i = 0; i < 4; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(go[1]);
      char c;
      (void)::read(go[0], &c, 1);  // returns when the parent closes its end: all start together
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 2);
      auto store = Store::Open(dir.path());
      if (!store) _exit(1);
      if (!(*store)->PutRef("example.com/p:" + std::to_string(i), Digest::Of("m"))) _exit(2);
      _exit(0);
    }
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(go[1]);
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  EXPECT_EQ(AsideFiles(dir.path()).size(), 1u);
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store);
  EXPECT_EQ((*store)->ListRefs().value().size(), 4u);  // no opener lost another's records
}

// A reference record whose value is not a digest: one clear error naming the way out, and
// removing it works (so `hoist rm` can clear it and `hoist images` lists again).
TEST(StoreDamageTest, CorruptReferenceRecordCanBeRemoved) {
  TempDir dir;
  {
    auto env = LmdbEnv::Open(dir.path(), LmdbEnvOptions{});
    ASSERT_TRUE(env);
    auto txn = (*env)->BeginWrite();
    ASSERT_TRUE(txn);
    ASSERT_TRUE(txn->Put(Table::kRefs, "example.com/bad:1", "sha256:not-hex"));
    ASSERT_TRUE(txn->Commit());
  }
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store);
  auto ref = (*store)->GetRef("example.com/bad:1");
  ASSERT_FALSE(ref);
  EXPECT_EQ(ref.error().code(), EIO);
  EXPECT_EQ(ref.error().message(),
            "corrupt image reference record example.com/bad:1; remove it (hoist rm "
            "example.com/bad:1) and pull the image again");
  EXPECT_FALSE((*store)->ListRefs());
  EXPECT_EQ((*store)->DeleteRef("example.com/bad:1").value(), true);
  EXPECT_TRUE((*store)->ListRefs().value().empty());
}

}  // namespace
}  // namespace hoist
