// docker://REF — a registry, through fetcher/registry.h.
//
// Layer blobs are streamed: a producer thread runs RegistryClient::FetchBlob and hands the body
// to the reader through a bounded buffer (kMaxBuffered), so memory stays bounded whatever the
// blob size. FetchBlob checks the digest, so the stream is verified (VerifiesBlobs()).
//
// The destination pushes blobs with HEAD first, then a cross-repository mount when the source is
// another repository of the same registry, then a chunked upload; manifests go last, the tagged
// one at the very end, so a failed conversion never makes the tag point anywhere new.
#include <cstring>
#include <deque>
#include <thread>

#include "base/mutex.h"
#include "fetcher/registry.h"
#include "tools/image/image_impl.h"
#include "tools/image/image_manifest.h"

namespace hoist {
namespace {

constexpr size_t kMaxBuffered = 16 << 20;

// Pull-style reader over the push-style FetchBlob.
class FetchReader : public ByteReader {
 public:
  FetchReader(RegistryClient* client, Reference repo, Digest digest)
      : client_(client), repo_(std::move(repo)), digest_(std::move(digest)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~FetchReader() override {
    {
      MutexLock lock(mu_);
      closed_ = true;
    }
    cv_.NotifyAll();
    thread_.join();
  }

  Result<size_t> Read(char* buf, size_t n) override {
    MutexLock lock(mu_);
    while (chunks_.empty() && !done_) cv_.Wait(mu_);
    if (chunks_.empty()) {
      if (!status_) return Fail(status_.error());
      return 0;
    }
    std::string& front = chunks_.front();
    size_t take = std::min(n, front.size() - front_pos_);
    std::memcpy(buf, front.data() + front_pos_, take);
    front_pos_ += take;
    buffered_ -= take;
    delivered_ += take;
    if (front_pos_ == front.size()) {
      chunks_.pop_front();
      front_pos_ = 0;
    }
    cv_.NotifyAll();
    return take;
  }

 private:
  void Run() HOIST_EXCLUDES(mu_) {
    uint64_t seen = 0;  // bytes of the current attempt
    Status st = client_->FetchBlob(
        repo_, digest_,
        [&](std::string_view chunk) -> Status {
          // After a restart, skip what the reader already has (the blob is content-addressed).
          uint64_t skip = 0;
          {
            MutexLock lock(mu_);
            uint64_t have = delivered_ + buffered_;
            if (seen < have) skip = std::min<uint64_t>(have - seen, chunk.size());
          }
          seen += chunk.size();
          chunk.remove_prefix(skip);
          if (chunk.empty()) return Ok();
          MutexLock lock(mu_);
          while (buffered_ >= kMaxBuffered && !closed_) cv_.Wait(mu_);
          if (closed_) return Fail(ECANCELED, "blob stream closed");
          chunks_.emplace_back(chunk);
          buffered_ += chunk.size();
          cv_.NotifyAll();
          return Ok();
        },
        [&] { seen = 0; });
    MutexLock lock(mu_);
    status_ = st;
    done_ = true;
    cv_.NotifyAll();
  }

  RegistryClient* client_;
  Reference repo_;
  Digest digest_;
  Mutex mu_;
  CondVar cv_;
  std::deque<std::string> chunks_ HOIST_GUARDED_BY(mu_);
  size_t front_pos_ HOIST_GUARDED_BY(mu_) = 0;
  uint64_t buffered_ HOIST_GUARDED_BY(mu_) = 0;
  uint64_t delivered_ HOIST_GUARDED_BY(mu_) = 0;
  bool done_ HOIST_GUARDED_BY(mu_) = false;
  bool closed_ HOIST_GUARDED_BY(mu_) = false;
  Status status_ HOIST_GUARDED_BY(mu_);
  std::thread thread_;
};

class DockerSource : public ImageSource {
 public:
  DockerSource(std::unique_ptr<RegistryClient> client, Reference ref)
      : client_(std::move(client)), ref_(std::move(ref)), blobs_(client_->OpenBlobSource(ref_)) {}

  std::string name() const override { return "docker://" + ref_.String(); }

  Result<RawManifest> TopManifest() override {
    HOIST_ASSIGN_OR_RETURN(ManifestBytes m, client_->GetManifest(ref_));
    HOIST_ASSIGN_OR_RETURN(std::string type, ManifestMediaType(m.media_type, m.bytes));
    return RawManifest{std::move(m.bytes), std::move(type), m.digest};
  }

