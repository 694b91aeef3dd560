// libFuzzer target: CheckLmdbHeader (index/lmdb_file_check.h), the check of an LMDB data file's
// meta pages before liblmdb maps it. The input is the file's bytes (the head is its first
// kLmdbHeaderBytes); it is also checked as if the file were longer or cut short. A file found
// sound is at least two of its own pages long and covers the last page its newer meta records.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "index/lmdb_file_check.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

uint64_t U64At(std::span<const uint8_t> b, size_t at) {
  uint64_t v = 0;
  std::memcpy(&v, b.data() + at, sizeof v);
  return v;
}

void CheckOne(std::span<const uint8_t> file, uint64_t file_size) {
  std::span<const uint8_t> head = file.first(
      std::min<size_t>({file.size(), hoist::kLmdbHeaderBytes, static_cast<size_t>(file_size)}));
  const auto verdict = hoist::CheckLmdbHeader(head, file_size);
  FUZZ_CHECK(verdict == hoist::CheckLmdbHeader(head, file_size));  // deterministic
  if (verdict || file_size == 0) {
    if (verdict) FUZZ_CHECK(!verdict->empty());
    return;
  }
  uint32_t psize = 0;
  std::memcpy(&psize, head.data() + 40, sizeof psize);
  FUZZ_CHECK(psize >= 512 && (psize & (psize - 1)) == 0);
  FUZZ_CHECK(file_size >= 2ull * psize);
  const uint64_t txn0 = U64At(head, 144), txn1 = U64At(head, psize + 144);
  const uint64_t last = U64At(head, (txn1 > txn0 ? psize : 0) + 136);
  FUZZ_CHECK(last < file_size / psize);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> file(data, size);
  CheckOne(file, size);
  CheckOne(file, size / 2);
  CheckOne(file, static_cast<uint64_t>(size) * 3 + 4096);
  return 0;
}
