// hoist delete REF: deletes a manifest from a registry, like `skopeo delete`. REF is
// [docker://]registry/repo:tag or @digest; a tag is resolved to its manifest digest first and
// that manifest is deleted, so every tag pointing at it goes too (the distribution API deletes
// manifests by digest). Prints "Deleted registry/repo@DIGEST". A registry that refuses deletes
// (405) or has no such manifest (404) gets one line and exit 1.
#include <cstdio>

#include "tools/cli/registry_flags.h"
#include "tools/cli/verbs.h"
#include "tools/image/image_transport.h"

namespace hoist {
namespace {

struct DeleteArgs {
  RegistryFlags registry;
  std::string image;
};

int RunDelete(const DeleteArgs& a) {
  auto ref = ParseRegistryReference(a.image);
  if (!ref) return ReportError("delete", ref.error().message());
  auto client = a.registry.MakeClient();
  if (!client) return ReportError("delete", client.error().message());
  auto digest = (*client)->DeleteManifest(*ref);
  if (!digest) return ReportError("delete", digest.error().message());
  std::printf("Deleted %s@%s\n", ref->Name().c_str(), digest->str().c_str());
  return 0;
}

}  // namespace

void RegisterDelete(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<DeleteArgs>();
  CLI::App* sub = app.add_subcommand(
      "delete", "Delete an image's manifest (and so its tags) from a registry (skopeo delete)");
  args->registry.Add(sub);
  sub->add_option("IMAGE", args->image, "[docker://]registry/repo:tag or @digest")->required();
  sub->callback([args, run] { *run = [args] { return RunDelete(*args); }; });
}

}  // namespace hoist