  Result<RawManifest> Manifest(const Digest& digest) override {
    HOIST_ASSIGN_OR_RETURN(ManifestBytes m, client_->GetManifest(ref_.WithDigest(digest)));
    HOIST_ASSIGN_OR_RETURN(std::string type, ManifestMediaType(m.media_type, m.bytes));
    return RawManifest{std::move(m.bytes), std::move(type), m.digest};
  }

  Result<std::string> ReadBlob(const Descriptor& blob) override {
    return client_->GetBlob(ref_, blob.digest, 64 << 20);
  }

  Result<std::unique_ptr<ByteReader>> OpenBlob(const Descriptor& blob) override {
    return std::unique_ptr<ByteReader>(new FetchReader(client_.get(), ref_, blob.digest));
  }

  Result<std::string> ReadBlobRange(const Descriptor& blob, uint64_t offset,
                                    uint64_t length) override {
    return blobs_->ReadAt(blob.digest, offset, length);
  }

  bool VerifiesBlobs() const override { return true; }
  std::string registry_repository() const override { return ref_.Name(); }
  const Reference& reference() const { return ref_; }

 private:
  std::unique_ptr<RegistryClient> client_;
  Reference ref_;
  std::unique_ptr<BlobSource> blobs_;
};

class DockerDestination : public ImageDestination {
 public:
  DockerDestination(std::unique_ptr<RegistryClient> client, Reference ref)
      : client_(std::move(client)), ref_(std::move(ref)) {}

  std::string name() const override { return "docker://" + ref_.String(); }

  Result<bool> EnsureBlob(const Descriptor& blob, const ImageSource* source) override {
    HOIST_ASSIGN_OR_RETURN(bool exists,
                           client_->BlobExists(ref_, blob.digest, RegistryAccess::kPush));
    if (exists) return true;
    if (source == nullptr) return false;
    std::string from = source->registry_repository();
    std::string prefix = ref_.registry + "/";
    if (from.empty() || !from.starts_with(prefix) || from == ref_.Name()) return false;
    auto mounted = client_->MountBlob(ref_, blob.digest, from.substr(prefix.size()));
    // A refused mount is not an error: the blob is uploaded instead.
    return mounted.value_or(false);
  }

  Status PutBlob(const Descriptor& blob, ByteReader& reader) override {
    if (blob.size < 0) return Fail(EINVAL, "blob " + blob.digest.str() + " has no size");
    return client_->UploadBlobChunked(
        ref_, blob.digest, static_cast<uint64_t>(blob.size),
        [&reader](char* buf, size_t max) { return reader.Read(buf, max); }, 32 << 20);
  }

  Status PutBlobFile(const Descriptor& blob, const std::string& path) override {
    HOIST_ASSIGN_OR_RETURN(auto reader, FileReader::Open(path));
    return PutBlob(blob, *reader);
  }

  Status PutManifest(const RawManifest& m, bool top_level) override {
    Reference target = top_level ? ref_ : ref_.WithDigest(m.digest);
    HOIST_ASSIGN_OR_RETURN(Digest d, client_->PutManifest(target, m.media_type, m.bytes));
    if (d != m.digest) {
      return Fail(EIO, "manifest pushed as " + d.str() + ", expected " + m.digest.str());
    }
    return Ok();
  }

  Status Commit() override { return Ok(); }
  void Abort() override {}

 private:
  std::unique_ptr<RegistryClient> client_;
  Reference ref_;
};

}  // namespace

Result<std::unique_ptr<ImageSource>> NewDockerSource(const std::string& reference,
                                                     RegistryOptions registry) {
  HOIST_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(reference));
  HOIST_ASSIGN_OR_RETURN(auto client, RegistryClient::CreateDefault(std::move(registry)));
  return std::unique_ptr<ImageSource>(new DockerSource(std::move(client), std::move(ref)));
}

Result<std::unique_ptr<ImageDestination>> NewDockerDestination(const std::string& reference,
                                                               RegistryOptions registry) {
  HOIST_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(reference));
  HOIST_ASSIGN_OR_RETURN(auto client, RegistryClient::CreateDefault(std::move(registry)));
  return std::unique_ptr<ImageDestination>(
      new DockerDestination(std::move(client), std::move(ref)));
}

}  // namespace hoist
