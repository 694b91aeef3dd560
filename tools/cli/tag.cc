// hoist tag SRC DST: a new name for an image.
//   - SRC is a local image (and --remote is not given): a new local reference, nothing else.
//   - Otherwise in the registry: within one repository a manifest GET + PUT under the new tag;
//     across repositories of one registry every blob is cross-repository mounted (HEAD first,
//     then POST ?mount=&from=, no upload), child manifests and then the manifest are PUT; across
//     registries the blobs are copied (streamed).
#include <cstdio>

#include "tools/cli/registry_flags.h"
#include "tools/cli/verbs.h"
#include "tools/image/image_impl.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

struct TagArgs {
  RegistryFlags registry;
  std::string cache;
  std::string src;
  std::string dst;
  bool remote = false;
};

Status Tag(const TagArgs& a, std::string* what) {
  HOIST_ASSIGN_OR_RETURN(Reference src, ParseRegistryReference(a.src));
  HOIST_ASSIGN_OR_RETURN(Reference dst, ParseRegistryReference(a.dst));
  if (!dst.digest.empty())
    return Fail(EINVAL, "destination " + a.dst + " must be a tag, not a digest");
  if (!a.remote) {
    HOIST_ASSIGN_OR_RETURN(std::unique_ptr<LocalStore> local, LocalStore::Open(a.cache));
    HOIST_ASSIGN_OR_RETURN(std::optional<LocalImage> img, local->Find(src.String()));
    if (img) {
      HOIST_RETURN_IF_ERROR(local->store().PutRef(dst.String(), img->manifest_digest));
      *what = "Tagged " + dst.String() + " (local)";
      return Ok();
    }
  }
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<RegistryClient> client, a.registry.MakeClient());
  if (src.registry == dst.registry && src.repository == dst.repository) {
    HOIST_RETURN_IF_ERROR(client->Tag(src, dst.tag));
    *what = "Tagged " + dst.String();
    return Ok();
  }
  HOIST_ASSIGN_OR_RETURN(RegistryOptions options, a.registry.Options());
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ImageSource> source,
                         NewDockerSource(src.String(), options));
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ImageDestination> dest,
                         NewDockerDestination(dst.String(), options));
  HOIST_ASSIGN_OR_RETURN(RawManifest top, source->TopManifest());
  HOIST_RETURN_IF_ERROR(CopyImage(*source, *dest, top));
  *what = "Tagged " + dst.String() + " " + top.digest.str();
  return Ok();
}

int RunTag(const TagArgs& a) {
  std::string what;
  Status st = Tag(a, &what);
  if (!st) return ReportError("tag", st.error().message());
  std::printf("%s\n", what.c_str());
  return 0;
}

}  // namespace

void RegisterTag(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<TagArgs>();
  CLI::App* sub = app.add_subcommand(
      "tag",
      "Give an image another name: locally, or in the registry (within one registry blobs are "
      "mounted, not uploaded; to another registry every blob is copied)");
  args->registry.Add(sub);
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_flag("--remote", args->remote, "Tag in the registry even if SRC is a local image");
  sub->add_option("SRC", args->src, "Source image")->required();
  sub->add_option("DST", args->dst, "New name (registry/repo:tag)")->required();
  sub->callback([args, run] { *run = [args] { return RunTag(*args); }; });
}

}  // namespace hoist
