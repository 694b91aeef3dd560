// hoist load -i FILE: reads a docker-archive (what `docker save` / `skopeo copy ...
// docker-archive:` write: manifest.json with Config/RepoTags/Layers, legacy layer.tar dirs
// allowed) or an OCI archive (a tar of an OCI image layout: oci-layout, index.json, blobs/),
// optionally gzip- or zstd-compressed, into the local store, so the images can be mounted with no
// registry and pushed.
//
// Storage decision: every layer is kept exactly as the archive has it (docker-archive: usually an
// uncompressed tar) as a verified local blob file (fusefs/local_image.h). hoistfs indexes it at
// mount time like any unconverted layer (plain tar: lazy kRaw chunks with their own sha256, read
// from the file and cached; gzip/zstd: the StreamLayer full read), and `hoist push` uploads it
// byte for byte. A docker-archive image gets a Docker v2 manifest built from its config and
// layers (media type ...rootfs.diff.tar for uncompressed layers).
//
// Checks: every layer's uncompressed sha256 must equal the config's diff_id (docker-archive), or
// every blob's sha256 the digest its descriptor names (OCI); a truncated or corrupt tar is an
// error from index/tar_reader.h. All-or-nothing: layer files and blobs this load created are
// removed on failure, and the refs are written last, only after every image is complete.
#include <rapidjson/document.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <cstdio>
#include <map>

#include "base/file_util.h"
#include "index/tar_reader.h"
#include "tools/local_store.h"
#include "tools/verbs.h"

namespace hoist {
namespace {

constexpr uint64_t kMaxSmallMember = 8 << 20;

struct LoadArgs {
  std::string cache;
  std::string input;
  bool quiet = false;
};

struct Member {
  bool symlink = false;
  std::string target;  // cleaned path of the symlink target
  uint64_t offset = 0;
  uint64_t size = 0;
};

// The members of an uncompressed tar file, by cleaned path.
class Archive {
 public:
  static Result<Archive> Scan(const std::string& path) {
    Archive a;
    a.path_ = path;
    HOIST_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> file, FileReader::Open(path));
    TarReader tar([&file](char* buf, size_t n) { return file->Read(buf, n); });
    while (true) {
      HOIST_ASSIGN_OR_RETURN(const TarMember* m, tar.Next());
      if (m == nullptr) break;
      Member mem;
      if (m->entry.type == EntryType::kSymlink) {
        mem.symlink = true;
        std::string dir = m->entry.path;
        size_t slash = dir.rfind('/');
        dir = slash == std::string::npos ? "" : dir.substr(0, slash);
        std::string t = m->entry.link_name;
        while (t.starts_with("../")) {
          t = t.substr(3);
          size_t s = dir.rfind('/');
          dir = s == std::string::npos ? "" : dir.substr(0, s);
        }
        if (t.starts_with("./")) t = t.substr(2);
        mem.target = dir.empty() ? t : dir + "/" + t;
      } else if (m->entry.type == EntryType::kRegular) {
        mem.offset = m->payload_offset;
        mem.size = m->payload_size;
      } else {
        continue;
      }
      a.members_[m->entry.path] = mem;
    }
    return a;
  }

  bool Has(const std::string& name) const { return Resolve(name).has_value(); }

  Result<std::unique_ptr<ByteReader>> Open(const std::string& name) const {
    HOIST_ASSIGN_OR_RETURN(Member m, Find(name));
    HOIST_ASSIGN_OR_RETURN(auto r, FileReader::Open(path_, m.offset, m.size));
    return std::unique_ptr<ByteReader>(std::move(r));
  }

  Result<std::string> Read(const std::string& name) const {
    HOIST_ASSIGN_OR_RETURN(Member m, Find(name));
    if (m.size > kMaxSmallMember) return Fail(EFBIG, name + ": too large");
    HOIST_ASSIGN_OR_RETURN(auto r, Open(name));
    std::string out(m.size, '\0');
    HOIST_ASSIGN_OR_RETURN(size_t n, ReadFull(*r, out.data(), out.size()));
    if (n != out.size()) return Fail(EIO, name + ": truncated");
    return out;
  }

 private:
  std::optional<Member> Resolve(std::string name) const {
    if (name.starts_with("./")) name = name.substr(2);
    for (int hops = 0; hops < 8; ++hops) {
      auto it = members_.find(name);
      if (it == members_.end()) return std::nullopt;
      if (!it->second.symlink) return it->second;
      name = it->second.target;
    }
    return std::nullopt;
  }
  Result<Member> Find(const std::string& name) const {
    std::optional<Member> m = Resolve(name);
    if (!m) return Fail(EINVAL, "the archive has no member \"" + name + "\"");
    return *m;
  }

