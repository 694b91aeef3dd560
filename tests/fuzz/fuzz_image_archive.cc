// libFuzzer target: the image archive readers of tools/image on an arbitrary file: the
// oci-archive: source (TarArchive scan, index.json entry choice, manifests, configs, layer blobs
// read in place) and the docker-archive: source (manifest.json, configs, each layer described and
// checked against the config's diff_ids). The input is the archive (through a memfd, as a file).
// Invariants: every manifest or blob a source returns hashes to the digest asked for, and a layer
// stream never yields more bytes than its descriptor's size.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/scoped_fd.h"
#include "fetcher/manifest.h"
#include "tests/fuzz/fuzz_util.h"
#include "tools/image/image_impl.h"

namespace {

void Exercise(hoist::ImageSource& source) {
  auto top = source.TopManifest();
  if (!top) return;
  FUZZ_CHECK(hoist::Digest::Of(top->bytes) == top->digest);
  auto manifest = hoist::ParseImageManifest(top->bytes, top->media_type);
  if (!manifest) return;
  auto config = source.ReadBlob(manifest->config);
  if (config) FUZZ_CHECK(hoist::Digest::Of(*config) == manifest->config.digest);
  for (const hoist::Descriptor& layer : manifest->layers) {
    auto reader = source.OpenBlob(layer);
    if (!reader) continue;
    uint64_t total = 0;
    char buf[4096];
    for (;;) {
      auto got = (*reader)->Read(buf, sizeof buf);
      if (!got || *got == 0) break;
      total += *got;
    }
    if (layer.size >= 0) FUZZ_CHECK(total <= static_cast<uint64_t>(layer.size));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (256 << 10)) return 0;
  hoist::ScopedFd fd(::memfd_create("fuzz-archive", MFD_CLOEXEC));
  if (!fd.valid()) return 0;
  if (::write(fd.get(), data, size) != static_cast<ssize_t>(size)) return 0;
  const std::string path = "/proc/self/fd/" + std::to_string(fd.get());
  hoist::SourceOptions options;
  options.work_dir = "/tmp";
  if (auto oci = hoist::NewOciArchiveSource(path, "", options)) Exercise(**oci);
  if (auto tagged = hoist::NewOciArchiveSource(path, "v1", options)) Exercise(**tagged);
  if (auto docker = hoist::NewDockerArchiveSource(path, options)) Exercise(**docker);
  return 0;
}
