// hoist inspect [--raw|--config] IMAGE: what `skopeo inspect` prints, for a registry image (or a
// local one; when the registry fails and the local store has the image, one stderr line says
// "hoist inspect: registry unreachable (WHY); using the local store" before the JSON). IMAGE
// may also name another transport (oci:DIR[:TAG], oci-archive:FILE[:TAG],
// docker-archive:FILE[:REF], dir:DIR, rootfs:DIR), read through its ImageSource: --raw prints the
// top manifest or index as the transport gives it, --config the config of the host platform's
// image, and the JSON has the transport name as Name and no RepoTags.
#include <stdlib.h>

#include <cstdio>

#include "base/cleanup_on_signal.h"
#include "base/file_util.h"
#include "tools/cli/json_out.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verb_images.h"
#include "tools/cli/verbs.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

struct InspectArgs {
  RegistryFlags registry;
  std::string image;
  bool raw = false;
  bool config = false;
  bool no_tags = false;
  bool local = false;  // only the local store
  std::string cache;
};

std::string InspectJson(const std::string& name, const ResolvedImage& img, const ManifestBytes& top,
                        const std::vector<std::string>& tags) {
  JsonOut j;
  auto& w = j.w();
  w.StartObject();
  j.KeyString("Name", name);
  j.KeyString("Digest", top.digest.str());
  j.Key("RepoTags");
  j.StringList(tags);
  j.KeyString("Created", img.config.created);
  j.KeyString("DockerVersion", "");
  j.Key("Labels");
  j.StringMap(img.config.labels, /*null_if_empty=*/true);
  j.KeyString("Architecture", img.config.architecture);
  if (!img.config.variant.empty()) j.KeyString("Variant", img.config.variant);
  j.KeyString("Os", img.config.os);
  j.Key("Layers");
  w.StartArray();
  for (const auto& l : img.manifest.layers) j.String(l.digest.str());
  w.EndArray();
  j.Key("LayersData");
  w.StartArray();
  for (const auto& l : img.manifest.layers) {
    w.StartObject();
    j.KeyString("MIMEType", l.media_type);
    j.KeyString("Digest", l.digest.str());
    j.Key("Size");
    w.Int64(l.size);
    j.Key("Annotations");
    j.StringMap(l.annotations, /*null_if_empty=*/true);
    w.EndObject();
  }
  w.EndArray();
  j.Key("Env");
  j.StringList(img.config.env, /*null_if_empty=*/true);
  w.EndObject();
  return j.Finish();
}

