#include "tests/harness/oci_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "base/file_util.h"
#include "base/scoped_fd.h"
#include "tests/harness/subprocess.h"

namespace hoist::harness {
namespace {

constexpr char kManifestType[] = "application/vnd.oci.image.manifest.v1+json";
constexpr char kIndexType[] = "application/vnd.oci.image.index.v1+json";
constexpr char kConfigType[] = "application/vnd.oci.image.config.v1+json";
constexpr char kRefNameAnnotation[] = "org.opencontainers.image.ref.name";
constexpr char kCreated[] = "2023-11-14T22:13:20Z";

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

Status ValidatePath(const std::string& path) {
  if (path.empty() || path[0] == '/' || path.back() == '/') {
    return Fail(EINVAL, "test layer: bad path '" + path + "' (must be relative, no trailing /)");
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return Fail(EINVAL, "test layer: bad path '" + path + "' (empty, . or .. component)");
    }
    start = end + 1;
  }
  return Ok();
}

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

int Depth(const std::string& path) {
  return static_cast<int>(std::count(path.begin(), path.end(), '/'));
}

Status WriteAll(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError("write " + path));
    }
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Status CreateEntry(const FileSpec& f, const std::string& staging) {
  const std::string full = staging + "/" + f.path;
  HOIST_RETURN_IF_ERROR(MakeDirs(staging + "/" + Parent(f.path)));
  switch (f.type) {
    case FileSpec::Type::kDir:
      if (::mkdir(full.c_str(), 0755) != 0 && errno != EEXIST) {
        return Fail(ErrnoError("mkdir " + full));
      }
      return Ok();
    case FileSpec::Type::kFile: {
      ScopedFd fd(::open(full.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!fd.valid()) return Fail(ErrnoError("create " + full));
      if (f.pattern_size == 0) return WriteAll(fd.get(), f.content, full);
      constexpr size_t kStep = 1 << 20;
      for (uint64_t off = 0; off < f.pattern_size; off += kStep) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(kStep, f.pattern_size - off));
        HOIST_RETURN_IF_ERROR(WriteAll(fd.get(), PatternBytes(f.pattern_seed, off, n), full));
      }
      return Ok();
    }
    case FileSpec::Type::kSymlink:
      if (::symlink(f.link_target.c_str(), full.c_str()) != 0) {
        return Fail(ErrnoError("symlink " + full));
      }
      return Ok();
    case FileSpec::Type::kHardlink: {
      const std::string target = staging + "/" + f.link_target;
      if (::link(target.c_str(), full.c_str()) != 0) {
        if (errno == ENOENT) {
          return Fail(EINVAL, "test layer: hardlink " + f.path + " -> " + f.link_target +
                                  ": the target must be listed earlier in the same layer");
        }
        return Fail(ErrnoError("link " + full));
      }
      return Ok();
    }
    case FileSpec::Type::kFifo:
      if (::mkfifo(full.c_str(), 0644) != 0) return Fail(ErrnoError("mkfifo " + full));
      return Ok();
    case FileSpec::Type::kCharDevice:
      if (::mknod(full.c_str(), S_IFCHR | 0600, makedev(f.dev_major, f.dev_minor)) != 0)
        return Fail(ErrnoError("mknod " + full));
      return Ok();
  }
  return Ok();
}

