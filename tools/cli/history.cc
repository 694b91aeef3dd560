// hoist history IMAGE: the config's history joined with the layers, newest first, like
// `docker history`: each non-empty history entry owns the next layer of the manifest; empty
// layers (ENV, CMD, ...) show "0B". A local image is used when IMAGE names one, else the
// registry.
//   - IMAGE: the image ID (the config's digest) on the top row only; the others are <missing>,
//     as docker shows for layers it did not build itself. 12 hex digits unless --no-trunc.
//   - SIZE: the layer's uncompressed content (the sum of its regular files' sizes, from its
//     index), so the same image stored as gzip or zstd:chunked shows the same sizes. Indexes
//     come from the host store, else are built as a mount builds them (TOC for zstd:chunked and
//     eStargz; the blob streamed once for plain gzip/zstd/tar) and stored for the next time.
//   - CREATED: "3 weeks ago"; -H=false prints RFC 3339 times and sizes in bytes.
//   - -q: the IDs only; --format TEMPLATE (history_format.h) or json; --json: one JSON array
//     with the layer digests and exact sizes too.
#include <cstdio>
#include <ctime>

#include "base/rfc3339.h"
#include "fusefs/layer_loader.h"
#include "fusefs/local_image.h"
#include "tools/cli/history_format.h"
#include "tools/cli/json_out.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verbs.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

struct HistoryArgs {
  RegistryFlags registry;
  std::string cache;
  std::string image;
  bool json = false;
  bool no_trunc = false;
  bool quiet = false;
  bool human = true;
  std::string format;
};

struct Row {
  std::string layer;  // layer digest, "" for an empty layer
  HistoryEntry entry;
  uint64_t size = 0;  // uncompressed
};

Result<std::vector<Row>> Rows(const ImageManifest& m, const ImageConfig& c,
                              const std::vector<uint64_t>& sizes) {
  std::vector<Row> rows;
  size_t layer = 0;
  for (const HistoryEntry& h : c.history) {
    Row r;
    r.entry = h;
    if (!h.empty_layer) {
      if (layer >= m.layers.size()) {
        return Fail(EINVAL, "the config's history names more layers than the manifest has (" +
                                std::to_string(m.layers.size()) + ")");
      }
      r.layer = m.layers[layer].digest.str();
      r.size = sizes[layer];
      ++layer;
    }
    rows.push_back(std::move(r));
  }
  // Layers without history entries (images built without history).
  for (; layer < m.layers.size(); ++layer) {
    Row r;
    r.layer = m.layers[layer].digest.str();
    r.size = sizes[layer];
    rows.push_back(std::move(r));
  }
  return std::vector<Row>(rows.rbegin(), rows.rend());
}

// Each layer's uncompressed content: the sum of its regular files' sizes.
Result<std::vector<uint64_t>> LayerSizes(LocalStore& local, RegistryClient& client,
                                         const Reference& ref, const ImageManifest& m) {
  LocalBlobSource source(local.cache_dir(), client.OpenBlobSource(ref));
  HOIST_ASSIGN_OR_RETURN(LoadedLayers loaded, LoadLayers(source, &local.store(), m.layers));
  std::vector<uint64_t> sizes;
  for (const auto& li : loaded.layers) {
    uint64_t total = 0;
    for (const Entry& e : li->entries) {
      if (e.type == EntryType::kRegular) total += e.size;
    }
    sizes.push_back(total);
  }
  return sizes;
}

HistoryFields Fields(const HistoryArgs& a, const Row& r, const std::string& id, int64_t now) {
  HistoryFields f;
  f.id = id;
  if (!a.no_trunc && id.starts_with("sha256:")) f.id = id.substr(7, 12);
  auto created = ParseRfc3339(r.entry.created);
  f.created_at = created ? FormatRfc3339(created->first) : "";
  if (!created) {
    f.created_since = "N/A";
  } else {
    f.created_since = a.human ? HumanDurationAgo(now - created->first) : f.created_at;
  }
  std::string by = r.entry.created_by;
  for (char& c : by) {
    if (c == '\t' || c == '\n') c = ' ';
  }
  f.created_by = a.no_trunc ? by : Ellipsis(by, 45);
  f.size = a.human ? HumanSizeDecimal(r.size) : std::to_string(r.size);
  f.comment = r.entry.comment;
  return f;
}

