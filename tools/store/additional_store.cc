#include "tools/store/additional_store.h"

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <utility>

#include "base/log.h"
#include "base/mutex.h"
#include "fetcher/mirror_resolver.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"
#include "fusefs/fuse_ops.h"
#include "fusefs/layer_loader.h"
#include "fusefs/local_image.h"
#include "fusefs/mount.h"
#include "index/zstd_chunked.h"

namespace hoist {

Result<std::string> DecodeStoreRefName(std::string_view name) {
  auto text = Base64Decode(name);
  if (!text || text->empty() || Base64Encode(*text) != name)
    return Fail(ENOENT, "not base64 of a reference");
  if (!Reference::Parse(*text)) return Fail(ENOENT, "not an image reference");
  return *text;
}

Result<Digest> ParseStoreLayerKey(std::string_view key) {
  auto digest = Digest::Parse(key);
  if (!digest || digest->str() != key) return Fail(ENOENT, "not a layer digest");
  return *digest;
}

namespace {

// ctr-remote's (stargz-snapshotter's) declared uncompressed size of a layer, for stores.
constexpr char kAnnotationUncompressedSize[] = "io.containers.estargz.uncompressed-size";

// The annotations a TOC digest lives in (zstd:chunked: both prefixes; eStargz and ctr-remote's
// zstd:chunked: the stargz one).
constexpr const char* kTocAnnotations[] = {
    kAnnotationTocChecksum,
    "io.containers.zstd-chunked.manifest-checksum",
    kAnnotationStargzTocDigest,
};

}  // namespace

Digest StoreTocDigest(const Descriptor& layer) {
  for (const char* key : kTocAnnotations) {
    auto it = layer.annotations.find(key);
    if (it == layer.annotations.end()) continue;
    if (auto d = Digest::Parse(it->second)) return *d;
  }
  return Digest();
}

bool StoreKeyMatches(const Descriptor& layer, const Digest& key) {
  if (layer.digest == key) return true;
  for (const char* name : kTocAnnotations) {
    auto it = layer.annotations.find(name);
    if (it != layer.annotations.end() && it->second == key.str()) return true;
  }
  return false;
}

Result<std::optional<uint64_t>> StoreAnnotatedDiffSize(const Descriptor& layer) {
  auto it = layer.annotations.find(kAnnotationUncompressedSize);
  if (it == layer.annotations.end()) return std::optional<uint64_t>();
  uint64_t size = 0;
  const std::string& text = it->second;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), size);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    return Fail(EBADMSG, std::string(kAnnotationUncompressedSize) + " is not a number: " + text);
  return std::optional<uint64_t>(size);
}

std::string StoreLayerInfo(const Descriptor& layer, const Digest& diff_id,
                           std::optional<uint64_t> diff_size) {
  // containers/storage's archive.Compression: 2 gzip, 4 zstd.
  const int compression = layer.media_type.find("zstd") != std::string::npos ? 4 : 2;
  std::string json = "{\"compressed-diff-digest\":\"" + layer.digest.str() +
                     "\",\"compressed-size\":" + std::to_string(layer.size) +
                     ",\"diff-digest\":\"" + diff_id.str() + "\"";
  if (diff_size) json += ",\"diff-size\":" + std::to_string(*diff_size);
  json += ",\"compression\":" + std::to_string(compression);
  if (Digest toc = StoreTocDigest(layer); !toc.empty())
    json += ",\"toc-digest\":\"" + toc.str() + "\"";
  json += "}\n";
  return json;
}

namespace {

constexpr fuse_ino_t kRootIno = 1;
// Reference and key directories get inode numbers in steps of 8; a key directory's files are
// its number + these (never reused: forget is a no-op).
constexpr uint64_t kStep = 8;
constexpr uint64_t kDir = 0, kDiff = 1, kInfo = 2, kBlob = 3, kUse = 4;
constexpr double kEntrySeconds = 1.0;

// One resolved image, shared by the key directories made from it.
struct RefImage {
  MountImage image;
  std::chrono::steady_clock::time_point resolved;
};

struct RefNode {
  uint64_t ino = 0;
  std::string ref;  // the decoded reference, as containers/storage wrote it
  std::shared_ptr<RefImage> image;
};

struct KeyNode {
  uint64_t ino = 0;
  uint64_t ref_ino = 0;
  std::string key;
  Descriptor layer;
  std::string info;
  std::string diff_target;
  std::shared_ptr<RefImage> image;  // its BlobSource serves `blob`
  int uses = 0;
};

}  // namespace

