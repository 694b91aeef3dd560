// hoist manifest-digest FILE|IMAGE: prints the digest of a manifest, like `skopeo
// manifest-digest`. An existing file is hashed as it is (sha256 of its bytes; skopeo's special
// case of a signed docker schema 1 manifest, whose signatures are left out of the hash, is not
// done: hoist does not read schema 1). Anything else is an image name of any transport
// (tools/image/image_transport.h) and its top manifest's digest is printed (the index's for a
// multi-platform image), without fetching a layer.
#include <sys/stat.h>

#include <cstdio>

#include "base/file_util.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verb_images.h"
#include "tools/cli/verbs.h"

namespace hoist {
namespace {

struct ManifestDigestArgs {
  RegistryFlags registry;  // --insecure-registry only
  std::string what;
};

Result<Digest> ManifestDigest(const ManifestDigestArgs& a) {
  struct stat st;
  if (::stat(a.what.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    HOIST_ASSIGN_OR_RETURN(std::string bytes, ReadFile(a.what));
    return Digest::Of(bytes);
  }
  HOIST_ASSIGN_OR_RETURN(ImageName name, ParseImageName(a.what));
  if (name.transport == ImageName::Transport::kRootfs) {
    return Fail(EINVAL, a.what + ": a root filesystem has no manifest");
  }
  HOIST_ASSIGN_OR_RETURN(RegistryOptions registry, a.registry.Options());
  VerbImageSource opened;
  HOIST_RETURN_IF_ERROR(
      opened.Open(name, registry, ScratchParent("", "/tmp"), "hoist-manifest-digest"));
  HOIST_ASSIGN_OR_RETURN(RawManifest top, opened.source().TopManifest());
  return top.digest;
}

int RunManifestDigest(const ManifestDigestArgs& a) {
  auto d = ManifestDigest(a);
  if (!d) return ReportError("manifest-digest", d.error().message());
  std::printf("%s\n", d->str().c_str());
  return 0;
}

}  // namespace

void RegisterManifestDigest(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<ManifestDigestArgs>();
  CLI::App* sub = app.add_subcommand(
      "manifest-digest", "Print a manifest's digest: of a file, or of an image in any transport");
  sub->add_option("FILE|IMAGE", args->what,
                  "A manifest file, or docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                  "docker-archive:FILE, dir:DIR")
      ->required();
  args->registry.AddInsecureRegistry(sub);
  sub->callback([args, run] { *run = [args] { return RunManifestDigest(*args); }; });
}

}  // namespace hoist
