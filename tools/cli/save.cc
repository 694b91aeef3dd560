// hoist save IMAGE... -o FILE [--format docker-archive|oci-archive]: several images and tags in
// one archive. Each IMAGE is a local image (`hoist images`) or else a registry reference (the
// host platform of an index).
//
// docker-archive (what `docker load`, `podman load` and `skopeo copy docker-archive:` read; the
// layout skopeo 1.9 writes): <config-hex>.json, one UNCOMPRESSED layer per diff_id as
// <diffid-hex>.tar (every layer is decompressed and its sha256 checked against the config's
// diff_id), legacy <v1-id>/{VERSION,json,layer.tar -> ../<diffid-hex>.tar} directories, then
// manifest.json ([{Config, RepoTags, Layers}]) and repositories.
// oci-archive: a tar of an OCI image layout: oci-layout, blobs/sha256/<hex> (blobs as they are,
// compressed, each checked against its digest), index.json with one entry per name (annotations
// org.opencontainers.image.ref.name = the tag, io.containerd.image.name = the full name).
//
// The archive is written to FILE.tmp-PID and renamed into place only when complete; on any error,
// SIGINT, SIGTERM or SIGHUP it is removed and FILE is untouched (base/cleanup_on_signal.h); a
// FILE.tmp-PID of a dead process is swept by the next save to FILE.
// `-o -` (or no -o) writes the archive to stdout, as `docker save` does, refused when stdout is a
// terminal; the docker-archive layer spools then go to $TMPDIR (default /var/tmp), unlinked.
// Progress: one line per layer on a terminal (tools/cli/progress.h), none with -q.
#include <fcntl.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "base/cleanup_on_signal.h"
#include "base/file_util.h"
#include "base/scoped_fd.h"
#include "index/layer_index.h"
#include "tools/cli/progress.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/save.h"
#include "tools/cli/verb_images.h"
#include "tools/cli/verbs.h"
#include "tools/image/archive_writer.h"
#include "tools/image/image_impl.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

struct SaveArgs {
  std::string cache;
  std::vector<std::string> images;
  std::string output;
  std::string format = "docker-archive";
  bool quiet = false;
  RegistryFlags registry;  // --insecure-registry only
};

class Json {
 public:
  Json() : w_(buf_) {}
  rapidjson::Writer<rapidjson::StringBuffer>& w() { return w_; }
  void S(std::string_view s) { w_.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }
  std::string str() const { return std::string(buf_.GetString(), buf_.GetSize()); }

 private:
  rapidjson::StringBuffer buf_;
  rapidjson::Writer<rapidjson::StringBuffer> w_;
};

Result<SaveImage> OpenForSave(LocalStore& local, const std::string& text,
                              const RegistryOptions& registry) {
  HOIST_ASSIGN_OR_RETURN(Reference ref, ParseRegistryReference(text));
  SaveImage img;
  if (!ref.tag.empty()) img.names.push_back(ref);
  HOIST_ASSIGN_OR_RETURN(std::optional<LocalImage> li, local.Find(ref.String()));
  if (li) {
    HOIST_ASSIGN_OR_RETURN(img.source, NewLocalImageSource(&local, std::move(*li), registry));
  } else {
    HOIST_ASSIGN_OR_RETURN(img.source, NewDockerSource(ref.String(), registry));
  }
  HOIST_ASSIGN_OR_RETURN(img.manifest, SelectManifest(*img.source, Platform::Host()));
  HOIST_ASSIGN_OR_RETURN(img.parsed,
                         ParseImageManifest(img.manifest.bytes, img.manifest.media_type));
  return img;
}

std::string ShortName(const Reference& r) { return r.Name() + ":" + r.tag; }

