// Chooses the checkpoint span of lazy gzip/zstd layers (index/gzip_index.h) by measurement:
// for a layer blob and a list of the files a workload opens (one path a line, as in the layer),
// builds the checkpoint index at several spans and reports the index size and the compressed
// bytes and Range requests a cold mount needs to read those files, simulating the mount's
// reader (fusefs/zran_reader.h): a file's covering span is fetched once, and every file wholly
// inside the bytes it decodes is then local.
//
//   zran_span BLOB FILE_LIST [SPAN_KIB...]     (default spans: 512 1024 2048 4096)
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/digest.h"
#include "index/gzip_index.h"
#include "index/tar_reader.h"

using namespace hoist;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: zran_span BLOB FILE_LIST [SPAN_KIB...]\n");
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string blob = ss.str();
  const bool zstd = blob.size() >= 4 && static_cast<uint8_t>(blob[0]) == 0x28;
  std::vector<std::string> wanted;
  std::ifstream list(argv[2]);
  for (std::string line; std::getline(list, line);)
    if (!line.empty()) wanted.push_back(line);
  std::vector<uint64_t> spans;
  for (int i = 3; i < argc; ++i) spans.push_back(std::stoull(argv[i]) << 10);
  if (spans.empty()) spans = {512 << 10, 1 << 20, 2 << 20, 4 << 20};

  std::map<std::string, std::pair<uint64_t, uint64_t>> files;  // path -> stream [lo, hi)
  std::vector<std::pair<uint64_t, uint64_t>> all;              // every file's range, in order
  bool walked = false;
  std::printf("blob %zu bytes, %zu wanted files\n", blob.size(), wanted.size());
  std::printf("%8s %12s %12s %10s %14s %9s\n", "span_KiB", "checkpoints", "index_bytes", "requests",
              "fetched_bytes", "of_blob");
  for (uint64_t span : spans) {
    IndexingDecoder dec(zstd ? CheckpointCodec::kZstd : CheckpointCodec::kGzip, span);
    size_t at = 0;
    std::string out(1 << 20, '\0');
    std::string pending;
    size_t pending_pos = 0;
    auto read = [&](char* buf, size_t n) -> Result<size_t> {
      while (pending_pos == pending.size()) {
        if (at >= blob.size()) return size_t{0};
        auto step = dec.Decode(std::string_view(blob).substr(at, 1 << 20), out);
        if (!step) return Fail(step.error());
        at += step->consumed;
        pending.assign(out.data(), step->produced);
        pending_pos = 0;
      }
      const size_t k = std::min(n, pending.size() - pending_pos);
      std::memcpy(buf, pending.data() + pending_pos, k);
      pending_pos += k;
      return k;
    };
    TarReader tar(read);
    while (true) {
      auto m = tar.Next();
      if (!m) {
        std::fprintf(stderr, "tar: %s\n", m.error().message().c_str());
        return 1;
      }
      if (*m == nullptr) break;
      if (!walked && (*m)->entry.type == EntryType::kRegular && (*m)->entry.size > 0) {
        files[(*m)->entry.path] = {(*m)->payload_offset, (*m)->payload_offset + (*m)->payload_size};
        all.push_back(files[(*m)->entry.path]);
      }
    }
    std::string sink(1 << 16, '\0');
    while (true) {
      auto n = read(sink.data(), sink.size());
      if (!n || *n == 0) break;
    }
    walked = true;
    auto index = dec.Finish(Digest::Of("x"), blob.size());
    if (!index) {
      std::fprintf(stderr, "%s\n", index.error().message().c_str());
      return 1;
    }
    const size_t index_bytes = SerializeCheckpointIndex(*index).size();
    std::set<std::pair<uint64_t, uint64_t>> local;
    uint64_t fetched = 0;
    int requests = 0;
    for (const std::string& path : wanted) {
      auto it = files.find(path);
      if (it == files.end()) {
        std::fprintf(stderr, "not in the layer: %s\n", path.c_str());
        continue;
      }
      if (local.count(it->second)) continue;
      auto plan = PlanExtract(*index, it->second.first, it->second.second);
      if (!plan) return 1;
      fetched += plan->in_end - plan->in_begin;
      ++requests;
      const uint64_t hi = it->second.second;
      const uint64_t decoded_end =
          std::max(hi, std::min<uint64_t>(plan->out_end, hi + (32ull << 20)));
      for (const auto& r : all) {
        if (r.first >= plan->out_begin && r.second <= decoded_end) local.insert(r);
      }
      local.insert(it->second);
    }
    std::printf("%8llu %12zu %12zu %10d %14llu %8.1f%%\n",
                static_cast<unsigned long long>(span >> 10), index->checkpoints.size(), index_bytes,
                requests, static_cast<unsigned long long>(fetched),
                100.0 * static_cast<double>(fetched) / static_cast<double>(blob.size()));
  }
  return 0;
}
