// hoist push SRC [DST]: copies an image byte for byte (same digests) to DST (default:
// docker://SRC). SRC is a local image (`hoist images`) when it names one and carries no transport
// prefix, else any transport of tools/image/image_transport.h (docker://, oci:, oci-archive:,
// docker-archive:, dir:, rootfs:); DST is docker://, oci:, oci-archive: or dir:. Blobs the
// destination has, or can cross-mount from the source's repository, are not uploaded.
// Progress: one line per uploaded blob on a terminal (tools/cli/progress.h); -q prints nothing,
// --json prints the progress events and a last {"event":"pushed",...} line on stdout.
// Scratch (rootfs:'s layer tar, decompressed archives) goes to a directory in $TMPDIR (default
// /var/tmp); interrupted (SIGINT, SIGTERM, SIGHUP), no scratch or temporary destination files
// are left, and a killed run's scratch is swept by the next push.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "base/cleanup_on_signal.h"
#include "base/file_util.h"
#include "tools/cli/progress.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verbs.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

struct PushArgs {
  std::string cache;
  std::string src;
  std::string dst;
  bool quiet = false;
  bool json = false;
  RegistryFlags registry;  // --insecure-registry only
};

// Shows each blob the copy reads (those uploaded; skipped ones are never opened).
class ProgressSource : public ImageSource {
 public:
  ProgressSource(ImageSource* inner, ProgressDisplay* progress)
      : inner_(inner), progress_(progress) {}
  std::string name() const override { return inner_->name(); }
  Result<RawManifest> TopManifest() override { return inner_->TopManifest(); }
  Result<RawManifest> Manifest(const Digest& digest) override { return inner_->Manifest(digest); }
  Result<std::string> ReadBlob(const Descriptor& blob) override { return inner_->ReadBlob(blob); }
  Result<std::unique_ptr<ByteReader>> OpenBlob(const Descriptor& blob) override {
    HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ByteReader> r, inner_->OpenBlob(blob));
    const int item =
        progress_->Add(blob.digest.str(), static_cast<uint64_t>(std::max<int64_t>(blob.size, 0)));
    return std::unique_ptr<ByteReader>(
        new ProgressReader(std::move(r), progress_, item, /*done_at_end=*/true));
  }
  Result<std::string> ReadBlobRange(const Descriptor& blob, uint64_t offset,
                                    uint64_t length) override {
    return inner_->ReadBlobRange(blob, offset, length);
  }
  bool VerifiesBlobs() const override { return inner_->VerifiesBlobs(); }
  std::string registry_repository() const override { return inner_->registry_repository(); }

 private:
  ImageSource* inner_;
  ProgressDisplay* progress_;
};

Status Push(const PushArgs& a, std::string* what, Digest* digest) {
  HOIST_ASSIGN_OR_RETURN(ImageName src_name, ParseImageName(a.src));
  HOIST_ASSIGN_OR_RETURN(RegistryOptions registry, a.registry.Options());
  // On SIGINT/SIGTERM/SIGHUP the scratch directory (rootfs: spools its layer there) and what the
  // destination wrote go.
  HOIST_RETURN_IF_ERROR(InstallSignalCleanup());
  const bool explicit_transport =
      src_name.transport != ImageName::Transport::kDocker || a.src.starts_with("docker://");
  ScratchDir work;  // outlives the source that spools into it
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
    const char* tmp = ::getenv("TMPDIR");
    HOIST_RETURN_IF_ERROR(
        work.Create(tmp != nullptr && *tmp != '\0' ? tmp : "/var/tmp", "hoist-push"));
    SourceOptions so;
    so.work_dir = work.path();
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
  ProgressDisplay progress(ChooseProgressMode(a.quiet, a.json));
  ProgressSource shown(source.get(), &progress);
  auto d = CopyImage(shown, *dest, top);
  progress.Finish();
  if (!d) return Fail(d.error());
  *what = dest->name();
  *digest = *d;
  return Ok();
}

int RunPush(const PushArgs& a) {
  std::string what;
  Digest d;
  Status st = Push(a, &what, &d);
  if (!st) return ReportError("push", st.error().message());
  if (a.json) {
    std::printf("{\"event\":\"pushed\",\"image\":\"%s\",\"digest\":\"%s\"}\n", what.c_str(),
                d.str().c_str());
  } else if (!a.quiet) {
    std::printf("Pushed %s %s\n", what.c_str(), d.str().c_str());
  }
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
  sub->add_flag("-q,--quiet", args->quiet, "No progress and no summary");
  sub->add_flag("--json", args->json, "Progress and the result as JSON lines on stdout");
  args->registry.AddInsecureRegistry(sub);
  sub->callback([args, run] { *run = [args] { return RunPush(*args); }; });
}

}  // namespace hoist
