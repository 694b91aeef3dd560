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
//
// Streams: `-i -` (or no -i) reads stdin, as `docker load` does (refused when stdin is a
// terminal). A pipe, a FIFO or any input that is not a regular file is read once, in 1 MiB
// steps (decompressed on the way when gzip/zstd), into the scratch file CACHE/tmp/load-PID.tar,
// which is then read like a file: memory stays bounded whatever the archive's size, and the
// archive's members may come in any order (manifest.json / index.json may be last).
// Signals: on SIGINT, SIGTERM or SIGHUP the scratch file, the temporary and the new layer blob
// files of this load are removed (base/cleanup_on_signal.h); a load-PID.tar of a dead process is
// swept by the next load. Progress: one line per layer stored, on a terminal (-q: none).
#include <fcntl.h>
#include <rapidjson/document.h>
#include <rapidjson/writer.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <cstdio>
#include <map>

#include "base/cleanup_on_signal.h"
#include "base/file_util.h"
#include "base/scoped_fd.h"
#include "index/layer_index.h"
#include "tools/cli/progress.h"
#include "tools/cli/verbs.h"
#include "tools/image/docker_archive.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

struct LoadArgs {
  std::string cache;
  std::string input;
  bool quiet = false;
};

using Archive = TarArchive;

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
                  const Descriptor& desc, Created* created, ProgressDisplay& progress) {
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ByteReader> raw, ar.Open(member));
  const int item =
      progress.Add(desc.digest.str(), static_cast<uint64_t>(std::max<int64_t>(desc.size, 0)));
  ProgressReader r(std::move(raw), &progress, item);
  const std::string path = local.BlobFilePath(desc.digest);
  const bool had = local.HasBlobFile(desc);
  if (!had) RemoveOnSignal(path);  // registered before it exists: no window after the rename
  auto wrote = local.WriteBlobFile(desc, r);
  if (!wrote || !*wrote) {
    if (!had) KeepOnSignal(path);
    if (!wrote) return Fail(wrote.error());
    progress.Done(item, "Already exists");
    return Ok();
  }
  created->files.push_back(path);
  progress.Done(item);
  return Ok();
}