// Decompresses a layer into `spool` (an unlinked temp file), checking the compressed digest and
// the diff_id. Returns the uncompressed size.
Result<uint64_t> SpoolLayer(ImageSource& source, const Descriptor& layer, const Digest& diff_id,
                            int spool, ProgressDisplay& progress) {
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ByteReader> r, source.OpenBlob(layer));
  const int item =
      progress.Add(layer.digest.str(), static_cast<uint64_t>(std::max<int64_t>(layer.size, 0)));
  HashingReader raw(std::make_unique<ProgressReader>(std::move(r), &progress, item));
  std::string head(512, '\0');
  HOIST_ASSIGN_OR_RETURN(size_t got, ReadFull(raw, head.data(), head.size()));
  head.resize(got);
  const Compression c = DetectCompression(head);
  PrefixedReader prefixed(head, &raw);
  std::unique_ptr<ByteReader> dec;
  ByteReader* plain_src = &prefixed;
  if (c != Compression::kNone) {
    dec = NewDecompressor(c, &prefixed);
    plain_src = dec.get();
  }
  Sha256 sha;
  uint64_t size = 0;
  std::string buf(1 << 20, '\0');
  while (true) {
    HOIST_ASSIGN_OR_RETURN(size_t n, plain_src->Read(buf.data(), buf.size()));
    if (n == 0) break;
    sha.Update(buf.data(), n);
    size += n;
    HOIST_RETURN_IF_ERROR(WriteAll(spool, std::string_view(buf.data(), n),
                                   "the spool of layer " + layer.digest.str()));
  }
  HOIST_RETURN_IF_ERROR(Drain(raw));
  if (raw.Finish() != layer.digest) {
    return Fail(EIO, "layer " + layer.digest.str() + ": digest mismatch");
  }
  const Digest d = Digest::FromSha256(sha.Final());
  if (d != diff_id) {
    return Fail(EIO, "layer " + layer.digest.str() + ": uncompressed digest " + d.str() +
                         " is not the config's diff_id " + diff_id.str());
  }
  progress.Done(item);
  return size;
}

}  // namespace

Status WriteDockerArchive(std::vector<SaveImage>& images, ArchiveWriter& out,
                          const std::string& spool_dir, ProgressDisplay& progress) {
  std::set<Digest> written;  // configs and diff_ids
  Json manifest;
  manifest.w().StartArray();
  std::map<std::string, std::map<std::string, std::string>> repositories;
  for (SaveImage& img : images) {
    HOIST_ASSIGN_OR_RETURN(std::string config_bytes, img.source->ReadBlob(img.parsed.config));
    if (Digest::Of(config_bytes) != img.parsed.config.digest) {
      return Fail(EIO, "config " + img.parsed.config.digest.str() + ": digest mismatch");
    }
    HOIST_ASSIGN_OR_RETURN(ImageConfig config, ParseImageConfig(config_bytes));
    if (config.diff_ids.size() != img.parsed.layers.size()) {
      return Fail(EINVAL, img.source->name() + ": the config has " +
                              std::to_string(config.diff_ids.size()) + " diff_ids for " +
                              std::to_string(img.parsed.layers.size()) + " layers");
    }
    const std::string config_name = std::string(img.parsed.config.digest.hex()) + ".json";
    if (written.insert(img.parsed.config.digest).second) {
      HOIST_RETURN_IF_ERROR(out.File(config_name, config_bytes));
    }
    std::vector<std::string> layer_names;
    std::string parent;
    std::string v1_id;
    for (size_t i = 0; i < img.parsed.layers.size(); ++i) {
      const Digest& diff_id = config.diff_ids[i];
      const std::string layer_name = std::string(diff_id.hex()) + ".tar";
      layer_names.push_back(layer_name);
      v1_id = std::string(Digest::Of(parent + "\n" + diff_id.str()).hex());
      if (!written.insert(diff_id).second) {
        parent = v1_id;
        continue;
      }
      HOIST_ASSIGN_OR_RETURN(ScopedFd spool, OpenUnlinkedTempFile(spool_dir));
      auto size = SpoolLayer(*img.source, img.parsed.layers[i], diff_id, spool.get(), progress);
      if (!size) {
        return Fail(size.error().Context(
            LayerLabel(i, img.parsed.layers.size(), img.parsed.layers[i].digest.str()) + " of " +
            img.source->name()));
      }
      HOIST_ASSIGN_OR_RETURN(auto reader,
                             FileReader::Open("/proc/self/fd/" + std::to_string(spool.get())));
      HOIST_RETURN_IF_ERROR(out.Stream(layer_name, *size, *reader));
      // The legacy layout beside it.
      HOIST_RETURN_IF_ERROR(out.Dir(v1_id));
      HOIST_RETURN_IF_ERROR(out.File(v1_id + "/VERSION", "1.0"));
      Json j;
      j.w().StartObject();
      j.S("id");
      j.S(v1_id);
      if (!parent.empty()) {
        j.S("parent");
        j.S(parent);
      }
      j.w().EndObject();
      HOIST_RETURN_IF_ERROR(out.File(v1_id + "/json", j.str()));
      HOIST_RETURN_IF_ERROR(out.Symlink(v1_id + "/layer.tar", "../" + layer_name));
      parent = v1_id;
    }
    auto& w = manifest.w();
    w.StartObject();
    manifest.S("Config");
    manifest.S(config_name);
    manifest.S("RepoTags");
    w.StartArray();
    for (const Reference& r : img.names) {
      manifest.S(ShortName(r));
      repositories[r.Name()][r.tag] = v1_id;
    }
    w.EndArray();
    manifest.S("Layers");
    w.StartArray();
    for (const std::string& l : layer_names) manifest.S(l);
    w.EndArray();
    w.EndObject();
  }
  manifest.w().EndArray();
  HOIST_RETURN_IF_ERROR(out.File("manifest.json", manifest.str()));
  Json repos;
  repos.w().StartObject();
  for (const auto& [repo, tags] : repositories) {
    repos.S(repo);
    repos.w().StartObject();
    for (const auto& [tag, id] : tags) {
      repos.S(tag);
      repos.S(id);
    }
    repos.w().EndObject();
  }
  repos.w().EndObject();
  HOIST_RETURN_IF_ERROR(out.File("repositories", repos.str()));
  return out.Finish();
}

