// BlobSource: random access to the bytes of registry blobs. This is the only view of the network
// that index/ and fusefs/ get: no HTTP, no auth, no retries are visible through it.
//
// Thread-safety: implementations are safe to call from many threads at once; calls for
// different ranges proceed concurrently.
//
// Errors: EIO for network failures after retries (message names the blob and the cause),
// ENOENT for a blob the registry does not have, EACCES for refused credentials, ETIMEDOUT when
// the configured time bound passed. A successful ReadAt returns exactly `length` bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/status.h"

namespace hoist {

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// How one read is routed, and where its bytes came from (ReadAtRouted).
struct ReadRoute {
  // In: skip the mirror hosts and read from the registry itself, for a re-read after a mirror's
  // bytes failed a digest check. With no registry host among those configured (every host is
  // a mirror), the read fails with EIO saying so.
  bool skip_mirrors = false;
  // Out, set by sources that go to the network: the host[:port] that served the bytes, whether
  // it is a mirror, and the URL that answered (after redirects). Left empty otherwise.
  std::string served_by;
  bool served_by_mirror = false;
  std::string served_url;
};

class BlobSource {
 public:
  virtual ~BlobSource() = default;

  // Reads blob[offset, offset + length). REQUIRES: length > 0.
  virtual Result<std::string> ReadAt(const Digest& blob, uint64_t offset, uint64_t length) = 0;

  // ReadAt, routed as `route` says and reporting where the bytes came from. Sources that wrap
  // another forward it; the default (a source with no mirrors) is ReadAt.
  virtual Result<std::string> ReadAtRouted(const Digest& blob, uint64_t offset, uint64_t length,
                                           ReadRoute& route) {
    (void)route;
    return ReadAt(blob, offset, length);
  }

  // Reads several ranges of one blob, with the requests in flight concurrently. The result has
  // one entry per range, in order. The default issues ReadAt calls one after another.
  virtual std::vector<Result<std::string>> ReadRanges(const Digest& blob,
                                                      std::span<const ByteRange> ranges);

  // The blob's size in bytes.
  virtual Result<uint64_t> Size(const Digest& blob) = 0;

  // Whether reads of `blob` are served from a local file with no network request (a pulled or
  // loaded image's blob file, fusefs/local_image.h), for the mount's counters. Default: false.
  virtual bool IsLocal(const Digest& /*blob*/) { return false; }
};

}  // namespace hoist
