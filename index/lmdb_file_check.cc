#include "index/lmdb_file_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/scoped_fd.h"

namespace hoist {
namespace {

// Offsets inside a meta page (LMDB 0.9, 64-bit): a 16-byte page header (pgno u64, pad u16,
// flags u16, lower/upper u16), then MDB_meta: magic u32, version u32, address u64, mapsize u64,
// two MDB_db of 48 bytes (pad u32 [the page size, in the free DB's], flags u16, depth u16,
// branch/leaf/overflow pages u64, entries u64, root u64), last page u64, txnid u64.
constexpr size_t kFlagsAt = 10;
constexpr uint16_t kPageMeta = 0x08;
constexpr size_t kMetaAt = 16;
constexpr size_t kMagicAt = kMetaAt + 0;
constexpr size_t kVersionAt = kMetaAt + 4;
constexpr size_t kDbsAt = kMetaAt + 24;
constexpr size_t kDbSize = 48;
constexpr size_t kPsizeAt = kDbsAt + 0;  // free DB's md_pad
constexpr size_t kRootInDb = 40;         // md_root inside an MDB_db
constexpr size_t kLastPgAt = kDbsAt + 2 * kDbSize;
constexpr size_t kTxnidAt = kLastPgAt + 8;
constexpr size_t kMetaEnd = kTxnidAt + 8;
constexpr uint32_t kMagic = 0xBEEFC0DE;
constexpr uint32_t kDataVersion = 1;
constexpr uint64_t kInvalidPage = ~0ull;

template <class T>
T Load(std::span<const uint8_t> b, size_t at) {
  T v;
  std::memcpy(&v, b.data() + at, sizeof v);
  return v;
}

struct Meta {
  uint32_t psize = 0;
  uint64_t last_pg = 0;
  uint64_t txnid = 0;
  uint64_t roots[2] = {};
};

// One meta page at `page` (its first kMetaEnd bytes). Returns a reason on failure.
std::optional<std::string> ReadMeta(std::span<const uint8_t> page, int n, Meta* m) {
  const std::string which = "meta page " + std::to_string(n);
  if ((Load<uint16_t>(page, kFlagsAt) & kPageMeta) == 0) return which + " is not a meta page";
  if (Load<uint32_t>(page, kMagicAt) != kMagic) return which + " has no LMDB magic";
  if (uint32_t v = Load<uint32_t>(page, kVersionAt); v != kDataVersion) {
    return which + " has data version " + std::to_string(v);
  }
  m->psize = Load<uint32_t>(page, kPsizeAt);
  if (m->psize < 512 || m->psize > 65536 || (m->psize & (m->psize - 1)) != 0) {
    return which + " has page size " + std::to_string(m->psize);
  }
  m->last_pg = Load<uint64_t>(page, kLastPgAt);
  m->txnid = Load<uint64_t>(page, kTxnidAt);
  m->roots[0] = Load<uint64_t>(page, kDbsAt + kRootInDb);
  m->roots[1] = Load<uint64_t>(page, kDbsAt + kDbSize + kRootInDb);
  return std::nullopt;
}

}  // namespace

std::optional<std::string> CheckLmdbHeader(std::span<const uint8_t> head, uint64_t file_size) {
  if (file_size == 0) return std::nullopt;  // LMDB initialises an empty file as a new one
  if (head.size() < kMetaEnd) return "only " + std::to_string(file_size) + " bytes";
  Meta m0, m1;
  if (auto bad = ReadMeta(head, 0, &m0)) return bad;
  const uint64_t psize = m0.psize;
  if (file_size < 2 * psize) {
    return "only " + std::to_string(file_size) + " bytes, less than its two meta pages";
  }
  if (head.size() < psize + kMetaEnd) return "only part of meta page 1 was read";
  if (auto bad = ReadMeta(head.subspan(psize), 1, &m1)) return bad;
  if (m1.psize != psize) return "the meta pages disagree on the page size";
  const Meta& m = m1.txnid > m0.txnid ? m1 : m0;
  // In pages, so a garbage last page cannot overflow (last + 1) * psize.
  if (m.last_pg < 1 || m.last_pg >= file_size / psize) {
    return "shorter than its last page: " + std::to_string(file_size) +
           " bytes, its meta page records page " + std::to_string(m.last_pg) + " of " +
           std::to_string(psize) + " bytes";
  }
  for (uint64_t root : m.roots) {
    if (root != kInvalidPage && (root < 2 || root > m.last_pg)) {
      return "a root page (" + std::to_string(root) + ") lies outside the file";
    }
  }
  return std::nullopt;
}

Result<std::optional<std::string>> CheckLmdbDataFile(const std::string& path) {
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) return Fail(ErrnoError("opening " + path));
  ScopedFd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Fail(ErrnoError("stat " + path));
  std::vector<uint8_t> head(std::min<uint64_t>(kLmdbHeaderBytes, st.st_size));
  size_t got = 0;
  while (got < head.size()) {
    ssize_t n = ::pread(fd.get(), head.data() + got, head.size() - got, got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoError("reading " + path));
    if (n == 0) break;  // shrank since fstat: check what is there
    got += n;
  }
  const uint64_t size = got < head.size() ? got : static_cast<uint64_t>(st.st_size);
  head.resize(got);
  return CheckLmdbHeader(head, size);
}

}  // namespace hoist