namespace {

Status PutOciBlob(ImageSource& source, const Descriptor& d, ArchiveWriter& out,
                  std::set<Digest>* written, ProgressDisplay& progress) {
  if (!written->insert(d.digest).second) return Ok();
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ByteReader> r, source.OpenBlob(d));
  const int item =
      progress.Add(d.digest.str(), static_cast<uint64_t>(std::max<int64_t>(d.size, 0)));
  HashingReader hashing(std::make_unique<ProgressReader>(std::move(r), &progress, item));
  HOIST_RETURN_IF_ERROR(out.Stream("blobs/sha256/" + std::string(d.digest.hex()),
                                   static_cast<uint64_t>(d.size), hashing));
  if (hashing.Finish() != d.digest)
    return Fail(EIO, "blob " + d.digest.str() + ": digest mismatch");
  progress.Done(item);
  return Ok();
}

Status WriteOciArchive(std::vector<SaveImage>& images, ArchiveWriter& out,
                       ProgressDisplay& progress) {
  HOIST_RETURN_IF_ERROR(out.File("oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}"));
  HOIST_RETURN_IF_ERROR(out.Dir("blobs"));
  HOIST_RETURN_IF_ERROR(out.Dir("blobs/sha256"));
  std::set<Digest> written;
  Json index;
  auto& w = index.w();
  w.StartObject();
  index.S("schemaVersion");
  w.Int(2);
  index.S("mediaType");
  index.S(kMediaTypeOciIndex);
  index.S("manifests");
  w.StartArray();
  for (SaveImage& img : images) {
    for (size_t i = 0; i < img.parsed.layers.size(); ++i) {
      Status st = PutOciBlob(*img.source, img.parsed.layers[i], out, &written, progress);
      if (!st) {
        return Fail(st.error().Context(
            LayerLabel(i, img.parsed.layers.size(), img.parsed.layers[i].digest.str()) + " of " +
            img.source->name()));
      }
    }
    HOIST_ASSIGN_OR_RETURN(std::string config, img.source->ReadBlob(img.parsed.config));
    if (Digest::Of(config) != img.parsed.config.digest) {
      return Fail(EIO, "config " + img.parsed.config.digest.str() + ": digest mismatch");
    }
    if (written.insert(img.parsed.config.digest).second) {
      HOIST_RETURN_IF_ERROR(
          out.File("blobs/sha256/" + std::string(img.parsed.config.digest.hex()), config));
    }
    if (written.insert(img.manifest.digest).second) {
      HOIST_RETURN_IF_ERROR(
          out.File("blobs/sha256/" + std::string(img.manifest.digest.hex()), img.manifest.bytes));
    }
    std::vector<const Reference*> names;
    for (const Reference& r : img.names) names.push_back(&r);
    if (names.empty()) names.push_back(nullptr);
    for (const Reference* r : names) {
      w.StartObject();
      index.S("mediaType");
      index.S(img.manifest.media_type);
      index.S("digest");
      index.S(img.manifest.digest.str());
      index.S("size");
      w.Uint64(img.manifest.bytes.size());
      if (r != nullptr) {
        index.S("annotations");
        w.StartObject();
        index.S("io.containerd.image.name");
        index.S(r->String());
        index.S("org.opencontainers.image.ref.name");
        index.S(r->tag);
        w.EndObject();
      }
      w.EndObject();
    }
  }
  w.EndArray();
  w.EndObject();
  HOIST_RETURN_IF_ERROR(out.File("index.json", index.str()));
  return out.Finish();
}

}  // namespace

