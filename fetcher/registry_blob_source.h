// Internal to fetcher/ (others use RegistryClient::OpenBlobSource): the BlobSource over one
// registry repository.
//
// ReadAt is one `GET /v2/<n>/blobs/<d>` with `Range: bytes=a-b`:
//   - 206: Content-Range must say exactly a-b (EIO "wrong Content-Range" otherwise; never wrong
//     bytes); the total is remembered as the blob size;
//   - 200 (range ignored): the body is the whole blob; it is streamed, the first a bytes are
//     skipped and the transfer stops once the range is complete;
//   - a short body is retried (RegistryCore's policy);
//   - redirects re-send Range (and never Authorization to another origin); the resolved URL is
//     cached per blob and dropped (and resolved again) when it answers 401/403/404/410.
// ReadRanges runs up to RegistryOptions::max_parallel_ranges ReadAt calls at once on their own
// threads (the transport reuses connections across threads).
// ReadAtRouted with skip_mirrors: the same request to the registry's own hosts only (a cached
// redirect is the registry's, so it is used as in ReadAt).
// Size: the size recorded from a Content-Range total, else HEAD Content-Length.
//
// Thread-safety: all methods are safe from many threads.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "fetcher/blob_source.h"
#include "fetcher/reference.h"

namespace hoist {

class RegistryCore;

class RegistryBlobSource : public BlobSource {
 public:
  RegistryBlobSource(std::shared_ptr<RegistryCore> core, Reference repository);

  Result<std::string> ReadAt(const Digest& blob, uint64_t offset, uint64_t length) override;
  // route.skip_mirrors: RegistryCall::skip_mirrors. Reports the host that answered.
  Result<std::string> ReadAtRouted(const Digest& blob, uint64_t offset, uint64_t length,
                                   ReadRoute& route) override;
  std::vector<Result<std::string>> ReadRanges(const Digest& blob,
                                              std::span<const ByteRange> ranges) override;
  Result<uint64_t> Size(const Digest& blob) override;

 private:
  Result<std::string> ReadVia(const Digest& blob, const std::string& url, bool cached_url,
                              uint64_t offset, uint64_t length, ReadRoute& route,
                              int* refused_status);
  std::string BlobUrl(const Digest& blob) const;

  std::shared_ptr<RegistryCore> core_;
  Reference repository_;

  Mutex mu_;
  std::map<Digest, std::string> redirects_ HOIST_GUARDED_BY(mu_);
  std::map<Digest, uint64_t> sizes_ HOIST_GUARDED_BY(mu_);
};

}  // namespace hoist