  std::string path_;
  std::map<std::string, Member> members_;
};

struct LoadedImage {
  std::string manifest;
  std::string config;
  std::vector<std::string> names;
};

// Undo log of one load.
struct Created {
  std::vector<std::string> files;
  std::vector<Digest> blobs;
};

Status PutBlobTracked(Store& store, std::string_view bytes, Created* created) {
  const Digest d = Digest::Of(bytes);
  HOIST_ASSIGN_OR_RETURN(std::optional<std::string> have, store.GetBlob(d));
  if (have) return Ok();
  HOIST_RETURN_IF_ERROR(store.PutBlob(d, bytes));
  created->blobs.push_back(d);
  return Ok();
}

Status StoreLayer(LocalStore& local, const Archive& ar, const std::string& member,
                  const Descriptor& desc, Created* created) {
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ByteReader> r, ar.Open(member));
  HOIST_ASSIGN_OR_RETURN(bool wrote, local.WriteBlobFile(desc, *r));
  if (wrote) created->files.push_back(local.BlobFilePath(desc.digest));
  return Ok();
}

std::string DockerManifest(const Descriptor& config, const std::vector<Descriptor>& layers) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&w](std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  auto desc = [&](const Descriptor& d) {
    w.StartObject();
    str("mediaType");
    str(d.media_type);
    str("size");
    w.Int64(d.size);
    str("digest");
    str(d.digest.str());
    w.EndObject();
  };
  w.StartObject();
  str("schemaVersion");
  w.Int(2);
  str("mediaType");
  str(kMediaTypeDockerManifest);
  str("config");
  desc(config);
  str("layers");
  w.StartArray();
  for (const Descriptor& l : layers) desc(l);
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

Result<std::vector<LoadedImage>> LoadDockerArchive(LocalStore& local, const Archive& ar,
                                                   Created* created) {
  HOIST_ASSIGN_OR_RETURN(std::string mj, ar.Read("manifest.json"));
  rapidjson::Document doc;
  doc.Parse(mj.data(), mj.size());
  if (doc.HasParseError() || !doc.IsArray()) {
    return Fail(EINVAL, "manifest.json: not a JSON array");
  }
  std::vector<LoadedImage> out;
  for (const auto& item : doc.GetArray()) {
    if (!item.IsObject() || !item.HasMember("Config") || !item["Config"].IsString() ||
        !item.HasMember("Layers") || !item["Layers"].IsArray()) {
      return Fail(EINVAL, "manifest.json: an entry lacks Config or Layers");
    }
    const std::string config_member = item["Config"].GetString();
    HOIST_ASSIGN_OR_RETURN(std::string config_bytes, ar.Read(config_member));
    auto config = ParseImageConfig(config_bytes);
    if (!config) return Fail(config.error().Context(config_member));
    const auto& layers = item["Layers"].GetArray();
    if (layers.Size() != config->diff_ids.size()) {
      return Fail(EINVAL, config_member + ": " + std::to_string(config->diff_ids.size()) +
                              " diff_ids for " + std::to_string(layers.Size()) + " layers");
    }
    std::vector<Descriptor> descs;
    for (rapidjson::SizeType i = 0; i < layers.Size(); ++i) {
      if (!layers[i].IsString()) return Fail(EINVAL, "manifest.json: a layer is not a string");
      const std::string member = layers[i].GetString();
      auto what = [&](const Error& e) {
        return e.Context("layer " + std::to_string(i + 1) + " (" + member + ")");
      };
      // Pass 1: digest of the bytes as stored, and of their uncompressed tar.
      HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ByteReader> r, ar.Open(member));
      HashingReader raw(std::move(r));
      std::string head(512, '\0');
      auto got = ReadFull(raw, head.data(), head.size());
      if (!got) return Fail(what(got.error()));
      head.resize(*got);
      const Compression c = DetectCompression(head);
      PrefixedReader prefixed(head, &raw);
      Digest diff_id;
      if (c == Compression::kNone) {
        if (Status st = Drain(prefixed); !st) return Fail(what(st.error()));
      } else {
        HashingReader plain(NewDecompressor(c, &prefixed));
        if (Status st = Drain(plain); !st) return Fail(what(st.error()));
        diff_id = plain.Finish();
      }
      Descriptor d;
      d.digest = raw.Finish();
      d.size = static_cast<int64_t>(raw.bytes());
      if (c == Compression::kNone) diff_id = d.digest;
      if (diff_id != config->diff_ids[i]) {
        return Fail(what(Error{EIO, "content " + diff_id.str() +
                                        " does not match the config's "
                                        "diff_id " +
                                        config->diff_ids[i].str() + " (corrupt archive)"}));
      }
      d.media_type = c == Compression::kGzip   ? std::string(kMediaTypeDockerLayerGzip)
                     : c == Compression::kZstd ? std::string(kMediaTypeOciLayerZstd)
                                               : "application/vnd.docker.image.rootfs.diff.tar";
      // Pass 2: the verified blob file.
      if (Status st = StoreLayer(local, ar, member, d, created); !st) return Fail(what(st.error()));
      descs.push_back(std::move(d));
    }
    Descriptor cd;
    cd.media_type = kMediaTypeDockerConfig;
    cd.digest = Digest::Of(config_bytes);
    cd.size = static_cast<int64_t>(config_bytes.size());
    LoadedImage img;
    img.manifest = DockerManifest(cd, descs);
    img.config = std::move(config_bytes);
    if (item.HasMember("RepoTags") && item["RepoTags"].IsArray()) {
      for (const auto& t : item["RepoTags"].GetArray()) {
        if (!t.IsString()) continue;
        HOIST_ASSIGN_OR_RETURN(std::string name, LocalStore::NormalizeName(t.GetString()));
        img.names.push_back(std::move(name));
      }
    }
    out.push_back(std::move(img));
  }
  return out;
}