// A local image (`hoist pull` / `hoist load`): the same output; RepoTags are the local names of
// the same manifest. Returns nullopt when the store has no such image.
std::optional<int> InspectLocal(const InspectArgs& a, std::optional<Error>* error) {
  auto local = LocalStore::Open(a.cache);
  if (!local) {
    *error = local.error();
    return std::nullopt;
  }
  auto found = (*local)->Find(a.image);
  if (!found) {
    *error = found.error();
    return std::nullopt;
  }
  if (!*found) return std::nullopt;
  const LocalImage& li = **found;
  if (a.raw) {
    std::fwrite(li.manifest_bytes.data(), 1, li.manifest_bytes.size(), stdout);
    return 0;
  }
  if (a.config) {
    std::fwrite(li.config.raw.data(), 1, li.config.raw.size(), stdout);
    return 0;
  }
  ResolvedImage img;
  img.reference = li.reference;
  img.manifest_bytes = ManifestBytes{li.media_type, li.manifest_digest, li.manifest_bytes};
  img.manifest = li.manifest;
  img.config = li.config;
  std::vector<std::string> tags;
  if (!a.no_tags) {
    if (auto refs = (*local)->store().ListRefs(); refs) {
      for (const auto& [name, digest] : *refs) {
        auto r = Reference::Parse(name);
        if (r && digest == li.manifest_digest && r->Name() == li.reference.Name() &&
            !r->tag.empty()) {
          tags.push_back(r->tag);
        }
      }
    }
  }
  std::string out = InspectJson(img.reference.Name(), img, img.manifest_bytes, tags);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

Status InspectTransport(const InspectArgs& a, const ImageName& name) {
  // A scratch directory (rootfs: spools its layer there), removed when inspect ends or is
  // interrupted (SIGINT, SIGTERM, SIGHUP); a killed run's is swept by the next one.
  HOIST_RETURN_IF_ERROR(InstallSignalCleanup());
  VerbImageSource opened;
  HOIST_RETURN_IF_ERROR(opened.Open(name, {}, ScratchParent("", "/tmp"), "hoist-inspect"));
  ImageSource* source = &opened.source();
  HOIST_ASSIGN_OR_RETURN(RawManifest top, source->TopManifest());
  if (a.raw) {
    std::fwrite(top.bytes.data(), 1, top.bytes.size(), stdout);
    return Ok();
  }
  HOIST_ASSIGN_OR_RETURN(RawManifest m, SelectManifest(*source, Platform::Host()));
  ResolvedImage img;
  HOIST_ASSIGN_OR_RETURN(img.manifest, ParseImageManifest(m.bytes, m.media_type));
  HOIST_ASSIGN_OR_RETURN(std::string config, source->ReadBlob(img.manifest.config));
  if (a.config) {
    std::fwrite(config.data(), 1, config.size(), stdout);
    return Ok();
  }
  HOIST_ASSIGN_OR_RETURN(img.config, ParseImageConfig(config));
  std::string out =
      InspectJson(source->name(), img, ManifestBytes{top.media_type, top.digest, top.bytes}, {});
  std::fwrite(out.data(), 1, out.size(), stdout);
  return Ok();
}

int RunInspectReference(const InspectArgs& a) {
  auto ref = Reference::Parse(a.image);
  if (!ref) return ReportError("inspect", ref.error().message());
  if (a.local) {
    std::optional<Error> error;
    if (std::optional<int> rc = InspectLocal(a, &error)) return *rc;
    if (error) return ReportError("inspect", error->message());
    return ReportError("inspect", "no such local image: " + ref->String());
  }
  // The registry first; an image it cannot give (unknown there, or unreachable) may be local.
  // Falling back says so, on one stderr line before the local image's JSON.
  auto remote_failed = [&](const Error& e) {
    std::optional<Error> local_error;
    bool have = false;
    {  // closed again before InspectLocal opens it (one LMDB environment per process at once)
      auto local = LocalStore::Open(a.cache);
      if (local) {
        auto found = (*local)->Find(a.image);
        have = found && found->has_value();
      }
    }
    if (have) {
      const int code = e.code();
      const bool unreachable =
          code == ECONNREFUSED || code == EHOSTUNREACH || code == ENETUNREACH || code == ETIMEDOUT;
      std::fprintf(stderr, "hoist inspect: %s (%s); using the local store\n",
                   unreachable ? "registry unreachable" : "registry failed", e.message().c_str());
      if (std::optional<int> rc = InspectLocal(a, &local_error)) return *rc;
    }
    return ReportError("inspect", e.message());
  };
  auto client = a.registry.MakeClient();
  if (!client) return ReportError("inspect", client.error().message());
  RegistryClient& rc = **client;

  if (a.raw) {
    auto m = rc.GetManifest(*ref);
    if (!m) return remote_failed(m.error());
    std::fwrite(m->bytes.data(), 1, m->bytes.size(), stdout);
    return 0;
  }
  auto img = rc.Resolve(*ref);
  if (!img) return remote_failed(img.error());
  if (a.config) {
    std::fwrite(img->config.raw.data(), 1, img->config.raw.size(), stdout);
    return 0;
  }
  const ManifestBytes& top = img->index ? *img->index : img->manifest_bytes;
  std::vector<std::string> tags;
  if (!a.no_tags) {
    auto t = rc.ListTags(*ref);
    if (!t) return ReportError("inspect", t.error().message());
    tags = std::move(*t);
  }
  std::string out = InspectJson(img->reference.Name(), *img, top, tags);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int RunInspect(const InspectArgs& a) {
  auto name = ParseImageName(a.image);
  if (!name) return ReportError("inspect", name.error().message());
  if (name->transport != ImageName::Transport::kDocker) {
    if (a.local) return ReportError("inspect", "--local names a local image, not " + a.image);
    Status st = InspectTransport(a, *name);
    if (!st) return ReportError("inspect", st.error().message());
    return 0;
  }
  if (a.image.starts_with("docker://")) {
    InspectArgs registry_only = a;
    registry_only.image = name->path;
    return RunInspectReference(registry_only);
  }
  return RunInspectReference(a);
}

}  // namespace

void RegisterInspect(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* sub = app.add_subcommand("inspect", "Show an image's manifest, config and layers");
  args->registry.Add(sub);
  sub->add_option("IMAGE", args->image,
                  "Image reference (registry/repo:tag or @digest), or oci:DIR[:TAG], "
                  "oci-archive:FILE[:TAG], docker-archive:FILE[:REF], dir:DIR (skopeo's layout), "
                  "rootfs:DIR")
      ->required();
  auto* raw = sub->add_flag("--raw", args->raw, "Print the manifest (or index) bytes as served");
  sub->add_flag("--config", args->config, "Print the image config bytes")->excludes(raw);
  sub->add_flag("--no-tags", args->no_tags, "Do not list the repository's tags");
  sub->add_flag("--local", args->local,
                "Only the local store (by default the registry, then the local store)");
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->callback([args, run] { *run = [args] { return RunInspect(*args); }; });
}

}  // namespace hoist