Status ApplyMetadata(const FileSpec& f, const std::string& staging) {
  if (f.type == FileSpec::Type::kHardlink) return Ok();  // shares the target's inode
  const std::string full = staging + "/" + f.path;
  if (::lchown(full.c_str(), f.uid, f.gid) != 0) return Fail(ErrnoError("lchown " + full));
  if (f.type != FileSpec::Type::kSymlink && ::chmod(full.c_str(), f.mode & 07777) != 0) {
    return Fail(ErrnoError("chmod " + full));
  }
  for (const auto& [name, value] : f.xattrs) {
    if (::lsetxattr(full.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
      return Fail(ErrnoError("lsetxattr " + name + " on " + full));
    }
  }
  return Ok();
}

Status SetMtime(const std::string& full, int64_t mtime) {
  timespec times[2];
  times[0].tv_sec = mtime;
  times[0].tv_nsec = 0;
  times[1] = times[0];
  if (::utimensat(AT_FDCWD, full.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return Fail(ErrnoError("utimensat " + full));
  }
  return Ok();
}

// Moves `file` into the layout's blob store under its digest.
Result<std::pair<Digest, uint64_t>> StoreBlobFile(const std::string& layout,
                                                  const std::string& file) {
  HOIST_ASSIGN_OR_RETURN(auto digest_size, DigestFile(file));
  const std::string dest = LayoutBlobPath(layout, digest_size.first);
  if (::rename(file.c_str(), dest.c_str()) != 0) return Fail(ErrnoError("rename to " + dest));
  return digest_size;
}

Result<Digest> StoreBlob(const std::string& layout, const std::string& bytes) {
  Digest d = Digest::Of(bytes);
  HOIST_RETURN_IF_ERROR(WriteFileAtomic(LayoutBlobPath(layout, d), bytes, 0644));
  return d;
}

void WriteStringArray(JsonWriter& w, const char* key, const std::vector<std::string>& values) {
  w.Key(key);
  w.StartArray();
  for (const std::string& v : values) w.String(v.c_str(), v.size());
  w.EndArray();
}

void WriteStringMap(JsonWriter& w, const char* key, const std::map<std::string, std::string>& m) {
  w.Key(key);
  w.StartObject();
  for (const auto& [k, v] : m) {
    w.Key(k.c_str(), k.size());
    w.String(v.c_str(), v.size());
  }
  w.EndObject();
}

void WriteDescriptor(JsonWriter& w, const std::string& media_type, const Digest& digest,
                     uint64_t size) {
  w.Key("mediaType");
  w.String(media_type.c_str());
  w.Key("digest");
  w.String(digest.str().c_str());
  w.Key("size");
  w.Uint64(size);
}

Status EnsureLayout(const std::string& layout) {
  HOIST_RETURN_IF_ERROR(MakeDirs(layout + "/blobs/sha256"));
  return WriteFileAtomic(layout + "/oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 0644);
}

// Adds (or replaces) the index.json entry tagged `tag`.
Status TagInIndexJson(const std::string& layout, const std::string& media_type,
                      const Digest& digest, uint64_t size, const std::string& tag) {
  struct Entry {
    std::string media_type, digest, tag;
    uint64_t size;
  };
  std::vector<Entry> entries;
  if (auto existing = ReadFile(layout + "/index.json")) {
    rapidjson::Document doc;
    doc.Parse(existing->c_str());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("manifests")) {
      return Fail(EINVAL, layout + "/index.json: not an OCI index");
    }
    for (const auto& m : doc["manifests"].GetArray()) {
      Entry e{m["mediaType"].GetString(), m["digest"].GetString(), "", m["size"].GetUint64()};
      if (m.HasMember("annotations") && m["annotations"].HasMember(kRefNameAnnotation)) {
        e.tag = m["annotations"][kRefNameAnnotation].GetString();
      }
      if (e.tag != tag) entries.push_back(e);
    }
  }
  entries.push_back({media_type, digest.str(), tag, size});
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("schemaVersion");
  w.Int(2);
  w.Key("manifests");
  w.StartArray();
  for (const Entry& e : entries) {
    w.StartObject();
    w.Key("mediaType");
    w.String(e.media_type.c_str());
    w.Key("digest");
    w.String(e.digest.c_str());
    w.Key("size");
    w.Uint64(e.size);
    if (!e.tag.empty()) WriteStringMap(w, "annotations", {{kRefNameAnnotation, e.tag}});
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return WriteFileAtomic(layout + "/index.json", buf.GetString(), 0644);
}

// Layers, config and manifest blobs; not tagged in index.json.
Result<BuiltImage> BuildImageBlobs(const std::string& layout, const std::vector<LayerSpec>& layers,
                                   const ImageSpec& spec) {
  HOIST_RETURN_IF_ERROR(EnsureLayout(layout));
  BuiltImage image;
  image.layout_dir = layout;
  image.tag = spec.tag;
  const std::string work = layout + "/.hoist-build";
  HOIST_RETURN_IF_ERROR(RemoveTree(work));
  HOIST_RETURN_IF_ERROR(MakeDirs(work));
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& layer = layers[i];
    const std::string tar = work + "/layer" + std::to_string(i) + ".tar";
    if (layer.tar_file.empty()) {
      HOIST_RETURN_IF_ERROR(BuildLayerTar(layer, work + "/staging" + std::to_string(i), tar));
    } else {
      HOIST_RETURN_IF_ERROR(RunChecked({"cp", layer.tar_file, tar}));
    }
    BuiltLayer built;
    HOIST_ASSIGN_OR_RETURN(auto tar_digest, DigestFile(tar));
    built.diff_id = tar_digest.first;
    std::string blob = tar;
    switch (layer.compression) {
      case LayerCompression::kNone:
        built.media_type = "application/vnd.oci.image.layer.v1.tar";
        break;
      case LayerCompression::kGzip:
        built.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
        blob = tar + ".gz";
        HOIST_RETURN_IF_ERROR(
            RunChecked({"gzip", "-n", "-c"}, {.stdin_path = tar, .stdout_path = blob}));
        break;
      case LayerCompression::kZstd:
        built.media_type = "application/vnd.oci.image.layer.v1.tar+zstd";
        blob = tar + ".zst";
        HOIST_RETURN_IF_ERROR(
            RunChecked({"zstd", "-q", "-c"}, {.stdin_path = tar, .stdout_path = blob}));
        break;
    }
    HOIST_ASSIGN_OR_RETURN(auto blob_digest, StoreBlobFile(layout, blob));
    built.digest = blob_digest.first;
    built.size = blob_digest.second;
    built.blob_path = LayoutBlobPath(layout, built.digest);
    image.layers.push_back(std::move(built));
  }
  HOIST_RETURN_IF_ERROR(RemoveTree(work));

  {  // config
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    const std::string created = spec.created.empty() ? std::string(kCreated) : spec.created;
    w.Key("created");
    w.String(created.c_str());
    w.Key("architecture");
    w.String(spec.architecture.c_str());
    w.Key("os");
    w.String(spec.os.c_str());
    if (!spec.variant.empty()) {
      w.Key("variant");
      w.String(spec.variant.c_str());
    }
    w.Key("config");
    w.StartObject();
    if (!spec.user.empty()) {
      w.Key("User");
      w.String(spec.user.c_str());
    }
    WriteStringArray(w, "Env", spec.env);
    if (!spec.entrypoint.empty()) WriteStringArray(w, "Entrypoint", spec.entrypoint);
    if (!spec.cmd.empty()) WriteStringArray(w, "Cmd", spec.cmd);
    if (!spec.working_dir.empty()) {
      w.Key("WorkingDir");
      w.String(spec.working_dir.c_str());
    }
    if (!spec.labels.empty()) WriteStringMap(w, "Labels", spec.labels);
    w.EndObject();
    w.Key("rootfs");
    w.StartObject();
    w.Key("type");
    w.String("layers");
    w.Key("diff_ids");
    w.StartArray();
    for (const BuiltLayer& l : image.layers) w.String(l.diff_id.str().c_str());
    w.EndArray();
    w.EndObject();
    w.Key("history");
    w.StartArray();
    std::vector<ImageSpec::HistoryItem> history = spec.history;
    if (history.empty()) {
      for (size_t i = 0; i < image.layers.size(); ++i) {
        history.push_back({.created_by = "hoist test harness: layer " + std::to_string(i)});
      }
    }
    for (const ImageSpec::HistoryItem& h : history) {
      w.StartObject();
      w.Key("created");
      w.String(created.c_str());
      w.Key("created_by");
      w.String(h.created_by.c_str(), h.created_by.size());
      if (!h.comment.empty()) {
        w.Key("comment");
        w.String(h.comment.c_str(), h.comment.size());
      }
      if (h.empty_layer) {
        w.Key("empty_layer");
        w.Bool(true);
      }
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    image.config = buf.GetString();
    HOIST_ASSIGN_OR_RETURN(image.config_digest, StoreBlob(layout, image.config));
  }
  {  // manifest
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("schemaVersion");
    w.Int(2);
    w.Key("mediaType");
    w.String(kManifestType);
    w.Key("config");
    w.StartObject();
    WriteDescriptor(w, kConfigType, image.config_digest, image.config.size());
    w.EndObject();
    w.Key("layers");
    w.StartArray();
    for (const BuiltLayer& l : image.layers) {
      w.StartObject();
      WriteDescriptor(w, l.media_type, l.digest, l.size);
      w.EndObject();
    }
    w.EndArray();
    if (!spec.manifest_annotations.empty()) {
      WriteStringMap(w, "annotations", spec.manifest_annotations);
    }
    w.EndObject();
    image.manifest = buf.GetString();
    HOIST_ASSIGN_OR_RETURN(image.manifest_digest, StoreBlob(layout, image.manifest));
  }
  return image;
}

}  // namespace

Result<std::pair<Digest, uint64_t>> DigestFile(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return Fail(ErrnoError(path));
  Sha256 hash;
  uint64_t total = 0;
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError("read " + path));
    }
    if (n == 0) break;
    hash.Update(buf.data(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  return std::make_pair(Digest::FromSha256(hash.Final()), total);
}

FileSpec FileSpec::File(std::string path, std::string content, mode_t mode) {
  FileSpec f;
  f.type = Type::kFile;
  f.path = std::move(path);
  f.content = std::move(content);
  f.mode = mode;
  return f;
}

FileSpec FileSpec::BigFile(std::string path, uint64_t size, uint32_t seed, mode_t mode) {
  FileSpec f = File(std::move(path), "", mode);
  f.pattern_size = size;
  f.pattern_seed = seed;
  return f;
}

FileSpec FileSpec::Dir(std::string path, mode_t mode) {
  FileSpec f;
  f.type = Type::kDir;
  f.path = std::move(path);
  f.mode = mode;
  return f;
}

FileSpec FileSpec::Symlink(std::string path, std::string target) {
  FileSpec f;
  f.type = Type::kSymlink;
  f.path = std::move(path);
  f.link_target = std::move(target);
  f.mode = 0777;
  return f;
}

FileSpec FileSpec::Hardlink(std::string path, std::string existing_path) {
  FileSpec f;
  f.type = Type::kHardlink;
  f.path = std::move(path);
  f.link_target = std::move(existing_path);
  return f;
}

FileSpec FileSpec::Fifo(std::string path, mode_t mode) {
  FileSpec f;
  f.type = Type::kFifo;
  f.path = std::move(path);
  f.mode = mode;
  return f;
}

FileSpec FileSpec::CharDevice(std::string path, unsigned major, unsigned minor, mode_t mode) {
  FileSpec f;
  f.type = Type::kCharDevice;
  f.path = std::move(path);
  f.mode = mode;
  f.dev_major = major;
  f.dev_minor = minor;
  return f;
}

FileSpec FileSpec::Whiteout(const std::string& path) {
  std::string parent = Parent(path);
  std::string base = parent.empty() ? path : path.substr(parent.size() + 1);
  return File((parent.empty() ? "" : parent + "/") + ".wh." + base, "");
}

FileSpec FileSpec::Opaque(const std::string& dir) { return File(dir + "/.wh..wh..opq", ""); }

std::string PatternBytes(uint32_t seed, uint64_t offset, size_t length) {
  std::string out(length, '\0');
  uint64_t block = offset / 8;
  uint64_t word = SplitMix64((static_cast<uint64_t>(seed) << 40) ^ block);
  for (size_t i = 0; i < length; ++i) {
    uint64_t pos = offset + i;
    if (pos / 8 != block) {
      block = pos / 8;
      word = SplitMix64((static_cast<uint64_t>(seed) << 40) ^ block);
    }
    out[i] = static_cast<char>((word >> (8 * (pos % 8))) & 0xff);
  }
  return out;
}

std::string LayoutBlobPath(const std::string& layout_dir, const Digest& digest) {
  return layout_dir + "/blobs/sha256/" + std::string(digest.hex());
}

Status BuildLayerTar(const LayerSpec& layer, const std::string& staging_dir,
                     const std::string& tar_path) {
  HOIST_RETURN_IF_ERROR(RequirePrograms({"tar"}));
  std::set<std::string> declared;
  for (const FileSpec& f : layer.files) {
    HOIST_RETURN_IF_ERROR(ValidatePath(f.path));
    if (!declared.insert(f.path).second) {
      return Fail(EINVAL, "test layer: duplicate path '" + f.path + "'");
    }
  }
  // The archive order: the listed entries, each preceded by its implicit parents.
  std::vector<FileSpec> order;
  std::set<std::string> listed;
  for (const FileSpec& f : layer.files) {
    if (layer.implicit_parents) {
      std::vector<std::string> parents;
      for (std::string p = Parent(f.path); !p.empty(); p = Parent(p)) parents.push_back(p);
      for (auto it = parents.rbegin(); it != parents.rend(); ++it) {
        if (!declared.contains(*it) && listed.insert(*it).second)
          order.push_back(FileSpec::Dir(*it));
      }
    }
    listed.insert(f.path);
    order.push_back(f);
  }

  HOIST_RETURN_IF_ERROR(RemoveTree(staging_dir));
  HOIST_RETURN_IF_ERROR(MakeDirs(staging_dir));
  for (const FileSpec& f : order) HOIST_RETURN_IF_ERROR(CreateEntry(f, staging_dir));
  for (const FileSpec& f : order) HOIST_RETURN_IF_ERROR(ApplyMetadata(f, staging_dir));
  // Times last, deepest first, so creating children does not bump a directory's mtime after.
  std::vector<const FileSpec*> by_depth;
  for (const FileSpec& f : order) {
    if (f.type != FileSpec::Type::kHardlink) by_depth.push_back(&f);
  }
  std::stable_sort(by_depth.begin(), by_depth.end(), [](const FileSpec* a, const FileSpec* b) {
    return Depth(a->path) > Depth(b->path);
  });
  for (const FileSpec* f : by_depth) {
    HOIST_RETURN_IF_ERROR(SetMtime(staging_dir + "/" + f->path, f->mtime));
  }

  std::string list;
  for (const FileSpec& f : order) {
    list += f.path;
    list += '\0';
  }
  const std::string list_path = staging_dir + ".list";
  HOIST_RETURN_IF_ERROR(WriteFileAtomic(list_path, list, 0644));
  auto tar =
      RunChecked({"tar", "--create", "--file=" + tar_path, "--format=pax", "--no-recursion",
                  "--numeric-owner", "--xattrs", "--xattrs-include=*",
                  "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime", "-C",
                  staging_dir, "--null", "--verbatim-files-from", "--files-from=" + list_path});
  ::unlink(list_path.c_str());
  (void)RemoveTree(staging_dir);
  if (!tar) return Fail(tar.error());
  return Ok();
}

Result<BuiltImage> BuildOciImage(const std::string& layout_dir,
                                 const std::vector<LayerSpec>& layers, const ImageSpec& spec) {
  HOIST_ASSIGN_OR_RETURN(BuiltImage image, BuildImageBlobs(layout_dir, layers, spec));
  HOIST_RETURN_IF_ERROR(TagInIndexJson(layout_dir, kManifestType, image.manifest_digest,
                                       image.manifest.size(), spec.tag));
  return image;
}

Result<BuiltIndex> BuildOciIndex(const std::string& layout_dir,
                                 const std::vector<PlatformImage>& platforms,
                                 const std::string& tag) {
  BuiltIndex index;
  index.layout_dir = layout_dir;
  index.tag = tag;
  for (const PlatformImage& p : platforms) {
    HOIST_ASSIGN_OR_RETURN(BuiltImage image, BuildImageBlobs(layout_dir, p.layers, p.spec));
    image.tag.clear();
    index.images.push_back(std::move(image));
  }
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("schemaVersion");
  w.Int(2);
  w.Key("mediaType");
  w.String(kIndexType);
  w.Key("manifests");
  w.StartArray();
  for (size_t i = 0; i < platforms.size(); ++i) {
    const ImageSpec& spec = platforms[i].spec;
    w.StartObject();
    WriteDescriptor(w, kManifestType, index.images[i].manifest_digest,
                    index.images[i].manifest.size());
    w.Key("platform");
    w.StartObject();
    w.Key("architecture");
    w.String(spec.architecture.c_str());
    w.Key("os");
    w.String(spec.os.c_str());
    if (!spec.variant.empty()) {
      w.Key("variant");
      w.String(spec.variant.c_str());
    }
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  index.index = buf.GetString();
  HOIST_ASSIGN_OR_RETURN(index.index_digest, StoreBlob(layout_dir, index.index));
  HOIST_RETURN_IF_ERROR(
      TagInIndexJson(layout_dir, kIndexType, index.index_digest, index.index.size(), tag));
  return index;
}

Status PushOciLayout(const std::string& source, const std::string& dest,
                     const PushOptions& options) {
  HOIST_RETURN_IF_ERROR(RequirePrograms({"skopeo"}));
  std::vector<std::string> argv = {"skopeo",
                                   "copy",
                                   "--quiet",
                                   "--insecure-policy",
                                   "--dest-tls-verify=false",
                                   "--preserve-digests"};
  if (options.all) argv.push_back("--all");
  if (!options.creds.empty()) argv.push_back("--dest-creds=" + options.creds);
  argv.push_back(source);
  argv.push_back(dest);
  // skopeo must not pick up the machine's auth files.
  CommandOptions run;
  run.env = {"REGISTRY_AUTH_FILE=/nonexistent/hoist-auth.json",
             "DOCKER_CONFIG=/nonexistent/hoist-docker-config"};
  auto out = RunChecked(argv, run);
  if (!out) return Fail(out.error());
  return Ok();
}

}  // namespace hoist::harness