int RunHistory(const HistoryArgs& a) {
  HistoryTemplate tmpl = DefaultHistoryTemplate();
  if (!a.format.empty()) {
    auto t = ParseHistoryTemplate(a.format);
    if (!t) return ReportError("history", t.error().message(), 2);
    tmpl = std::move(*t);
  }
  if (a.quiet && (a.json || !a.format.empty())) {
    return ReportError("history", "-q cannot be combined with --json or --format", 2);
  }
  ImageManifest manifest;
  ImageConfig config;
  auto local = LocalStore::Open(a.cache);
  if (!local) return ReportError("history", local.error().message());
  auto parsed = ParseRegistryReference(a.image);
  if (!parsed) return ReportError("history", parsed.error().message());
  auto found = (*local)->Find(parsed->String());
  if (!found) return ReportError("history", found.error().message());
  auto client = a.registry.MakeClient();
  if (!client) return ReportError("history", client.error().message());
  Reference ref;
  if (*found) {
    manifest = (*found)->manifest;
    config = (*found)->config;
    ref = (*found)->reference;
  } else {
    auto img = (*client)->Resolve(*parsed);
    if (!img) return ReportError("history", img.error().message());
    manifest = img->manifest;
    config = img->config;
    ref = img->reference;
  }
  const std::string image_id = manifest.config.digest.str();
  std::vector<uint64_t> sizes;
  if (!a.quiet) {
    auto s = LayerSizes(**local, **client, ref, manifest);
    if (!s) return ReportError("history", "layer sizes: " + s.error().message());
    sizes = std::move(*s);
  } else {
    sizes.assign(manifest.layers.size(), 0);
  }
  auto rows = Rows(manifest, config, sizes);
  if (!rows) return ReportError("history", rows.error().message());
  std::string out;
  if (a.json) {
    JsonOut j;
    auto& w = j.w();
    w.StartArray();
    for (size_t i = 0; i < rows->size(); ++i) {
      const Row& r = (*rows)[i];
      w.StartObject();
      j.KeyString("ID", i == 0 ? image_id : "<missing>");
      j.KeyString("Layer", r.layer);
      j.KeyString("Created", r.entry.created);
      j.KeyString("CreatedBy", r.entry.created_by);
      j.Key("Size");
      w.Uint64(r.size);
      j.KeyString("Comment", r.entry.comment);
      j.Key("EmptyLayer");
      w.Bool(r.layer.empty());
      w.EndObject();
    }
    w.EndArray();
    out = j.Finish();
  } else {
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    std::vector<HistoryFields> fields;
    for (size_t i = 0; i < rows->size(); ++i) {
      fields.push_back(Fields(a, (*rows)[i], i == 0 ? image_id : "<missing>", now));
    }
    if (a.quiet) {
      for (const HistoryFields& f : fields) out += f.id + "\n";
    } else {
      out = RenderHistory(tmpl, fields);
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

void RegisterHistory(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<HistoryArgs>();
  CLI::App* sub = app.add_subcommand("history", "Show an image's history, like docker history");
  args->registry.Add(sub);
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_flag("-H,--human", args->human,
                "Human times and sizes (default true; -H=false: RFC 3339 times, bytes)");
  sub->add_flag("-q,--quiet", args->quiet, "Only the IDs");
  sub->add_flag("--no-trunc", args->no_trunc, "Do not truncate IDs and CREATED BY");
  sub->add_option("--format", args->format,
                  "json, or a template of {{.ID}} {{.CreatedSince}} {{.CreatedAt}} "
                  "{{.CreatedBy}} {{.Size}} {{.Comment}} (\"table \" adds the header)");
  sub->add_flag("--json", args->json, "One JSON array, with layer digests and sizes in bytes");
  sub->add_option("IMAGE", args->image, "Local image or registry reference")->required();
  sub->callback([args, run] { *run = [args] { return RunHistory(*args); }; });
}

}  // namespace hoist
