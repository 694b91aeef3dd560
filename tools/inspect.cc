// hoist inspect [--raw|--config] IMAGE: what `skopeo inspect` prints, for a registry image.
#include <cstdio>

#include "tools/json_out.h"
#include "tools/registry_flags.h"
#include "tools/verbs.h"

namespace hoist {
namespace {

struct InspectArgs {
  RegistryFlags registry;
  std::string image;
  bool raw = false;
  bool config = false;
  bool no_tags = false;
};

std::string InspectJson(const ResolvedImage& img, const ManifestBytes& top,
                        const std::vector<std::string>& tags) {
  JsonOut j;
  auto& w = j.w();
  w.StartObject();
  j.KeyString("Name", img.reference.Name());
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

int RunInspect(const InspectArgs& a) {
  auto ref = Reference::Parse(a.image);
  if (!ref) return ReportError("inspect", ref.error().message());
  auto client = a.registry.MakeClient();
  if (!client) return ReportError("inspect", client.error().message());
  RegistryClient& rc = **client;

  if (a.raw) {
    auto m = rc.GetManifest(*ref);
    if (!m) return ReportError("inspect", m.error().message());
    std::fwrite(m->bytes.data(), 1, m->bytes.size(), stdout);
    return 0;
  }
  auto img = rc.Resolve(*ref);
  if (!img) return ReportError("inspect", img.error().message());
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
  std::string out = InspectJson(*img, top, tags);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

void RegisterInspect(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* sub = app.add_subcommand("inspect", "Show an image's manifest, config and layers");
  args->registry.Add(sub);
  sub->add_option("IMAGE", args->image, "Image reference (registry/repo:tag or @digest)")
      ->required();
  auto* raw = sub->add_flag("--raw", args->raw, "Print the manifest (or index) bytes as served");
  sub->add_flag("--config", args->config, "Print the image config bytes")->excludes(raw);
  sub->add_flag("--no-tags", args->no_tags, "Do not list the repository's tags");
  sub->callback([args, run] { *run = [args] { return RunInspect(*args); }; });
}

}  // namespace hoist