struct AdditionalStore::Impl {
  MountOptions options;
  LayerStore* layers = nullptr;
  std::unique_ptr<RegistryClient> client;
  fuse_session* session = nullptr;
  std::thread loop;
  mutable Mutex mu;
  bool loop_done HOIST_GUARDED_BY(mu) = false;
  uint64_t next_ino HOIST_GUARDED_BY(mu) = kStep;
  std::map<std::string, std::shared_ptr<RefNode>, std::less<>> refs HOIST_GUARDED_BY(mu);
  std::map<uint64_t, std::shared_ptr<RefNode>> ref_inos HOIST_GUARDED_BY(mu);
  std::map<std::pair<uint64_t, std::string>, std::shared_ptr<KeyNode>> keys HOIST_GUARDED_BY(mu);
  std::map<uint64_t, std::shared_ptr<KeyNode>> key_inos HOIST_GUARDED_BY(mu);

  std::shared_ptr<RefNode> FindRef(uint64_t ino) const {
    MutexLock lock(mu);
    auto it = ref_inos.find(ino);
    return it == ref_inos.end() ? nullptr : it->second;
  }
  // The key directory whose inode block holds `ino`.
  std::shared_ptr<KeyNode> FindKey(uint64_t ino) const {
    MutexLock lock(mu);
    auto it = key_inos.find(ino - ino % kStep);
    return it == key_inos.end() ? nullptr : it->second;
  }

  Result<std::shared_ptr<RefNode>> LookupRef(std::string_view name);
  Result<std::shared_ptr<RefImage>> Resolve(RefNode& ref);
  Result<std::shared_ptr<KeyNode>> LookupKey(RefNode& ref, std::string_view name);
  // The layer's diff-size for `info`: the manifest's annotation, else nullopt (then `podman
  // save` to a docker-archive fails; nothing else needs it). Not read from the zstd:chunked
  // tar-split: for the python image's big layer that is 641 KB fetched and 20 MB of JSON parsed
  // (50 ms of CPU) on the pull's path, and podman refuses zstd layers in a docker-archive anyway.
  std::optional<uint64_t> DiffSize(const Descriptor& layer);
  // Drops one use of the key directory; at zero forgets it and releases the layer.
  Status Rmdir(uint64_t ref_ino, std::string_view name);
};

Result<std::shared_ptr<RefNode>> AdditionalStore::Impl::LookupRef(std::string_view name) {
  HOIST_ASSIGN_OR_RETURN(std::string ref, DecodeStoreRefName(name));
  MutexLock lock(mu);
  if (auto it = refs.find(name); it != refs.end()) return it->second;
  auto node = std::make_shared<RefNode>();
  node->ino = next_ino;
  next_ino += kStep;
  node->ref = std::move(ref);
  refs.emplace(std::string(name), node);
  ref_inos.emplace(node->ino, node);
  return node;
}

Result<std::shared_ptr<RefImage>> AdditionalStore::Impl::Resolve(RefNode& ref) {
  HOIST_ASSIGN_OR_RETURN(Reference parsed, Reference::Parse(ref.ref));
  {
    MutexLock lock(mu);
    // A digest pins the image; a tag is resolved again after tag_reuse (it may move).
    if (ref.image && (!parsed.digest.empty() ||
                      std::chrono::steady_clock::now() - ref.image->resolved < options.tag_reuse))
      return ref.image;
  }
  auto image = ResolveMountImage(*client, parsed, options, layers->host_store());
  if (!image) return Fail(image.error().Context("resolving " + ref.ref));
  auto resolved = std::make_shared<RefImage>();
  resolved->image = std::move(*image);
  resolved->resolved = std::chrono::steady_clock::now();
  MutexLock lock(mu);
  ref.image = resolved;
  return resolved;
}