std::string BlobMember(const Digest& d) { return "blobs/sha256/" + std::string(d.hex()); }

Result<std::string> ReadVerified(const Archive& ar, const Descriptor& d) {
  HOIST_ASSIGN_OR_RETURN(std::string bytes, ar.Read(BlobMember(d.digest)));
  if (Digest::Of(bytes) != d.digest) {
    return Fail(EIO, BlobMember(d.digest) + ": digest mismatch (corrupt archive)");
  }
  return bytes;
}

Result<std::vector<LoadedImage>> LoadOciArchive(LocalStore& local, const Archive& ar,
                                                const std::string& stem, Created* created) {
  HOIST_ASSIGN_OR_RETURN(std::string ij, ar.Read("index.json"));
  HOIST_ASSIGN_OR_RETURN(ImageIndex index, ParseImageIndex(ij, kMediaTypeOciIndex));
  std::vector<LoadedImage> out;
  for (const Descriptor& top : index.manifests) {
    Descriptor md = top;
    HOIST_ASSIGN_OR_RETURN(std::string bytes, ReadVerified(ar, md));
    HOIST_ASSIGN_OR_RETURN(std::string type, ManifestMediaType(md.media_type, bytes));
    if (IsIndexMediaType(type)) {
      HOIST_ASSIGN_OR_RETURN(ImageIndex child, ParseImageIndex(bytes, type));
      HOIST_ASSIGN_OR_RETURN(md, SelectPlatform(child, Platform::Host()));
      HOIST_ASSIGN_OR_RETURN(bytes, ReadVerified(ar, md));
      HOIST_ASSIGN_OR_RETURN(type, ManifestMediaType(md.media_type, bytes));
    }
    HOIST_ASSIGN_OR_RETURN(ImageManifest m, ParseImageManifest(bytes, type));
    HOIST_ASSIGN_OR_RETURN(std::string config, ReadVerified(ar, m.config));
    HOIST_RETURN_IF_ERROR(ParseImageConfig(config));
    for (size_t i = 0; i < m.layers.size(); ++i) {
      Status st = StoreLayer(local, ar, BlobMember(m.layers[i].digest), m.layers[i], created);
      if (!st) {
        return Fail(st.error().Context("layer " + std::to_string(i + 1) + " (" +
                                       m.layers[i].digest.str() + ")"));
      }
    }
    LoadedImage img;
    img.manifest = std::move(bytes);
    img.config = std::move(config);
    std::string name;
    if (auto it = top.annotations.find("io.containerd.image.name"); it != top.annotations.end()) {
      name = it->second;
    } else if (auto r = top.annotations.find("org.opencontainers.image.ref.name");
               r != top.annotations.end()) {
      name = r->second.find_first_of("/:") != std::string::npos
                 ? r->second
                 : "localhost/" + stem + ":" + r->second;
    }
    if (!name.empty()) {
      HOIST_ASSIGN_OR_RETURN(std::string n, LocalStore::NormalizeName(name));
      img.names.push_back(std::move(n));
    }
    out.push_back(std::move(img));
  }
  return out;
}

