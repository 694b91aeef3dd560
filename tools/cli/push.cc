// hoist push SRC [DST]: copies an image byte for byte (same digests) to DST (default:
// docker://SRC). SRC is a local image (`hoist images`) when it names one and carries no transport
// prefix, else any transport of tools/image/image_transport.h (docker://, oci:, oci-archive:,
// docker-archive:, dir:, rootfs:); DST is docker://, oci:, oci-archive: or dir:. Blobs the
// destination has, or can cross-mount from the source's repository, are not uploaded.
#include <cstdio>

#include "tools/cli/registry_flags.h"
#include "tools/cli/verbs.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

struct PushArgs {
  std::string cache;
  std::string src;
  std::string dst;
  RegistryFlags registry;  // --insecure-registry only
};

Status Push(const PushArgs& a, std::string* what) {
  HOIST_ASSIGN_OR_RETURN(ImageName src_name, ParseImageName(a.src));
  HOIST_ASSIGN_OR_RETURN(RegistryOptions registry, a.registry.Options());
  const bool explicit_transport =
      src_name.transport != ImageName::Transport::kDocker || a.src.starts_with("docker://");
  std::unique_ptr<ImageSource> source;
  std::unique_ptr<LocalStore> local;
  std::string default_dst = a.src;
  if (!explicit_transport) {
    HOIST_ASSIGN_OR_RETURN(local, LocalStore::Open(a.cache));
    HOIST_ASSIGN_OR_RETURN(std::optional<LocalImage> img, local->Find(a.src));
    if (img) {
      default_dst = img->name;
      HOIST_ASSIGN_OR_RETURN(source, NewLocalImageSource(local.get(), std::move(*img), registry));
    }
  }
  if (!source) {
    SourceOptions so;
    so.work_dir = "/tmp";
    so.registry = registry;
    HOIST_ASSIGN_OR_RETURN(source, OpenImageSource(src_name, so));
  }
  if (a.dst.empty() && explicit_transport) {
    return Fail(EINVAL, "a destination is needed when pushing from " + a.src);
  }
  HOIST_ASSIGN_OR_RETURN(ImageName dst_name, ParseImageName(a.dst.empty() ? default_dst : a.dst));
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ImageDestination> dest,
                         OpenImageDestination(dst_name, registry));
  HOIST_ASSIGN_OR_RETURN(RawManifest top, source->TopManifest());
  HOIST_ASSIGN_OR_RETURN(Digest d, CopyImage(*source, *dest, top));
  *what = "Pushed " + dest->name() + " " + d.str();
  return Ok();
}

int RunPush(const PushArgs& a) {
  std::string what;
  Status st = Push(a, &what);
  if (!st) return ReportError("push", st.error().message());
  std::printf("%s\n", what.c_str());
  return 0;
}

}  // namespace

void RegisterPush(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<PushArgs>();
  CLI::App* sub = app.add_subcommand(
      "push", "Push a local image, or copy one from any transport, to a registry (same digests)");
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_option("SRC", args->src,
                  "Local image, or docker://, oci:, oci-archive:, docker-archive:, dir:, rootfs:")
      ->required();
  sub->add_option(
      "DST", args->dst,
      "Destination: docker://, oci:, oci-archive: or dir: (default: the local image's own name)");
  args->registry.AddInsecureRegistry(sub);
  sub->callback([args, run] { *run = [args] { return RunPush(*args); }; });
}

}  // namespace hoist
