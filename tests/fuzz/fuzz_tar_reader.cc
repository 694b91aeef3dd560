// libFuzzer target: TarReader over an in-memory archive (ustar, pax, GNU, v7). Every member is
// visited; payloads are read for some members and skipped for others; the trailer is read.
// Checks the byte accounting tar_reader.h promises: on a clean walk, raw headers + payloads +
// padding + trailer add up to the whole input, member by member, with no gap; a PAX sparse
// member's segments are in order, within its real size, stored back to back from the payload
// offset, and add up to the payload.
#include <cstddef>
#include <cstdint>
#include <string>

#include "index/byte_stream.h"
#include "index/tar_reader.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr int kMaxMembers = 4096;

void Walk(std::string_view in) {
  hoist::TarReader reader(hoist::MemoryReader(in), {.max_metadata_size = 64 << 10});
  char buf[4096];
  uint64_t accounted = 0;
  for (int i = 0; i < kMaxMembers; ++i) {
    auto next = reader.Next();
    if (!next) return;
    const hoist::TarMember* m = *next;
    if (m == nullptr) {
      FUZZ_CHECK(reader.trailer_offset() == accounted);
      uint64_t trailer = 0;
      for (;;) {
        auto n = reader.ReadTrailer(buf, sizeof buf);
        if (!n) return;
        if (*n == 0) break;
        trailer += *n;
      }
      FUZZ_CHECK(accounted + trailer == in.size());
      return;
    }
    FUZZ_CHECK(m->header_offset == accounted);
    FUZZ_CHECK(m->payload_offset == m->header_offset + m->header_length);
    FUZZ_CHECK(reader.raw_header().size() == m->header_length);
    FUZZ_CHECK(in.substr(m->header_offset, m->header_length) == reader.raw_header());
    FUZZ_CHECK(m->padding < 512 && (m->payload_size + m->padding) % 512 == 0);
    if (m->is_sparse) {
      FUZZ_CHECK(m->sparse.size() <= hoist::kMaxSparseSegments);
      uint64_t end = 0, stored = m->payload_offset;
      for (const hoist::SparseSegment& seg : m->sparse) {
        FUZZ_CHECK(seg.length > 0 && seg.offset >= end && seg.payload_offset == stored);
        FUZZ_CHECK(seg.length <= m->entry.size && seg.offset <= m->entry.size - seg.length);
        end = seg.offset + seg.length;
        stored += seg.length;
      }
      FUZZ_CHECK(stored == m->payload_offset + m->payload_size);
    } else {
      FUZZ_CHECK(m->sparse.empty());
    }
    if (i % 2 == 0) {  // read this payload; skip the next one
      uint64_t got = 0;
      for (;;) {
        auto n = reader.ReadPayload(buf, sizeof buf);
        if (!n) return;
        if (*n == 0) break;
        FUZZ_CHECK(std::string_view(buf, *n) == in.substr(m->payload_offset + got, *n));
        got += *n;
      }
      FUZZ_CHECK(got == m->payload_size);
      auto padding = reader.FinishMember();
      if (!padding) return;
      FUZZ_CHECK(padding->size() == m->padding);
    }
    accounted = m->payload_offset + m->payload_size + m->padding;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = hoist::fuzz::AsView(data, size);
  Walk(in);
  // The pax record parser and the numeric field parser on their own.
  (void)hoist::ParsePaxRecords(in.substr(0, 4096));
  (void)hoist::ParseTarNumber(in.substr(0, 12), size % 2 == 0);
  return 0;
}