// A plain tar path for `input`: itself, or a decompressed copy in `scratch` (removed by caller).
Result<std::string> Uncompressed(const std::string& input, const std::string& scratch) {
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> f, FileReader::Open(input));
  std::string head(4, '\0');
  HOIST_ASSIGN_OR_RETURN(size_t n, ReadFull(*f, head.data(), head.size()));
  head.resize(n);
  const Compression c = DetectCompression(head);
  if (c == Compression::kNone) return input;
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> again, FileReader::Open(input));
  std::unique_ptr<ByteReader> dec = NewDecompressor(c, again.get());
  FILE* out = std::fopen(scratch.c_str(), "wbe");
  if (out == nullptr) return Fail(ErrnoError("creating " + scratch));
  std::string buf(1 << 20, '\0');
  while (true) {
    auto got = dec->Read(buf.data(), buf.size());
    if (!got) {
      std::fclose(out);
      return Fail(got.error().Context("decompressing " + input));
    }
    if (*got == 0) break;
    if (std::fwrite(buf.data(), 1, *got, out) != *got) {
      Error e = ErrnoError("writing " + scratch);
      std::fclose(out);
      return Fail(e);
    }
  }
  if (std::fclose(out) != 0) return Fail(ErrnoError("writing " + scratch));
  return scratch;
}

Status Load(const LoadArgs& a, LocalStore& local, Created* created,
            std::vector<std::string>* loaded) {
  const std::string scratch_dir = local.cache_dir() + "/tmp";
  HOIST_RETURN_IF_ERROR(MakeDirs(scratch_dir, 0700));
  const std::string scratch = scratch_dir + "/load-" + std::to_string(::getpid()) + ".tar";
  auto path = Uncompressed(a.input, scratch);
  struct Cleanup {
    std::string p;
    ~Cleanup() { ::unlink(p.c_str()); }
  } cleanup{scratch};
  if (!path) return Fail(path.error());
  auto ar = Archive::Scan(*path);
  if (!ar) return Fail(ar.error().Context(a.input));
  std::string stem = a.input.substr(a.input.rfind('/') + 1);
  stem = stem.substr(0, stem.find('.'));
  std::vector<LoadedImage> images;
  if (ar->Has("manifest.json")) {
    HOIST_ASSIGN_OR_RETURN(images, LoadDockerArchive(local, *ar, created));
  } else if (ar->Has("index.json") && ar->Has("oci-layout")) {
    HOIST_ASSIGN_OR_RETURN(images, LoadOciArchive(local, *ar, stem, created));
  } else {
    return Fail(EINVAL, a.input +
                            ": neither a docker-archive (manifest.json) nor an OCI archive "
                            "(oci-layout, index.json)");
  }
  if (images.empty()) return Fail(EINVAL, a.input + ": the archive holds no image");
  Store& store = local.store();
  for (const LoadedImage& img : images) {
    HOIST_RETURN_IF_ERROR(PutBlobTracked(store, img.config, created));
    HOIST_RETURN_IF_ERROR(PutBlobTracked(store, img.manifest, created));
  }
  // Refs last: every image they point at is complete.
  for (const LoadedImage& img : images) {
    const Digest d = Digest::Of(img.manifest);
    for (const std::string& name : img.names) {
      HOIST_RETURN_IF_ERROR(store.PutRef(name, d));
      loaded->push_back("Loaded image: " + name + " " + d.str());
    }
    if (img.names.empty()) loaded->push_back("Loaded image (untagged): " + d.str());
  }
  return Ok();
}

int RunLoad(const LoadArgs& a) {
  auto local = LocalStore::Open(a.cache);
  if (!local) return ReportError("load", local.error().message());
  Created created;
  std::vector<std::string> loaded;
  Status st = Load(a, **local, &created, &loaded);
  if (!st) {
    for (const std::string& f : created.files) ::unlink(f.c_str());
    for (const Digest& d : created.blobs) (void)(*local)->store().DeleteBlob(d);
    return ReportError("load", st.error().message());
  }
  if (!a.quiet) {
    for (const std::string& l : loaded) std::printf("%s\n", l.c_str());
  }
  return 0;
}

}  // namespace

void RegisterLoad(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<LoadArgs>();
  CLI::App* sub = app.add_subcommand(
      "load", "Load images from a docker-archive or OCI archive into the local store");
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_option("-i,--input", args->input, "Archive file (tar, optionally gzip/zstd)")
      ->required();
  sub->add_flag("-q,--quiet", args->quiet, "Print nothing on success");
  sub->callback([args, run] { *run = [args] { return RunLoad(*args); }; });
}

}  // namespace hoist