// Reads a stream to its end into `scratch`, decompressing gzip/zstd.
Status SpoolStream(int fd, const std::string& name, const std::string& scratch) {
  class FdStream : public ByteReader {
   public:
    FdStream(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
    Result<size_t> Read(char* buf, size_t n) override {
      while (true) {
        const ssize_t got = ::read(fd_, buf, n);
        if (got >= 0) return static_cast<size_t>(got);
        if (errno != EINTR) return Fail(ErrnoError("reading " + name_));
      }
    }

   private:
    int fd_;
    std::string name_;
  } in(fd, name);
  std::string head(4, '\0');
  HOIST_ASSIGN_OR_RETURN(size_t n, ReadFull(in, head.data(), head.size()));
  head.resize(n);
  if (n == 0) return Fail(EINVAL, name + " is empty (no archive)");
  const Compression c = DetectCompression(head);
  PrefixedReader prefixed(head, &in);
  std::unique_ptr<ByteReader> dec;
  ByteReader* src = &prefixed;
  if (c != Compression::kNone) {
    dec = NewDecompressor(c, &prefixed);
    src = dec.get();
  }
  ScopedFd out(::open(scratch.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid()) return Fail(ErrnoError("creating " + scratch));
  std::string buf(1 << 20, '\0');
  while (true) {
    auto got = src->Read(buf.data(), buf.size());
    if (!got) return Fail(got.error().Context("reading " + name));
    if (*got == 0) break;
    HOIST_RETURN_IF_ERROR(WriteAll(out.get(), std::string_view(buf.data(), *got), scratch));
  }
  return Ok();
}

bool FromStdin(const LoadArgs& a) { return a.input.empty() || a.input == "-"; }

Result<std::vector<LoadedImage>> LoadDockerArchive(LocalStore& local, const Archive& ar,
                                                   Created* created, ProgressDisplay& progress) {
  HOIST_ASSIGN_OR_RETURN(std::string mj, ar.Read("manifest.json"));
  HOIST_ASSIGN_OR_RETURN(std::vector<DockerArchiveEntry> entries, ParseDockerArchiveManifest(mj));
  std::vector<LoadedImage> out;
  for (const DockerArchiveEntry& item : entries) {
    const std::string& config_member = item.config;
    HOIST_ASSIGN_OR_RETURN(std::string config_bytes, ar.Read(config_member));
    auto config = ParseImageConfig(config_bytes);
    if (!config) return Fail(config.error().Context(config_member));
    const auto& layers = item.layers;
    if (layers.size() != config->diff_ids.size()) {
      return Fail(EINVAL, config_member + ": " + std::to_string(config->diff_ids.size()) +
                              " diff_ids for " + std::to_string(layers.size()) + " layers");
    }
    std::vector<Descriptor> descs;
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::string& member = layers[i];
      auto what = [&](const Error& e) { return e.Context(LayerLabel(i, layers.size(), member)); };
      // Pass 1: digest of the bytes as stored, and of their uncompressed tar.
      auto layer = DescribeArchiveLayer(ar, member);
      if (!layer) return Fail(what(layer.error()));
      const Compression c = layer->compression;
      const Digest& diff_id = layer->diff_id;
      Descriptor d;
      d.digest = layer->digest;
      d.size = static_cast<int64_t>(layer->size);
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
      if (Status st = StoreLayer(local, ar, member, d, created, progress); !st)
        return Fail(what(st.error()));
      descs.push_back(std::move(d));
    }
    Descriptor cd;
    cd.media_type = kMediaTypeDockerConfig;
    cd.digest = Digest::Of(config_bytes);
    cd.size = static_cast<int64_t>(config_bytes.size());
    LoadedImage img;
    img.manifest = SynthesizeManifest(kMediaTypeDockerManifest, cd, descs);
    img.config = std::move(config_bytes);
    for (const std::string& t : item.repo_tags) {
      HOIST_ASSIGN_OR_RETURN(std::string name, LocalStore::NormalizeName(t));
      img.names.push_back(std::move(name));
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
                                                const std::string& stem, Created* created,
                                                ProgressDisplay& progress) {
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
      Status st =
          StoreLayer(local, ar, BlobMember(m.layers[i].digest), m.layers[i], created, progress);
      if (!st) {
        return Fail(st.error().Context(LayerLabel(i, m.layers.size(), m.layers[i].digest.str())));
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

Status Load(const LoadArgs& a, LocalStore& local, Created* created,
            std::vector<std::string>* loaded) {
  const std::string scratch_dir = local.cache_dir() + "/tmp";
  HOIST_RETURN_IF_ERROR(MakeDirs(scratch_dir, 0700));
  (void)SweepStale(scratch_dir, "load-");
  const std::string scratch = scratch_dir + "/load-" + std::to_string(::getpid()) + ".tar";
  RemoveOnSignal(scratch);
  struct Cleanup {
    std::string p;
    ~Cleanup() {
      ::unlink(p.c_str());
      KeepOnSignal(p);
    }
  } cleanup{scratch};
  const std::string input = FromStdin(a) ? "stdin" : a.input;
  Result<std::string> path = Fail(EINVAL, "no input");
  struct stat st {};
  if (FromStdin(a)) {
    if (::fstat(STDIN_FILENO, &st) != 0) return Fail(ErrnoError("stdin"));
    if (S_ISREG(st.st_mode)) {
      path = UncompressedArchive("/proc/self/fd/0", scratch);
    } else {
      HOIST_RETURN_IF_ERROR(SpoolStream(STDIN_FILENO, input, scratch));
      path = scratch;
    }
  } else if (::stat(a.input.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    ScopedFd fd(::open(a.input.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Fail(ErrnoError(a.input));
    HOIST_RETURN_IF_ERROR(SpoolStream(fd.get(), a.input, scratch));
    path = scratch;
  } else {
    path = UncompressedArchive(a.input, scratch);
  }
  if (!path) return Fail(path.error());
  auto ar = Archive::Scan(*path);
  if (!ar) return Fail(ar.error().Context(input));
  std::string stem = FromStdin(a) ? "stdin" : a.input.substr(a.input.rfind('/') + 1);
  stem = stem.substr(0, stem.find('.'));
  std::vector<LoadedImage> images;
  ProgressDisplay progress(ChooseProgressMode(a.quiet, false));
  if (ar->Has("manifest.json")) {
    HOIST_ASSIGN_OR_RETURN(images, LoadDockerArchive(local, *ar, created, progress));
  } else if (ar->Has("index.json") && ar->Has("oci-layout")) {
    HOIST_ASSIGN_OR_RETURN(images, LoadOciArchive(local, *ar, stem, created, progress));
  } else {
    return Fail(EINVAL, input +
                            ": neither a docker-archive (manifest.json) nor an OCI archive "
                            "(oci-layout, index.json)");
  }
  progress.Finish();
  if (images.empty()) return Fail(EINVAL, input + ": the archive holds no image");
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
  if (FromStdin(a) && ::isatty(STDIN_FILENO)) {
    return ReportError("load",
                       "refusing to read an archive from a terminal; use -i FILE or redirect "
                       "stdin");
  }
  if (Status st = InstallSignalCleanup(); !st) return ReportError("load", st.error().message());
  auto local = LocalStore::Open(a.cache);
  if (!local) return ReportError("load", local.error().message());
  Created created;
  std::vector<std::string> loaded;
  Status st = Load(a, **local, &created, &loaded);
  if (!st) {
    for (const std::string& f : created.files) ::unlink(f.c_str());
    for (const Digest& d : created.blobs) (void)(*local)->store().DeleteBlob(d);
    for (const std::string& f : created.files) KeepOnSignal(f);
    return ReportError("load", st.error().message());
  }
  for (const std::string& f : created.files) KeepOnSignal(f);
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
  sub->add_option("-i,--input", args->input,
                  "Archive file (tar, optionally gzip/zstd); \"-\" or none: stdin (a pipe)");
  sub->add_flag("-q,--quiet", args->quiet, "No progress, and nothing printed on success");
  sub->callback([args, run] { *run = [args] { return RunLoad(*args); }; });
}

}  // namespace hoist