Result<std::shared_ptr<KeyNode>> AdditionalStore::Impl::LookupKey(RefNode& ref,
                                                                  std::string_view name) {
  HOIST_ASSIGN_OR_RETURN(Digest key, ParseStoreLayerKey(name));
  {
    MutexLock lock(mu);
    if (auto it = keys.find({ref.ino, std::string(name)}); it != keys.end()) return it->second;
  }
  HOIST_ASSIGN_OR_RETURN(std::shared_ptr<RefImage> image, Resolve(ref));
  const ResolvedImage& resolved = image->image.image;
  const auto& descriptors = resolved.manifest.layers;
  auto it = std::find_if(descriptors.begin(), descriptors.end(),
                         [&](const Descriptor& d) { return StoreKeyMatches(d, key); });
  if (it == descriptors.end()) return Fail(ENOENT, ref.ref + " has no layer " + key.str());
  const size_t index = static_cast<size_t>(it - descriptors.begin());
  if (index >= resolved.config.diff_ids.size())
    return Fail(ENOENT, ref.ref + ": the config has no diff_id for layer " + key.str());
  auto node = std::make_shared<KeyNode>();
  node->key = std::string(name);
  node->ref_ino = ref.ino;
  node->layer = *it;
  node->info = StoreLayerInfo(*it, resolved.config.diff_ids[index], DiffSize(*it));
  node->image = image;
  // The layer store admits what it can serve lazily (zstd:chunked, eStargz, an unconverted layer
  // whose checkpoint index the host store holds); anything else is left to a normal pull.
  auto diff = layers->AddLayer(ref.ref, it->digest, resolved.manifest_bytes.digest);
  if (!diff && diff.error().code() == ENOTSUP)
    return Fail(ENOENT, diff.error().message() + ": left to a normal pull");
  if (!diff) return Fail(diff.error());
  node->diff_target = std::move(*diff);
  MutexLock lock(mu);
  if (auto found = keys.find({ref.ino, node->key}); found != keys.end()) {
    // A concurrent lookup made it first: give back the reference this one took.
    if (Status s = layers->RemoveLayer(it->digest); !s) {
      HOIST_LOG(kWarning) << "hoist-store: " << s.error().message();
    }
    return found->second;
  }
  node->ino = next_ino;
  next_ino += kStep;
  keys.emplace(std::pair{ref.ino, node->key}, node);
  key_inos.emplace(node->ino, node);
  HOIST_LOG(kInfo) << "hoist-store: " << ref.ref << " " << node->key << " -> " << node->diff_target;
  return node;
}

std::optional<uint64_t> AdditionalStore::Impl::DiffSize(const Descriptor& layer) {
  auto annotated = StoreAnnotatedDiffSize(layer);
  if (!annotated) {
    HOIST_LOG(kWarning) << "hoist-store: " << annotated.error().message();
    return std::nullopt;
  }
  return *annotated;
}

Status AdditionalStore::Impl::Rmdir(uint64_t ref_ino, std::string_view name) {
  std::shared_ptr<KeyNode> node;
  {
    MutexLock lock(mu);
    auto it = keys.find({ref_ino, std::string(name)});
    if (it == keys.end()) return Fail(ENOENT, "no such layer directory");
    node = it->second;
    if (node->uses > 0) --node->uses;
    if (node->uses > 0) return Ok();
    key_inos.erase(node->ino);
    keys.erase(it);
  }
  HOIST_LOG(kInfo) << "hoist-store: released " << node->key;
  return layers->RemoveLayer(node->layer.digest);
}

