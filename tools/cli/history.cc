// hoist history IMAGE: the config's history joined with the layers, newest first, like
// `docker history`: each non-empty history entry owns the next layer of the manifest; empty
// layers (ENV, CMD, ...) show "0 B". A local image is used when IMAGE names one, else the
// registry. Sizes are the layer blob sizes of the manifest (compressed).
#include <cstdio>

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
};

struct Row {
  std::string id;  // layer digest or "<missing>"
  HistoryEntry entry;
  uint64_t size = 0;
};

Result<std::vector<Row>> Rows(const ImageManifest& m, const ImageConfig& c) {
  std::vector<Row> rows;
  size_t layer = 0;
  for (const HistoryEntry& h : c.history) {
    Row r;
    r.entry = h;
    r.id = "<missing>";
    if (!h.empty_layer) {
      if (layer >= m.layers.size()) {
        return Fail(EINVAL, "the config's history names more layers than the manifest has (" +
                                std::to_string(m.layers.size()) + ")");
      }
      r.id = m.layers[layer].digest.str();
      r.size = static_cast<uint64_t>(std::max<int64_t>(0, m.layers[layer].size));
      ++layer;
    }
    rows.push_back(std::move(r));
  }
  // Layers without history entries (images built without history).
  for (; layer < m.layers.size(); ++layer) {
    Row r;
    r.id = m.layers[layer].digest.str();
    r.size = static_cast<uint64_t>(std::max<int64_t>(0, m.layers[layer].size));
    rows.push_back(std::move(r));
  }
  return std::vector<Row>(rows.rbegin(), rows.rend());
}

std::string Trunc(const std::string& s, size_t n, bool no_trunc) {
  if (no_trunc || s.size() <= n) return s;
  return s.substr(0, n - 3) + "...";
}

int RunHistory(const HistoryArgs& a) {
  ImageManifest manifest;
  ImageConfig config;
  auto local = LocalStore::Open(a.cache);
  if (!local) return ReportError("history", local.error().message());
  auto parsed = ParseRegistryReference(a.image);
  if (!parsed) return ReportError("history", parsed.error().message());
  auto found = (*local)->Find(parsed->String());
  if (!found) return ReportError("history", found.error().message());
  if (*found) {
    manifest = (*found)->manifest;
    config = (*found)->config;
  } else {
    const auto& ref = parsed;
    auto client = a.registry.MakeClient();
    if (!client) return ReportError("history", client.error().message());
    auto img = (*client)->Resolve(*ref);
    if (!img) return ReportError("history", img.error().message());
    manifest = img->manifest;
    config = img->config;
  }
  auto rows = Rows(manifest, config);
  if (!rows) return ReportError("history", rows.error().message());
  std::string out;
  if (a.json) {
    JsonOut j;
    auto& w = j.w();
    w.StartArray();
    for (const Row& r : *rows) {
      w.StartObject();
      j.KeyString("Id", r.id);
      j.KeyString("Created", r.entry.created);
      j.KeyString("CreatedBy", r.entry.created_by);
      j.Key("Size");
      w.Uint64(r.size);
      j.KeyString("Comment", r.entry.comment);
      j.Key("EmptyLayer");
      w.Bool(r.entry.empty_layer);
      w.EndObject();
    }
    w.EndArray();
    out = j.Finish();
  } else {
    char line[4096];
    std::snprintf(line, sizeof(line), "%-19s %-20s %-45s %10s  %s\n", "IMAGE", "CREATED",
                  "CREATED BY", "SIZE", "COMMENT");
    out += line;
    for (const Row& r : *rows) {
      std::snprintf(line, sizeof(line), "%-19s %-20s %-45s %10s  %s\n",
                    Trunc(r.id, 19, a.no_trunc).c_str(), r.entry.created.substr(0, 19).c_str(),
                    Trunc(r.entry.created_by, 45, a.no_trunc).c_str(), HumanSize(r.size).c_str(),
                    r.entry.comment.c_str());
      out += line;
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

void RegisterHistory(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<HistoryArgs>();
  CLI::App* sub = app.add_subcommand("history", "Show an image's layers and config history");
  args->registry.Add(sub);
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_flag("--json", args->json, "JSON output");
  sub->add_flag("--no-trunc", args->no_trunc, "Do not truncate the output");
  sub->add_option("IMAGE", args->image, "Local image or registry reference")->required();
  sub->callback([args, run] { *run = [args] { return RunHistory(*args); }; });
}

}  // namespace hoist
