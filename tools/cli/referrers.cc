// hoist referrers IMAGE [--artifact-type T] [--json]: the artifacts that refer to IMAGE's
// manifest (OCI 1.1 referrers, or the sha256-<hex> tag where the registry lacks the API), like
// `oras discover`: digest, artifact type, size and annotations of each.
// hoist attach IMAGE --artifact-type T FILE[:MEDIATYPE]...: publishes an artifact referring to
// IMAGE, like `oras attach`: each FILE is a layer (default media type
// application/vnd.oci.image.layer.v1.tar, title annotation = its base name); prints the subject
// and the artifact's digest. The subject is IMAGE's top-level manifest or index as the registry
// serves it (the digest `hoist inspect` shows).
#include <cstdio>

#include "base/file_util.h"
#include "fetcher/referrers.h"
#include "tools/cli/json_out.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verb_images.h"
#include "tools/cli/verbs.h"
#include "tools/image/image_transport.h"

namespace hoist {
namespace {

constexpr std::string_view kDefaultFileMediaType = "application/vnd.oci.image.layer.v1.tar";
constexpr uint64_t kMaxAttachFile = 64 << 20;

struct ReferrersArgs {
  RegistryFlags registry;
  std::string image;
  std::string artifact_type;
  bool json = false;
};

struct AttachArgs {
  RegistryFlags registry;
  std::string image;
  std::string artifact_type;
  std::vector<std::string> files;
  std::vector<std::string> annotations;  // KEY=VALUE
};

// The subject: IMAGE's top-level manifest (or index) as served.
Result<Descriptor> Subject(RegistryClient& client, const Reference& ref) {
  HOIST_ASSIGN_OR_RETURN(ManifestBytes m, client.GetManifest(ref));
  return ManifestDescriptor(m);
}

std::string JoinAnnotations(const std::map<std::string, std::string>& annotations) {
  std::string out;
  for (const auto& [k, v] : annotations) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out.empty() ? "-" : out;
}

int RunReferrers(const ReferrersArgs& a) {
  auto ref = ParseRegistryReference(a.image);
  if (!ref) return ReportError("referrers", ref.error().message());
  auto client = a.registry.MakeClient();
  if (!client) return ReportError("referrers", client.error().message());
  auto subject = Subject(**client, *ref);
  if (!subject) return ReportError("referrers", subject.error().message());
  auto list = ListReferrers(**client, *ref, subject->digest, a.artifact_type);
  if (!list) return ReportError("referrers", list.error().message());
  std::string out;
  if (a.json) {
    JsonOut j;
    auto& w = j.w();
    w.StartObject();
    j.KeyString("reference", ref->WithDigest(subject->digest).String());
    j.KeyString("mediaType", subject->media_type);
    j.KeyString("digest", subject->digest.str());
    j.Key("size");
    w.Int64(subject->size);
    j.Key("manifests");
    w.StartArray();
    for (const Descriptor& d : *list) {
      w.StartObject();
      j.KeyString("reference", ref->WithDigest(d.digest).String());
      j.KeyString("mediaType", d.media_type);
      j.KeyString("digest", d.digest.str());
      j.Key("size");
      w.Int64(d.size);
      j.KeyString("artifactType", d.artifact_type);
      j.Key("annotations");
      j.StringMap(d.annotations);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    out = j.Finish();
  } else {
    char line[512];
    std::snprintf(line, sizeof(line), "%-71s %-40s %8s  %s\n", "DIGEST", "ARTIFACT TYPE", "SIZE",
                  "ANNOTATIONS");
    out += line;
    for (const Descriptor& d : *list) {
      std::snprintf(line, sizeof(line), "%-71s %-40s %8lld  ", d.digest.str().c_str(),
                    d.artifact_type.empty() ? "-" : d.artifact_type.c_str(),
                    static_cast<long long>(d.size));
      out += line + JoinAnnotations(d.annotations) + "\n";
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

// "path[:media/type]": the media type is what follows the last ':' when it has a '/'.
std::pair<std::string, std::string> SplitFileArg(const std::string& arg) {
  size_t colon = arg.rfind(':');
  if (colon != std::string::npos && arg.find('/', colon) != std::string::npos) {
    return {arg.substr(0, colon), arg.substr(colon + 1)};
  }
  return {arg, std::string(kDefaultFileMediaType)};
}

Status Attach(const AttachArgs& a, std::string* what) {
  HOIST_ASSIGN_OR_RETURN(Reference ref, ParseRegistryReference(a.image));
  std::map<std::string, std::string> annotations;
  for (const std::string& kv : a.annotations) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(EINVAL, "--annotation \"" + kv + "\" is not KEY=VALUE");
    }
    annotations[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  std::vector<ReferrerBlob> blobs;
  for (const std::string& arg : a.files) {
    auto [path, media_type] = SplitFileArg(arg);
    HOIST_ASSIGN_OR_RETURN(std::string data, ReadFile(path));
    if (data.size() > kMaxAttachFile) {
      return Fail(EFBIG, path + ": larger than " + std::to_string(kMaxAttachFile) + " bytes");
    }
    size_t slash = path.rfind('/');
    std::string title = slash == std::string::npos ? path : path.substr(slash + 1);
    blobs.push_back({media_type, std::move(data), {{"org.opencontainers.image.title", title}}});
  }
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<RegistryClient> client, a.registry.MakeClient());
  HOIST_ASSIGN_OR_RETURN(Descriptor subject, Subject(*client, ref));
  HOIST_ASSIGN_OR_RETURN(Descriptor pushed, PushReferrer(*client, ref, subject, a.artifact_type,
                                                         blobs, std::move(annotations)));
  *what =
      "Attached to " + ref.WithDigest(subject.digest).String() + "\nDigest: " + pushed.digest.str();
  return Ok();
}

int RunAttach(const AttachArgs& a) {
  std::string what;
  Status st = Attach(a, &what);
  if (!st) return ReportError("attach", st.error().message());
  std::printf("%s\n", what.c_str());
  return 0;
}

// --insecure-registry and --log-level; no --platform: the subject is IMAGE's top-level manifest
// or index, whatever the platform.
void AddFlags(CLI::App* sub, RegistryFlags* flags) {
  flags->AddInsecureRegistry(sub);
  sub->add_option("--log-level", flags->log_level, "debug, info, warning, error or off");
}

}  // namespace

void RegisterReferrers(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<ReferrersArgs>();
  CLI::App* sub = app.add_subcommand(
      "referrers", "List the artifacts that refer to an image (OCI referrers, like oras discover)");
  AddFlags(sub, &args->registry);
  sub->add_option("--artifact-type", args->artifact_type, "Only artifacts of this type");
  sub->add_flag("--json", args->json, "JSON output");
  sub->add_option("IMAGE", args->image, "Image (registry/repo:tag or @digest)")->required();
  sub->callback([args, run] { *run = [args] { return RunReferrers(*args); }; });
}

void RegisterAttach(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<AttachArgs>();
  CLI::App* sub = app.add_subcommand(
      "attach", "Publish an artifact that refers to an image (OCI referrers, like oras attach)");
  AddFlags(sub, &args->registry);
  sub->add_option("--artifact-type", args->artifact_type, "The artifact's type")->required();
  sub->add_option("--annotation", args->annotations, "KEY=VALUE on the artifact (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("IMAGE", args->image, "Image the artifact refers to")->required();
  sub->add_option("FILE", args->files, "FILE[:MEDIATYPE], one layer each");
  sub->callback([args, run] { *run = [args] { return RunAttach(*args); }; });
}

}  // namespace hoist