namespace {

AdditionalStore::Impl& ImplOf(fuse_req_t req) {
  return *static_cast<AdditionalStore::Impl*>(fuse_req_userdata(req));
}

struct stat DirAttr(uint64_t ino) {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = S_IFDIR | 0755;
  st.st_nlink = 2;
  return st;
}

// The attributes of `ino`, or nullopt for an inode this store does not know (any more).
std::optional<struct stat> AttrOf(AdditionalStore::Impl& impl, uint64_t ino) {
  if (ino == kRootIno || impl.FindRef(ino)) return DirAttr(ino);
  std::shared_ptr<KeyNode> key = impl.FindKey(ino);
  if (!key) return std::nullopt;
  struct stat st {};
  st.st_ino = ino;
  st.st_nlink = 1;
  switch (ino % kStep) {
    case kDir:
      return DirAttr(ino);
    case kDiff:
      st.st_mode = S_IFLNK | 0777;
      st.st_size = static_cast<off_t>(key->diff_target.size());
      return st;
    case kInfo:
      st.st_mode = S_IFREG | 0444;
      st.st_size = static_cast<off_t>(key->info.size());
      return st;
    case kBlob:
      st.st_mode = S_IFREG | 0444;
      st.st_size = static_cast<off_t>(key->layer.size);
      return st;
    case kUse:
      st.st_mode = S_IFREG | 0644;
      return st;
    default:
      return std::nullopt;
  }
}

void ReplyEntry(fuse_req_t req, const struct stat& st, double timeout) {
  fuse_entry_param e{};
  e.ino = st.st_ino;
  e.attr = st;
  e.attr_timeout = timeout;
  e.entry_timeout = timeout;
  fuse_reply_entry(req, &e);
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  AdditionalStore::Impl& impl = ImplOf(req);
  if (parent == kRootIno) {
    auto ref = impl.LookupRef(name);
    if (!ref) return (void)fuse_reply_err(req, ENOENT);
    return ReplyEntry(req, DirAttr((*ref)->ino), 0);
  }
  if (std::shared_ptr<RefNode> ref = impl.FindRef(parent)) {
    auto key = impl.LookupKey(*ref, name);
    if (!key) {
      HOIST_LOG(kInfo) << "hoist-store: " << ref->ref << " " << name << ": "
                       << key.error().message();
      const int err = key.error().code() == ENOENT || key.error().code() == ENOTSUP ||
                              key.error().code() == EINVAL
                          ? ENOENT
                          : FuseErrno(key.error());
      return (void)fuse_reply_err(req, err);
    }
    // Not cached: a key directory goes when its last use is dropped, and a later lookup must
    // reach this handler to load the layer again.
    return ReplyEntry(req, DirAttr((*key)->ino), 0);
  }
  std::shared_ptr<KeyNode> key = impl.FindKey(parent);
  if (!key || parent % kStep != kDir) return (void)fuse_reply_err(req, ENOENT);
  const std::string_view n = name;
  const uint64_t child = n == "diff" ? kDiff : n == "info" ? kInfo : n == "blob" ? kBlob : 0;
  if (child == 0) return (void)fuse_reply_err(req, ENOENT);  // `use` among them: see create
  auto st = AttrOf(impl, key->ino + child);
  if (!st) return (void)fuse_reply_err(req, ENOENT);
  ReplyEntry(req, *st, kEntrySeconds);
}

void OpForget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }
void OpForgetMulti(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  auto st = AttrOf(ImplOf(req), ino);
  if (!st) return (void)fuse_reply_err(req, ESTALE);
  fuse_reply_attr(req, &*st, kEntrySeconds);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat*, int, fuse_file_info*) {
  // Only `use` may be written (an O_TRUNC open of it); nothing changes.
  if (ino % kStep != kUse) return (void)fuse_reply_err(req, EROFS);
  auto st = AttrOf(ImplOf(req), ino);
  if (!st) return (void)fuse_reply_err(req, ESTALE);
  fuse_reply_attr(req, &*st, 0);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  std::shared_ptr<KeyNode> key = ImplOf(req).FindKey(ino);
  if (!key || ino % kStep != kDiff) return (void)fuse_reply_err(req, EINVAL);
  fuse_reply_readlink(req, key->diff_target.c_str());
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  std::shared_ptr<KeyNode> key = ImplOf(req).FindKey(ino);
  const uint64_t kind = ino % kStep;
  if (!key || (kind != kInfo && kind != kBlob && kind != kUse))
    return (void)fuse_reply_err(req, ENOENT);
  if (kind != kUse && (fi->flags & O_ACCMODE) != O_RDONLY) return (void)fuse_reply_err(req, EROFS);
  fi->keep_cache = kind != kUse;
  fuse_reply_open(req, fi);
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  std::shared_ptr<KeyNode> key = ImplOf(req).FindKey(ino);
  if (!key) return (void)fuse_reply_err(req, ESTALE);
  const uint64_t offset = static_cast<uint64_t>(off);
  switch (ino % kStep) {
    case kInfo: {
      const std::string_view info = key->info;
      const std::string_view part = offset < info.size() ? info.substr(offset, size) : "";
      return (void)fuse_reply_buf(req, part.data(), part.size());
    }
    case kBlob: {
      const uint64_t total = static_cast<uint64_t>(key->layer.size);
      if (offset >= total) return (void)fuse_reply_buf(req, nullptr, 0);
      const uint64_t length = std::min<uint64_t>(size, total - offset);
      auto bytes = key->image->image.source->ReadAt(key->layer.digest, offset, length);
      if (!bytes) return (void)fuse_reply_err(req, FuseErrno(bytes.error()));
      return (void)fuse_reply_buf(req, bytes->data(), bytes->size());
    }
    case kUse:
      return (void)fuse_reply_buf(req, nullptr, 0);
    default:
      return (void)fuse_reply_err(req, EISDIR);
  }
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char*, size_t size, off_t, fuse_file_info*) {
  if (ino % kStep != kUse) return (void)fuse_reply_err(req, EROFS);
  fuse_reply_write(req, size);
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t, fuse_file_info*) {
  AdditionalStore::Impl& impl = ImplOf(req);
  if (std::string_view(name) != "use" || parent % kStep != kDir)
    return (void)fuse_reply_err(req, EROFS);
  std::shared_ptr<KeyNode> key = impl.FindKey(parent);
  if (!key) return (void)fuse_reply_err(req, EROFS);
  {
    MutexLock lock(impl.mu);
    ++key->uses;
  }
  // containers/storage's protocol: a store that counts answers ENOENT (nothing is created, so
  // the next creation reaches this handler again).
  fuse_reply_err(req, ENOENT);
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  AdditionalStore::Impl& impl = ImplOf(req);
  if (!impl.FindRef(parent)) return (void)fuse_reply_err(req, EROFS);
  Status s = impl.Rmdir(parent, name);
  if (!s) {
    HOIST_LOG(kInfo) << "hoist-store: rmdir " << name << ": " << s.error().message();
    return (void)fuse_reply_err(req, FuseErrno(s.error()));
  }
  // containers/storage's protocol: a store that counts answers ENOENT (and the directory stays
  // for the other users).
  fuse_reply_err(req, ENOENT);
}

