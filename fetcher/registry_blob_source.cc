#include "fetcher/registry_blob_source.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "base/parallel.h"
#include "fetcher/auth.h"
#include "fetcher/content_range.h"
#include "fetcher/registry_core.h"

namespace hoist {

RegistryBlobSource::RegistryBlobSource(std::shared_ptr<RegistryCore> core, Reference repository)
    : core_(std::move(core)), repository_(std::move(repository)) {}

std::string RegistryBlobSource::BlobUrl(const Digest& blob) const {
  return core_->RepoUrl(repository_.registry, repository_.repository, "blobs/" + blob.str());
}

Result<std::string> RegistryBlobSource::ReadAt(const Digest& blob, uint64_t offset,
                                               uint64_t length) {
  ReadRoute route;
  return ReadAtRouted(blob, offset, length, route);
}

Result<std::string> RegistryBlobSource::ReadAtRouted(const Digest& blob, uint64_t offset,
                                                     uint64_t length, ReadRoute& route) {
  std::string what = repository_.Name() + ": blob " + blob.str();
  if (length == 0) return Fail(EINVAL, what + ": zero-length read");
  if (offset + length < offset) return Fail(EINVAL, what + ": range overflows");
  std::string cached;
  {
    MutexLock lock(mu_);
    auto it = redirects_.find(blob);
    if (it != redirects_.end()) cached = it->second;
  }
  if (!cached.empty()) {
    int refused = 0;
    auto data = ReadVia(blob, cached, /*cached_url=*/true, offset, length, route, &refused);
    if (data || refused == 0) return data;
    // The signed URL expired (or went away): resolve the redirect again.
    MutexLock lock(mu_);
    if (redirects_[blob] == cached) redirects_.erase(blob);
  }
  int refused = 0;
  return ReadVia(blob, "", /*cached_url=*/false, offset, length, route, &refused);
}

Result<std::string> RegistryBlobSource::ReadVia(const Digest& blob, const std::string& url,
                                                bool cached_url, uint64_t offset, uint64_t length,
                                                ReadRoute& route, int* refused_status) {
  const uint64_t last = offset + length - 1;
  std::string what = repository_.Name() + ": blob " + blob.str() + " bytes " +
                     std::to_string(offset) + "-" + std::to_string(last);
  std::string out;
  bool whole = false;  // a 200 answer: skip to the offset
  uint64_t to_skip = 0;
  bool done = false;
  std::optional<uint64_t> total;

  RegistryCall call;
  call.method = "GET";
  if (cached_url) {
    call.url = url;
    call.registry = repository_.registry;
  } else {
    core_->Route(call, repository_.registry, repository_.repository, "blobs/" + blob.str());
  }
  call.scopes = {RepositoryScope(repository_.repository, false)};
  call.what = what;
  call.skip_mirrors = route.skip_mirrors;
  call.headers.emplace_back("Range",
                            "bytes=" + std::to_string(offset) + "-" + std::to_string(last));
  call.done = &done;
  if (cached_url) call.accept_statuses = {401, 403, 404, 410};
  call.restart = [&] {
    out.clear();
    whole = false;
    to_skip = 0;
    done = false;
  };
  call.on_head = [&](const HttpResponse& head) -> Status {
    if (head.status == 206) {
      auto cr_header = head.Header("content-range");
      if (!cr_header) return Fail(EIO, "206 without Content-Range");
      auto cr = ParseContentRange(*cr_header);
      if (!cr) return Fail(EIO, cr.error().message());
      if (!cr->first || *cr->first != offset || *cr->last != last) {
        return Fail(EIO, "wrong Content-Range \"" + *cr_header +
                             "\" for bytes=" + std::to_string(offset) + "-" + std::to_string(last));
      }
      total = cr->total;
      return Ok();
    }
    if (head.status == 200) {
      // A mirror ignoring Range: the next host may do better (the last one is used as is).
      if (call.more_hosts) return Fail(EIO, "200 to a Range request");
      whole = true;
      to_skip = offset;
      if (auto cl = head.Header("content-length")) {
        auto parsed = ParseDecimal(*cl);
        if (!parsed) return Fail(EIO, "bad Content-Length \"" + *cl + "\"");
        uint64_t size = *parsed;
        total = size;
        if (size <= last) {
          return Fail(EIO, "range past the end of the blob (size " + std::to_string(size) + ")");
        }
      }
      return Ok();
    }
    return Fail(EIO, "unexpected status " + std::to_string(head.status) + " to a Range request");
  };
  call.sink = [&](std::string_view chunk) -> Status {
    if (whole) {
      uint64_t skip = std::min<uint64_t>(to_skip, chunk.size());
      to_skip -= skip;
      chunk.remove_prefix(skip);
      size_t take = static_cast<size_t>(std::min<uint64_t>(chunk.size(), length - out.size()));
      out.append(chunk.data(), take);
      if (out.size() == length) {
        done = true;
        return Fail(ECANCELED, "range complete");  // stop the transfer of the rest
      }
      return Ok();
    }
    if (out.size() + chunk.size() > length) {
      return Fail(EIO, "206 body longer than the requested range");
    }
    out.append(chunk);
    return Ok();
  };
  call.check = [&](const HttpResponse&) -> Status {
    if (out.size() != length) {
      return Fail(ECONNRESET, "short body: got " + std::to_string(out.size()) + " of " +
                                  std::to_string(length) + " bytes");
    }
    return Ok();
  };

  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
  route.served_by = call.served_by;
  route.served_by_mirror = call.served_by_mirror;
  route.served_url = call.final_url;
  if (resp.status != 200 && resp.status != 206) {
    if (cached_url &&
        (resp.status == 401 || resp.status == 403 || resp.status == 404 || resp.status == 410)) {
      *refused_status = resp.status;
      return Fail(core_->StatusError(resp, what));
    }
    return Fail(EIO, what + ": unexpected status " + std::to_string(resp.status));
  }
  if (out.size() != length) {
    return Fail(EIO, what + ": got " + std::to_string(out.size()) + " bytes");
  }
  MutexLock lock(mu_);
  if (total) sizes_[blob] = *total;
  // Redirects are cached only from the registry itself (a mirror's stays per request).
  if (!cached_url && !call.served_by_mirror && call.final_url != call.url) {
    redirects_[blob] = call.final_url;
  }
  return out;
}

std::vector<Result<std::string>> RegistryBlobSource::ReadRanges(const Digest& blob,
                                                                std::span<const ByteRange> ranges) {
  std::vector<Result<std::string>> results(ranges.size(), Fail(EIO, "not read"));
  if (ranges.empty()) return results;
  size_t workers = std::min<size_t>(
      ranges.size(), static_cast<size_t>(std::max(1, core_->options().max_parallel_ranges)));
  // Each range keeps its own result: one failing does not stop the others.
  (void)ParallelFor(ranges.size(), workers, [&](size_t i) -> Status {
    results[i] = ReadAt(blob, ranges[i].offset, ranges[i].length);
    return Ok();
  });
  return results;
}

Result<uint64_t> RegistryBlobSource::Size(const Digest& blob) {
  {
    MutexLock lock(mu_);
    auto it = sizes_.find(blob);
    if (it != sizes_.end()) return it->second;
  }
  RegistryCall call;
  call.method = "HEAD";
  core_->Route(call, repository_.registry, repository_.repository, "blobs/" + blob.str());
  call.scopes = {RepositoryScope(repository_.repository, false)};
  call.what = repository_.Name() + ": blob " + blob.str();
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
  auto cl = resp.Header("content-length");
  if (resp.status != 200 || !cl) {
    return Fail(EIO,
                call.what + ": HEAD gave no size (status " + std::to_string(resp.status) + ")");
  }
  auto parsed = ParseDecimal(*cl);
  if (!parsed) return Fail(EIO, call.what + ": bad Content-Length \"" + *cl + "\"");
  uint64_t size = *parsed;
  MutexLock lock(mu_);
  sizes_[blob] = size;
  return size;
}

}  // namespace hoist
