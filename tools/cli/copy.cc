// hoist copy [--platform P] [--digestfile FILE] SRC DST: copies an image between any two
// transports of tools/image/image_transport.h, like `skopeo copy --all`: manifests, configs and
// layers are copied byte for byte, so every digest is kept (except from docker-archive:, which
// stores no manifest: its source synthesises one). Blobs the destination already has, or can
// cross-mount from the source's repository of the same registry, are not copied again.
// --platform copies only that platform's manifest of an index (skopeo copy without --all picks the
// host's). Prints "Copied SRC to DST DIGEST" (the top manifest's digest); --digestfile also writes
// the digest to FILE (as skopeo does). On failure: one line, exit 1, nothing new visible at DST;
// interrupted (SIGINT, SIGTERM, SIGHUP): no scratch or temporary destination files left.
// docker-archive:FILE[:NAME:TAG] as DST writes what `hoist save` writes (tools/cli/save.h): one
// image (the host's platform of an index, or --platform's), layers uncompressed, so the archive
// holds the config but not the manifest; the digest printed is the source manifest's.
#include <cstdio>

#include "base/cleanup_on_signal.h"
#include "base/file_util.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/save.h"
#include "tools/cli/verb_images.h"
#include "tools/cli/verbs.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

struct CopyArgs {
  std::string src;
  std::string dst;
  std::string platform;
  std::string digestfile;
  std::string work_dir;
  RegistryFlags registry;  // --insecure-registry only
};

// DST docker-archive:FILE[:NAME:TAG] (skopeo's syntax: the first ':' ends the file name).
Status CopyToDockerArchive(std::unique_ptr<ImageSource> source, const std::string& spec,
                           const CopyArgs& a, const std::string& spool_dir, std::string* what) {
  std::string file = spec;
  SaveImage img;
  if (const size_t c = spec.find(':'); c != std::string::npos) {
    file = spec.substr(0, c);
    auto name = ParseRegistryReference(spec.substr(c + 1));
    if (!name)
      return Fail(name.error().code(), "docker-archive:" + spec + ": " + name.error().message());
    if (name->tag.empty()) {
      return Fail(EINVAL, "docker-archive:" + spec + ": the name needs a tag (NAME:TAG)");
    }
    img.names.push_back(std::move(*name));
  }
  if (file.empty()) return Fail(EINVAL, "docker-archive: needs a file name");
  Platform platform = Platform::Host();
  if (!a.platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(platform, Platform::Parse(a.platform));
  }
  HOIST_ASSIGN_OR_RETURN(img.manifest, SelectManifest(*source, platform));
  HOIST_ASSIGN_OR_RETURN(img.parsed,
                         ParseImageManifest(img.manifest.bytes, img.manifest.media_type));
  const std::string from = source->name();
  img.source = std::move(source);
  std::vector<SaveImage> images;
  images.push_back(std::move(img));
  ProgressDisplay progress(ChooseProgressMode(/*quiet=*/true, false));
  HOIST_RETURN_IF_ERROR(WriteArchiveFile(file, [&](int fd, const std::string&) -> Status {
    ArchiveWriter out(fd);
    return WriteDockerArchive(images, out, spool_dir, progress);
  }));
  const Digest d = images[0].manifest.digest;
  if (!a.digestfile.empty()) {
    HOIST_RETURN_IF_ERROR(WriteFileAtomic(a.digestfile, d.str(), 0644));
  }
  *what = "Copied " + from + " to docker-archive:" + spec + " " + d.str();
  return Ok();
}

Status Copy(const CopyArgs& a, std::string* what) {
  HOIST_ASSIGN_OR_RETURN(ImageName src_name, ParseImageName(a.src));
  HOIST_ASSIGN_OR_RETURN(ImageName dst_name, ParseImageName(a.dst));
  HOIST_ASSIGN_OR_RETURN(RegistryOptions registry, a.registry.Options());
  // On SIGINT/SIGTERM/SIGHUP the scratch directory and what the destination wrote go.
  HOIST_RETURN_IF_ERROR(InstallSignalCleanup());
  VerbImageSource opened;
  HOIST_RETURN_IF_ERROR(opened.Open(src_name, registry, ScratchParent(a.work_dir), "hoist-copy"));
  ImageSource& source = opened.source();
  HOIST_ASSIGN_OR_RETURN(RawManifest top, source.TopManifest());
  if (!a.platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(Platform p, Platform::Parse(a.platform));
    HOIST_ASSIGN_OR_RETURN(top, SelectManifest(source, p));
  }
  if (dst_name.transport == ImageName::Transport::kDockerArchive) {
    return CopyToDockerArchive(opened.Release(), dst_name.path, a, opened.work_dir(), what);
  }
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ImageDestination> dest,
                         OpenImageDestination(dst_name, registry));
  HOIST_ASSIGN_OR_RETURN(Digest d, CopyImage(source, *dest, top));
  if (!a.digestfile.empty()) {
    HOIST_RETURN_IF_ERROR(WriteFileAtomic(a.digestfile, d.str(), 0644));
  }
  *what = "Copied " + source.name() + " to " + dest->name() + " " + d.str();
  return Ok();
}

int RunCopy(const CopyArgs& a) {
  std::string what;
  Status st = Copy(a, &what);
  if (!st) return ReportError("copy", st.error().message());
  std::printf("%s\n", what.c_str());
  return 0;
}

}  // namespace

void RegisterCopy(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<CopyArgs>();
  CLI::App* sub = app.add_subcommand(
      "copy", "Copy an image between transports, digests kept (like skopeo copy --all)");
  sub->add_option("SRC", args->src,
                  "Source: docker://REF (default), oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                  "docker-archive:FILE, dir:DIR (skopeo's layout), rootfs:DIR")
      ->required();
  sub->add_option("DST", args->dst,
                  "Destination: docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], dir:DIR, "
                  "docker-archive:FILE[:NAME:TAG]")
      ->required();
  sub->add_option("--platform", args->platform,
                  "Copy only this platform (os/arch[/variant]) of an index: DST gets that "
                  "platform's manifest");
  sub->add_option("--digestfile", args->digestfile, "Also write the copied digest to this file");
  sub->add_option("--work-dir", args->work_dir, "Scratch directory (rootfs:, compressed archives)");
  args->registry.AddInsecureRegistry(sub);
  sub->callback([args, run] { *run = [args] { return RunCopy(*args); }; });
}

}  // namespace hoist