void OpUnlink(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (!AttrOf(ImplOf(req), ino)) return (void)fuse_reply_err(req, ESTALE);
  fuse_reply_open(req, fi);
}

// Lists "." and "..", and a key directory's three files; the root and the reference
// directories list nothing else (containers/storage only looks names up).
void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  std::vector<std::pair<std::string, uint64_t>> names = {{".", ino}, {"..", kRootIno}};
  if (ino != kRootIno && ino % kStep == kDir && ImplOf(req).FindKey(ino)) {
    names.emplace_back("diff", ino + kDiff);
    names.emplace_back("info", ino + kInfo);
    names.emplace_back("blob", ino + kBlob);
  }
  std::string buf(size, '\0');
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < names.size(); ++i) {
    struct stat st {};
    st.st_ino = names[i].second;
    st.st_mode = names[i].second % kStep == kDiff        ? S_IFLNK
                 : i < 2 || names[i].second % kStep == 0 ? S_IFDIR
                                                         : S_IFREG;
    const size_t n = fuse_add_direntry(req, buf.data() + used, size - used, names[i].first.c_str(),
                                       &st, static_cast<off_t>(i + 1));
    if (n > size - used) break;
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

const fuse_lowlevel_ops& StoreOps() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    SetReadOnlyOps(o);
    o.lookup = OpLookup;
    o.forget = OpForget;
    o.forget_multi = OpForgetMulti;
    o.getattr = OpGetattr;
    o.setattr = OpSetattr;
    o.readlink = OpReadlink;
    o.open = OpOpen;
    o.read = OpRead;
    o.write = OpWrite;
    o.create = OpCreate;
    o.rmdir = OpRmdir;
    o.unlink = OpUnlink;
    o.release = OpRelease;
    o.opendir = OpOpendir;
    o.readdir = OpReaddir;
    o.releasedir = OpReleasedir;
    return o;
  }();
  return ops;
}