Status WriteArchiveFile(const std::string& path,
                        const std::function<Status(int fd, const std::string& dir)>& write) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  HOIST_RETURN_IF_ERROR(InstallSignalCleanup());
  (void)SweepStale(dir, base + ".tmp-");
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  RemoveOnSignal(temp);
  int raw = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (raw < 0) {
    KeepOnSignal(temp);
    return Fail(ErrnoError("creating " + temp));
  }
  ScopedFd fd(raw);
  Status st = write(fd.get(), dir);
  if (st && ::fsync(fd.get()) != 0) st = Fail(ErrnoError("fsync " + temp));
  if (st) st = RenameRegistered(temp, path);
  if (!st) {
    ::unlink(temp.c_str());
    KeepOnSignal(temp);
    return st;
  }
  return Ok();
}

namespace {

bool ToStdout(const SaveArgs& a) { return a.output.empty() || a.output == "-"; }

Status Save(const SaveArgs& a) {
  if (ToStdout(a) && ::isatty(STDOUT_FILENO)) {
    return Fail(ENOTTY,
                "refusing to write an archive to a terminal; use -o FILE or redirect stdout");
  }
  HOIST_ASSIGN_OR_RETURN(RegistryOptions registry, a.registry.Options());
  if (a.format != "docker-archive" && a.format != "oci-archive") {
    return Fail(EINVAL, "unknown format \"" + a.format + "\" (docker-archive or oci-archive)");
  }
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<LocalStore> local, LocalStore::Open(a.cache));
  // One entry per manifest; names of the same image are merged.
  std::vector<SaveImage> images;
  for (const std::string& text : a.images) {
    HOIST_ASSIGN_OR_RETURN(SaveImage img, OpenForSave(*local, text, registry));
    bool merged = false;
    for (SaveImage& have : images) {
      if (have.manifest.digest == img.manifest.digest) {
        for (Reference& r : img.names) have.names.push_back(std::move(r));
        merged = true;
        break;
      }
    }
    if (!merged) images.push_back(std::move(img));
  }
  ProgressDisplay progress(ChooseProgressMode(a.quiet, false));
  auto write = [&](int fd, const std::string& spool_dir) -> Status {
    ArchiveWriter out(fd);
    Status st = a.format == "docker-archive" ? WriteDockerArchive(images, out, spool_dir, progress)
                                             : WriteOciArchive(images, out, progress);
    progress.Finish();
    return st;
  };
  if (ToStdout(a)) {
    return write(STDOUT_FILENO, ScratchParent(""));
  }
  return WriteArchiveFile(a.output, write);
}

int RunSave(const SaveArgs& a) {
  Status st = Save(a);
  if (!st) return ReportError("save", st.error().message());
  return 0;
}

}  // namespace

void RegisterSave(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<SaveArgs>();
  CLI::App* sub = app.add_subcommand(
      "save", "Write images (local or from a registry) to a docker-archive or OCI archive");
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_option("-o,--output", args->output,
                  "Archive file to write; \"-\" or none: stdout (not a terminal)");
  sub->add_flag("-q,--quiet", args->quiet, "No progress display");
  sub->add_option("--format", args->format, "docker-archive (default) or oci-archive");
  sub->add_option("IMAGE", args->images, "Images (local names or registry references)")->required();
  args->registry.AddInsecureRegistry(sub);
  sub->callback([args, run] { *run = [args] { return RunSave(*args); }; });
}

}  // namespace hoist