std::string StoreMountOptionString(const MountOptions& o) {
  // Read-write (create and rmdir carry the references), never suid or devices.
  std::string s = "rw,nodev,nosuid,default_permissions,fsname=hoist:store,subtype=hoist-store";
  if (o.allow_other) s += ",allow_other";
  return s;
}

}  // namespace

Result<std::unique_ptr<AdditionalStore>> AdditionalStore::Start(const MountOptions& options,
                                                                std::string layers_dir) {
  std::unique_ptr<AdditionalStore> store(new AdditionalStore());
  HOIST_ASSIGN_OR_RETURN(store->mountpoint_, CheckMountpoint(options.mountpoint));
  MountOptions layer_options = options;
  layer_options.mountpoint = std::move(layers_dir);
  HOIST_ASSIGN_OR_RETURN(store->layers_, LayerStore::Start(layer_options));

  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->layers = store->layers_.get();
  RegistryOptions ro;
  ro.insecure_registries = options.insecure_registries;
  HOIST_RETURN_IF_ERROR(UseMirrors(&ro, options.hosts_dir, options.registries_conf,
                                   std::chrono::milliseconds(options.mirror_connect_timeout_ms)));
  if (!options.platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(ro.platform, Platform::Parse(options.platform));
  }
  ro.request_timeout = options.timeout;
  ro.retry.total_budget = options.timeout;
  HOIST_ASSIGN_OR_RETURN(impl->client, RegistryClient::CreateDefault(ro));

  std::vector<std::string> args = {"hoist-store", "-o", StoreMountOptionString(options)};
  if (options.fuse_debug) args.push_back("-d");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  impl->session = fuse_session_new(&fargs, &StoreOps(), sizeof(fuse_lowlevel_ops), impl.get());
  fuse_opt_free_args(&fargs);
  if (impl->session == nullptr) return Fail(EINVAL, "fuse_session_new failed (bad FUSE options)");
  if (fuse_session_mount(impl->session, store->mountpoint_.c_str()) != 0) {
    fuse_session_destroy(impl->session);
    impl->session = nullptr;
    return Fail(EIO, "mounting on " + store->mountpoint_ + " failed (is /dev/fuse available?)");
  }
  Impl* raw = impl.get();
  const unsigned max_threads = options.max_threads;
  impl->loop = std::thread([raw, max_threads] {
    fuse_loop_config* config = fuse_loop_cfg_create();
    if (config != nullptr) {
      fuse_loop_cfg_set_clone_fd(config, 0);
      fuse_loop_cfg_set_max_threads(config, max_threads);
      (void)fuse_session_loop_mt(raw->session, config);
      fuse_loop_cfg_destroy(config);
    }
    MutexLock lock(raw->mu);
    raw->loop_done = true;
  });
  store->impl_ = std::move(impl);
  HOIST_LOG(kInfo) << "hoist-store mounted at " << store->mountpoint_ << ", layers at "
                   << store->layers_->mountpoint();
  return store;
}

bool AdditionalStore::Serving() const {
  if (!layers_->Serving()) return false;
  MutexLock lock(impl_->mu);
  return !impl_->loop_done;
}

AdditionalStore::~AdditionalStore() {
  if (impl_ && impl_->session != nullptr) {
    bool running = false;
    {
      MutexLock lock(impl_->mu);
      running = !impl_->loop_done;
    }
    // Unmounting ends the loop (its next read sees ENODEV).
    if (running && ::umount2(mountpoint_.c_str(), MNT_DETACH) != 0) {
      HOIST_LOG(kWarning) << "hoist-store: umount " << mountpoint_ << ": " << std::strerror(errno);
    }
    if (impl_->loop.joinable()) impl_->loop.join();
    fuse_session_unmount(impl_->session);
    fuse_session_destroy(impl_->session);
    impl_->session = nullptr;
  }
  impl_.reset();
  layers_.reset();
}

}  // namespace hoist
